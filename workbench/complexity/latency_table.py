"""A latency predictor per device and design space (nn-Meter's kernel sums, OFA's lookup tables, for one's own space).

A network is a chain of parts: the stem, each block (kind, kernel, stride, input/expanded/output width, squeeze-
excitation width, input size, activation), the head (1x1 conv and pooling) and the classifier. A latency table holds
each part's measured latency on one device and runtime; a network's predicted latency is the sum of its parts plus
one constant fitted on whole networks (what a chain of separate calls does not see: the call into the network,
the flatten, the per-call overhead of the timer). `workbench latency table` times every part a design space can
produce (workbench.study.latency_space), and the table reports its error on networks it was not fitted on.

A part the table lacks (a network from outside the space) is timed when it is first asked for, with the table's
protocol, and kept in the measurement cache.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.complexity.latency import Protocol, Subject, measure, runtime_versions, torch_version, device_name
from workbench.errors import WorkbenchError
from workbench.schema.architecture import Architecture, BlockSpec
from workbench.trialdir import read_json_object, write_json

TABLE_FORMAT = "workbench-latency-table/1"
PART_RUN_TIME = 0.02  # seconds per part and round: parts are a tenth of a network, and a space has hundreds


def conv_out(size: int, kernel: int, stride: int) -> int:
    # Conv2dNormActivation pads (k - 1) // 2, as workbench.complexity.analytic counts it.
    pad = (kernel - 1) // 2
    return (size + 2 * pad - kernel) // stride + 1


@dataclass(frozen=True)
class Part:
    """One part of a network as the builder makes it, with the shape of its input."""

    kind: str  # stem | block | head | classifier
    key: str  # its identity in a table, readable
    input_shape: tuple[int, int, int]
    in_channels: int
    out_channels: int
    activation: str
    spec: BlockSpec | None = None

    def build(self):
        """The module the builder (workbench.model) makes for this part, untrained."""
        from functools import partial

        from torch import nn
        from torchvision.ops import Conv2dNormActivation

        from workbench.model.blocks import ACTIVATION_LAYERS, BLOCKS

        norm, activation = partial(nn.BatchNorm2d), ACTIVATION_LAYERS[self.activation]
        if self.kind == "block":
            return BLOCKS[self.spec.block](self.spec, norm, activation)
        if self.kind == "stem":
            return Conv2dNormActivation(self.in_channels, self.out_channels, kernel_size=3, stride=2, norm_layer=norm,
                                        activation_layer=activation)
        if self.kind == "head":
            return nn.Sequential(Conv2dNormActivation(self.in_channels, self.out_channels, kernel_size=1, norm_layer=norm,
                                                      activation_layer=activation), nn.AdaptiveAvgPool2d(1))
        return nn.Sequential(nn.Flatten(1), nn.Dropout(p=0.2, inplace=True), nn.Linear(self.in_channels, self.out_channels))

    def subject(self) -> Subject:
        return Subject(self.key, {"part": self.key}, self.input_shape, self.build)


def network_parts(arch: Architecture, resolution: int | None = None, num_classes: int = 1000) -> list[Part]:
    """The parts of `arch` (already scaled) at `resolution` (default: its eval resolution), in forward order."""
    size, act, cin = resolution or arch.resolution.eval_size, arch.activation, arch.in_channels
    parts = [Part("stem", f"stem {cin}>{arch.stem_width} @{size}px {act}", (cin, size, size), cin, arch.stem_width, act)]
    size = conv_out(size, 3, 2)
    specs = arch.blocks()
    for spec in specs:
        plain = BlockSpec(stage=0, index=0, block=spec.block, kernel=spec.kernel, stride=spec.stride, in_channels=spec.in_channels,
                          out_channels=spec.out_channels, expanded_channels=spec.expanded_channels, se_channels=spec.se_channels,
                          drop_rate=0.0)
        key = (f"block {spec.block} k{spec.kernel} s{spec.stride} {spec.in_channels}>{spec.expanded_channels}>{spec.out_channels} "
               f"se{spec.se_channels} @{size}px {act}")
        parts.append(Part("block", key, (spec.in_channels, size, size), spec.in_channels, spec.out_channels, act, plain))
        size = conv_out(size, spec.kernel, spec.stride)
    last = specs[-1].out_channels
    parts.append(Part("head", f"head {last}>{arch.head_width} @{size}px {act}", (last, size, size), last, arch.head_width, act))
    parts.append(Part("classifier", f"classifier {arch.head_width}>{num_classes}", (arch.head_width, 1, 1), arch.head_width,
                      num_classes, act))
    return parts


def network_content(arch: Architecture, resolution: int | None = None, num_classes: int = 1000) -> dict[str, Any]:
    """What fixes a network's inference latency: its parts in order (not its name, dropout or stochastic depth)."""
    return {"network": [p.key for p in network_parts(arch, resolution, num_classes)]}


