"""The study folder as the source of truth: which trials finished, trial.json, summary.csv/parquet.

Ray Tune snapshots its experiment state periodically, so after a `kill -9` that snapshot can lag behind trials
that already finished. Each trial's status.json, written atomically by the trainer after every epoch, does not:
resuming a study means skipping trials whose status is final and resuming the others from checkpoint_last.pt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.study.trials import TrialSpec
from workbench.trialdir import FINISHED, read_json, write_json

TRIAL, STUDY = "trial.json", "study.json"
SUMMARY_CSV, SUMMARY_PARQUET = "summary.csv", "summary.parquet"
SUMMARY_COLUMNS = ["study", "trial_id", "variant", "seed", "params", "flops", "best_val_top1", "final_val_top1",
                   "epochs_run", "seconds", "train_images_per_s", "status", "reason"]


def trial_dir(folder: Path, trial_id: str) -> Path:
    return folder / "trials" / trial_id


def status_of(folder: Path, trial_id: str) -> dict[str, Any]:
    status = read_json(trial_dir(folder, trial_id) / trialdir.STATUS)
    return status if isinstance(status, dict) else {"status": trialdir.PENDING, "reason": None}


def is_finished(folder: Path, trial_id: str) -> bool:
    return status_of(folder, trial_id).get("status") in FINISHED


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
    path = trial_dir(folder, trial_id) / trialdir.STATUS
    current = read_json(path)
    current = current if isinstance(current, dict) else {}
    write_json(path, {**current, "status": status, "reason": reason}, "status")


def summary_rows(folder: Path, study_name: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((folder / "trials").glob(f"*/{TRIAL}")):
        trial = read_json(path) or {}
        status = read_json(path.parent / trialdir.STATUS) or {"status": trialdir.PENDING}
        row = {"study": study_name, "trial_id": trial.get("trial_id", path.parent.name), "variant": trial.get("variant"),
               "seed": trial.get("seed")}
        row.update({f"hp.{k}": v for k, v in (trial.get("hparams") or {}).items()})
        row.update({k: status.get(k) for k in SUMMARY_COLUMNS if k not in row})
        rows.append(row)
    return rows


def write_summary(folder: Path, study_name: str) -> Path:
    import pandas as pd

    rows = summary_rows(folder, study_name)
    frame = pd.DataFrame(rows)
    hp = sorted(c for c in frame.columns if c.startswith("hp."))
    frame = frame.reindex(columns=SUMMARY_COLUMNS[:4] + hp + SUMMARY_COLUMNS[4:])
    trialdir.atomic_write(folder / SUMMARY_CSV, lambda tmp: frame.to_csv(tmp, index=False), "summary_csv")
    # Parquet needs one type per column: hyper-parameter columns may mix numbers and strings.
    typed = frame.astype({c: "string" for c in hp if frame[c].map(type).nunique() > 1})
    trialdir.atomic_write(folder / SUMMARY_PARQUET, lambda tmp: typed.to_parquet(tmp, index=False), "summary_parquet")
    return folder / SUMMARY_CSV
