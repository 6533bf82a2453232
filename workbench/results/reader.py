"""Reading trial folders and study folders, robustly.

The table is computed from the trial folders themselves whenever there are any: summary.csv may be stale or missing
(a study killed mid-run), so it is then only used to notice trials it lists whose folder is gone. A trial is
`incomplete` (shown and counted, never averaged) when it has no status.json, when status.json still says `running`
(the process was killed, or is still training), when a file is half-written (a truncated last line in
metrics.jsonl, an unreadable status.json), or when its folder is missing. Nothing here raises on a damaged trial;
only a path that is neither a study nor a trial folder is an error.

A study folder with summary.csv and no trial folders at all is what a clone of the repository holds (the trial
folders are git-ignored, results/<study>/summary.csv is committed): its trials are then read from summary.csv
(`StudyRecord.from_summary`), which holds one row per trial with its status, cost, best and final val_top1, time
and images/s. That is enough for tables, Pareto, sensitivity and EDF plots; what needs the epochs, predictions or
event files calls `require_trial_folders`, which names the folder and says how to get them.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

# States of a trial as the results room sees it.
FINISHED = ("completed", "early_stopped")  # trained to the end the recipe or early stopping chose: averaged
ENDED = FINISHED + ("diverged",)  # the trainer stopped it on purpose (the EDF of a design space counts these)
STOPPED = ("diverged", "failed", "pruned")  # ran, but not to a result worth averaging; counted in their own column
STATES = FINISHED + STOPPED + ("incomplete",)
# status.json's status as the trainer (running ... failed) and the study runner (pruned by the asha scheduler,
# interrupted when the study stopped) write it
TRAINER_STATES = ("running", "completed", "early_stopped", "diverged", "failed", "pruned", "interrupted")

TRIAL_MARKERS = ("metrics.jsonl", "status.json", "config.json", "trial.json")
METRIC_KEYS = ("val_top1", "val_top5", "val_loss", "train_top1", "train_loss")
SUMMARY_FILE = "summary.csv"
# The per-trial figures a study's summary.csv holds besides the hp.* columns (written by the study runner's ledger);
# best_/final_val_top1 make val_top1 the only metric it knows.
SUMMARY_NUMBERS = ("params", "flops", "best_val_top1", "final_val_top1", "epochs_run", "seconds", "train_images_per_s")
SUMMARY_METRICS = ("val_top1",)
LOOSE_STUDY = "trials"  # study label of trial folders given directly (from `workbench train --out DIR`)


def is_fraction_metric(metric: str) -> bool:
    """Accuracies are stored as fractions 0..1 and shown in %."""
    return any(tag in metric for tag in ("top1", "top5", "acc"))


def lower_is_better(metric: str) -> bool:
    return any(tag in metric for tag in ("loss", "error", "seconds"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _read_json_object(path: Path) -> tuple[dict | None, str | None]:
    """(object, problem). A missing file is (None, None); a damaged one is (None, 'why')."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name}: cannot read ({exc})"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{path.name}: not valid JSON (half-written?) at line {exc.lineno}, column {exc.colno}"
    if not isinstance(data, dict):
        return None, f"{path.name}: expected a JSON object, got {type(data).__name__}"
    return data, None


