"""Data-parallel training without Ray: N processes on a gloo process group, each running fit as its rank, so the
tests see what each rank did (its status, its metrics rows, every file it opened for writing or renamed)."""

from __future__ import annotations

import datetime
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGING = ("os.rename", "os.replace", "os.remove", "os.unlink", "os.rmdir", "os.mkdir", "os.link", "os.symlink",
            "os.truncate", "shutil.rmtree", "os.chmod")


def run_ranks(size: int, out: Path, job: dict[str, Any], records: Path, fault: str | None = None, timeout_s: int = 240) -> list[dict[str, Any]]:
    """Train `job` into `out` on `size` gloo ranks (spawned processes); returns each rank's record. `fault` is
    WORKBENCH_FAULT for rank 0 alone. Raises torch.multiprocessing's ProcessExitedException when a rank dies
    (the others are then ended, as Ray Train ends a worker group)."""
    import torch.multiprocessing as mp

    records.mkdir(parents=True, exist_ok=True)
    init = f"file://{records / f'rendezvous-{os.getpid()}-{len(list(records.iterdir()))}'}"
    mp.start_processes(train_rank, args=(size, init, str(out), json.dumps(job), str(records), fault, timeout_s), nprocs=size,
                       start_method="spawn")
    return [json.loads((records / f"rank{rank}.json").read_text()) for rank in range(size)]


def train_rank(rank: int, size: int, init: str, out: str, job: str, records: str, fault: str | None, timeout_s: int) -> None:
    import torch.distributed as dist

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    if fault and rank == 0:
        os.environ["WORKBENCH_FAULT"] = fault
    else:
        os.environ.pop("WORKBENCH_FAULT", None)
    writes: list[str] = []
    folder = os.path.realpath(out)
    sys.addaudithook(lambda event, args: _record(event, args, folder, writes))
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size, timeout=datetime.timedelta(seconds=timeout_s))
    from workbench.schema.recipe import TrainJob
    from workbench.train import fit
    from workbench.train.ranks import World

    rows: list[dict[str, Any]] = []
    status = fit(TrainJob.model_validate_json(job), out, on_epoch=lambda metrics, _: rows.append(metrics), progress=False,
                 threads=1, world=World.current())
    # Tear down while the interpreter is whole and both ranks are done: the trainer's DDP wrapper (freed only by the
    # cycle collector) holds the process group, and gloo work still alive at interpreter finalization aborts the
    # process (SIGABRT, "terminate called without an active exception"; seen once in a rank that finished first).
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    Path(records, f"rank{rank}.json").write_text(json.dumps({"status": status, "rows": rows, "writes": writes}))


def _record(event: str, args: tuple, folder: str, writes: list[str]) -> None:
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITING)
        paths = [path] if writing else []
    elif event in CHANGING:
        paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
    else:
        return
    for path in paths:
        try:
            text = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            continue
        if text == folder or text.startswith(folder + os.sep):
            writes.append(f"{event} {text}")
