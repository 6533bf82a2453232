"""Speed of a network on this device: eval and training-step images/s on synthetic batches, against reference
implementations (inference latency: workbench.complexity.latency).

`benchmark` times with torch.utils.benchmark (fixed threads, blocked_autorange, CUDA synchronised by its timer): every
model is built and warmed up first, then the models are measured in alternation, round after round. Within a round
each kind of step (eval, train) is measured mirrored, A B B A (A B C C B A for three models), so that a drift of the
machine's speed during the round meets every model alike; a model's time in the round is the mean of its two
measurements. Each row gives the median and interquartile range of the step times over all rounds, and its speed
relative to the first row: the median over rounds of the ratio of the two models' times in that round (paired, so
that a load change between rounds cancels).

On the CPU (not compiled) every model's tensors are copied to fresh memory at the start of each round. Two builds of
the same modules were seen to differ by 4 % in eval for a whole run (with 64 eval measurements each in one such run)
and by about 1 % in the next: an offset fixed for the life of the process, such as where a model's memory lies,
which no number of measurements in that process averages out. Re-placed every round, such an offset is one round's,
and the median over rounds resists it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.model import build_model
from workbench.schema.architecture import Architecture
from workbench.schema.recipe import Recipe
from workbench.train.device import Execution, reproducible, resolve_execution

REFERENCES = ("torchvision", "timm")
KINDS = ("eval", "train")


@dataclass
class Subject:
    """One model under measurement: its steps by kind, every step time measured so far (seconds), its time in
    each round (the mean of the medians of its mirrored measurements), and the tensors its steps touch."""

    source: str
    params: int
    steps: dict[str, Callable[[], None]]
    times: dict[str, list[float]]
    round_times: dict[str, list[float]]
    tensors: Callable[[], list[torch.Tensor]]

    @torch.no_grad()
    def relocate(self) -> None:
        """Copy every tensor the steps touch (weights, buffers, the batch, the optimiser's state) to freshly
        allocated memory; the tensor objects, which the steps and the optimiser hold, stay the same."""
        for tensor in self.tensors():
            tensor.data = tensor.data.clone()


def benchmark(arch: Architecture, *, resolution: int | None = None, batch: int = 8, recipe: Recipe | None = None, rounds: int = 7,
              min_run_time: float = 0.5, warmup: int = 1, num_classes: int = 1000,
              references: tuple[str, ...] = (), compile_backend: str = "inductor") -> list[dict[str, Any]]:
    """One row per model: workbench's build of `arch`, then each reference implementation of the same name
    ("torchvision", "timm"), timed interleaved for `rounds` rounds of two mirrored blocked_autorange measurements
    (at least `min_run_time` seconds each) per model and kind (eval forward, training step). `recipe` says how the models
    run, as in training: device, amp, channels_last, compile (default: Recipe()'s); `compile_backend` is
    torch.compile's backend when it compiles (inductor, as training uses; aot_eager traces forward and backward
    without generating kernels, for a quick check)."""
    recipe = recipe or Recipe()
    exe = resolve_execution(recipe, None)
    size = resolution or arch.resolution.eval_size
    makers: list[tuple[str, Callable[[], nn.Module]]] = [("workbench", lambda: build_model(arch, num_classes))]
    makers += [(name, lambda name=name: reference_model(name, arch, num_classes)) for name in references]
    with reproducible(exe):
        backend = compile_backend if recipe.compile else None
        subjects = [_subject(source, make, arch.in_channels, size, batch, num_classes, exe, backend) for source, make in makers]
        for subject in subjects:
            for step in subject.steps.values():
                for _ in range(warmup):
                    step()
        for _ in range(rounds):
            if not exe.cuda and backend is None:
                for subject in subjects:
                    subject.relocate()
            for kind in KINDS:
                _mirrored_round(subjects, kind, min_run_time)
    return _rows(subjects, arch, size, batch, rounds, exe, backend)


def _mirrored_round(subjects: list[Subject], kind: str, min_run_time: float) -> None:
    """One round of `kind`: every model measured twice, in the order A B B A (once when there is only one)."""
    order = subjects + subjects[::-1] if len(subjects) > 1 else subjects
    medians: dict[int, list[float]] = {id(subject): [] for subject in subjects}
    for subject in order:
        times = _measure(subject.steps[kind], min_run_time).times
        subject.times[kind].extend(times)
        medians[id(subject)].append(_quantiles(times)[1])
    for subject in subjects:
        subject.round_times[kind].append(sum(medians[id(subject)]) / len(medians[id(subject)]))


def _subject(source: str, make: Callable[[], nn.Module], channels: int, size: int, batch: int, num_classes: int,
             exe: Execution, compile_backend: str | None) -> Subject:
    torch.manual_seed(0)
    model = make().to(exe.device, memory_format=exe.memory_format)
    if compile_backend is not None:
        model = torch.compile(model, backend=compile_backend)
    images = torch.randn(batch, channels, size, size, device=exe.device).contiguous(memory_format=exe.memory_format)
    labels = torch.randint(0, num_classes, (batch,), device=exe.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = {"eval": lambda: _eval_step(model, images, exe), "train": make_train_step(model, images, labels, exe, optimizer)}

    def tensors() -> list[torch.Tensor]:
        state = [value for entry in optimizer.state.values() for value in entry.values() if isinstance(value, torch.Tensor)]
        return [*model.parameters(), *model.buffers(), images, labels, *state]

    return Subject(source, sum(p.numel() for p in model.parameters()), steps, {kind: [] for kind in KINDS}, {kind: [] for kind in KINDS},
                   tensors)


def _measure(step: Callable[[], None], min_run_time: float):
    from torch.utils import benchmark as torch_benchmark

    timer = torch_benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time)


def _quantiles(times: list[float]) -> list[float]:
    """First quartile, median, third quartile."""
    quartiles = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    return torch.quantile(torch.tensor(times, dtype=torch.float64), quartiles).tolist()


def _rows(subjects: list[Subject], arch: Architecture, size: int, batch: int, rounds: int, exe: Execution,
          compile_backend: str | None) -> list[dict[str, Any]]:
    rows = []
    first = subjects[0]
    for subject in subjects:
        row: dict[str, Any] = {"model": subject.source, "architecture": arch.name, "resolution": size, "batch": batch,
                               "device": exe.describe + (f", compiled ({compile_backend})" if compile_backend else ""), "threads": torch.get_num_threads(), "rounds": rounds, "params": subject.params}
        for kind in KINDS:
            q1, median, q3 = _quantiles(subject.times[kind])
            paired = [theirs / ours for theirs, ours in zip(first.round_times[kind], subject.round_times[kind])]
            row.update({f"{kind}_ms": median * 1000, f"{kind}_iqr_ms": (q3 - q1) * 1000, f"{kind}_measurements": len(subject.times[kind]),
                        f"{kind}_images_per_s": batch / median, f"{kind}_ratio": _quantiles(paired)[1]})
        rows.append(row)
    return rows


def reference_model(name: str, arch: Architecture, num_classes: int) -> nn.Module:
    """The reference implementation `name` ("torchvision" or "timm") of the architecture of the same name, untrained."""
    builders = {"torchvision": _torchvision_model, "timm": _timm_model}
    if name not in builders:
        raise WorkbenchError(f"no reference implementation named {name} (known: {', '.join(REFERENCES)})")
    model = builders[name](arch, num_classes)
    if arch.in_channels != 3:
        raise WorkbenchError(f"--{name}: the reference models take 3 input channels, {arch.name} has {arch.in_channels}")
    return model


def _torchvision_model(arch: Architecture, num_classes: int) -> nn.Module:
    import torchvision.models

    from workbench.train.transfer import torchvision_name

    name = torchvision_name(arch.name)
    if name not in torchvision.models.list_models():
        raise WorkbenchError(f"torchvision has no model named {name} to compare with {arch.name}")
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def _timm_model(arch: Architecture, num_classes: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise WorkbenchError(["--timm needs the optional package timm, which is not installed",
                              "install it with: pip install 'workbench[reference]' (or pip install timm)"]) from None
    name = arch.name.lower().replace("-", "_")
    if name not in timm.list_models():
        raise WorkbenchError(f"timm has no model named {name} to compare with {arch.name}")
    return timm.create_model(name, pretrained=False, num_classes=num_classes)


def _autocast(exe: Execution):
    return torch.autocast(exe.device.type, dtype=exe.amp_dtype or torch.float32, enabled=exe.amp_dtype is not None)


@torch.no_grad()
def _eval_step(model: nn.Module, images: torch.Tensor, exe: Execution) -> None:
    model.eval()
    with _autocast(exe):
        model(images)


def make_train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, exe: Execution,
                    optimizer: torch.optim.Optimizer | None = None) -> Callable[[], None]:
    """One training step on a fixed batch (AdamW at 1e-3 unless `optimizer` is given), with the run's autocast and
    gradient scaling."""
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3)
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