def read_metrics(path: Path) -> tuple[list[dict], list[str], bool]:
    """metrics.jsonl -> (rows, problems, truncated). A last line cut off mid-write sets `truncated`."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], [], False
    except OSError as exc:
        return [], [f"metrics.jsonl: cannot read ({exc})"], False
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
        if not isinstance(row, dict):
            if i == last_index:
                truncated = True
                problems.append(f"metrics.jsonl: last line (line {i + 1}) is truncated (half-written epoch)")
            else:
                problems.append(f"metrics.jsonl: line {i + 1} is not a JSON object; skipped")
            continue
        rows.append(row)
    return rows, problems, truncated


@dataclass
class TrialRecord:
    """One trial folder, read without judgement: `state` and `reason` say whether it can be averaged."""

    path: Path
    study: str
    trial_id: str
    variant: str
    seed: int | None
    hparams: dict[str, Any]
    space: str | None
    config: dict[str, Any]
    status: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    state: str
    reason: str | None
    problems: list[str] = field(default_factory=list)
    predictions: Path | None = None
    from_summary: bool = False  # a row of summary.csv: no epochs, predictions or config behind it

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def _status_number(self, key: str) -> float | None:
        return _number((self.status or {}).get(key))

    @property
    def params(self) -> float | None:
        value = self._status_number("params")
        return value if value is not None else _number(self.config.get("params"))

    @property
    def flops(self) -> float | None:
        value = self._status_number("flops")
        return value if value is not None else _number(self.config.get("flops"))

    @property
    def epochs_run(self) -> int:
        value = self._status_number("epochs_run")
        return int(value) if value is not None and self.state != "incomplete" else len(self.metrics)

    @property
    def seconds(self) -> float | None:
        value = self._status_number("seconds")
        if value is not None and self.state != "incomplete":
            return value
        elapsed = [_number(row.get("elapsed_seconds")) for row in self.metrics]
        elapsed = [v for v in elapsed if v is not None]
        return elapsed[-1] if elapsed else value

    @property
    def images_per_s(self) -> float | None:
        value = self._status_number("train_images_per_s")
        if value is not None:
            return value
        rates = [_number(row.get("train_images_per_s")) for row in self.metrics]
        rates = [v for v in rates if v is not None]
        return sum(rates) / len(rates) if rates else None

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """(epoch, value) for every epoch that recorded `metric` as a finite number."""
        out = []
        for i, row in enumerate(self.metrics):
            value = _number(row.get(metric))
            if value is not None:
                epoch = _number(row.get("epoch"))
                out.append((int(epoch) if epoch is not None else i + 1, value))
        return out

    def best(self, metric: str) -> float | None:
        """The trainer's own figure from status.json when it wrote one (val_top1), else the best epoch."""
        if self.state != "incomplete":
            value = self._status_number(f"best_{metric}")
            if value is not None:
                return value
        values = [v for _, v in self.curve(metric)]
        if not values:
            return None
        return min(values) if lower_is_better(metric) else max(values)

    def final(self, metric: str) -> float | None:
        if self.state != "incomplete":
            value = self._status_number(f"final_{metric}")
            if value is not None:
                return value
        values = [v for _, v in self.curve(metric)]
        return values[-1] if values else None

    def lookup(self, dotted: str) -> Any:
        """A dotted field: hp.<name>, a column name (variant, seed, study, space, state) or a config.json path."""
        if dotted.startswith("hp."):
            return self.hparams.get(dotted[3:], _MISSING)
        if dotted in ("variant", "seed", "study", "space", "state", "trial_id"):
            return getattr(self, dotted)
        if dotted in self.hparams:
            return self.hparams[dotted]
        node: Any = self.config
        for part in dotted.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return _MISSING
        return node


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def is_missing(value: Any) -> bool:
    return value is _MISSING