def content_hash(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def network_subject(arch: Architecture, resolution: int | None, num_classes: int, label: str) -> Subject:
    from workbench.model import build_model

    size = resolution or arch.resolution.eval_size
    return Subject(label, network_content(arch, size, num_classes), (arch.in_channels, size, size),
                   lambda: build_model(arch, num_classes))


@dataclass
class Network:
    """A network to measure whole, for fitting the constant or checking the table."""

    label: str
    arch: Architecture
    resolution: int
    num_classes: int

    def subject(self) -> Subject:
        return network_subject(self.arch, self.resolution, self.num_classes, self.label)


@dataclass
class Prediction:
    ms: float
    parts_ms: float
    parts: int
    timed_now: int  # parts the table lacked, timed for this prediction


@dataclass
class LatencyTable:
    protocol: Protocol
    identity: dict[str, Any]  # the protocol's identity where the table was made
    parts: dict[str, float]  # part key -> median ms
    constant_ms: float = 0.0
    part_run_time: float = PART_RUN_TIME
    resolution: int | None = None
    num_classes: int | None = None
    space: str | None = None
    study: str | None = None
    fit: list[dict[str, Any]] = field(default_factory=list)  # label, content, sum_ms, measured_ms
    holdout: list[dict[str, Any]] = field(default_factory=list)  # label, content, predicted_ms, measured_ms
    created: str = ""
    path: Path | None = None
    timed_later: set[str] = field(default_factory=set)  # parts added since the table was built (not saved with it)

    # --- files ------------------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        mape, tau = prediction_error([r["predicted_ms"] for r in self.holdout], [r["measured_ms"] for r in self.holdout])
        return {"format": TABLE_FORMAT, "created": self.created, "space": self.space, "study": self.study,
                "resolution": self.resolution, "num_classes": self.num_classes, "protocol": self.protocol.as_dict(),
                "identity": self.identity, "part_run_time": self.part_run_time, "constant_ms": self.constant_ms,
                "holdout_error": {"architectures": len(self.holdout), "mape": mape, "kendall_tau": tau},
                "fit": self.fit, "holdout": self.holdout,
                "parts": dict(sorted((k, v) for k, v in self.parts.items() if k not in self.timed_later))}

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.as_dict())
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        path = Path(path)
        if not path.is_file():
            raise WorkbenchError(f"{path}: latency table not found")
        data, problem = read_json_object(path)
        if data is None or data.get("format") != TABLE_FORMAT:
            raise WorkbenchError(f"{path}: not a latency table written by `workbench latency table`"
                                 + (f" ({problem})" if problem else f" (format is not {TABLE_FORMAT})"))
        try:
            protocol = Protocol(**data["protocol"])
            parts = {str(k): float(v) for k, v in data["parts"].items()}
            return cls(protocol, dict(data["identity"]), parts, float(data["constant_ms"]), float(data["part_run_time"]),
                       data.get("resolution"), data.get("num_classes"), data.get("space"), data.get("study"),
                       list(data.get("fit") or []), list(data.get("holdout") or []), str(data.get("created") or ""), path)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WorkbenchError(f"{path}: a damaged latency table ({type(exc).__name__}: {exc}); build it again") from None

    # --- use --------------------------------------------------------------------------------------------

    def problems(self, resolution: int | None = None, num_classes: int | None = None) -> list[str]:
        """Why this table does not describe this machine (another device, torch or onnxruntime), or networks counted
        at `resolution` with `num_classes` classes (another input size or classifier than its space's), or []."""
        here = {"device_name": device_name(self.protocol.device), "torch": torch_version(), **runtime_versions(self.protocol.runtime)}
        problems = [f"it was made with {name} {self.identity.get(name)!r}, and this machine has {value!r}"
                    for name, value in here.items() if self.identity.get(name) != value]
        if resolution is not None and self.resolution != resolution:
            problems.append(f"it times parts for {self.resolution} px inputs, and the study counts at {resolution} px")
        if num_classes is not None and self.num_classes != num_classes:
            problems.append(f"its classifier has {self.num_classes} classes, and the study counts {num_classes}")
        return problems

    def summary(self) -> dict[str, Any]:
        """Where the table is and what it measured (for a search's records)."""
        return {"table": str(self.path) if self.path else None, "protocol": self.protocol.as_dict(), "identity": self.identity,
                "constant_ms": self.constant_ms, "parts": len(self.parts)}

    def part_protocol(self) -> Protocol:
        return self.protocol.with_run_time(self.part_run_time)

    def predict(self, arch: Architecture, resolution: int | None = None, num_classes: int = 1000,
                progress: Callable[[str], None] | None = None) -> Prediction:
        parts = network_parts(arch, resolution, num_classes)
        missing = list({p.key: p for p in parts if p.key not in self.parts}.values())
        if missing:
            for part, timing in zip(missing, measure([p.subject() for p in missing], self.part_protocol(), interval=False,
                                                     progress=progress)):
                self.parts[part.key] = timing.median_ms
                self.timed_later.add(part.key)
        total = sum(self.parts[p.key] for p in parts)
        return Prediction(total + self.constant_ms, total, len(parts), len(missing))

    def seen(self) -> set[str]:
        """Content hashes of the networks the constant was fitted on."""
        return {row.get("content") for row in self.fit}

    def describe(self) -> str:
        where = f"design space {self.space}" if self.space else "its parts"
        return (f"{len(self.parts) - len(self.timed_later)} parts of {where} at {self.resolution} px, {self.num_classes} classes · constant "
                f"{self.constant_ms:+.3f} ms fitted on {len(self.fit)} networks")


