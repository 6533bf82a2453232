"""What the results room reads a trial and a study as: TrialRecord and StudyRecord, read without judgement, and
`trials_frame`, one pandas row per trial (the run records analyses start from).

A trial's `state` is one of trialdir's AVERAGED statuses (completed, early_stopped), one of its STOPPED ones
(diverged, failed, pruned), or trialdir.INCOMPLETE when its files do not say how it ended; `reason` says why.
workbench.results.reader builds these records from trial folders, workbench.results.summary from summary.csv.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.results.metrics import lower_is_better

LOOSE_STUDY = "trials"  # study label of trial folders given directly (from `workbench train --out DIR`)


def number(value: Any) -> float | None:
    """A finite number from a JSON value (an int, a float, a numeric text), else None; booleans are not numbers."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()  # what TrialRecord.lookup returns for a field the trial does not have


def is_missing(value: Any) -> bool:
    return value is MISSING


def hashable(value: Any) -> Any:
    """Group key of a field value: lists and dicts (e.g. progressive dropout [0.1, 0.3]) as compact JSON."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


@dataclass
class TrialRecord:
    """One trial folder (or summary.csv row): `state` and `reason` say whether it can be averaged."""

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
    record: dict[str, Any] = field(default_factory=dict)  # trial.json as the study runner wrote it

    @property
    def finished(self) -> bool:
        """Trained to the end the recipe or early stopping chose: averaged."""
        return self.state in trialdir.AVERAGED

    @property
    def incomplete(self) -> bool:
        return self.state == trialdir.INCOMPLETE

    @property
    def stopped(self) -> bool:
        """Diverged, failed or pruned: ran, but not to a result worth averaging."""
        return self.state in trialdir.STOPPED

    def status_number(self, key: str) -> float | None:
        return number((self.status or {}).get(key))

    @property
    def params(self) -> float | None:
        value = self.status_number("params")
        return value if value is not None else number(self.config.get("params"))

    @property
    def flops(self) -> float | None:
        value = self.status_number("flops")
        return value if value is not None else number(self.config.get("flops"))

    @property
    def epochs_run(self) -> int:
        value = self.status_number("epochs_run")
        return int(value) if value is not None and not self.incomplete else len(self.metrics)

    @property
    def seconds(self) -> float | None:
        value = self.status_number("seconds")
        if value is not None and not self.incomplete:
            return value
        elapsed = [number(row.get("elapsed_seconds")) for row in self.metrics]
        elapsed = [v for v in elapsed if v is not None]
        return elapsed[-1] if elapsed else value

    @property
    def images_per_s(self) -> float | None:
        value = self.status_number("train_images_per_s")
        if value is not None:
            return value
        rates = [number(row.get("train_images_per_s")) for row in self.metrics]
        rates = [v for v in rates if v is not None]
        return sum(rates) / len(rates) if rates else None

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """(epoch, value) for every epoch that recorded `metric` as a finite number."""
        out = []
        for i, row in enumerate(self.metrics):
            value = number(row.get(metric))
            if value is not None:
                epoch = number(row.get("epoch"))
                out.append((int(epoch) if epoch is not None else i + 1, value))
        return out

    def best(self, metric: str) -> float | None:
        """The trainer's own figure from status.json when it wrote one (val_top1), else the best epoch."""
        if not self.incomplete:
            value = self.status_number(f"best_{metric}")
            if value is not None:
                return value
        values = [v for _, v in self.curve(metric)]
        if not values:
            return None
        return min(values) if lower_is_better(metric) else max(values)

    def final(self, metric: str) -> float | None:
        if not self.incomplete:
            value = self.status_number(f"final_{metric}")
            if value is not None:
                return value
        values = [v for _, v in self.curve(metric)]
        return values[-1] if values else None

    def lookup(self, dotted: str) -> Any:
        """A dotted field: hp.<name>, a column name (variant, seed, study, space, state) or a config.json path;
        MISSING when the trial has no such field."""
        if dotted.startswith("hp."):
            return self.hparams.get(dotted[3:], MISSING)
        if dotted in ("variant", "seed", "study", "space", "state", "trial_id"):
            return getattr(self, dotted)
        if dotted in self.hparams:
            return self.hparams[dotted]
        node: Any = self.config
        for part in dotted.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return MISSING
        return node


@dataclass
class StudyRecord:
    path: Path
    name: str
    spec: dict[str, Any]
    trials: list[TrialRecord]
    problems: list[str] = field(default_factory=list)
    loose: bool = False  # trial folders given directly, not a study folder
    from_summary: bool = False  # no trial folders: the trials are the rows of summary.csv
    spec_file: Path | None = None  # where `spec` came from when study.json is absent (see summary.study_file_beside)

    def source_notes(self) -> list[str]:
        """What a reader of a table built from summary.csv must know."""
        if not self.from_summary:
            return []
        notes = [f"{self.name}: read from {self.path / trialdir.SUMMARY_CSV} (the folder holds no trial folders: "
                 f"they are git-ignored, so a clone has only {trialdir.SUMMARY_CSV}); curves, per-example errors and "
                 f"metrics other than {trialdir.SUMMARY_METRIC} need the trial folders of a run"]
        if self.spec_file is not None:
            names = {"variants": "variant order", "space": "design-space name"}
            taken = " and ".join(names.get(key, key) for key in self.spec)
            notes.append(f"{self.name}: no {trialdir.STUDY} (git-ignored too): {taken} from {self.spec_file}")
        elif not self.spec:
            notes.append(f"{self.name}: no {trialdir.STUDY} (git-ignored too), so no declared baseline: variants in "
                         f"{trialdir.SUMMARY_CSV}'s order, the first with finished trials is the baseline (--baseline "
                         "NAME picks another)")
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


def all_trials(studies: list[StudyRecord]) -> list[TrialRecord]:
    return [t for s in studies for t in s.trials]


def trials_frame(trials: list[TrialRecord], metric: str = trialdir.SUMMARY_METRIC):
    """One pandas row per trial: summary.csv's columns (with `metric` in place of its val_top1), state and path."""
    import pandas as pd

    hp_keys: list[str] = []
    for trial in trials:
        hp_keys += [key for key in trial.hparams if key not in hp_keys]
    rows = []
    for t in trials:
        figures = {"params": t.params, "flops": t.flops, f"best_{trialdir.SUMMARY_METRIC}": t.best(metric),
                   f"final_{trialdir.SUMMARY_METRIC}": t.final(metric), "epochs_run": t.epochs_run,
                   "seconds": t.seconds, "train_images_per_s": t.images_per_s,
                   "status": (t.status or {}).get("status"), "reason": t.reason}
        row: dict[str, Any] = dict(zip(trialdir.SUMMARY_HEAD, (t.study, t.trial_id, t.variant, t.seed)))
        row.update({f"hp.{key}": hashable(t.hparams.get(key)) for key in hp_keys})
        row.update({key.replace(trialdir.SUMMARY_METRIC, metric): figures[key] for key in trialdir.SUMMARY_TAIL})
        row.update({"state": t.state, "path": str(t.path)})
        rows.append(row)
    return pd.DataFrame(rows)
