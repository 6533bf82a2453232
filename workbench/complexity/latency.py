"""Measured inference latency: one timing protocol for every caller, and a local cache of its results.

The protocol (torch.utils.benchmark's Timer): build every subject on the device, warm each up with single timed calls,
then time them in alternation, round after round (the order reversed every other round, so a change in the machine's
load meets all of them alike), each round blocks of about a millisecond of calls until `min_run_time` seconds are
spent, at a fixed thread count; CUDA is synchronised by the benchmark timer itself. A result is the median of all rounds' step times, their 90th percentile and a 95 %
bootstrap interval of the median (scipy.stats.bootstrap), per call of `batch` images.

Results are cached in $WORKBENCH_CACHE/latency/ (default ~/.cache/workbench/latency/), one JSON file per question:
the subject's content (for a network, the list of its parts as the latency table names them, so two architecture
files that build the same inference graph share one entry, whatever their names, dropout or stochastic depth),
the input shape, batch, device name, runtime, threads, the timing parameters and the torch version. Asking again
costs nothing; `use_cache=False` measures afresh and replaces the entry.

torch is imported inside the functions that need it, so this module loads at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.trialdir import read_json, write_json

DEVICES = ("cpu", "cuda")
RUNTIMES = ("eager", "compile", "onnxruntime")
CACHE_FORMAT = "workbench-latency/1"  # part of every key: a change of protocol starts a fresh cache
BOOTSTRAP_RESAMPLES = 2000
BLOCK_SECONDS = 1e-3  # a timed block's length: many calls of a tiny part, one call of a network


@dataclass(frozen=True)
class Protocol:
    """How a latency is measured. Its identity (device name, runtime, batch, threads, library versions) decides
    whether two measurements are comparable; the timing parameters decide how precise one is."""

    device: str = "cpu"
    runtime: str = "eager"
    batch: int = 1
    threads: int = 1
    warmup: int = 10  # calls before timing (a compiled runtime compiles on the first)
    rounds: int = 5  # short rounds interleave finely: a change of load meets every subject alike
    min_run_time: float = 0.1  # seconds of timed calls per subject and round

    def __post_init__(self) -> None:
        problems = []
        if self.device not in DEVICES:
            problems.append(f"--device {self.device}: choose one of {', '.join(DEVICES)}")
        if self.runtime not in RUNTIMES:
            problems.append(f"--runtime {self.runtime}: choose one of {', '.join(RUNTIMES)}")
        if min(self.batch, self.threads, self.rounds, self.warmup) < 1 or not self.min_run_time > 0:
            problems.append("batch, threads, rounds and warm-up calls must be at least 1, and the run time positive")
        if problems:
            raise WorkbenchError(problems)

    def identity(self) -> dict[str, Any]:
        """What makes two latencies comparable: the same device, software and call."""
        return {"device": self.device, "device_name": device_name(self.device), "runtime": self.runtime,
                "batch": self.batch, "threads": self.threads, "torch": torch_version(), **runtime_versions(self.runtime)}

    def key_fields(self) -> dict[str, Any]:
        return {**self.identity(), "warmup": self.warmup, "rounds": self.rounds, "min_run_time": self.min_run_time}

    def with_run_time(self, seconds: float) -> Protocol:
        return replace(self, min_run_time=seconds)

    def label(self) -> str:
        """The device and call, short: what a plot's axis or a table's title names."""
        return f"{device_name(self.device)}, {self.runtime}, {self.threads} thread{'s' if self.threads > 1 else ''}"

    def describe(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return (f"{device_name(self.device)}, {self.runtime}, batch {self.batch}, {threads}, torch {torch_version()} · median of "
                f"{self.rounds} round{'s' if self.rounds > 1 else ''} × {self.min_run_time:g} s after {self.warmup} warm-up calls")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timing:
    """One subject's latency per call (milliseconds)."""

    median_ms: float
    p90_ms: float
    ci_low_ms: float | None  # 95 % bootstrap interval of the median (None when not asked for)
    ci_high_ms: float | None
    samples: int  # timed blocks behind the figures (each the mean time of one block of calls)
    load: float | None = None  # the machine's 1-minute load average when it was measured
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "cached"}

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool = False) -> Timing:
        return cls(**{k: data.get(k) for k in ("median_ms", "p90_ms", "ci_low_ms", "ci_high_ms", "samples", "load")}, cached=cached)