def prediction_error(predicted: list[float], measured: list[float]) -> tuple[float | None, float | None]:
    """Mean absolute percentage error (a fraction) and Kendall's tau-b of predicted against measured latency."""
    import math

    if not predicted:
        return None, None
    mape = sum(abs(p - m) / m for p, m in zip(predicted, measured)) / len(predicted)
    tau = None
    if len(predicted) > 1:
        from scipy.stats import kendalltau

        value = float(kendalltau(predicted, measured).statistic)
        tau = None if math.isnan(value) else value
    return mape, tau


def build_table(parts: list[Part], fit: list[Network], holdout: list[Network], protocol: Protocol, *,
                part_run_time: float = PART_RUN_TIME, use_cache: bool = True,
                progress: Callable[[str], None] | None = None, **meta) -> LatencyTable:
    """Time every part once, and the fit and holdout networks whole; the constant is the median over the fit networks of
    measured minus summed latency, and the holdout networks (never fitted on) give the table's error."""
    if not fit:
        raise WorkbenchError("a latency table needs at least one network to fit its constant on (--fit)")
    networks = fit + holdout
    every = parts + [p for n in networks for p in network_parts(n.arch, n.resolution, n.num_classes)]
    unique = list({p.key: p for p in every}.values())  # the networks' own parts too, so that the table predicts them
    timings = measure([p.subject() for p in unique], protocol.with_run_time(part_run_time), use_cache=use_cache,
                      interval=False, progress=progress)
    table = LatencyTable(protocol, protocol.identity(), {p.key: t.median_ms for p, t in zip(unique, timings)},
                         part_run_time=part_run_time, created=time.strftime("%Y-%m-%dT%H:%M:%S"), **meta)
    measured = measure([n.subject() for n in networks], protocol, use_cache=use_cache, progress=progress)
    sums = [table.predict(n.arch, n.resolution, n.num_classes, progress).parts_ms for n in networks]
    table.constant_ms = statistics.median(m.median_ms - s for m, s in zip(measured[:len(fit)], sums))
    for network, timing, parts_ms in zip(networks, measured, sums):
        row = {"label": network.label, "content": content_hash(network_content(network.arch, network.resolution, network.num_classes)),
               "measured_ms": timing.median_ms}
        if len(table.fit) < len(fit):
            table.fit.append({**row, "sum_ms": parts_ms})
        else:
            table.holdout.append({**row, "predicted_ms": parts_ms + table.constant_ms})
    return table
