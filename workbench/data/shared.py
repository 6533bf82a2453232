"""One decoded copy of a dataset per machine: a file in shared memory that every process training on it maps.

Four trials sharing a GPU, or the workers of a data-parallel trial, would otherwise each decode and hold their own
uint8 copy (Imagenette at 300 px: 2.5 GB each). The first process to need a dataset writes it once to
`$WORKBENCH_SHM` (default /dev/shm, a RAM-backed tmpfs), named by the same key as the disk cache
(workbench.data.cache.cache_key); every process then maps that file copy-on-write (torch.from_file, MAP_PRIVATE):
the pages are the machine's one copy, and a write by one process would only ever change its own private page,
never the file or another trial's view, so no trial can change another's data.

Who may delete a copy is decided by flock on a lock file beside it: a process holds a shared lock for as long as
the dataset is in its memory cache (the kernel drops it when the process ends, however it ends); a missing copy is
written under the exclusive lock (the first process builds, the others wait for its copy), and `sweep` deletes every
copy on which it can take the exclusive lock, i.e. that nobody uses. That protocol lives in workbench.shm, without
torch. A sweep runs before each new copy is written and when `workbench train` or a study ends, so a copy outlives
its users only until the next workbench run on the machine (`rm /dev/shm/workbench-*` also frees them).

Why a file and not Ray's object store (ray.put once per node): the same copy serves `workbench train` (no Ray), the
workers of a data-parallel trial and concurrent trials alike, survives Ray's restarts between adaptive rounds, and
needs neither a per-node actor to hold the object reference nor an object store sized for datasets (the local Ray
runs with 256 MiB). Where the folder is missing or lacks the room, each process keeps its own copy, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.data.images import ImageData
from workbench.shm import copy_path, shared_dir, sweep

log = logging.getLogger("workbench.data")
MAGIC = b"WBSHARE1"
ALIGN = 64  # array offsets: int64 views need 8, 64 keeps each array on its own cache line
HEADROOM = 1.05  # free space asked for beyond the copy's size
BUILD_WAIT_S = 6 * 3600  # how long a process waits for another to finish writing a copy
ARRAYS = ("train_images", "train_labels", "val_images", "val_labels")
_held: dict[str, int] = {}  # key -> fd of the lock file, shared-locked while this process uses the copy


def exists(key: str, label: str) -> bool:
    """A complete shared copy of `key` is on this machine (using it costs no further memory)."""
    folder = shared_dir()
    return folder is not None and copy_path(key, label, folder).exists()


def share(key: str, label: str, make: Callable[[], ImageData]) -> ImageData:
    """The dataset `key` mapped from this machine's shared copy, written from make() by the first process to need
    it; make()'s own result where there is no room to share it."""
    folder = shared_dir()
    if folder is None:
        return make()
    path = copy_path(key, label, folder)
    try:
        fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # another user's copy, a read-only folder
        log.warning("cannot share %s through %s (%s): this process keeps its own copy", label, folder, exc.strerror or exc)
        return make()
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # in use: no sweep deletes it while this process holds the lock
        mapped = _map(path) if path.exists() else None
        data = Mapped(mapped, shared=True) if mapped is not None else _build(fd, path, make)
    except BaseException:
        os.close(fd)
        raise
    if data.shared:
        release(key)
        _held[key] = fd
    else:
        os.close(fd)
    return data.images


def _build(fd: int, path: Path, make: Callable[[], ImageData]) -> Mapped:
    """Under the exclusive lock: map the copy another process wrote meanwhile, else write it from make(); then back
    to the shared lock. One process builds, the others wait for its copy instead of decoding too."""
    deadline = time.monotonic() + BUILD_WAIT_S
    while True:  # polled: a process holding the shared lock on a copy that vanished must not block this one for good
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            # A failed conversion leaves this fd with no lock at all (flock drops the shared lock first), and the
            # process that won the race holds the shared lock as long as it uses its copy: map that copy instead
            # of waiting for an exclusive lock that comes only when that process ends. Two ranks of one
            # data-parallel trial deadlocked that way, one here and one in its first all_gather.
            if (data := _map_written(fd, path)) is not None:
                return Mapped(data, shared=True)
            if time.monotonic() > deadline:
                log.warning("gave up waiting for the shared copy %s: this process keeps its own", path)
                return Mapped(make(), shared=False)
            time.sleep(0.2)
    try:
        data = _map(path, remove_unreadable=True) if path.exists() else None
        if data is None:
            sweep(keep=path)
            built = make()
            if not _write(path, built) or (data := _map(path, remove_unreadable=True)) is None:
                return Mapped(built, shared=False)
        return Mapped(data, shared=True)
    finally:
        fcntl.flock(fd, fcntl.LOCK_SH)


