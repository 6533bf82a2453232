"""The study folder as the source of truth: which trials finished, trial.json, summary.csv/parquet.

Ray Tune snapshots its experiment state periodically, so after a `kill -9` that snapshot can lag behind trials
that already finished. Each trial's status.json, written atomically by the trainer after every epoch, does not:
resuming a study means skipping trials whose status is finished and resuming the others from checkpoint_last.pt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.study.trials import TrialSpec
from workbench.trialdir import FINISHED, SUMMARY_HEAD, SUMMARY_TAIL, TRIAL, read_json, write_json


def trial_dir(folder: Path, trial_id: str) -> Path:
    return folder / trialdir.TRIALS / trial_id


def status_of(folder: Path, trial_id: str) -> dict[str, Any]:
    return trialdir.status_of(trial_dir(folder, trial_id))


def is_finished(folder: Path, trial_id: str) -> bool:
    return status_of(folder, trial_id).get("status") in FINISHED


def recorded_trials(folder: Path) -> list[dict[str, Any]]:
    """Every trial.json of the study folder (what an Optuna study proposed so far), by trial id."""
    records = (read_json(path) for path in sorted((folder / trialdir.TRIALS).glob(f"*/{TRIAL}")))
    return [r for r in records if isinstance(r, dict) and r.get("trial_id")]


def check_same_trials(folder: Path, trials: list[TrialSpec]) -> None:
    """Refuse to mix results: a trial folder made from a different job must not be resumed as if it were this one."""
    changed = []
    for trial in trials:
        recorded = read_json(trial_dir(folder, trial.trial_id) / TRIAL)
        if isinstance(recorded, dict) and recorded.get("job") != trial.job:
            changed.append(trial.trial_id)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise WorkbenchError([
            f"{folder}: trials {shown} were run with a different configuration than the study now describes.",
            "Keep both: run with --out OTHER_DIR (or rename the study); start over: delete the trial folders.",
        ])


def record_trial(folder: Path, trial: TrialSpec) -> None:
    path = trial_dir(folder, trial.trial_id) / TRIAL
    if read_json(path) != trial.record():
        write_json(path, trial.record(), "trial_json")


def mark(folder: Path, trial_id: str, status: str, reason: str) -> None:
    current = status_of(folder, trial_id)
    write_json(trial_dir(folder, trial_id) / trialdir.STATUS, {**current, "status": status, "reason": reason}, "status")


def summary_rows(folder: Path, study_name: str) -> list[dict[str, Any]]:
    paths = sorted((folder / trialdir.TRIALS).glob(f"*/{TRIAL}"))
    return [trialdir.summary_row(study_name, read_json(p) or {}, trialdir.status_of(p.parent), p.parent.name) for p in paths]


def write_summary(folder: Path, study_name: str) -> Path:
    import pandas as pd

    frame = pd.DataFrame(summary_rows(folder, study_name))
    hp = sorted(c for c in frame.columns if c.startswith("hp."))
    frame = frame.reindex(columns=[*SUMMARY_HEAD, *hp, *SUMMARY_TAIL])
    trialdir.atomic_write(folder / trialdir.SUMMARY_CSV, lambda tmp: frame.to_csv(tmp, index=False), "summary_csv")
    # Parquet needs one type per column: hyper-parameter columns may mix numbers and strings.
    typed = frame.astype({c: "string" for c in hp if frame[c].map(type).nunique() > 1})
    trialdir.atomic_write(folder / trialdir.SUMMARY_PARQUET, lambda tmp: typed.to_parquet(tmp, index=False), "summary_parquet")
    return folder / trialdir.SUMMARY_CSV
