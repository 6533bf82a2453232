"""The files of a trial folder (docs/design.md): config.json, metrics.jsonl, status.json, checkpoints, predictions.

Everything another process may read while training runs is replaced atomically (write a temporary file, then
os.replace), so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

CONFIG, METRICS, STATUS = "config.json", "metrics.jsonl", "status.json"
BEST, LAST, PREDICTIONS = "checkpoint_best.pt", "checkpoint_last.pt", "val_predictions.csv"
FINISHED = ("completed", "early_stopped", "diverged")
TIMING_FIELDS = ("epoch_seconds", "train_images_per_s", "elapsed_seconds")


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(_finite(data), indent=2) + "\n", encoding="utf-8"))


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def append_metrics(folder: Path, row: dict[str, Any]) -> None:
    with open(folder / METRICS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(_finite(row)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """Complete metric lines (a line cut by a crash is ignored)."""
    rows = []
    try:
        lines = (folder / METRICS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def keep_metrics_until(folder: Path, epoch: int) -> list[dict[str, Any]]:
    """Drop metric lines after `epoch` (written after the last checkpoint of an interrupted run)."""
    rows = [r for r in read_metrics(folder) if r.get("epoch", 0) <= epoch]
    _atomic(folder / METRICS, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"))
    return rows


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    _atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def write_predictions(path: Path, labels: torch.Tensor, preds: torch.Tensor, confidence: torch.Tensor) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "label", "pred", "confidence", "correct"])
    for i, (label, pred, conf) in enumerate(zip(labels.tolist(), preds.tolist(), confidence.tolist())):
        writer.writerow([i, label, pred, f"{conf:.6f}", int(label == pred)])
    _atomic(path, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))


def clear_trial(folder: Path) -> None:
    """Remove the files of an earlier run in this folder (a fresh start with resume off)."""
    for name in (METRICS, STATUS, BEST, LAST, PREDICTIONS):
        (folder / name).unlink(missing_ok=True)
    for events in folder.glob("events.out.tfevents.*"):
        events.unlink()