def _map_written(fd: int, path: Path) -> ImageData | None:
    """The copy another process has written (renamed into place whole), mapped under the shared lock; None while
    there is none yet."""
    if not path.exists():
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only for the writer's step from its exclusive lock to the shared one
    data = _map(path)
    if data is None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return data


def release(key: str) -> None:
    """This process no longer uses the copy of `key` (a sweep may delete it once nobody else does)."""
    fd = _held.pop(key, None)
    if fd is not None:
        os.close(fd)


def release_all() -> None:
    for key in list(_held):
        release(key)


def _layout(data: ImageData) -> tuple[bytes, list[tuple[int, torch.Tensor]], int]:
    """The header, each array with its byte offset, and the file size."""
    arrays = {name: getattr(data, name).contiguous() for name in ARRAYS}
    meta = {"name": data.name, "classes": data.classes, "skipped": data.skipped, "ignored": data.ignored, "arrays": {}}
    sizes = {name: array.numel() * array.element_size() for name, array in arrays.items()}
    # The header's length bounds the first offset; offsets are then fixed, so the JSON is written once.
    offset = _aligned(len(MAGIC) + 8 + len(json.dumps({**meta, "arrays": {n: {"offset": 10**15, "shape": list(a.shape),
                                                                                 "dtype": str(a.dtype)} for n, a in arrays.items()}})))
    placed = []
    for name, array in arrays.items():
        meta["arrays"][name] = {"offset": offset, "shape": list(array.shape), "dtype": str(array.dtype).removeprefix("torch.")}
        placed.append((offset, array))
        offset = _aligned(offset + sizes[name])
    text = json.dumps(meta).encode()
    return MAGIC + len(text).to_bytes(8, "little") + text, placed, offset


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _write(path: Path, data: ImageData) -> bool:
    header, placed, size = _layout(data)
    stats = os.statvfs(path.parent)
    if stats.f_bavail * stats.f_frsize < size * HEADROOM:
        log.warning("no room for a shared copy of %s in %s (%.1f GiB needed): this process keeps its own",
                    data.name, path.parent, size / 2**30)
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(header)
            for offset, array in placed:
                fh.seek(offset)
                fh.write(memoryview(array.numpy()).cast("B"))  # no second copy of the array on the way
            fh.truncate(size)
        os.replace(tmp, path)  # atomic: a process that maps it sees the whole copy
        return True
    except OSError as exc:  # a tmpfs that filled up meanwhile
        log.warning("could not write a shared copy of %s to %s: %s; this process keeps its own", data.name, path.parent, exc)
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@dataclass
class Mapped:
    images: ImageData
    shared: bool  # a view of the machine's copy, held under the shared lock (else this process's own)


def _map(path: Path, remove_unreadable: bool = False) -> ImageData | None:
    """The copy at `path` as an ImageData whose tensors are views of one private (copy-on-write) mapping; None if
    it cannot be read (then deleted, when the caller holds the exclusive lock)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(len(MAGIC)) != MAGIC:
                raise ValueError("not a shared dataset copy")
            meta = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        buffer = torch.from_file(str(path), shared=False, size=path.stat().st_size, dtype=torch.uint8)
        arrays = {}
        for name, spec in meta["arrays"].items():
            dtype = getattr(torch, spec["dtype"])
            count = 1
            for dim in spec["shape"]:
                count *= dim
            nbytes = count * torch.empty((), dtype=dtype).element_size()
            arrays[name] = buffer[spec["offset"]:spec["offset"] + nbytes].view(dtype).view(spec["shape"])
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # truncated or foreign: rebuilt, never fatal
        if remove_unreadable:
            log.warning("ignoring unreadable shared dataset copy %s: %s", path, exc)
            with contextlib.suppress(OSError):
                path.unlink()
        return None
    return ImageData(name=meta["name"], classes=meta["classes"], skipped=meta["skipped"], ignored=meta["ignored"], **arrays)
