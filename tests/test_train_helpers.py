"""Shared pieces of the training tests: a tiny architecture and cheap jobs on the offline digits set."""

from __future__ import annotations

from typing import Any

from workbench.schema.architecture import Architecture
from workbench.schema.recipe import TrainJob

TINY_ARCH: dict[str, Any] = {
    "name": "tiny",
    "in_channels": 1,
    "stages": [
        {"block": "fused_mbconv", "expand": 1, "kernel": 3, "stride": 1, "in_channels": 16, "out_channels": 16, "layers": 2},
        {"block": "fused_mbconv", "expand": 4, "kernel": 3, "stride": 2, "in_channels": 16, "out_channels": 24, "layers": 2},
        {"block": "mbconv", "expand": 4, "kernel": 3, "stride": 2, "in_channels": 24, "out_channels": 32, "layers": 2},
    ],
    "head_channels": 128,
    "dropout": 0.2,
    "stochastic_depth": {"rate": 0.2, "schedule": "linear"},
    "resolution": {"train": 16, "eval": 16},
}


def tiny_arch(**changes: Any) -> Architecture:
    return Architecture.model_validate({**TINY_ARCH, **changes})


def tiny_job(epochs: int = 2, train_images: int | None = 256, val_images: int | None = 120, **recipe: Any) -> TrainJob:
    dataset = {"name": "digits", "max_train_images": train_images, "max_val_images": val_images}
    return TrainJob.model_validate({"architecture": tiny_arch(), "recipe": {"epochs": epochs, **recipe}, "dataset": dataset})


def quick_fit(job: TrainJob, folder, **options: Any) -> dict[str, Any]:
    """fit without a display and with one CPU thread: the tiny network gains nothing from more, and on a machine
    shared with other processes extra threads only wait for each other."""
    from workbench.train import fit

    return fit(job, folder, progress=False, threads=1, **options)


def non_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from workbench.trialdir import TIMING_FIELDS

    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]
