"""Reading trial folders and study folders, robustly, into TrialRecord and StudyRecord (workbench.results.records).

The file names, statuses and tolerant readers are workbench.trialdir's. The table is computed from the trial
folders themselves whenever there are any: summary.csv may be stale or missing (a study killed mid-run), so it is
then only used to notice trials it lists whose folder is gone. A trial is incomplete (shown and counted, never
averaged) when it has no status.json, when status.json still says running (the process was killed, or is still
training), when a file is half-written (a truncated last line in metrics.jsonl, an unreadable status.json), or
when its folder is missing. Nothing here raises on a damaged trial; only a path that is neither a study nor a
trial folder is an error. A study folder with summary.csv and no trial folders is read by
workbench.results.summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results import metrics, summary
from workbench.results.format import age
from workbench.results.records import LOOSE_STUDY, StudyRecord, TrialRecord, all_trials, number

INCOMPLETE = trialdir.INCOMPLETE
ENDED = trialdir.AVERAGED + trialdir.STOPPED  # what status.json says of a trial that ended (running, interrupted aside)


def is_trial_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in trialdir.TRIAL_MARKERS)


def is_study_dir(path: Path) -> bool:
    marked = any((path / name).is_file() for name in (trialdir.STUDY, trialdir.SUMMARY_CSV))
    return path.is_dir() and (marked or (path / trialdir.TRIALS).is_dir())


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    return None


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _identity(path: Path, study: str | None, record: dict, config: dict, row: dict[str, str]) -> dict[str, Any]:
    """trial_id, variant, seed, hparams, space and study of a trial: trial.json first, then config.json's trial
    section, then its summary.csv row, then the folder's name."""
    from_config = config.get("trial") if isinstance(config.get("trial"), dict) else {}
    hparams: dict[str, Any] = {}
    raw_hp = _first(record.get("hparams"), from_config.get("hparams"))
    if isinstance(raw_hp, dict):
        # Keys are dotted already; a nested dict is flattened so `hp.a.b` always names one value.
        _flatten("", raw_hp, hparams)
    elif row:
        hparams = summary.summary_hparams(row)
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    architecture = config.get("architecture") if isinstance(config.get("architecture"), dict) else {}
    variant = _first(record.get("variant"), from_config.get("variant"), row.get("variant"))
    if variant is None:
        variant = path.name if study in (None, LOOSE_STUDY) else architecture.get("name", path.name)
    space = _first(record.get("space"), from_config.get("space"), hparams.get("space"))
    return {
        "trial_id": str(_first(record.get("trial_id"), from_config.get("trial_id"), path.name)),
        "variant": str(variant), "hparams": hparams, "space": None if space is None else str(space),
        "seed": summary.seed_of(_first(record.get("seed"), from_config.get("seed"), row.get("seed"), recipe.get("seed"))),
        "study": str(_first(study, from_config.get("study"), LOOSE_STUDY)),
    }


def _state(path: Path, status: dict | None, status_problem: str | None, metric_problems: list[str],
           truncated: bool) -> tuple[str, str | None]:
    """(state, reason) from what the trial's files say."""
    recorded = status.get("status") if status else None
    if status_problem:
        return INCOMPLETE, status_problem
    if not any((path / name).exists() for name in trialdir.TRIAL_MARKERS):
        return INCOMPLETE, "trial folder holds no trial files yet (never started?)"
    if status is None and not (path / trialdir.METRICS).exists() and not (path / trialdir.CONFIG).exists():
        return INCOMPLETE, f"not started yet (no {trialdir.STATUS}, {trialdir.CONFIG} or {trialdir.METRICS})"
    if status is None:
        return INCOMPLETE, f"no {trialdir.STATUS} (killed before its first epoch ended, or not a finished run)"
    if recorded == trialdir.RUNNING:
        written = age(time.time() - (path / trialdir.STATUS).stat().st_mtime)
        return INCOMPLETE, (f"{trialdir.STATUS} still says {trialdir.RUNNING}, last written {written} ago "
                            "(killed, or still training)")
    if recorded == trialdir.INTERRUPTED:
        why = status.get("reason") or "the study stopped before this trial finished"
        return INCOMPLETE, f"{trialdir.INTERRUPTED}: {why}"
    if recorded not in ENDED:
        return INCOMPLETE, f"{trialdir.STATUS} has an unknown status {recorded!r}"
    if truncated:
        return INCOMPLETE, metric_problems[-1]
    return recorded, status.get("reason")


