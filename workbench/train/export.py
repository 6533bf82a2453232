"""A trained checkpoint as a deployable model: ONNX (for onnxruntime and other runtimes) or TorchScript.

The exported model takes normalised images (batch, channels, size, size) — size the checkpoint's eval size, the batch
free — and returns logits. Each export is checked before it is kept: the file, loaded back (onnxruntime on CPU for
ONNX, torch.jit.load for TorchScript), must give the checkpoint's logits within `tolerance` at two batch sizes; a
file that does not is removed and the export fails. The ONNX file carries the class names and the input size as
metadata (workbench.classes, workbench.input).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.complexity.latency_runtime import INPUT_NAME, OUTPUT_NAME, export_onnx, ort_session, require
from workbench.errors import WorkbenchError
from workbench.schema.architecture import Architecture
from workbench.train.predict import load_trained

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4
CHECK_BATCHES = (1, 3)  # the export runs at batch 2: checking 1 and 3 shows the batch size is free


@dataclass
class Exported:
    path: Path
    format: str
    input_shape: tuple[int, int, int]
    num_classes: int
    max_abs_diff: float  # the largest logit difference from the checkpoint's, over the check batches
    checked_with: str


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path, tolerance: float = TOLERANCE) -> Exported:
    if fmt not in FORMATS:
        raise WorkbenchError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise WorkbenchError(f"-o {out}: a folder; give the file to write, e.g. {out / ('model.' + ('onnx' if fmt == 'onnx' else 'pt'))}")
    model, config = load_trained(checkpoint, "cpu")
    arch = Architecture.model_validate(config["architecture"])
    size = int(config.get("eval_size") or arch.resolution.eval_size)
    shape = (arch.in_channels, size, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    example = torch.randn(2, *shape)
    if fmt == "onnx":
        export_onnx(model, example, out, dynamic_batch=True)
        _add_metadata(out, config, shape)
        run, checked_with = _onnx_runner(out), "onnxruntime (CPU)"
    else:
        run, checked_with = _torchscript(model, example, out), "torch.jit.load"
    diff = _max_difference(model, run, shape)
    if not diff <= tolerance:
        out.unlink(missing_ok=True)
        raise WorkbenchError(f"{out}: the exported model's logits differ from the checkpoint's by {diff:.2e}, more than "
                             f"{tolerance:g}; the file was removed")
    return Exported(out, fmt, shape, int(config["num_classes"]), diff, checked_with)


def _torchscript(model: torch.nn.Module, example: torch.Tensor, out: Path):
    """Trace and save; the loaded-back module's forward. (torch 2.9+ marks TorchScript deprecated in favour of
    torch.export; it still traces and loads, and LibTorch deployments still read it.)"""
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(model, example).save(str(out))
        loaded = torch.jit.load(str(out), map_location="cpu").eval()

    def run(images: torch.Tensor):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)
            return loaded(images).numpy()

    return run


def _onnx_runner(path: Path):
    session = ort_session(path, "cpu", threads=1)
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]


def _max_difference(model: torch.nn.Module, run, shape: tuple[int, int, int]) -> float:
    """The largest absolute logit difference between the checkpoint's model and the exported one, on random images."""
    import numpy as np

    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch in CHECK_BATCHES:
        images = torch.randn(batch, *shape, generator=generator)
        with torch.no_grad():
            expected = model(images).numpy()
        got = np.asarray(run(images))
        if got.shape != expected.shape:
            raise WorkbenchError(f"the exported model returned logits of shape {got.shape} for batch {batch}, expected {expected.shape}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


def _add_metadata(path: Path, config: dict[str, Any], shape: tuple[int, int, int]) -> None:
    onnx = require("onnx", "ONNX export")
    model = onnx.load(str(path))
    classes = config.get("classes") or [str(i) for i in range(config["num_classes"])]
    onnx.helper.set_model_props(model, {"workbench.classes": json.dumps(classes), "workbench.input": json.dumps(
        {"shape": ["batch", *shape], "normalization": "ImageNet mean and std (mean of them for grayscale)"}),
        "workbench.architecture": str(config["architecture"].get("name", ""))})
    onnx.save(model, str(path))
