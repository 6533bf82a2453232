"""How each runtime turns a module (or an exported file) into the call a latency measurement times.

eager        the module in eval mode under torch.inference_mode
compile      torch.compile of the same (the warm-up calls compile it)
onnxruntime  the module exported to ONNX (torch.onnx.export, the torch.export-based exporter) and run by an
             onnxruntime InferenceSession with `threads` intra-op threads; an .onnx file is run as it is

ONNX export and onnxruntime are the optional extra `export` (pip install 'workbench[export]'): onnx, onnxscript
(which torch's exporter needs) and onnxruntime. torch, onnx and onnxruntime are imported inside the functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

INPUT_NAME, OUTPUT_NAME = "images", "logits"
EXTRA_HINT = "install the optional extra with: pip install 'workbench[export]' (onnx, onnxscript, onnxruntime)"


def module_step(module: Any, images: Any, runtime: str, device: str) -> Callable[[], None]:
    """The zero-argument call that runs `module` (eval mode) once on `images`, eagerly or compiled."""
    import torch

    module, images = module.to(device), images.to(device)
    if runtime == "compile":
        module = torch.compile(module, dynamic=False)

    def step() -> None:
        with torch.inference_mode():
            module(images)

    return step


def onnx_step(path: Path, shape: tuple[int, ...], device: str, threads: int) -> Callable[[], None]:
    """The zero-argument call that runs an ONNX model once, in onnxruntime, on a fixed batch of random images."""
    return _ort_step(ort_session(path, device, threads), shape)


def _ort_step(session: Any, shape: tuple[int, ...]) -> Callable[[], None]:
    import numpy as np

    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}

    def step() -> None:
        session.run(None, feed)

    return step


# --- ONNX ------------------------------------------------------------------------------------------------


def require(module: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise WorkbenchError([f"{purpose} needs the optional package {module}, which is not installed", EXTRA_HINT]) from None


def export_onnx(module: Any, example: Any, path: Path, dynamic_batch: bool = True) -> Path:
    """Export `module` (in eval mode) to `path` with input `images` and output `logits`; `dynamic_batch` leaves the
    batch dimension free (the example's batch must then be at least 2, or torch.export specialises it to 1)."""
    import torch

    require("onnx", "ONNX export")
    require("onnxscript", "ONNX export (torch's exporter)")
    dynamic = ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=dynamic, external_data=False, verbose=False)
    if program is None:
        raise WorkbenchError(f"torch.onnx.export returned no program for {path}")
    program.save(str(path), external_data=False)
    return path


def ort_session(path: Path, device: str = "cpu", threads: int = 1) -> Any:
    """An onnxruntime session on `device` with `threads` intra-op threads (one inter-op thread: the graph is a chain)."""
    ort = require("onnxruntime", "--runtime onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise WorkbenchError(f"--device {device} --runtime onnxruntime: this onnxruntime has no {provider} "
                             f"(available: {', '.join(ort.get_available_providers())}); for CUDA install onnxruntime-gpu")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable or invalid models
        raise WorkbenchError(f"{path}: onnxruntime cannot load it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def onnx_input_shape(path: Path) -> tuple[int, int, int]:
    """(channels, height, width) of an ONNX image model's first input; its batch dimension may be free."""
    session = ort_session(path)
    shape = session.get_inputs()[0].shape
    dims = shape[1:] if len(shape) == 4 else []
    if len(dims) != 3 or not all(isinstance(d, int) for d in dims):
        raise WorkbenchError(f"{path}: expected an image model with input (batch, channels, height, width) of fixed image size, "
                             f"got {shape}")
    return int(dims[0]), int(dims[1]), int(dims[2])
