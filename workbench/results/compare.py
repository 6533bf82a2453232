"""One row per group of trials (a variant, or one value of a hyper-parameter): seeds, cost, the metric as mean and
std, and the difference to a baseline with a Welch confidence interval and p-value. Numbers only: the text of a
comparison (rich, markdown, csv, json) is workbench.results.tables'.

Only finished trials (completed or early-stopped) are averaged. Diverged, failed and pruned trials are counted in
their own column, incomplete ones (killed, still running, half-written, missing) in theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results import metrics
from workbench.results.format import group_value
from workbench.results.groups import Group, group_trials, parse_by
from workbench.results.reader import check_metric
from workbench.results.records import StudyRecord, TrialRecord, all_trials
from workbench.results.stats import summarize, welch


@dataclass
class Comparison:
    metric: str
    by: list[str]
    delta_on: str  # "best" or "final"
    confidence: float
    groups: list[Group]
    studies: list[StudyRecord]
    baselines: dict[str, str | None]  # study -> baseline label ("" key: one baseline for all)
    notes: list[str] = field(default_factory=list)
    paired_on: list[str] = field(default_factory=list)  # each row's baseline shares these fields' values

    @property
    def info(self) -> metrics.MetricInfo:
        return metrics.info(self.metric)

    @property
    def multi_study(self) -> bool:
        return len({g.study for g in self.groups}) > 1

    def stopped_states(self) -> list[str]:
        """The stopped states (diverged, failed, pruned) some trial of the comparison is in."""
        return [s for s in trialdir.STOPPED if any(t.state == s for g in self.groups for t in g.trials)]

    @property
    def any_stopped(self) -> bool:
        return any(g.stopped for g in self.groups)

    def incomplete_trials(self) -> list[TrialRecord]:
        return [t for g in self.groups for t in g.incomplete]

    def stopped_trials(self) -> list[TrialRecord]:
        return [t for g in self.groups for t in g.stopped]

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per group, in stored units (fractions for accuracies): what csv and json hold."""
        return [self._row(g) for g in self.groups]

    def _row(self, g: Group) -> dict[str, Any]:
        m, d = self.metric, g.delta
        row: dict[str, Any] = {"study": g.study, **dict(zip(self.by, g.key)), "n": g.best.n,
                               trialdir.INCOMPLETE: len(g.incomplete)}
        row.update({state: g.count(state) for state in trialdir.STOPPED})
        row.update({"params": _mean(g.params), "flops": _mean(g.flops),
                    f"best_{m}_mean": g.best.mean, f"best_{m}_std": g.best.std,
                    f"final_{m}_mean": g.final.mean, f"final_{m}_std": g.final.std,
                    "baseline": g.baseline_label, "is_baseline": g.is_baseline})
        row.update({f"delta_{self.delta_on}_{m}": None if d is None else d.diff,
                    "ci_low": None if d is None else d.low, "ci_high": None if d is None else d.high,
                    "p_value": None if d is None else d.p, "welch_dof": None if d is None else d.dof,
                    "seconds_mean": g.seconds.mean, "seconds_std": g.seconds.std,
                    "train_images_per_s_mean": g.images_per_s.mean,
                    "seeds": [t.seed for t in g.used]})
        return row


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


# --- baselines ---------------------------------------------------------------------------------------------

Baselines = dict[int, "Group | None"]  # id(group) -> the group its Δ is measured against


def _pick(members: list[Group], name: str) -> Baselines | None:
    """NAME as a full label (values joined by ","), or as the first field's value: then each group is compared with
    the NAME group that shares its other fields (e.g. each learning rate with the baseline variant at that rate)."""
    full = [g for g in members if g.label == name]
    if full:
        return {id(g): full[0] for g in members}
    first = [g for g in members if group_value(g.key[0]) == name]
    if not first:
        return None
    return {id(g): next((b for b in first if b.key[1:] == g.key[1:]), None) for g in members}


def _named_baselines(groups: list[Group], by_study: dict[str, list[Group]], baseline: str) -> tuple[Baselines, list[str]]:
    """--baseline NAME in every study, or STUDY:NAME as the one baseline of every study's rows."""
    if ":" in baseline and not any(g.label == baseline or group_value(g.key[0]) == baseline for g in groups):
        study_name, _, label = baseline.partition(":")
        single = [g for g in by_study.get(study_name, []) if g.label == label or group_value(g.key[0]) == label]
        if len(single) == 1:
            return {id(g): single[0] for g in groups}, []
    chosen: Baselines = {}
    notes: list[str] = []
    found = False
    for name, members in by_study.items():
        mapping = _pick(members, baseline)
        if mapping is None:
            notes.append(f"study {name} has no group {baseline!r}: its rows have no Δ")
            mapping = {id(g): None for g in members}
        else:
            found = True
        chosen.update(mapping)
    if not found:
        labels = sorted({g.label for g in groups})
        raise WorkbenchError([f"baseline {baseline!r} is not one of the groups: {', '.join(labels)}",
                              "  name a group (values of --by joined by ','), or the value of its first field; "
                              "STUDY:NAME picks one group as the baseline of every study"])
    return chosen, notes