@dataclass
class StudyRecord:
    path: Path
    name: str
    spec: dict[str, Any]
    trials: list[TrialRecord]
    problems: list[str] = field(default_factory=list)
    loose: bool = False  # trial folders given directly, not a study folder
    from_summary: bool = False  # no trial folders: the trials are the rows of summary.csv
    spec_file: Path | None = None  # where `spec` came from when study.json is absent (see study_file_beside)

    def source_notes(self) -> list[str]:
        """What a reader of a table built from summary.csv must know."""
        if not self.from_summary:
            return []
        notes = [f"{self.name}: read from {self.path / SUMMARY_FILE} (the folder holds no trial folders: they are "
                 "git-ignored, so a clone has only summary.csv); curves, per-example errors and metrics other than "
                 "val_top1 need the trial folders of a run"]
        if self.spec_file is not None:
            names = {"variants": "variant order", "space": "design-space name"}
            taken = " and ".join(names.get(key, key) for key in self.spec)
            notes.append(f"{self.name}: no study.json (git-ignored too): {taken} from {self.spec_file}")
        elif not self.spec:
            notes.append(f"{self.name}: no study.json (git-ignored too), so no declared baseline: variants in "
                         "summary.csv's order, the first with finished trials is the baseline (--baseline NAME picks "
                         "another)")
        return notes

    @property
    def baseline(self) -> str | None:
        value = self.spec.get("baseline")
        if isinstance(value, dict):
            value = value.get("name") or value.get("variant")
        return str(value) if value not in (None, "") else None

    def variant_order(self) -> list[str]:
        """Variants in study.json's order where it lists them, then in order of first appearance."""
        order: list[str] = []
        declared = self.spec.get("variants")
        if isinstance(declared, dict):
            order = [str(k) for k in declared]
        elif isinstance(declared, list):
            for item in declared:
                if isinstance(item, str):
                    order.append(item)
                elif isinstance(item, dict):
                    name = item.get("name") or item.get("variant")
                    if name is not None:
                        order.append(str(name))
        for trial in self.trials:
            if trial.variant not in order:
                order.append(trial.variant)
        return order

    def machine(self) -> str | None:
        """The machine the trials ran on: study.json's `machine` if recorded, else the devices the trainer wrote
        into status.json (e.g. "cpu (cpu x2 threads), fp32"), most common first."""
        value = self.spec.get("machine")
        if isinstance(value, str) and value:
            return value
        counts: dict[str, int] = {}
        for trial in self.trials:
            for source in (trial.status or {}, trial.config):
                device = source.get("device") or source.get("machine")
                if isinstance(device, str) and device:
                    counts[device] = counts.get(device, 0) + 1
                    break
        if not counts:
            return None
        return "; ".join(sorted(counts, key=lambda d: -counts[d]))


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    return None


def _seed(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def read_trial(path: str | Path, study: str | None = None, summary_row: dict[str, str] | None = None) -> TrialRecord:
    """Read one trial folder. Never raises for damaged contents: they make the trial `incomplete`."""
    path = Path(path)
    problems: list[str] = []
    trial_json, problem = _read_json_object(path / "trial.json")
    if problem:
        problems.append(problem)
    config, problem = _read_json_object(path / "config.json")
    if problem:
        problems.append(problem)
    status, status_problem = _read_json_object(path / "status.json")
    metrics, metric_problems, truncated = read_metrics(path / "metrics.jsonl")
    problems.extend(metric_problems)
    trial_json = trial_json or {}
    config = config or {}
    from_config = config.get("trial") if isinstance(config.get("trial"), dict) else {}
    summary_row = summary_row or {}

    hparams: dict[str, Any] = {}
    raw_hp = _first(trial_json.get("hparams"), from_config.get("hparams"))
    if isinstance(raw_hp, dict):
        # Keys are dotted already; a nested dict is flattened so `hp.a.b` always names one value.
        _flatten("", raw_hp, hparams)
    elif summary_row:
        hparams = summary_hparams(summary_row)

    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    architecture = config.get("architecture") if isinstance(config.get("architecture"), dict) else {}
    trial_id = str(_first(trial_json.get("trial_id"), from_config.get("trial_id"), path.name))
    variant = _first(trial_json.get("variant"), from_config.get("variant"), summary_row.get("variant"))
    if variant is None:
        variant = path.name if study in (None, LOOSE_STUDY) else architecture.get("name", path.name)
    seed = _seed(_first(trial_json.get("seed"), from_config.get("seed"), summary_row.get("seed"), recipe.get("seed")))
    space = _first(trial_json.get("space"), from_config.get("space"), hparams.get("space"))
    study_name = str(_first(study, from_config.get("study"), LOOSE_STUDY))

    # --- state --------------------------------------------------------------------------------------
    reason: str | None
    trainer_status = status.get("status") if status else None
    if status_problem:
        state, reason = "incomplete", status_problem
    elif not any((path / name).exists() for name in TRIAL_MARKERS):
        state, reason = "incomplete", "trial folder holds no trial files yet (never started?)"
    elif status is None and not (path / "metrics.jsonl").exists() and not (path / "config.json").exists():
        state, reason = "incomplete", "not started yet (no status.json, config.json or metrics.jsonl)"
    elif status is None:
        state, reason = "incomplete", "no status.json (killed before its first epoch ended, or not a finished run)"
    elif trainer_status == "running":
        age = time.time() - (path / "status.json").stat().st_mtime
        state = "incomplete"
        reason = f"status.json still says running, last written {_age(age)} ago (killed, or still training)"
    elif trainer_status == "interrupted":
        state, reason = "incomplete", f"interrupted: {status.get('reason') or 'the study stopped before this trial finished'}"
    elif trainer_status not in TRAINER_STATES:
        state, reason = "incomplete", f"status.json has an unknown status {trainer_status!r}"
    elif truncated:
        state, reason = "incomplete", metric_problems[-1]
    else:
        state, reason = trainer_status, status.get("reason")
    if state == "incomplete" and truncated and reason != metric_problems[-1]:
        reason = f"{reason}; {metric_problems[-1]}"

    predictions = path / "val_predictions.csv"
    return TrialRecord(
        path=path, study=study_name, trial_id=trial_id, variant=str(variant), seed=seed, hparams=hparams,
        space=None if space is None else str(space), config=config, status=status, metrics=metrics,
        state=state, reason=reason, problems=problems, predictions=predictions if predictions.exists() else None,
    )


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def is_trial_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in TRIAL_MARKERS)


