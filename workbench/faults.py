"""Injected faults, so crash consistency and failure handling are tested by construction instead of by racing a timer.

Every write of a trial folder or a study ledger calls `fault_point("before:NAME")` just before it commits and
`fault_point("after:NAME")` right after; the training step calls `fault_point("step")`. With the environment
variable unset (always, outside tests) a call is one dictionary lookup. Set it to inject faults:

    WORKBENCH_FAULT="after:metrics@2=exit"            kill the process (os._exit, no clean-up) after epoch 2's metrics
    WORKBENCH_FAULT="before:status@3=ENOSPC"          the 3rd status write fails: no space left on device
    WORKBENCH_FAULT="step@5=memory/oom-s0"            MemoryError at the 5th step, only in trial folders named oom-s0

An entry is POINT[@N]=ACTION[/TRIAL]; several are separated by ';'. N counts the hits of POINT in this process
(default 1: the first). TRIAL limits the entry to writes inside a folder of that name (a study's trial id).
Actions: exit (os._exit(EXIT_CODE), like kill -9), ENOSPC, EROFS, EIO (OSError), memory (MemoryError),
cuda_oom (torch.cuda.OutOfMemoryError).
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ENV = "WORKBENCH_FAULT"
EXIT_CODE = 86
ACTIONS = ("exit", "ENOSPC", "EROFS", "EIO", "memory", "cuda_oom")


@dataclass(frozen=True)
class Fault:
    point: str
    hit: int
    action: str
    trial: str | None


_hits: Counter = Counter()
_parsed: tuple[str, list[Fault]] = ("", [])


def parse(spec: str) -> list[Fault]:
    faults = []
    for entry in filter(None, (part.strip() for part in spec.split(";"))):
        target, _, action = entry.partition("=")
        action, _, trial = action.partition("/")
        point, _, hit = target.partition("@")
        if action not in ACTIONS or not point or (hit and not hit.isdigit()):
            raise ValueError(f"{ENV}: cannot read {entry!r} (POINT[@N]=ACTION[/TRIAL], ACTION one of {', '.join(ACTIONS)})")
        faults.append(Fault(point, int(hit or 1), action, trial or None))
    return faults


def _faults() -> list[Fault]:
    global _parsed
    spec = os.environ.get(ENV, "")
    if spec != _parsed[0]:
        _parsed = (spec, parse(spec))
    return _parsed[1]


def fault_point(point: str, folder: str | Path | None = None, path: str | Path | None = None) -> None:
    """Raise or exit here if WORKBENCH_FAULT asks for it. `folder`: the trial (or study) folder being written, which
    a TRIAL filter matches by name; `path`: the file, named by an injected OSError."""
    faults = _faults()
    if not faults:
        return
    trial = Path(folder).name if folder is not None else None
    for fault in faults:
        if fault.point != point or (fault.trial is not None and fault.trial != trial):
            continue
        key = (point, fault.trial)
        _hits[key] += 1
        if _hits[key] == fault.hit:
            _act(fault, path)


def _act(fault: Fault, where: str | Path | None) -> None:
    if fault.action == "exit":
        os._exit(EXIT_CODE)
    if fault.action == "memory":
        raise MemoryError(f"injected at {fault.point}")
    if fault.action == "cuda_oom":
        import torch

        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected at {fault.point})")
    code = getattr(errno, fault.action)
    raise OSError(code, os.strerror(code), str(where) if where is not None else None)
