"""Datasets by registry name, decoded once into uint8 tensors at one square size and cached.

    data = load_dataset(DatasetConfig(name="digits"), in_channels=1, image_size=32)
    data.train_images  # uint8 [N, 1, 32, 32]; data.val_images in a fixed order

Training augmentation of whole batches on the device lives in workbench.data.augment (its draws in workbench.data.draws,
the batches in workbench.data.batches); the shared pixel conventions and evaluation resizing in workbench.data.transforms.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.data.cache import cache_key, cached, clear_memory
from workbench.data.images import ImageData
from workbench.data.registry import lookup, registry
from workbench.schema.dataset import DatasetConfig

__all__ = ["ImageData", "load_dataset", "cache_size_for", "dataset_defaults", "registry", "clear_memory"]

CACHE_BUDGET = 1 << 30  # above this, low-resolution datasets are cached at their native size and upsampled per batch


def load_dataset(cfg: DatasetConfig, in_channels: int, image_size: int) -> ImageData:
    """The dataset as uint8 tensors [N, in_channels, image_size, image_size], decoded once and cached."""
    from workbench.data import sources

    name, entry = lookup(cfg.name)
    parts: dict[str, Any] = {"name": name, "entry": entry, "channels": in_channels, "size": image_size,
                             "config": cfg.model_dump(exclude={"disk_cache", "download"})}
    label = f"{name}-{image_size}px-{in_channels}ch"
    if entry["source"] == "sklearn_digits":
        return cached(cache_key(parts), label, lambda: sources.load_digits(cfg, in_channels, image_size), disk=False)
    if entry["source"] == "imagefolder":
        from workbench.data import folders

        files = folders.imagefolder_files(cfg)
        parts["config"]["path"] = str(Path(cfg.path or "").expanduser().resolve())
        parts["files"] = _fingerprint(files.samples()) + files.unreadable
        data = cached(cache_key(parts), label, lambda: folders.load_imagefolder(cfg, in_channels, image_size, files), disk=cfg.disk_cache)
        return replace(data, ignored=files.ignored)  # stray files are not in the key: report today's, not the cached
    parts["root"] = str(sources.dataset_root(cfg))
    return cached(cache_key(parts), label, lambda: sources.load_torchvision(cfg, name, entry, in_channels, image_size), disk=cfg.disk_cache)


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