def is_study_dir(path: Path) -> bool:
    return path.is_dir() and (any((path / name).is_file() for name in ("study.json", SUMMARY_FILE)) or (path / "trials").is_dir())


def _read_summary(path: Path) -> tuple[list[dict[str, str]], str | None]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle)), None
    except FileNotFoundError:
        return [], None
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        return [], f"summary.csv unreadable ({exc}); ignored"


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


def summary_trial(row: dict[str, str], study: str, trials_dir: Path) -> TrialRecord:
    """One summary.csv row of a study whose trial folders are absent, with the state its status column gives."""
    trial_id = row.get("trial_id") or "?"
    recorded = (row.get("status") or "").strip()
    status: dict[str, Any] = {"status": recorded or None, "reason": row.get("reason") or None}
    status.update({key: _number(row.get(key)) for key in SUMMARY_NUMBERS})
    if recorded in FINISHED + STOPPED:
        state, reason = recorded, status["reason"]
    elif recorded == "interrupted":
        state, reason = "incomplete", f"interrupted: {status['reason'] or 'the study stopped before this trial finished'}"
    else:
        state, reason = "incomplete", f"summary.csv says {recorded or 'nothing'} (not finished when the summary was written)"
    return TrialRecord(
        path=trials_dir / trial_id, study=study, trial_id=trial_id, variant=row.get("variant") or trial_id,
        seed=_seed(row.get("seed")), hparams=summary_hparams(row), space=None, config={}, status=status, metrics=[],
        state=state, reason=reason, from_summary=True,
    )


def study_file_beside(folder: Path, study: str) -> tuple[Path | None, dict[str, Any]]:
    """For a study folder read from summary.csv alone: the study file that shares its name in the repository layout
    (results/<folder>/ beside studies/<study>.json), whose variant order, baseline and design-space name are what
    the resolved study.json would have said; (None, {}) when there is none."""
    candidate = folder.parent.parent / "studies" / f"{study}.json"
    data, _ = _read_json_object(candidate)
    if not data or data.get("name") != study:
        return None, {}
    return candidate, data


