"""workbench: declare EfficientNet-family networks as JSON, count, train, study and compare them.

Heavy modules (torch, ray, fvcore) load only when a function that needs them is called.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_architecture", "build_model"]


def load_architecture(path: Any):
    from workbench.schema import load_architecture as _load

    return _load(path)


def build_model(arch: Any, num_classes: int = 1000):
    from workbench.model import build_model as _build

    return _build(arch, num_classes)
