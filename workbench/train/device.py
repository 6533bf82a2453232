"""Where and how a run executes: device, mixed precision, memory format, loader workers, determinism, threads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from workbench.errors import WorkbenchError
from workbench.schema.recipe import Recipe


@dataclass(frozen=True)
class Execution:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    channels_last: bool
    num_workers: int

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def describe(self) -> str:
        amp = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.amp_dtype]
        name = torch.cuda.get_device_name(self.device) if self.cuda else f"cpu x{torch.get_num_threads()} threads"
        return f"{self.device} ({name}), {amp}{', channels_last' if self.channels_last else ''}"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_execution(recipe: Recipe, device: str | torch.device | None = None) -> Execution:
    """`device` (an argument of fit) wins over recipe.device; auto picks CUDA when present."""
    chosen = torch.device(device) if device is not None and str(device) != "auto" else None
    if chosen is None:
        name = recipe.device
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        chosen = torch.device(name)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError("device cuda requested but torch finds no CUDA device; use recipe.device=cpu or auto")
    cuda = chosen.type == "cuda"
    return Execution(
        device=chosen,
        amp_dtype=_amp_dtype(recipe.amp) if cuda else None,
        channels_last=recipe.channels_last if recipe.channels_last is not None else cuda,
        num_workers=recipe.num_workers if recipe.num_workers is not None else (min(8, cpu_count()) if cuda else 0),
    )


def _amp_dtype(amp: str) -> torch.dtype | None:
    if amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


@contextmanager
def reproducible(execution: Execution) -> Iterator[None]:
    """CPU: deterministic algorithms (bitwise repeatable runs). CUDA: cuDNN autotuning for speed instead.
    The global switches are restored afterwards, so runs in one process do not leak settings into each other."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        if execution.cuda:
            torch.backends.cudnn.benchmark = True
        else:
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark


@contextmanager
def thread_count(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