def read_study(path: str | Path) -> StudyRecord:
    path = Path(path)
    spec, problem = _read_json_object(path / "study.json")
    problems = [problem] if problem else []
    spec = spec or {}
    name = str(spec.get("name") or path.resolve().name)
    summary, problem = _read_summary(path / SUMMARY_FILE)
    if problem:
        problems.append(problem)
    by_id = {row.get("trial_id", ""): row for row in summary}
    trials_dir = path / "trials"
    folders = sorted(p for p in trials_dir.iterdir() if p.is_dir()) if trials_dir.is_dir() else []
    if not trials_dir.is_dir() and summary:
        trials = [summary_trial(row, name, trials_dir) for row in summary if row.get("trial_id")]
        spec_file = None
        if not spec:
            spec_file, declared = study_file_beside(path, summary[0].get("study") or name)
            spec = {key: declared[key] for key in ("variants", "baseline") if key in declared}
            if isinstance(declared.get("search"), dict):  # the label a search run gives its design space
                spec["space"] = declared["search"].get("name") or declared["name"]
                for trial in trials:
                    trial.space = str(spec["space"])
        return StudyRecord(path=path, name=name, spec=spec, trials=trials, problems=problems, from_summary=True,
                           spec_file=spec_file)
    trials = []
    for folder in folders:
        trial = read_trial(folder, study=name, summary_row=by_id.get(folder.name))
        trial.study = name
        trials.append(trial)
    seen = {t.trial_id for t in trials} | {p.name for p in folders}
    for trial_id, row in by_id.items():
        if trial_id and trial_id not in seen:
            # summary.csv names a trial whose folder is gone: count it, never average it.
            trials.append(TrialRecord(
                path=trials_dir / trial_id, study=name, trial_id=trial_id, variant=row.get("variant") or trial_id,
                seed=_seed(row.get("seed")), hparams=summary_hparams(row), space=None, config={}, status=None, metrics=[],
                state="incomplete", reason="listed in summary.csv but its trial folder is missing",
            ))
    return StudyRecord(path=path, name=name, spec=spec, trials=trials, problems=problems)


def load(paths: list[str | Path]) -> list[StudyRecord]:
    """Study folders, trial folders, or a folder of study folders (e.g. results/) -> studies.

    Trial folders given directly are gathered into one study labelled `trials`.
    """
    if not paths:
        raise WorkbenchError("no results folder given")
    studies: list[StudyRecord] = []
    loose: list[TrialRecord] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise WorkbenchError(f"{raw}: no such folder")
        if not path.is_dir():
            raise WorkbenchError(f"{raw}: is a file; expected a study folder (with study.json and trials/) or a trial folder")
        if is_study_dir(path):
            studies.append(read_study(path))
        elif is_trial_dir(path):
            loose.append(read_trial(path))
        else:
            children = sorted(p for p in path.iterdir() if is_study_dir(p))
            if not children:
                trial_children = sorted(p for p in path.iterdir() if is_trial_dir(p))
                if trial_children:
                    loose.extend(read_trial(p) for p in trial_children)
                    continue
                raise WorkbenchError([
                    f"{raw}: not a study folder or a trial folder",
                    "  a study folder holds study.json and trials/<trial_id>/; a trial folder holds metrics.jsonl, "
                    "status.json and config.json (written by `workbench train --out DIR` or `workbench study run`)",
                ])
            studies.extend(read_study(p) for p in children)
    if loose:
        for trial in loose:
            trial.study = LOOSE_STUDY
        studies.append(StudyRecord(path=Path("."), name=LOOSE_STUDY, spec={}, trials=loose, loose=True))
    names = [s.name for s in studies]
    for i, study in enumerate(studies):
        if names.count(study.name) > 1:
            # Two folders with the same study name: label them by path so rows stay apart.
            study.name = f"{study.name} ({study.path})"
            for trial in study.trials:
                trial.study = study.name
    if not any(s.trials for s in studies):
        raise WorkbenchError([f"{', '.join(map(str, paths))}: no trials found (trials/ is empty)"])
    return studies


def all_trials(studies: list[StudyRecord]) -> list[TrialRecord]:
    return [t for s in studies for t in s.trials]


def available_metrics(trials: list[TrialRecord]) -> list[str]:
    keys: list[str] = []
    for trial in trials:
        for row in trial.metrics:
            for key, value in row.items():
                if key not in keys and _number(value) is not None and key not in ("epoch", "stage"):
                    keys.append(key)
    for key in METRIC_KEYS:
        if key not in keys and any(t._status_number(f"best_{key}") is not None for t in trials):
            keys.append(key)
    return keys


def check_metric(trials: list[TrialRecord], metric: str) -> None:
    known = available_metrics(trials)
    if metric not in known:
        lines = [f"unknown metric {metric!r}",
                 f"  metrics recorded in these trials: {', '.join(known) if known else '(none: no epoch finished yet)'}"]
        if any(t.from_summary for t in trials):
            folders = sorted({str(t.path.parent.parent) for t in trials if t.from_summary})
            lines.append(f"  {', '.join(folders)}: summary.csv holds only {', '.join(SUMMARY_METRICS)}; --metric {metric} "
                         "needs the trial folders (metrics.jsonl), which a clone does not have: re-run the study")
        raise WorkbenchError(lines)


