"""TensorBoard: the command for study folders, and event files rebuilt from metrics.jsonl.

The trainer writes events.out.tfevents.* into each trial folder, so `tensorboard --logdir results/<study>` shows one
run per trial (trials/<trial_id>). Event files are git-ignored; for a study checked out without them,
`export_events` writes them from metrics.jsonl into a separate folder (the trial folders are never modified).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results.reader import is_study_dir, read_study, require_trial_folders
from workbench.results.records import StudyRecord, number

# The trainer logs every numeric metrics.jsonl field under its own name (val_top1, train_loss, lr, ...) with the
# epoch as step; rebuilt events use the same tags, so they look like the trainer's own.
SKIPPED = ("epoch",)


def event_files(path: Path) -> list[Path]:
    return sorted(path.rglob(trialdir.EVENTS_GLOB))


def command(dirs: list[str | Path], port: int | None = None, host: str | None = None) -> list[str]:
    """tensorboard's argument list for these folders; a folder without event files is a WorkbenchError."""
    found: list[Path] = []
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            raise WorkbenchError(f"{d}: no such folder")
        if not event_files(path):
            if is_study_dir(path):
                require_trial_folders([read_study(path)], "TensorBoard (the event files of every trial)")
            raise WorkbenchError([
                f"{d}: no TensorBoard event files ({trialdir.EVENTS_GLOB}) below it",
                "  the trainer writes them into each trial folder; they are git-ignored, so a fresh clone has none:",
                f"  `workbench results tensorboard DIR --from-metrics OUT` rebuilds them from {trialdir.METRICS}",
            ])
        found.append(path)
    args = ["tensorboard"]
    if len(found) == 1:
        args += ["--logdir", str(found[0])]
    else:
        names: list[str] = []
        for path in found:
            name = path.resolve().name
            while name in names:
                name += "_"
            names.append(name)
        args += ["--logdir_spec", ",".join(f"{n}:{p}" for n, p in zip(names, found))]
    if port:
        args += ["--port", str(port)]
    if host:
        args += ["--host", host]
    return args


def export_events(studies: list[StudyRecord], out: str | Path) -> list[Path]:
    """Write one event file per trial from metrics.jsonl under out/<study>/trials/<trial_id>/; returns the folders."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise WorkbenchError("rebuilding event files needs the tensorboard package: pip install tensorboard") from None
    require_trial_folders(studies, f"--from-metrics ({trialdir.METRICS} of every trial)")
    out = Path(out)
    written = []
    for study in studies:
        for trial in study.trials:
            if not trial.metrics:
                continue
            logdir = out / study.name / trialdir.TRIALS / trial.trial_id
            if event_files(logdir):
                raise WorkbenchError(f"{logdir}: already holds event files; choose an empty --from-metrics folder")
            logdir.mkdir(parents=True, exist_ok=True)
            metrics_file = trial.path / trialdir.METRICS
            end = metrics_file.stat().st_mtime if metrics_file.exists() else time.time()
            last = number(trial.metrics[-1].get("elapsed_seconds")) or 0.0
            writer = EventFileWriter(str(logdir))
            try:
                for i, row in enumerate(trial.metrics):
                    step = int(number(row.get("epoch")) or i + 1)
                    elapsed = number(row.get("elapsed_seconds"))
                    wall = end - (last - elapsed) if elapsed is not None else end
                    values = []
                    for key, value in row.items():
                        figure = number(value)
                        if key in SKIPPED or isinstance(value, bool) or figure is None or not math.isfinite(figure):
                            continue
                        values.append(Summary.Value(tag=key, simple_value=figure))
                    writer.add_event(Event(wall_time=wall, step=step, summary=Summary(value=values)))
            finally:
                writer.close()
            written.append(logdir)
    if not written:
        raise WorkbenchError(f"no trial has a {trialdir.METRICS} with a finished epoch: no events to write")
    return written
