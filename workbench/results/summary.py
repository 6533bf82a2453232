"""Trials from a study's summary.csv: what a clone of the repository holds.

The trial folders are git-ignored and results/<study>/summary.csv is committed, so a study folder with summary.csv
and no trial folders is read from its rows (one per trial: status, cost, best and final val_top1, time, images/s;
trialdir.summary_row writes them). That is enough for tables, Pareto, sensitivity and EDF plots; what needs the
epochs, predictions or event files calls reader.require_trial_folders, which names the folder and the way out.
When trial folders exist they win, and summary.csv only flags the trials it lists whose folder is gone.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.results.records import StudyRecord, TrialRecord, number

NUMBERS = tuple(k for k in trialdir.SUMMARY_TAIL if k not in ("status", "reason"))  # a row's per-trial figures


def read_rows(path: Path) -> tuple[list[dict[str, str]], str | None]:
    """(rows, problem) of a summary.csv; a missing file is no rows and no problem."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle)), None
    except FileNotFoundError:
        return [], None
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        return [], f"{trialdir.SUMMARY_CSV} unreadable ({exc}); ignored"


def summary_hparams(row: dict[str, str]) -> dict[str, Any]:
    """The hp.* columns of a summary.csv row as values: JSON where it parses ("[8, 24]", "0.01"), Python's
    True/False (how pandas writes booleans) as booleans, else the text ("mbconv")."""
    hparams: dict[str, Any] = {}
    for key, value in row.items():
        if not key or not key.startswith("hp.") or value in ("", None):
            continue
        if value in ("True", "False"):
            hparams[key[3:]] = value == "True"
            continue
        try:
            hparams[key[3:]] = json.loads(value)
        except json.JSONDecodeError:
            hparams[key[3:]] = value
    return hparams


def seed_of(value: Any) -> int | None:
    seed = number(value)
    return int(seed) if seed is not None else None


def _state(recorded: str, reason: str | None) -> tuple[str, str | None]:
    if recorded in trialdir.AVERAGED + trialdir.STOPPED:
        return recorded, reason
    if recorded == trialdir.INTERRUPTED:
        return trialdir.INCOMPLETE, f"{trialdir.INTERRUPTED}: {reason or 'the study stopped before this trial finished'}"
    return trialdir.INCOMPLETE, (f"{trialdir.SUMMARY_CSV} says {recorded or 'nothing'} "
                                 "(not finished when the summary was written)")


def summary_trial(row: dict[str, str], study: str, trials_dir: Path) -> TrialRecord:
    """One summary.csv row of a study whose trial folders are absent, with the state its status column gives."""
    trial_id = row.get("trial_id") or "?"
    recorded = (row.get("status") or "").strip()
    status: dict[str, Any] = {"status": recorded or None, "reason": row.get("reason") or None}
    status.update({key: number(row.get(key)) for key in NUMBERS})
    state, reason = _state(recorded, status["reason"])
    return TrialRecord(
        path=trials_dir / trial_id, study=study, trial_id=trial_id, variant=row.get("variant") or trial_id,
        seed=seed_of(row.get("seed")), hparams=summary_hparams(row), space=None, config={}, status=status, metrics=[],
        state=state, reason=reason, from_summary=True,
    )


def missing_trial(row: dict[str, str], study: str, trials_dir: Path) -> TrialRecord:
    """A trial summary.csv lists whose folder is gone: counted, never averaged."""
    trial_id = row["trial_id"]
    return TrialRecord(
        path=trials_dir / trial_id, study=study, trial_id=trial_id, variant=row.get("variant") or trial_id,
        seed=seed_of(row.get("seed")), hparams=summary_hparams(row), space=None, config={}, status=None, metrics=[],
        state=trialdir.INCOMPLETE, reason=f"listed in {trialdir.SUMMARY_CSV} but its trial folder is missing",
    )


def study_file_beside(folder: Path, study: str) -> tuple[Path | None, dict[str, Any]]:
    """For a study folder read from summary.csv alone: the study file that shares its name in the repository layout
    (results/<folder>/ beside studies/<study>.json), whose variant order, baseline and design-space name are what
    the resolved study.json would have said; (None, {}) when there is none."""
    candidate = folder.parent.parent / "studies" / f"{study}.json"
    data, _ = trialdir.read_json_object(candidate)
    if not data or data.get("name") != study:
        return None, {}
    return candidate, data


def study_from_summary(path: Path, name: str, spec: dict[str, Any], rows: list[dict[str, str]],
                       problems: list[str]) -> StudyRecord:
    """The study whose trials are the rows of its summary.csv; without study.json, the declarations of the study
    file beside it (variant order, baseline, seeds and metric: an adaptive design, a search's design-space name)."""
    trials_dir = path / trialdir.TRIALS
    trials = [summary_trial(row, name, trials_dir) for row in rows if row.get("trial_id")]
    spec_file = None
    if not spec:
        spec_file, declared = study_file_beside(path, rows[0].get("study") or name)
        spec = {key: declared[key] for key in ("variants", "baseline") if key in declared}
        if isinstance(declared.get("seeds"), dict):  # adaptive seeds: the design its verdicts replay
            spec.update({key: declared[key] for key in ("seeds", "metric") if key in declared})
        if isinstance(declared.get("search"), dict):  # the label a search run gives its design space
            spec["space"] = declared["search"].get("name") or declared["name"]
            for trial in trials:
                trial.space = str(spec["space"])
    return StudyRecord(path=path, name=name, spec=spec, trials=trials, problems=problems, from_summary=True,
                       spec_file=spec_file)
