"""`workbench latency`'s answer: measured latency of networks (or exported ONNX files) beside the table's prediction,
and the predictor's error on the networks it was not fitted on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.complexity.latency import Protocol, Subject, Timing, measure
from workbench.complexity.latency_table import LatencyTable, content_hash, network_content, network_subject, prediction_error
from workbench.errors import WorkbenchError
from workbench.schema.architecture import Architecture


@dataclass
class Item:
    """One file to measure: an architecture (scaled as asked) or an exported ONNX model."""

    label: str
    arch: Architecture | None = None
    onnx_file: Path | None = None
    resolution: int | None = None
    num_classes: int = 1000

    def subject(self) -> Subject:
        if self.onnx_file is not None:
            from workbench.complexity.latency_runtime import onnx_input_shape

            digest = hashlib.sha256(self.onnx_file.read_bytes()).hexdigest()
            return Subject(self.label, {"onnx": digest}, onnx_input_shape(self.onnx_file), onnx_file=self.onnx_file)
        return network_subject(self.arch, self.size, self.num_classes, self.label)

    @property
    def size(self) -> int | None:
        if self.arch is None:
            return None
        return self.resolution or self.arch.resolution.eval_size


@dataclass
class Row:
    label: str
    resolution: int
    num_classes: int | None
    timing: Timing
    predicted_ms: float | None = None
    seen: bool = False  # the table's constant was fitted on this network
    parts_timed_now: int = 0

    @property
    def error(self) -> float | None:
        return None if self.predicted_ms is None else (self.predicted_ms - self.timing.median_ms) / self.timing.median_ms

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.label, "resolution": self.resolution, "num_classes": self.num_classes, **self.timing.as_dict(),
                "cached": self.timing.cached, "predicted_ms": self.predicted_ms, "error": self.error, "seen_by_table": self.seen}


@dataclass
class Report:
    protocol: Protocol
    rows: list[Row]
    table: LatencyTable | None = None
    notes: list[str] = field(default_factory=list)

    def predictor_error(self) -> tuple[float | None, float | None, int]:
        """MAPE and Kendall's tau over the rows the table was not fitted on."""
        unseen = [r for r in self.rows if r.predicted_ms is not None and not r.seen]
        mape, tau = prediction_error([r.predicted_ms for r in unseen], [r.timing.median_ms for r in unseen])
        return mape, tau, len(unseen)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol.as_dict(), "identity": self.protocol.identity(),
                               "architectures": [r.as_dict() for r in self.rows]}
        if self.table is not None:
            mape, tau, n = self.predictor_error()
            out["predictor"] = {"table": str(self.table.path), "constant_ms": self.table.constant_ms, "unseen": n, "mape": mape,
                                "kendall_tau": tau, "table_holdout_error": self.table.as_dict()["holdout_error"]}
        return out


def table_protocol(table: LatencyTable, given: dict[str, Any]) -> Protocol:
    """The table's protocol; an option given on the command line must agree with it (a prediction is for one device)."""
    identity = ("device", "runtime", "batch", "threads")
    clashes = [f"--{name.replace('_', '-')} {value} (the table was made with {getattr(table.protocol, name)})"
               for name, value in given.items() if name in identity and value is not None and value != getattr(table.protocol, name)]
    if clashes:
        raise WorkbenchError([f"{table.path}: a prediction is for the table's device and call: {clash}" for clash in clashes]
                             + ["  leave the option out, or build a table for it with `workbench latency table`"])
    timing = {k: v for k, v in given.items() if k not in identity and v is not None}
    return Protocol(**{**table.protocol.as_dict(), **timing})


def latency_report(items: list[Item], protocol: Protocol, table: LatencyTable | None = None, *, use_cache: bool = True,
                   progress: Callable[[str], None] | None = None) -> Report:
    report = Report(protocol, [], table)
    if table is not None:
        problems = table.problems()
        if problems:
            raise WorkbenchError([f"{table.path}: {p}; build a table on this machine with `workbench latency table`" for p in problems])
        if any(item.onnx_file is not None for item in items):
            raise WorkbenchError("--predict predicts architecture files, not exported .onnx models")
    subjects = [item.subject() for item in items]
    timings = measure(subjects, protocol, use_cache=use_cache, progress=progress)
    seen = table.seen() if table is not None else set()
    for item, subject, timing in zip(items, subjects, timings):
        row = Row(item.label, subject.input_shape[1], item.num_classes if item.arch is not None else None, timing)
        if table is not None:
            prediction = table.predict(item.arch, item.size, item.num_classes, progress)
            row.predicted_ms, row.parts_timed_now = prediction.ms, prediction.timed_now
            row.seen = content_hash(network_content(item.arch, item.size, item.num_classes)) in seen
        report.rows.append(row)
    timed_now = sum(r.parts_timed_now for r in report.rows)
    if timed_now:
        report.notes.append(f"{timed_now} parts the table lacks (outside its design space or input size) were timed now "
                            "with the table's protocol, and cached")
    return report
