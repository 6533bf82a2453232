"""The torch parts of a trial folder: checkpoints and validation predictions (names and JSON: workbench.trialdir)."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from workbench.trialdir import BEST, atomic_write


def save_checkpoint(path: Path, state: dict[str, Any], point: str) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp), point)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def publish_best(last: Path) -> None:
    """checkpoint_best.pt becomes the epoch checkpoint_last.pt now holds: a hard link (no copy; the next epoch's
    checkpoint_last.pt is a new file, so the link keeps this one), or a copy where links are not supported."""
    best = last.with_name(BEST)
    if best.exists() and os.path.samefile(best, last):
        return  # already published (a resumed run redoing its last commit); rename() of two links is a no-op

    def link(tmp: Path) -> None:
        try:
            os.link(last, tmp)
        except OSError:
            shutil.copyfile(last, tmp)

    atomic_write(best, link, "best")


def write_predictions(path: Path, labels: torch.Tensor, preds: torch.Tensor, confidence: torch.Tensor) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "label", "pred", "confidence", "correct"])
    for i, (label, pred, conf) in enumerate(zip(labels.tolist(), preds.tolist(), confidence.tolist())):
        writer.writerow([i, label, pred, f"{conf:.6f}", int(label == pred)])
    atomic_write(path, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"), "predictions")
