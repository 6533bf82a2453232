"""What an epoch reports beyond its metrics: its losses read from the device (and the divergence they reveal),
its seed, and the seconds each progressive stage took."""

from __future__ import annotations

import math
from typing import Any

import torch


class Diverged(Exception):
    """The training loss became NaN or infinite."""


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


class LossLog:
    """The training losses of an epoch, kept on the device until `read` copies the new ones to the host (one wait).

    `read` raises Diverged naming the epoch and the step of the first loss that is NaN or infinite, and returns
    (the last loss, the steps since the previous read) for the progress display.
    """

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.pending: list[tuple[torch.Tensor, int]] = []
        self.steps = 0  # steps read so far
        self.total, self.seen = 0.0, 0

    def add(self, loss: torch.Tensor, images: int) -> None:
        self.pending.append((loss, images))

    def read(self) -> tuple[float, int]:
        if not self.pending:
            return math.nan, 0
        values = torch.stack([loss for loss, _ in self.pending]).tolist()
        for offset, ((_, images), value) in enumerate(zip(self.pending, values), start=1):
            if not math.isfinite(value):
                raise Diverged(f"training loss became {value} at epoch {self.epoch}, step {self.steps + offset}")
            self.total += value * images
            self.seen += images
        count = len(values)
        self.steps += count
        self.pending.clear()
        return values[-1], count

    @property
    def mean(self) -> float:
        return self.total / self.seen


def stage_epoch_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean epoch time of each progressive stage that ran."""
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault(row["stage"], {"stage": row["stage"], "image_size": row["image_size"], "epochs": 0, "seconds": 0.0})
        entry["epochs"] += 1
        entry["seconds"] += row["epoch_seconds"]
    return [{**e, "epoch_seconds": e["seconds"] / e["epochs"]} for e in out.values()]
