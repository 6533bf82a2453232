"""The trial-folder contract (docs/design.md): file names, statuses, and crash-safe JSON I/O. No torch.

Every file another process may read while a trial runs is replaced atomically (write a temporary file, fsync,
os.replace), so a reader never sees half a file and a crash at any moment leaves each file either old or new.
A write that fails (a full or read-only disk) removes its temporary file and leaves the old file as it was.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.faults import fault_point

# --- file names -----------------------------------------------------------------------------------------
CONFIG, METRICS, STATUS = "config.json", "metrics.jsonl", "status.json"
BEST, LAST, PREDICTIONS = "checkpoint_best.pt", "checkpoint_last.pt", "val_predictions.csv"
EVENTS_GLOB = "events.out.tfevents.*"
LOCK = ".lock"
LOCK_WAIT_S = 120.0  # how long a trainer waits for a dying process to release its trial folder
TIMING_FIELDS = ("epoch_seconds", "train_images_per_s", "elapsed_seconds")

# --- statuses (status.json's "status") ------------------------------------------------------------------
PENDING = "pending"  # no status.json yet (never started)
RUNNING = "running"  # rewritten after every epoch; still there after a kill -9
COMPLETED = "completed"  # every planned epoch ran
EARLY_STOPPED = "early_stopped"  # the recipe's early stopping ended it
DIVERGED = "diverged"  # the training loss became NaN or infinite
FAILED = "failed"  # an error ended it; `reason` says which
PRUNED = "pruned"  # the scheduler (asha) stopped it at a rung
INTERRUPTED = "interrupted"  # a stop request (Ctrl-C, SIGTERM) ended it; resumes on the next run
STATUSES = (PENDING, RUNNING, COMPLETED, EARLY_STOPPED, DIVERGED, FAILED, PRUNED, INTERRUPTED)

TRAINER_DONE = (COMPLETED, EARLY_STOPPED, DIVERGED)  # the trainer ended it on purpose: never trained again
FINAL = TRAINER_DONE + (PRUNED,)  # a study never reruns these
AVERAGED = (COMPLETED, EARLY_STOPPED)  # results tables average these
STOPPED = (DIVERGED, FAILED, PRUNED)  # ran, but not to a result worth averaging
RESUMABLE = (PENDING, RUNNING, INTERRUPTED, FAILED)  # the next run trains these (from checkpoint_last.pt if any)


def atomic_write(path: Path, write: Callable[[Path], None], point: str | None = None) -> None:
    """write(tmp) then fsync and os.replace(tmp, path). `point` names the write for injected faults."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    name = point or path.name
    try:
        write(tmp)
        _fsync(tmp)
        fault_point(f"before:{name}", path.parent, path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fault_point(f"after:{name}", path.parent, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(path: Path, data: Any, point: str | None = None) -> None:
    """Atomically, NaN and infinity as null; values JSON lacks (paths, dates) as their text."""
    text = json.dumps(finite(data), indent=2, default=str) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"), point)


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it is missing, unreadable or not JSON (never raises)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_metrics(folder: Path, rows: list[dict[str, Any]]) -> None:
    """metrics.jsonl, one object per epoch, rewritten whole and atomically (a crash never leaves a cut line)."""
    text = "".join(json.dumps(finite(row)) + "\n" for row in rows)
    atomic_write(Path(folder) / METRICS, lambda tmp: tmp.write_text(text, encoding="utf-8"), "metrics")


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """The complete metric lines of a trial folder (a line cut by a crash of an older writer is ignored)."""
    try:
        lines = (Path(folder) / METRICS).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


@contextmanager
def locked(folder: Path, wait_s: float = LOCK_WAIT_S, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the trial folder's lock while training into it.

    After a `kill -9` of a study, its Ray workers can go on for a few seconds; the re-run's trainer then waits
    here instead of writing the same files at the same time. The lock is an flock, so the kernel releases it
    when its holder dies, however it dies.
    """
    import fcntl

    path = Path(folder) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, told = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                if time.monotonic() > deadline:
                    raise WorkbenchError([f"{folder} is in use by another process (pid {holder}) that is still training into it",
                                          "wait for it to end (or stop it), then run the same command again"]) from None
                if on_wait is not None and not told:
                    on_wait(f"waiting for process {holder} to release {folder} (a previous run still ending)")
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def remove_temporaries(folder: Path) -> None:
    """Temporary files of writes a crash cut short (call while holding the folder's lock)."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def clear_trial(folder: Path) -> None:
    """Remove the files of an earlier run in this folder (a fresh start)."""
    for name in (METRICS, STATUS, BEST, LAST, PREDICTIONS):
        (Path(folder) / name).unlink(missing_ok=True)
    clear_events(folder)


def clear_events(folder: Path) -> None:
    """TensorBoard's event files (append-only logs, rebuilt from metrics rows when a run resumes)."""
    for events in Path(folder).glob(EVENTS_GLOB):
        events.unlink(missing_ok=True)