def require_trial_folders(studies: list[StudyRecord], what: str) -> None:
    """Refuse `what` (e.g. "--kind curves (val top-1 per epoch)") for studies read from summary.csv alone."""
    bare = [s for s in studies if s.from_summary]
    if not bare:
        return
    lines = [f"{s.path}: {what} needs the trial folders (trials/<id>/), and this folder holds only {SUMMARY_FILE}"
             for s in bare]
    readme = [s.path / "README.md" for s in bare if (s.path / "README.md").is_file()]
    where = f" (the command is under 'Produced by' in {', '.join(map(str, readme))})" if readme else ""
    lines.append(f"  trial folders are git-ignored, so a clone has none: re-run the study into this folder{where}; "
                 f"without them, `workbench results compare` and `results plot --kind pareto|sensitivity|edf` read "
                 f"{SUMMARY_FILE}")
    raise WorkbenchError(lines)


def hashable(value: Any) -> Any:
    """Group key of a field value: lists and dicts (e.g. progressive dropout [0.1, 0.3]) as compact JSON."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def order_key(value: Any) -> tuple:
    """Natural order of group values: numbers by value, JSON lists of numbers element-wise ([8,24] before
    [16,24]), then other text, then unset."""
    if value is None:
        return (3, (), "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, (float(value),), "")
    if isinstance(value, str) and value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            items = None
        if isinstance(items, list) and all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in items):
            return (1, tuple(float(i) for i in items), "")
    return (2, (), str(value))


def field_values(trials: list[TrialRecord], dotted: str) -> list[Any]:
    """The value of `dotted` for every trial; an unknown field is a WorkbenchError naming the known ones."""
    values = [t.lookup(dotted) for t in trials]
    if all(is_missing(v) for v in values):
        hp = sorted({k for t in trials for k in t.hparams})
        lines = [
            f"unknown field {dotted!r}: no trial has it",
            "  group by variant, seed, study, space, a hyper-parameter "
            f"({', '.join('hp.' + k for k in hp) if hp else 'none recorded'}), or a config.json path such as "
            "architecture.name, dataset.name, recipe.epochs",
        ]
        if any(t.from_summary for t in trials):
            lines.append(f"  trials read from {SUMMARY_FILE} have its variant, seed and hp.* columns only: config.json "
                         "paths need the trial folders of a run")
        raise WorkbenchError(lines)
    return [None if is_missing(v) else hashable(v) for v in values]


def swept_hparams(trials: list[TrialRecord]) -> list[str]:
    """Hyper-parameters that take more than one value across the trials, in first-seen order."""
    names: list[str] = []
    for trial in trials:
        for key in trial.hparams:
            if key not in names:
                names.append(key)
    return [k for k in names if len({hashable(t.hparams.get(k)) for t in trials if k in t.hparams}) > 1]


def trials_frame(trials: list[TrialRecord], metric: str = "val_top1"):
    """One pandas row per trial, the columns of summary.csv plus state and the chosen metric."""
    import pandas as pd

    hp_keys: list[str] = []
    for trial in trials:
        for key in trial.hparams:
            if key not in hp_keys:
                hp_keys.append(key)
    rows = []
    for t in trials:
        row: dict[str, Any] = {"study": t.study, "trial_id": t.trial_id, "variant": t.variant, "seed": t.seed}
        for key in hp_keys:
            row[f"hp.{key}"] = hashable(t.hparams.get(key))
        row.update({
            "params": t.params, "flops": t.flops, f"best_{metric}": t.best(metric), f"final_{metric}": t.final(metric),
            "epochs_run": t.epochs_run, "seconds": t.seconds, "train_images_per_s": t.images_per_s,
            "status": (t.status or {}).get("status"), "state": t.state, "reason": t.reason, "path": str(t.path),
        })
        rows.append(row)
    return pd.DataFrame(rows)