def read_trial(path: str | Path, study: str | None = None, summary_row: dict[str, str] | None = None) -> TrialRecord:
    """Read one trial folder. Never raises for damaged contents: they make the trial incomplete."""
    path = Path(path)
    problems: list[str] = []
    record, problem = trialdir.read_json_object(path / trialdir.TRIAL)
    problems += [problem] if problem else []
    config, problem = trialdir.read_json_object(path / trialdir.CONFIG)
    problems += [problem] if problem else []
    status, status_problem = trialdir.read_json_object(path / trialdir.STATUS)
    rows, metric_problems, truncated = trialdir.read_metrics_file(path / trialdir.METRICS)
    problems.extend(metric_problems)
    record, config = record or {}, config or {}
    state, reason = _state(path, status, status_problem, metric_problems, truncated)
    if state == INCOMPLETE and truncated and reason != metric_problems[-1]:
        reason = f"{reason}; {metric_problems[-1]}"
    predictions = path / trialdir.PREDICTIONS
    return TrialRecord(
        path=path, **_identity(path, study, record, config, summary_row or {}), config=config, status=status,
        metrics=rows, state=state, reason=reason, problems=problems,
        predictions=predictions if predictions.exists() else None, record=record,
    )


def read_study(path: str | Path) -> StudyRecord:
    path = Path(path)
    spec, problem = trialdir.read_json_object(path / trialdir.STUDY)
    problems = [problem] if problem else []
    spec = spec or {}
    name = str(spec.get("name") or path.resolve().name)
    rows, problem = summary.read_rows(path / trialdir.SUMMARY_CSV)
    if problem:
        problems.append(problem)
    trials_dir = path / trialdir.TRIALS
    if not trials_dir.is_dir() and rows:
        # study.json stays local (.gitignore): a clone names the study as its run did, from summary.csv's study column
        name = str(spec.get("name") or rows[0].get("study") or name)
        return summary.study_from_summary(path, name, spec, rows, problems)
    by_id = {row.get("trial_id", ""): row for row in rows}
    folders = sorted(p for p in trials_dir.iterdir() if p.is_dir()) if trials_dir.is_dir() else []
    trials = []
    for folder in folders:
        trial = read_trial(folder, study=name, summary_row=by_id.get(folder.name))
        trial.study = name
        trials.append(trial)
    seen = {t.trial_id for t in trials} | {p.name for p in folders}
    trials += [summary.missing_trial(row, name, trials_dir) for trial_id, row in by_id.items()
               if trial_id and trial_id not in seen]
    return StudyRecord(path=path, name=name, spec=spec, trials=trials, problems=problems)


def _read_path(raw: str | Path, studies: list[StudyRecord], loose: list[TrialRecord]) -> None:
    """One command-line path: a study folder, a trial folder, or a folder of either."""
    path = Path(raw)
    if not path.exists():
        raise WorkbenchError(f"{raw}: no such folder")
    if not path.is_dir():
        raise WorkbenchError(f"{raw}: is a file; expected a study folder (with {trialdir.STUDY} and "
                             f"{trialdir.TRIALS}/) or a trial folder")
    if is_study_dir(path):
        studies.append(read_study(path))
    elif is_trial_dir(path):
        loose.append(read_trial(path))
    elif children := sorted(p for p in path.iterdir() if is_study_dir(p)):
        studies.extend(read_study(p) for p in children)
    elif trial_children := sorted(p for p in path.iterdir() if is_trial_dir(p)):
        loose.extend(read_trial(p) for p in trial_children)
    else:
        raise WorkbenchError([
            f"{raw}: not a study folder or a trial folder",
            f"  a study folder holds {trialdir.STUDY} and {trialdir.TRIALS}/<trial_id>/; a trial folder holds "
            f"{trialdir.METRICS}, {trialdir.STATUS} and {trialdir.CONFIG} (written by `workbench train --out DIR` "
            "or `workbench study run`)",
        ])


