"""Where this machine's shared dataset copies live, and sweeping the ones nobody uses: the file-and-lock protocol of
workbench.data.shared, without torch.

The study driver and `workbench train` sweep when they end. The driver never needs torch for anything else on a CPU
study, and importing it there would cost about 1.3 s of the study's start and end (bench/README.md). So the
protocol lives here, and workbench.data.shared, which maps the copies into tensors, builds on it.

Who may delete a copy is decided by flock on the lock file beside it. A process holds a shared lock for as long as
it uses the copy. `sweep` deletes every copy on which it can take the exclusive lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

ENV = "WORKBENCH_SHM"  # the folder of shared copies; "off" keeps one copy per process
DEFAULT_DIR = "/dev/shm"
PREFIX = "workbench-"
# A lock file is removed only long after its copy: one removed while a process is about to lock it would let two
# processes each build a copy (memory, never correctness: a mapping outlives its file).
ORPHAN_LOCK_S = 3600
FRESH_S = 5  # seconds: a copy younger than this is never swept


def shared_dir() -> Path | None:
    """The folder of shared copies, or None when sharing is off or the folder does not exist."""
    value = os.environ.get(ENV, DEFAULT_DIR).strip()
    if value.lower() in ("", "off", "0", "none"):
        return None
    folder = Path(value)
    return folder if folder.is_dir() else None


def copy_path(key: str, label: str, folder: Path) -> Path:
    return folder / f"{PREFIX}{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-{key}.u8"


def sweep(keep: Path | None = None) -> list[Path]:
    """Delete the shared copies nobody uses (their lock is free), and lock files left without a copy for an hour;
    returns the copies deleted."""
    folder = shared_dir()
    if folder is None:
        return []
    deleted = []
    for path in sorted(folder.glob(f"{PREFIX}*.u8")):
        with contextlib.suppress(OSError):
            # A copy just written is spared: its writer goes from the exclusive lock to the shared one in two steps.
            if path != keep and time.time() - path.stat().st_mtime > FRESH_S and \
                    remove_if_unused(path.with_suffix(".lock"), lambda: path.unlink(missing_ok=True)):
                deleted.append(path)
    for lock in sorted(folder.glob(f"{PREFIX}*.lock")):
        with contextlib.suppress(OSError):
            if not lock.with_suffix(".u8").exists() and time.time() - lock.stat().st_mtime > ORPHAN_LOCK_S:
                remove_if_unused(lock, lambda: lock.unlink(missing_ok=True))
    return deleted


def remove_if_unused(lock: Path, remove: Callable[[], None]) -> bool:
    """Run remove() if nobody holds `lock`; True if it ran."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False  # another user's copy: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        remove()
        return True
    except OSError:
        return False  # in use
    finally:
        os.close(fd)
