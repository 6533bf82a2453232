"""Speed of a network on this device: eval and training-step images/s on synthetic batches, and inference latency."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.model import build_model
from workbench.schema.architecture import Architecture
from workbench.schema.recipe import Recipe
from workbench.train.device import Execution, resolve_execution
from workbench.trialdir import read_json, write_json


def benchmark(arch: Architecture, *, resolution: int | None = None, batch: int = 32, device: str | None = None,
              warmup: int = 3, steps: int = 10, num_classes: int = 1000, torchvision_too: bool = False) -> list[dict[str, Any]]:
    """One row per model (workbench-built, and torchvision's of the same name when asked): eval and train img/s."""
    exe = resolve_execution(Recipe(), device)
    size = resolution or arch.resolution.eval_size
    models: list[tuple[str, Callable[[], nn.Module]]] = [("workbench", lambda: build_model(arch, num_classes))]
    if torchvision_too:
        models.append(("torchvision", lambda: _torchvision_model(arch, num_classes)))
    rows = []
    for source, make in models:
        torch.manual_seed(0)
        model = make().to(exe.device, memory_format=exe.memory_format)
        images = torch.randn(batch, arch.in_channels, size, size, device=exe.device).contiguous(memory_format=exe.memory_format)
        labels = torch.randint(0, num_classes, (batch,), device=exe.device)
        rows.append({
            "model": source, "architecture": arch.name, "resolution": size, "batch": batch, "device": exe.describe,
            "params": sum(p.numel() for p in model.parameters()),
            "eval_images_per_s": _rate(lambda: _eval_step(model, images, exe), batch, warmup, steps, exe),
            "train_images_per_s": _rate(make_train_step(model, images, labels, exe), batch, warmup, steps, exe),
        })
    return rows


def _torchvision_model(arch: Architecture, num_classes: int) -> nn.Module:
    import torchvision.models

    from workbench.train.transfer import torchvision_name

    name = torchvision_name(arch.name)
    if name not in torchvision.models.list_models():
        from workbench.errors import WorkbenchError

        raise WorkbenchError(f"torchvision has no model named {name} to compare with {arch.name}")
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def _autocast(exe: Execution):
    return torch.autocast(exe.device.type, dtype=exe.amp_dtype or torch.float32, enabled=exe.amp_dtype is not None)


@torch.no_grad()
def _eval_step(model: nn.Module, images: torch.Tensor, exe: Execution) -> None:
    model.eval()
    with _autocast(exe):
        model(images)


def make_train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, exe: Execution) -> Callable[[], None]:
    """One AdamW training step on a fixed batch, with the run's autocast and gradient scaling."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=exe.amp_dtype == torch.float16)

    def step() -> None:
        model.train()
        with _autocast(exe):
            loss = nn.functional.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def _rate(step: Callable[[], None], batch: int, warmup: int, steps: int, exe: Execution) -> float:
    for _ in range(warmup):
        step()
    _sync(exe)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(exe)
    return batch * steps / (time.perf_counter() - started)


def _sync(exe: Execution) -> None:
    if exe.cuda:
        torch.cuda.synchronize(exe.device)


# --- inference latency ------------------------------------------------------------------------------------


def inference_ms(arch: Architecture, batch: int, num_classes: int, exe: Execution, min_run_time: float = 0.5) -> float:
    """Milliseconds per image of the eval-mode forward pass at the architecture's eval resolution: the median of
    torch.utils.benchmark's blocked_autorange (it warms up, runs at the process's thread count, and synchronises CUDA)."""
    from torch.utils import benchmark as torch_benchmark

    size = arch.resolution.eval_size
    model = build_model(arch, num_classes).to(exe.device, memory_format=exe.memory_format).eval()
    images = torch.randn(batch, arch.in_channels, size, size, device=exe.device).contiguous(memory_format=exe.memory_format)

    def forward() -> None:
        with torch.no_grad(), _autocast(exe):
            model(images)

    forward()  # the first call pays for allocation and kernel selection
    timer = torch_benchmark.Timer(stmt="forward()", globals={"forward": forward}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1000 / batch


def cached_latencies(cache_path: Path, architectures: dict[str, tuple[Path, int]], batch: int, device: str | None = None) -> int:
    """Measure every architecture file not yet in the cache (arch id -> (file, classes)); returns how many were measured.
    The cache (a search folder's latency.json) is kept per device and batch size: another device starts it afresh."""
    from workbench.schema import load_architecture

    exe = resolve_execution(Recipe(), device)
    cache = read_json(cache_path) or {}
    if cache.get("device") != exe.describe or cache.get("batch") != batch:
        cache = {"device": exe.describe, "batch": batch, "architectures": {}}
    rows = cache["architectures"]
    todo = {arch_id: item for arch_id, item in architectures.items() if arch_id not in rows}
    for arch_id, (path, num_classes) in todo.items():
        rows[arch_id] = {"ms_per_image": inference_ms(load_architecture(path), batch, num_classes, exe)}
    if todo:
        write_json(cache_path, cache)
    return len(todo)
