"""The trial-folder and study-folder contract (docs/design.md), the interface between train, study and results.

One home for: the file names, the status vocabulary and its named subsets, crash-safe JSON and metrics I/O, the
tolerant readers, the one-row-per-trial summary, and the NAS reward. No torch; train, study and results import it.

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
# a trial folder (written by workbench.train.fit; trial.json by the study runner)
CONFIG, METRICS, STATUS, TRIAL = "config.json", "metrics.jsonl", "status.json", "trial.json"
BEST, LAST, PREDICTIONS = "checkpoint_best.pt", "checkpoint_last.pt", "val_predictions.csv"
EVENTS_GLOB = "events.out.tfevents.*"
LOCK = ".lock"
TRIAL_MARKERS = (METRICS, STATUS, CONFIG, TRIAL)  # any of them makes a folder a trial folder
# a study folder (written by workbench.study)
STUDY, TRIALS = "study.json", "trials"
SUMMARY_CSV, SUMMARY_PARQUET = "summary.csv", "summary.parquet"
SEARCH, LATENCY = "search.json", "latency.json"  # a search's sampling report; measured latency (search analyze)
ARCHITECTURES, ANALYSIS, RAY = "architectures", "analysis", "ray"  # sampled architectures; analysis plots; Ray's state
LOCK_WAIT_S = 120.0  # how long a trainer waits for a dying process to release its trial folder
TIMING_FIELDS = ("epoch_seconds", "train_images_per_s", "elapsed_seconds")  # of a metrics row: differ run to run
STATUS_TIMING_FIELDS = ("seconds", "train_images_per_s", "stage_epoch_seconds", "setup_seconds")  # of status.json

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
INCOMPLETE = "incomplete"  # not a status.json value: the results' word for a trial whose files do not say how it ended

TRAINER_DONE = (COMPLETED, EARLY_STOPPED, DIVERGED)  # the trainer ended it on purpose: fit never trains it again
FINISHED = TRAINER_DONE + (PRUNED,)  # a study never reruns these
AVERAGED = (COMPLETED, EARLY_STOPPED)  # result tables average these
STOPPED = (DIVERGED, FAILED, PRUNED)  # ran, but not to a result worth averaging: counted in their own column
FAILURES = (FAILED, DIVERGED)  # a study that ends with any of these exits 1
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


def read_json_object(path: Path) -> tuple[dict | None, str | None]:
    """(object, problem): a missing file is (None, None); a damaged one is (None, why), for readers that report it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{Path(path).name}: cannot read ({exc})"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{Path(path).name}: not valid JSON (half-written?) at line {exc.lineno}, column {exc.colno}"
    if not isinstance(data, dict):
        return None, f"{Path(path).name}: expected a JSON object, got {type(data).__name__}"
    return data, None


def status_of(folder: Path) -> dict[str, Any]:
    """A trial folder's status.json, or {"status": "pending"} when it has none (or none readable)."""
    status = read_json(Path(folder) / STATUS)
    return status if isinstance(status, dict) else {"status": PENDING, "reason": None}


def write_metrics(folder: Path, rows: list[dict[str, Any]]) -> None:
    """metrics.jsonl, one object per epoch, rewritten whole and atomically (a crash never leaves a cut line)."""
    text = "".join(json.dumps(finite(row)) + "\n" for row in rows)
    atomic_write(Path(folder) / METRICS, lambda tmp: tmp.write_text(text, encoding="utf-8"), "metrics")


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """The complete metric lines of a trial folder (a line cut by a crash of an older writer is ignored)."""
    return read_metrics_file(Path(folder) / METRICS)[0]


def read_metrics_file(path: Path) -> tuple[list[dict[str, Any]], list[str], bool]:
    """metrics.jsonl -> (rows, problems, truncated): a last line cut off mid-write sets `truncated`; other lines that
    are not JSON objects are skipped and named in `problems`. Never raises."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], [], False
    except OSError as exc:
        return [], [f"{METRICS}: cannot read ({exc})"], False
    rows, problems, truncated = [], [], False
    lines = text.split("\n")
    last_index = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif i == last_index:
            truncated = True
            problems.append(f"{METRICS}: last line (line {i + 1}) is truncated (half-written epoch)")
        else:
            problems.append(f"{METRICS}: line {i + 1} is not a JSON object; skipped")
    return rows, problems, truncated


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


# --- the summary: one row per trial ---------------------------------------------------------------------
# summary.csv's columns around the hp.<dotted> columns of the swept hyper-parameters
SUMMARY_HEAD = ("study", "trial_id", "variant", "seed")
SUMMARY_TAIL = ("params", "flops", "best_val_top1", "final_val_top1", "epochs_run", "seconds", "train_images_per_s", "status", "reason")
SUMMARY_METRIC = "val_top1"  # the one metric whose best_/final_ figures a summary row holds
FRACTION_TAGS = ("top1", "top5", "acc")  # metrics whose names hold one of these are stored as fractions 0..1


def stored_as_fraction(metric: str) -> bool:
    """Accuracies are stored as fractions 0..1 (tables show them in %, a study's min_effect is in points of %)."""
    return any(tag in metric for tag in FRACTION_TAGS)


def summary_row(study: str, record: dict[str, Any], status: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """The summary row of one trial from its trial.json record and its status.json."""
    row = {"study": study, "trial_id": record.get("trial_id", trial_id), "variant": record.get("variant"), "seed": record.get("seed")}
    row.update({f"hp.{k}": v for k, v in (record.get("hparams") or {}).items()})
    row.update({k: status.get(k) for k in SUMMARY_TAIL})
    return row


# --- the NAS reward -------------------------------------------------------------------------------------


def nas_reward(accuracy: float, flops: float, target_flops: float, weight: float = -0.07) -> float:
    """EfficientNet's (MnasNet's) objective ACC(m) x [FLOPS(m) / T]^w."""
    return accuracy * (flops / target_flops) ** weight


def reward_of(record: dict[str, Any], accuracy: Any) -> float | None:
    """The reward of `accuracy` for a search trial (its trial.json record knows its FLOPs factor), else None."""
    factor = (record.get("search") or {}).get("reward_factor")
    if factor is None or isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)):
        return None
    return accuracy * factor
