"""What an exception leaves in a trial folder: interrupted (resumable) or failed with a reason the user can act on."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any, Protocol

import torch

from workbench import trialdir as files
from workbench.errors import WorkbenchError


class Trainer(Protocol):
    """What the failure handling reads of the trainer (workbench.train.loop.Trainer)."""

    epoch: int

    def status(self, outcome: str, reason: str | None = None) -> dict[str, Any]: ...

WRITE_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM)


class TrialFailed(WorkbenchError):
    """A trial ended by an error the user can act on (memory, disk); status.json holds the same reason."""


def record_failure(folder: Path, trainer: Trainer | None, exc: BaseException) -> TrialFailed | None:
    """Write the status an exception leaves (interrupted or failed with its reason), unless the run already ended
    (Ray Tune stops a trial while it reports its last epoch). Returns the TrialFailed to raise instead, if any."""
    current = files.read_json(folder / files.STATUS)
    if isinstance(current, dict) and current.get("status") in files.TRAINER_DONE:
        return None
    stopped = isinstance(exc, (KeyboardInterrupt, SystemExit))
    state = files.INTERRUPTED if stopped else files.FAILED
    reason = "stopped before the trial finished" if stopped else describe_failure(exc, folder, trainer)
    status = trainer.status(state, reason) if trainer else {**empty_status(), "status": state, "reason": reason}
    try:
        files.write_json(folder / files.STATUS, status, "status")
    except OSError:
        pass  # the disk that failed the trial may refuse this write too; the raised error carries the reason
    actionable = isinstance(exc, (MemoryError, OSError)) or isinstance(exc, torch.cuda.OutOfMemoryError)
    return TrialFailed(reason) if actionable and not isinstance(exc, WorkbenchError) else None


def describe_failure(exc: BaseException, folder: Path, trainer: Trainer | None) -> str:
    epoch = f" at epoch {trainer.epoch}" if trainer is not None and trainer.epoch else ""
    if isinstance(exc, WorkbenchError):
        return " / ".join(exc.lines)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return (f"out of GPU memory (torch.cuda.OutOfMemoryError){epoch}: lower recipe.batch_size or the image size "
                "(scale.resolution, recipe.progressive.image_size), or give the trial a whole GPU (resources.gpus)")
    if isinstance(exc, MemoryError):
        return (f"out of host memory (MemoryError){epoch}: lower recipe.batch_size or the image size, keep a subset "
                "(dataset.max_train_images), or run fewer trials at once (max_concurrent_trials)")
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
        where = exc.filename or folder
        return (f"cannot write the trial folder{epoch}: {exc.strerror} ({errno.errorcode[exc.errno]}) at {where}; "
                "free space or choose a writable --out / storage_path, then re-run to resume from the last checkpoint")
    return f"{type(exc).__name__}: {exc}"


def empty_status() -> dict[str, Any]:
    return {"status": files.RUNNING, "reason": None, "epochs_run": 0, "best_val_top1": None, "best_epoch": None,
            "final_val_top1": None, "seconds": 0.0, "train_images_per_s": None, "params": None, "flops": None}
