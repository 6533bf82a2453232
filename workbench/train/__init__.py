"""Training: recipe -> optimiser and schedule, progressive stages, the loop and its trial folder, predict, bench.

    from workbench.train import fit
    status = fit(job, "runs/digits")   # job: workbench.schema.recipe.TrainJob

Names load lazily, so the torch-free parts (workbench.train.progressive) import without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "fit": "workbench.train.loop",
    "plan_stages": "workbench.train.progressive",
    "load_trained": "workbench.train.predict",
    "predict_files": "workbench.train.predict",
    "benchmark": "workbench.train.bench",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workbench.train' has no attribute {name!r}")