def load(paths: list[str | Path]) -> list[StudyRecord]:
    """Study folders, trial folders, or a folder of study folders (e.g. results/) -> studies.

    Trial folders given directly are gathered into one study labelled `trials`.
    """
    if not paths:
        raise WorkbenchError("no results folder given")
    studies: list[StudyRecord] = []
    loose: list[TrialRecord] = []
    for raw in paths:
        _read_path(raw, studies, loose)
    if loose:
        for trial in loose:
            trial.study = LOOSE_STUDY
        studies.append(StudyRecord(path=Path("."), name=LOOSE_STUDY, spec={}, trials=loose, loose=True))
    names = [s.name for s in studies]
    folders = [s.path.resolve().name for s in studies]
    for study, folder in zip(studies, folders):
        if names.count(study.name) > 1:
            # Two folders with the same study name (one study run twice, --out apart): label them by folder name,
            # or by path where the folder names collide too, so rows stay apart (and STUDY:NAME can pick one).
            study.name = folder if folders.count(folder) == 1 else f"{study.name} ({study.path})"
            for trial in study.trials:
                trial.study = study.name
    if not any(s.trials for s in studies):
        raise WorkbenchError([f"{', '.join(map(str, paths))}: no trials found ({trialdir.TRIALS}/ is empty)"])
    return studies


def available_metrics(trials: list[TrialRecord]) -> list[str]:
    keys: list[str] = []
    for trial in trials:
        for row in trial.metrics:
            for key, value in row.items():
                if key not in keys and number(value) is not None and key not in ("epoch", "stage"):
                    keys.append(key)
    for key in metrics.KNOWN:
        if key not in keys and any(t.status_number(f"best_{key}") is not None for t in trials):
            keys.append(key)
    return keys


def check_metric(trials: list[TrialRecord], metric: str) -> None:
    known = available_metrics(trials)
    if metric in known:
        return
    lines = [f"unknown metric {metric!r}",
             f"  metrics recorded in these trials: {', '.join(known) if known else '(none: no epoch finished yet)'}"]
    if any(t.from_summary for t in trials):
        folders = sorted({str(t.path.parent.parent) for t in trials if t.from_summary})
        lines.append(f"  {', '.join(folders)}: {trialdir.SUMMARY_CSV} holds only {trialdir.SUMMARY_METRIC}; --metric "
                     f"{metric} needs the trial folders ({trialdir.METRICS}), which a clone does not have: re-run the "
                     "study")
    raise WorkbenchError(lines)


def require_trial_folders(studies: list[StudyRecord], what: str) -> None:
    """Refuse `what` (e.g. "--kind curves (val top-1 per epoch)") for studies read from summary.csv alone."""
    bare = [s for s in studies if s.from_summary]
    if not bare:
        return
    lines = [f"{s.path}: {what} needs the trial folders ({trialdir.TRIALS}/<id>/), and this folder holds only "
             f"{trialdir.SUMMARY_CSV}" for s in bare]
    readme = [s.path / "README.md" for s in bare if (s.path / "README.md").is_file()]
    where = f" (the command is under 'Produced by' in {', '.join(map(str, readme))})" if readme else ""
    lines.append(f"  trial folders are git-ignored, so a clone has none: re-run the study into this folder{where}; "
                 f"without them, `workbench results compare` and `results plot --kind pareto|sensitivity|edf` read "
                 f"{trialdir.SUMMARY_CSV}")
    raise WorkbenchError(lines)


__all__ = ["all_trials", "available_metrics", "check_metric", "is_study_dir", "is_trial_dir", "load", "read_study",
           "read_trial", "require_trial_folders"]
