"""The study folder as the source of truth: which trials finished, trial.json, summary.csv/parquet.

Ray Tune snapshots its experiment state periodically, so after a `kill -9` that snapshot can lag behind trials
that already finished. Each trial's status.json, written atomically by the trainer after every epoch, does not:
resuming a study means skipping trials whose status is final and resuming the others from checkpoint_last.pt.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.study.trials import TrialSpec

FINAL = ("completed", "early_stopped", "diverged", "pruned")
SUMMARY_COLUMNS = ["study", "trial_id", "variant", "seed", "params", "flops", "best_val_top1", "final_val_top1",
                   "epochs_run", "seconds", "train_images_per_s", "status", "reason"]


def trial_dir(folder: Path, trial_id: str) -> Path:
    return folder / "trials" / trial_id


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)


def status_of(folder: Path, trial_id: str) -> dict[str, Any]:
    status = read_json(trial_dir(folder, trial_id) / "status.json")
    return status if isinstance(status, dict) else {"status": "pending", "reason": None}


def is_finished(folder: Path, trial_id: str) -> bool:
    return status_of(folder, trial_id).get("status") in FINAL


def check_same_trials(folder: Path, trials: list[TrialSpec]) -> None:
    """Refuse to mix results: a trial folder made from a different job must not be resumed as if it were this one."""
    changed = []
    for trial in trials:
        recorded = read_json(trial_dir(folder, trial.trial_id) / "trial.json")
        if isinstance(recorded, dict) and recorded.get("job") != trial.job:
            changed.append(trial.trial_id)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise WorkbenchError([
            f"{folder}: trials {shown} were run with a different configuration than the study now describes.",
            "Keep both: run with --out OTHER_DIR (or rename the study); start over: delete the trial folders.",
        ])


def record_trial(folder: Path, trial: TrialSpec) -> None:
    path = trial_dir(folder, trial.trial_id) / "trial.json"
    if read_json(path) != trial.record():
        write_json(path, trial.record())


def mark(folder: Path, trial_id: str, status: str, reason: str) -> None:
    path = trial_dir(folder, trial_id) / "status.json"
    current = read_json(path)
    current = current if isinstance(current, dict) else {}
    write_json(path, {**current, "status": status, "reason": reason})


def summary_rows(folder: Path, study_name: str) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((folder / "trials").glob("*/trial.json")):
        trial = read_json(path) or {}
        status = read_json(path.parent / "status.json") or {"status": "pending"}
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
    frame.to_csv(folder / "summary.csv", index=False)
    # Parquet needs one type per column: hyper-parameter columns may mix numbers and strings.
    frame.astype({c: "string" for c in hp if frame[c].map(type).nunique() > 1}).to_parquet(folder / "summary.parquet", index=False)
    return folder / "summary.csv"