def _declared_baselines(by_study: dict[str, list[Group]], studies: list[StudyRecord], by: list[str]) -> Baselines:
    """study.json's baseline when rows are variants, else the first group with finished trials."""
    spec_of = {s.name: s for s in studies}
    chosen: Baselines = {}
    for name, members in by_study.items():
        declared = spec_of[name].baseline if by[0] == "variant" else None
        mapping = _pick(members, declared) if declared else None
        if mapping is None:
            first = next((g for g in members if g.best.n), members[0])
            mapping = _pick(members, group_value(first.key[0])) if len(by) > 1 else {id(g): first for g in members}
        chosen.update(mapping)
    return chosen


def resolve_baselines(groups: list[Group], studies: list[StudyRecord], by: list[str],
                      baseline: str | None) -> tuple[Baselines, list[str]]:
    """id(group) -> its baseline group, and notes on studies that lack the named one."""
    by_study: dict[str, list[Group]] = {}
    for g in groups:
        by_study.setdefault(g.study, []).append(g)
    if baseline is not None:
        return _named_baselines(groups, by_study, baseline)
    return _declared_baselines(by_study, studies, by), []


def _apply_baselines(groups: list[Group], chosen: Baselines, values) -> dict[str, list[Group]]:
    """Set each group's baseline label and Welch Δ; returns study -> its baseline groups."""
    per_study: dict[str, list[Group]] = {}
    for g in groups:
        base = chosen.get(id(g))
        if base is None:
            continue
        g.baseline_label = base.label if base.study == g.study else f"{base.study}:{base.label}"
        if base not in per_study.setdefault(g.study, []):
            per_study[g.study].append(base)
        if g is base:
            g.is_baseline = True
            continue
        g.delta = values(g, base)
    return per_study


def _baseline_labels(per_study: dict[str, list[Group]], multi: bool) -> tuple[dict[str, str | None], bool]:
    """study -> the name of its baseline; and whether rows are paired (one baseline per value of the other fields)."""
    baselines: dict[str, str | None] = {}
    paired = False
    for name, bases in per_study.items():
        if len(bases) > 1:
            paired = True
            baselines[name] = group_value(bases[0].key[0])
        else:
            baselines[name] = f"{bases[0].study}:{bases[0].label}" if multi else bases[0].label
    return baselines, paired


def _summarize(groups: list[Group], metric: str) -> None:
    for g in groups:
        g.best = summarize([v for v in (t.best(metric) for t in g.used) if v is not None])
        g.final = summarize([v for v in (t.final(metric) for t in g.used) if v is not None])
        g.seconds = summarize([v for v in (t.seconds for t in g.used) if v is not None])
        g.images_per_s = summarize([v for v in (t.images_per_s for t in g.used) if v is not None])


def compare(studies: list[StudyRecord], metric: str = "val_top1", by: str | list[str] | None = None,
            baseline: str | None = None, delta_on: str = "best", confidence: float = 0.95) -> Comparison:
    """Group the trials (default: by variant and every hyper-parameter swept inside a variant) and compare."""
    if delta_on not in ("best", "final"):
        raise WorkbenchError(f"delta must be computed on 'best' or 'final', not {delta_on!r}")
    if not 0 < confidence < 1:
        raise WorkbenchError(f"confidence must be between 0 and 1, got {confidence}")
    check_metric(all_trials(studies), metric)
    fields, notes = parse_by(by, studies)
    groups = group_trials(studies, fields)
    _summarize(groups, metric)
    chosen, baseline_notes = resolve_baselines(groups, studies, fields, baseline)
    notes.extend(baseline_notes)

    def values(group: Group) -> list[float]:
        pick = (lambda t: t.best(metric)) if delta_on == "best" else (lambda t: t.final(metric))
        return [v for v in (pick(t) for t in group.used) if v is not None]

    per_study = _apply_baselines(groups, chosen, lambda g, base: welch(values(g), values(base), confidence))
    for s in studies:
        notes.extend(f"{s.name}: {p}" for p in s.problems)
        notes.extend(s.source_notes())
    baselines, paired = _baseline_labels(per_study, len(studies) > 1)
    return Comparison(metric=metric, by=fields, delta_on=delta_on, confidence=confidence, groups=groups,
                      studies=studies, baselines=baselines, notes=notes, paired_on=fields[1:] if paired else [])
