"""Grouping trials: by variant, a hyper-parameter, a config.json path or several of them, in a natural order.

Tables (workbench.results.compare), plots and the per-example analysis all group through here, so a row of the
table and a line of a plot hold the same trials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results.format import group_value
from workbench.results.records import StudyRecord, TrialRecord, all_trials, hashable, is_missing
from workbench.results.stats import Difference, Effect, Summary
from workbench.sequential import Verdict

NO_VALUES = Summary(0, None, None)


@dataclass
class Group:
    study: str
    key: tuple  # one value per `by` field
    label: str  # the values joined by ","
    trials: list[TrialRecord]
    best: Summary = NO_VALUES
    final: Summary = NO_VALUES
    seconds: Summary = NO_VALUES
    images_per_s: Summary = NO_VALUES
    delta: Difference | None = None  # to the baseline: paired on the common seeds, or Welch
    effect: Effect | None = None  # Hedges' g of the same values
    verdict: Verdict | None = None  # higher / lower / equivalent / open, Holm across the rows (workbench.sequential)
    seeds_needed: float | None = None  # for 80 % power (math.inf: more than stats.MAX_SEEDS)
    sequential: bool = False  # the verdict comes from the study's adaptive design (its looks), not one fixed look
    is_baseline: bool = False
    baseline_label: str | None = None
    display: str = ""  # for legends: "v2s_fused · lr=0.01"

    @property
    def used(self) -> list[TrialRecord]:
        """The averaged trials (completed or early-stopped)."""
        return [t for t in self.trials if t.finished]

    @property
    def incomplete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.incomplete]

    @property
    def stopped(self) -> list[TrialRecord]:
        """Diverged, failed or pruned: ran, but not to a result worth averaging."""
        return [t for t in self.trials if t.stopped]

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    def _values(self, name: str) -> list[float]:
        values = [getattr(t, name) for t in self.used]
        return [v for v in values if v is not None]

    @property
    def params(self) -> list[float]:
        return self._values("params") or [v for v in (t.params for t in self.trials) if v is not None]

    @property
    def flops(self) -> list[float]:
        return self._values("flops") or [v for v in (t.flops for t in self.trials) if v is not None]

    def name(self, multi_study: bool) -> str:
        """Its name in a legend: prefixed with the study when several are shown."""
        return f"{self.study} · {self.display}" if multi_study else self.display


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
            f"({', '.join('hp.' + k for k in hp) if hp else 'none recorded'}), or a {trialdir.CONFIG} path such as "
            "architecture.name, dataset.name, recipe.epochs",
        ]
        if any(t.from_summary for t in trials):
            lines.append(f"  trials read from {trialdir.SUMMARY_CSV} have its variant, seed and hp.* columns only: "
                         f"{trialdir.CONFIG} paths need the trial folders of a run")
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


def _swept_inside(study: StudyRecord, key_of, name: str) -> bool:
    """Whether hyper-parameter `name` takes several values among trials that share a key."""
    seen: dict[Any, set] = {}
    for t in study.trials:
        if name in t.hparams:
            seen.setdefault(key_of(t), set()).add(hashable(t.hparams[name]))
    return any(len(v) > 1 for v in seen.values())


def parse_by(by: str | list[str] | None, studies: list[StudyRecord]) -> tuple[list[str], list[str]]:
    """`--by` -> (fields, notes). None: variant plus every hyper-parameter that varies inside a variant of a study,
    so that a row holds one configuration and differs only by seed."""
    notes: list[str] = []
    if by is None:
        fields = ["variant"]
        for study in studies:
            for name in swept_hparams(study.trials):
                if _swept_inside(study, lambda t: t.variant, name) and f"hp.{name}" not in fields:
                    fields.append(f"hp.{name}")
        return fields, notes
    fields = [f.strip() for f in (by.split(",") if isinstance(by, str) else by) if f.strip()]
    if not fields:
        raise WorkbenchError("--by needs at least one field, e.g. variant or hp.recipe.optimizer.lr")
    for study in studies:
        for name in swept_hparams(study.trials):
            if f"hp.{name}" in fields or name in fields:
                continue
            if _swept_inside(study, lambda t: tuple(hashable(t.lookup(f)) for f in fields), name):
                notes.append(f"{study.name}: rows pool several values of hp.{name} "
                             f"(add it to --by, e.g. --by {','.join(fields)},hp.{name}, to split them)")
    return fields, notes


def display(by: list[str], key: tuple) -> str:
    """First field's value alone, the others as short=value: 'v2s_fused · lr=0.01'."""
    shorts = [f.split(".")[-1] for f in by]
    parts = []
    for i, (f, v) in enumerate(zip(by, key)):
        if i == 0:
            parts.append(group_value(v))
        else:
            parts.append(f"{shorts[i] if shorts.count(shorts[i]) == 1 else f}={group_value(v)}")
    return " · ".join(parts)


def _sort_key(by: list[str], order: list[str], key: tuple) -> tuple:
    """Variants in the study's order, other values in their natural order."""
    parts = []
    for f, v in zip(by, key):
        parts.append((order.index(v) if v in order else len(order), 0, "") if f == "variant" else order_key(hashable(v)))
    return tuple(parts)


def group_trials(studies: list[StudyRecord], by: list[str]) -> list[Group]:
    """One group per study and distinct value of the `by` fields, in the study's order."""
    trials = all_trials(studies)
    columns = [field_values(trials, f) for f in by]
    key_of = {id(t): tuple(col[i] for col in columns) for i, t in enumerate(trials)}
    groups: list[Group] = []
    for study in studies:
        keys: list[tuple] = []
        for t in study.trials:
            if key_of[id(t)] not in keys:
                keys.append(key_of[id(t)])
        order = study.variant_order()
        keys.sort(key=lambda key: _sort_key(by, order, key))
        for k in keys:
            members = [t for t in study.trials if key_of[id(t)] == k]
            groups.append(Group(study=study.name, key=k, label=",".join(group_value(v) for v in k), trials=members,
                                display=display(by, k)))
    return groups
