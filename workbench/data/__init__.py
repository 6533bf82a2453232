"""Datasets by registry name, decoded once into uint8 tensors at one square size and cached.

    data = load_dataset(DatasetConfig(name="digits"), in_channels=1, image_size=32)
    data.train_images  # uint8 [N, 1, 32, 32]; data.val_images in a fixed order

Training augmentation of whole batches on the device lives in workbench.data.augment (its draws in workbench.data.draws,
the batches in workbench.data.batches); the shared pixel conventions and evaluation resizing in workbench.data.transforms.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.data.cache import cache_key, cached, clear_memory, in_memory
from workbench.data.images import ImageData, available_memory, total_memory
from workbench.data.registry import lookup, registry
from workbench.errors import WorkbenchError
from workbench.schema.dataset import DatasetConfig

if TYPE_CHECKING:
    from workbench.data.folders import FolderFiles
    from workbench.data.memory import MemoryData
    from workbench.data.stream import StreamData

__all__ = ["ImageData", "load_dataset", "open_training_data", "StorageChoice", "cache_size_for", "dataset_defaults",
           "registry", "clear_memory"]

CACHE_BUDGET = 1 << 30  # above this, low-resolution datasets are cached at their native size and upsampled per batch
MEMORY_SHARE = 0.5  # storage auto: the decoded set may take this share of the available memory (one copy per machine)
# Keys that do not shape a single pixel, so they stay out of the cache key (older caches remain valid).
NOT_IN_KEY = {"disk_cache", "download", "storage", "memory_budget_gib"}


@dataclass
class Plan:
    """How a dataset is decoded into memory, before anything is decoded."""

    name: str
    entry: dict[str, Any]
    label: str
    disk: bool
    build: Callable[[], ImageData]
    parts: Callable[[], dict[str, Any]]  # what shapes its pixels (an image folder's: every file's size and time)
    files: FolderFiles | None = None  # image folders: what was found on disk

    @cached_property
    def key(self) -> str:
        return cache_key(self.parts())

    def load(self) -> ImageData:
        data = cached(self.key, self.label, self.build, disk=self.disk)
        # stray files are not in the key: report today's, not the cached
        return replace(data, ignored=self.files.ignored) if self.files is not None else data


def plan_dataset(cfg: DatasetConfig, in_channels: int, image_size: int) -> Plan:
    from workbench.data import sources

    name, entry = lookup(cfg.name)
    parts: dict[str, Any] = {"name": name, "entry": entry, "channels": in_channels, "size": image_size,
                             "config": cfg.model_dump(exclude=NOT_IN_KEY)}
    label = f"{name}-{image_size}px-{in_channels}ch"
    if entry["source"] == "sklearn_digits":
        return Plan(name, entry, label, False, lambda: sources.load_digits(cfg, in_channels, image_size), lambda: parts)
    if entry["source"] == "imagefolder":
        from workbench.data import folders

        files = folders.imagefolder_files(cfg)
        parts["config"]["path"] = str(Path(cfg.path or "").expanduser().resolve())

        def folder_parts() -> dict[str, Any]:
            return {**parts, "files": _fingerprint(files.samples()) + files.unreadable}

        return Plan(name, entry, label, cfg.disk_cache, lambda: folders.load_imagefolder(cfg, in_channels, image_size, files),
                    folder_parts, files)
    parts["root"] = str(sources.dataset_root(cfg))
    return Plan(name, entry, label, cfg.disk_cache, lambda: sources.load_torchvision(cfg, name, entry, in_channels, image_size),
                lambda: parts)


def load_dataset(cfg: DatasetConfig, in_channels: int, image_size: int) -> ImageData:
    """The dataset as uint8 tensors [N, in_channels, image_size, image_size], decoded once and cached."""
    return plan_dataset(cfg, in_channels, image_size).load()


@dataclass(frozen=True)
class StorageChoice:
    """Where a training run keeps its images, and why (printed when the run starts, kept in config.json)."""

    storage: str  # memory or stream
    reason: str

    def describe(self) -> str:
        where = ("one copy per machine, shared by its trials" if self.storage == "memory" else
                 "training images decoded from their files in DataLoader workers")
        return f"storage {self.storage} ({self.reason}): {where}"


def _gib(count: int) -> str:
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def open_training_data(cfg: DatasetConfig, in_channels: int, image_size: int) -> tuple[MemoryData | StreamData, StorageChoice]:
    """The dataset as a training run reads it, in memory or streamed from its files as dataset.storage says
    (auto: memory while the decoded set at `image_size` fits dataset.memory_budget_gib, default half of the
    available memory, or is decoded on this machine already; stream otherwise)."""
    from workbench.data.memory import MemoryData

    plan = plan_dataset(cfg, in_channels, image_size)
    arrays = plan.entry["source"] == "sklearn_digits"
    if cfg.storage == "stream" and arrays:
        raise WorkbenchError(f"dataset {plan.name}: storage stream needs images stored as files; {plan.name} comes as one "
                             "array: set dataset.storage=memory (or auto)")
    if cfg.storage == "memory" or arrays:
        return MemoryData(plan.load()), StorageChoice("memory", "as asked" if cfg.storage == "memory" else f"{plan.name} is one array")
    if cfg.storage == "auto" and plan.files is None and in_memory(plan.key, plan.label):
        return MemoryData(plan.load()), StorageChoice("memory", "decoded on this machine already")
    stream = _stream_data(cfg, plan, in_channels, image_size)
    if stream is None:
        if cfg.storage == "stream":
            raise WorkbenchError([f"dataset {plan.name}: storage stream needs images stored as files; torchvision keeps "
                                  f"{plan.entry.get('class', plan.name)} in array files",
                                  "set dataset.storage=memory (or auto), which holds it decoded in memory"])
        return MemoryData(plan.load()), StorageChoice("memory", f"{plan.name} comes in array files")
    decoded = (stream.train_count + stream.val_count) * in_channels * image_size * image_size
    if cfg.storage == "stream":
        return stream, StorageChoice("stream", f"as asked; {_gib(decoded)} decoded at {image_size} px")
    given = int(cfg.memory_budget_gib * 2**30) if cfg.memory_budget_gib else None
    # Decoded on this machine already, a set costs no more memory whatever the budget; one this machine could never
    # hold is streamed without fingerprinting its files for the cache key.
    if decoded <= max(given or 0, MEMORY_SHARE * total_memory()) and in_memory(plan.key, plan.label):
        return MemoryData(plan.load()), StorageChoice("memory", "decoded on this machine already")
    budget = given or int(MEMORY_SHARE * available_memory())
    source = "dataset.memory_budget_gib" if given else "half the available memory"
    if decoded <= budget:
        return MemoryData(plan.load()), StorageChoice("memory", f"{_gib(decoded)} decoded, within {_gib(budget)}, {source}")
    return stream, StorageChoice("stream", f"{_gib(decoded)} decoded would exceed {_gib(budget)}, {source}")


def _stream_data(cfg: DatasetConfig, plan: Plan, in_channels: int, image_size: int) -> StreamData | None:
    """The dataset's files as StreamData, or None for a source that keeps its images in arrays."""
    from workbench.data.stream import FileSplit, StreamData
    from workbench.errors import printable

    if plan.files is not None:  # an image folder, listed by the plan
        files = plan.files
        return StreamData(Path(cfg.path or "").name or "imagefolder", [printable(c) for c in files.classes], in_channels,
                          image_size, FileSplit.of(files.train), FileSplit.of(files.val), cfg.on_bad_image,
                          skipped=list(files.unreadable), ignored=files.ignored)
    from workbench.data import sources

    listed = sources.torchvision_files(cfg, plan.name, plan.entry, in_channels)
    if listed is None:
        return None
    classes, train, val = listed
    return StreamData(plan.name, classes, in_channels, image_size, FileSplit.of(train), FileSplit.of(val), cfg.on_bad_image)


def _fingerprint(samples: list[tuple[str, int]]) -> list[tuple[str, int, int, int]]:
    out = []
    for path, label in samples:
        try:
            stat = os.stat(path)
            out.append((path, label, stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append((path, label, -1, -1))
    return out


def dataset_defaults(cfg: DatasetConfig) -> dict[str, Any]:
    """The registry entry of `cfg.name` (channels, native_size, hflip, ...)."""
    return lookup(cfg.name)[1]


def cache_size_for(cfg: DatasetConfig, in_channels: int, needed: int) -> int:
    """The size to cache at: `needed`, unless a low-resolution dataset would then take more than CACHE_BUDGET bytes
    (CIFAR at 300 px is 13 GB); such images are cached at their native size and upsampled per batch instead."""
    entry = dataset_defaults(cfg)
    native, count = entry.get("native_size"), cfg.max_train_images or entry.get("train_images")
    if native and count and needed > native and count * in_channels * needed * needed > CACHE_BUDGET:
        return int(native)
    return needed
