"""Decoded datasets kept in memory (a few recent ones) and on disk, keyed by everything that shapes their pixels."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from workbench.data import shared
from workbench.data.images import ImageData

log = logging.getLogger("workbench.data")
MEMORY_ENTRIES = 3
FORMAT_VERSION = 2  # bump when decoding or resizing changes, so old disk caches are not reused
_memory: OrderedDict[str, ImageData] = OrderedDict()


def cache_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE") or "~/.cache/workbench").expanduser() / "data"


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached(key: str, label: str, build: Callable[[], ImageData], disk: bool) -> ImageData:
    """The dataset under `key`: from this process's memory, else this machine's shared copy (workbench.data.shared),
    else from disk, else built (then stored in all three)."""
    if key in _memory:
        _memory.move_to_end(key)
        return _memory[key]
    path = cache_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-{key}.pt"

    def from_disk_or_built() -> ImageData:
        data = _read(path) if disk else None
        if data is None:
            data = build()
            if disk:
                _write(path, data)
        return data

    data = shared.share(key, label, from_disk_or_built)
    _memory[key] = data
    while len(_memory) > MEMORY_ENTRIES:
        shared.release(_memory.popitem(last=False)[0])
    return data


def in_memory(key: str, label: str) -> bool:
    """The dataset `key` is in this process's memory or in this machine's shared copy (using it costs no memory)."""
    return key in _memory or shared.exists(key, label)


def clear_memory() -> None:
    """Forget every dataset of this process (and stop holding their shared copies)."""
    _memory.clear()
    shared.release_all()


def _read(path: Path) -> ImageData | None:
    if not path.exists():
        return None
    try:
        return ImageData(**torch.load(path, weights_only=True))
    except Exception as exc:  # a truncated or stale cache file is rebuilt, never fatal
        log.warning("ignoring unreadable dataset cache %s: %s", path, exc)
        return None


def _write(path: Path, data: ImageData) -> None:
    fields = {"name": data.name, "classes": data.classes, "train_images": data.train_images,
              "train_labels": data.train_labels, "val_images": data.val_images, "val_labels": data.val_labels,
              "skipped": data.skipped, "ignored": data.ignored}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(fields, tmp)
        os.replace(tmp, path)  # atomic: parallel trials never read half a file
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError; the data is kept anyway
        log.warning("could not write dataset cache %s: %s", path, exc)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # a full disk or an interrupt leaves no half-written file behind