@dataclass
class Subject:
    """Something to time: a module to build (or an exported ONNX file) and the shape of one input image."""

    label: str
    content: Any  # JSON: what fixes the computation (hashed into the cache key)
    input_shape: tuple[int, int, int]  # channels, height, width
    build: Callable[[], Any] | None = None  # -> nn.Module; None for an ONNX file
    onnx_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- the device and the software ------------------------------------------------------------------------


def device_name(device: str) -> str:
    """The processor or GPU a measurement ran on, as a table and a cache key name it."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise WorkbenchError("--device cuda: torch finds no CUDA device on this machine")
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {_cpu_model()} ({os.cpu_count()} logical cores)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def torch_version() -> str:
    from importlib.metadata import version

    return version("torch")


def runtime_versions(runtime: str) -> dict[str, str]:
    if runtime != "onnxruntime":
        return {}
    from importlib.metadata import PackageNotFoundError, version

    try:
        return {"onnxruntime": version("onnxruntime")}
    except PackageNotFoundError:
        return {"onnxruntime": "not installed"}


# --- the cache --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE") or "~/.cache/workbench").expanduser() / "latency"


def cache_key(subject: Subject, protocol: Protocol) -> str:
    question = {"format": CACHE_FORMAT, "subject": subject.content, "input": list(subject.input_shape), **protocol.key_fields()}
    return hashlib.sha256(json.dumps(question, sort_keys=True).encode()).hexdigest()


def cached(key: str) -> Timing | None:
    data = read_json(cache_dir() / f"{key}.json")
    if isinstance(data, dict) and data.get("key") == key and isinstance(data.get("timing"), dict):
        try:
            return Timing.from_dict(data["timing"], cached=True)
        except TypeError:
            return None
    return None


def store(key: str, subject: Subject, protocol: Protocol, timing: Timing) -> None:
    try:
        write_json(cache_dir() / f"{key}.json", {"key": key, "label": subject.label, "protocol": protocol.key_fields(),
                                                 "input": list(subject.input_shape), "timing": timing.as_dict()})
    except (OSError, WorkbenchError):
        pass  # a cache that cannot be written only costs the next call a measurement


# --- measuring --------------------------------------------------------------------------------------------


def measure(subjects: list[Subject], protocol: Protocol, *, use_cache: bool = True, interval: bool = True,
            progress: Callable[[str], None] | None = None) -> list[Timing]:
    """The latency of each subject under `protocol`, from the cache where it was asked before. Those not cached are
    measured together, interleaved round by round. `interval=False` skips the bootstrap (a latency table's parts)."""
    keys = [cache_key(s, protocol) for s in subjects]
    results: list[Timing | None] = [cached(k) if use_cache else None for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        if progress:
            progress(f"timing {len(todo)} of {len(subjects)} (the others are cached) · {protocol.describe()}")
        timed = _time([subjects[i] for i in todo], protocol, interval, progress)
        for i, timing in zip(todo, timed):
            results[i] = timing
            store(keys[i], subjects[i], protocol, timing)
    return [r for r in results if r is not None]


def _time(subjects: list[Subject], protocol: Protocol, interval: bool, progress: Callable[[str], None] | None) -> list[Timing]:
    import logging
    import tempfile

    # torch.utils.benchmark imports cpp_extension, which warns on every CPU-only machine that it finds no CUDA runtime.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import torch
    from torch.utils import benchmark

    previous = torch.get_num_threads()
    torch.set_num_threads(protocol.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="workbench-latency-") as workdir:
            timers = []
            for index, subject in enumerate(subjects):
                if progress and protocol.runtime != "eager" and index % 25 == 0:
                    progress(f"preparing {index + 1} of {len(subjects)} for {protocol.runtime}")
                timers.append(benchmark.Timer(stmt="step()", globals={"step": prepare(subject, protocol, Path(workdir))},
                                              num_threads=protocol.threads))
            blocks = [_block_size(timer, protocol.warmup) for timer in timers]
            times: list[list[float]] = [[] for _ in timers]
            for round_index in range(protocol.rounds):
                order = list(range(len(timers)))
                for i in order if round_index % 2 == 0 else order[::-1]:
                    times[i] += _round(timers[i], blocks[i], protocol.min_run_time)
                if progress and protocol.rounds > 1:
                    progress(f"round {round_index + 1} of {protocol.rounds} done")
    finally:
        torch.set_num_threads(previous)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return [summarise(t, interval, load) for t in times]


def prepare(subject: Subject, protocol: Protocol, workdir: Path) -> Callable[[], None]:
    """The zero-argument call that runs `subject` once on a fixed batch of `protocol.batch` random images."""
    import torch

    from workbench.complexity.latency_runtime import export_onnx, module_step, onnx_step

    shape = (protocol.batch, *subject.input_shape)
    if subject.onnx_file is not None:
        if protocol.runtime != "onnxruntime":
            raise WorkbenchError(f"{subject.label}: an ONNX file runs with --runtime onnxruntime, not {protocol.runtime}")
        return onnx_step(subject.onnx_file, shape, protocol.device, protocol.threads)
    torch.manual_seed(0)
    module = subject.build().eval()
    images = torch.randn(shape)
    if protocol.runtime == "onnxruntime":
        path = export_onnx(module, images, workdir / f"subject{len(list(workdir.iterdir()))}.onnx", dynamic_batch=False)
        return onnx_step(path, shape, protocol.device, protocol.threads)
    return module_step(module, images, protocol.runtime, protocol.device)


def _block_size(timer, warmup: int) -> int:
    """Warm up with single timed calls; then the calls per timed block that make a block about BLOCK_SECONDS long.

    (blocked_autorange would choose blocks of at least 10 ms, 0.01 % timer overhead, so that a 50-microsecond part
    gives one sample per round; a millisecond keeps the overhead of a microsecond or two under 0.2 % and gives
    per-call samples for whole networks, whose 90th percentile then means something.)"""
    import statistics

    calls = [timer.timeit(1).median for _ in range(max(1, warmup))]
    typical = statistics.median(calls[len(calls) // 2:])  # the later half: past compilation and first-call allocation
    return max(1, math.ceil(BLOCK_SECONDS / max(typical, 1e-9)))


def _round(timer, block: int, min_run_time: float) -> list[float]:
    """Timed blocks for `min_run_time` seconds of wall time (at least one): the mean seconds per call of each.
    (Timer.timeit runs two untimed calls before each block of fewer than 200: they count in the wall time.)"""
    import time

    times, deadline = [], time.perf_counter() + min_run_time
    while not times or time.perf_counter() < deadline:
        times.append(timer.timeit(block).median)
    return times


def summarise(seconds: list[float], interval: bool = True, load: float | None = None) -> Timing:
    """Median, 90th percentile and (if asked) a 95 % percentile-bootstrap interval of the median, in milliseconds."""
    import numpy as np

    ms = np.asarray(seconds, dtype=np.float64) * 1000
    low = high = None
    if interval and len(ms) > 1 and np.ptp(ms) > 0:
        from scipy.stats import bootstrap

        ci = bootstrap((ms,), np.median, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95, method="percentile",
                       rng=np.random.default_rng(0)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    elif interval:
        low = high = float(np.median(ms))
    return Timing(float(np.median(ms)), float(np.percentile(ms, 90)), low, high, int(len(ms)), load)
