"""One row per group of trials (a variant, or one value of a hyper-parameter): seeds, cost, the metric as mean and
std, and against a baseline: the difference with its confidence interval and p-value (paired on the seeds both rows
ran when they pair up, else Welch), Holm-adjusted p-values across the rows, Hedges' g, the seeds 80 % power needs and
a verdict (better / worse / equivalent / open). Numbers only: the text of a comparison (rich, markdown, csv, json) is
workbench.results.tables'. The verdicts are workbench.sequential's, the rule the study runner applies to adaptive
seeds, replayed here from the trials: a study with adaptive seeds is judged look by look, as it was run.

Only finished trials (completed or early-stopped) are averaged. Diverged, failed and pruned trials are counted in
their own column, incomplete ones (killed, still running, half-written, missing) in theirs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results import metrics
from workbench.results.format import group_value
from workbench.results.groups import Group, group_trials, parse_by
from workbench.results.reader import check_metric
from workbench.results.records import StudyRecord, TrialRecord, all_trials
from workbench.results.stats import Difference, hedges_g, seeds_needed, summarize
from workbench.sequential import HIGHER, LOWER, Design, Family, RowLooks, adaptive_spec, common, decide, difference, finite, looks_of


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
    family: Family | None = None  # the verdicts' family: alpha, m rows tested
    min_effect: float | None = None  # stored units: what seeds needed and equivalence ask for (None: the observed Δ)
    adaptive: list[AdaptiveRun] = field(default_factory=list)  # the studies run with adaptive seeds

    @property
    def alpha(self) -> float:
        return self.family.alpha if self.family else 1 - self.confidence

    @property
    def tested(self) -> int:
        return self.family.tested if self.family else 0

    @property
    def any_sequential(self) -> bool:
        return any(g.sequential for g in self.groups)

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
        v, e = g.verdict, g.effect
        row.update({f"delta_{self.delta_on}_{m}": None if d is None else d.diff,
                    "ci_low": None if d is None else d.low, "ci_high": None if d is None else d.high,
                    "p_value": None if d is None else d.p, "test": None if d is None else d.method,
                    "pairs": None if d is None else d.pairs, "dof": None if d is None else d.dof,
                    "p_sequential": v.p if v is not None and g.sequential else None,
                    "p_holm": None if v is None else v.p_holm,
                    "hedges_g": None if e is None else e.g, "g_low": None if e is None else e.low,
                    "g_high": None if e is None else e.high, "seeds_needed": g.seeds_needed,
                    "verdict": None if v is None else self.verdict_word(g),
                    "equivalence_low": None if v is None else v.eq_low, "equivalence_high": None if v is None else v.eq_high,
                    "seconds_mean": g.seconds.mean, "seconds_std": g.seconds.std,
                    "train_images_per_s_mean": g.images_per_s.mean,
                    "seeds": [t.seed for t in g.used]})
        return row


    def verdict_word(self, g: Group) -> str | None:
        """better / worse / equivalent / open (the metric says which way is better); None for the baseline."""
        if g.verdict is None:
            return None
        word = g.verdict.verdict
        if word in (HIGHER, LOWER):
            return "better" if (word == HIGHER) == self.info.higher_is_better else "worse"
        return word


@dataclass(frozen=True)
class AdaptiveRun:
    """A study run with adaptive seeds: its design and how many trials it ran against max seeds everywhere."""

    study: str
    design: Design
    trials: int  # trials the study ran (any state)
    configurations: int  # variants x hyper-parameter points

    @property
    def at_max(self) -> int:
        return self.configurations * self.design.max

    @property
    def saved(self) -> int:
        return max(0, self.at_max - self.trials)


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


def _apply_baselines(groups: list[Group], chosen: Baselines) -> tuple[dict[str, list[Group]], list[tuple[Group, Group]]]:
    """Set each group's baseline label; returns study -> its baseline groups, and the (row, baseline) pairs compared."""
    per_study: dict[str, list[Group]] = {}
    compared: list[tuple[Group, Group]] = []
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
        compared.append((g, base))
    return per_study, compared


# --- the difference to the baseline and the verdicts ------------------------------------------------------------

Values = dict[int, "float | None"] | list[float]  # seed -> value (pairs), or plain values (Welch)


def seed_values(group: Group, pick) -> dict[int, float | None] | None:
    """seed -> value of each trial that ended (None: it stopped without a result), when every trial that ended has a
    seed of its own; else None (several trials per seed, or trials without a seed, cannot pair)."""
    ended = [t for t in group.trials if t.finished or t.stopped]
    seeds = [t.seed for t in ended]
    if any(s is None for s in seeds) or len(set(seeds)) != len(seeds):
        return None
    return {t.seed: (pick(t) if t.finished else None) for t in ended}


def _inputs(g: Group, base: Group, pick) -> tuple[Values, Values]:
    """What the row's test reads: seed -> value maps when the seeds pair up (the same study, one trial per seed),
    else the lists of finished values (Welch)."""
    mine, theirs = seed_values(g, pick), seed_values(base, pick)
    if g.study == base.study and mine is not None and theirs is not None:
        return mine, theirs
    return finite([pick(t) for t in g.used]), finite([pick(t) for t in base.used])


def _aligned(values: Values, base: Values, d: Difference) -> tuple[list[float], list[float]]:
    """The values the test compared: the common seeds of a paired row, all finished values of a Welch row."""
    if d.method == "paired":
        return common(values, base)
    return finite(list(values.values()) if isinstance(values, dict) else values), \
        finite(list(base.values()) if isinstance(base, dict) else base)


def study_designs(studies: list[StudyRecord], metric: str, alpha: float, min_effect: float | None) -> dict[str, Design]:
    """study -> the design its study.json's seeds describe (a fixed design for loose trial folders)."""
    return {s.name: Design.of(s.spec.get("seeds"), metric, alpha=alpha, min_effect=min_effect) for s in studies}


def judge(compared: list[tuple[Group, Group]], designs: dict[str, Design], pick, confidence: float,
          min_effect: float | None, effect_sizes: bool = True, notes: list[str] | None = None) -> Family | None:
    """Each compared row's difference, Hedges' g, verdict and seeds needed. A row of an adaptive study whose seeds
    pair with its baseline is judged on its looks (the study's sequential design), any other on its finished seeds.
    `min_effect` (stored units) is the fixed rows' equivalence margin and the effect seeds needed asks for; `notes`
    gets a line for adaptive rows that have no complete look yet."""
    fixed = Design(alpha=1 - confidence, min_effect=min_effect)
    rows: list[RowLooks] = []
    row_designs: list[Design] = []
    inputs = []
    for g, base in compared:
        values, base_values = _inputs(g, base, pick)
        design = designs.get(g.study, fixed) if g.study == base.study else fixed
        if design.adaptive and not isinstance(values, dict):
            design = Design(alpha=design.alpha, min_effect=design.min_effect)
        g.sequential = design.adaptive
        g.delta = difference(values, base_values, confidence)
        rows.append(looks_of(values, base_values, design, confidence))
        row_designs.append(design)
        inputs.append((values, base_values))
        if design.adaptive and not rows[-1].complete and notes is not None:
            notes.append(f"{g.study}: {g.label} has no complete look yet (seeds 0-{design.initial - 1} of it and of "
                         f"its baseline have not all ended): open until they have")
    if not rows:
        return None
    alphas = sorted({d.alpha for d in row_designs if d.adaptive})
    alpha = alphas[0] if alphas else 1 - confidence
    family = decide(rows, row_designs, alpha)
    for (g, _), (values, base_values), verdict, design in zip(compared, inputs, family.verdicts, row_designs):
        g.verdict = verdict
        if g.delta is None or not effect_sizes:
            continue
        a, b = _aligned(values, base_values, g.delta)
        g.effect = hedges_g(a, b, g.delta.method == "paired", confidence)
        effect = design.min_effect if design.min_effect is not None else g.delta.diff
        g.seeds_needed = seeds_needed(a, b, g.delta.method == "paired", effect, alpha / max(1, family.tested))
    return family


def adaptive_runs(studies: list[StudyRecord], designs: dict[str, Design]) -> list[AdaptiveRun]:
    runs = []
    for s in studies:
        design = designs.get(s.name)
        if design is None or not design.adaptive:
            continue
        configurations = {(t.variant, json.dumps(t.hparams, sort_keys=True, default=str)) for t in s.trials}
        runs.append(AdaptiveRun(s.name, design, len(s.trials), len(configurations)))
    return runs


def _design_notes(studies: list[StudyRecord], metric: str, delta_on: str, compared: list[tuple[Group, Group]]) -> list[str]:
    """What a reader of an adaptive study's verdicts must know when the table is not the runner's view."""
    notes = []
    for s in studies:
        if not adaptive_spec(s.spec.get("seeds")):
            continue
        decided_on = str(s.spec.get("metric") or trialdir.SUMMARY_METRIC)
        if metric != decided_on or delta_on != "best":
            notes.append(f"{s.name}: its adaptive rounds were decided on the best {decided_on}; these verdicts replay "
                         f"its looks on the {delta_on} {metric}")
        if any(g.study == s.name and not g.sequential for g, _ in compared):
            notes.append(f"{s.name}: rows that pool several trials per seed (or compare with another study) are judged "
                         "as fixed seeds, not on the study's looks: group by variant and every swept hyper-parameter "
                         "(the default --by) for the sequential verdicts")
    return notes


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
            baseline: str | None = None, delta_on: str = "best", confidence: float = 0.95,
            min_effect: float | None = None, effect_sizes: bool = True) -> Comparison:
    """Group the trials (default: by variant and every hyper-parameter swept inside a variant) and compare.
    `min_effect` (the metric's display units: percentage points for accuracies) is the difference seeds needed and
    the equivalence verdict ask for; default: an adaptive study's own, else seeds needed for the observed Δ.
    `effect_sizes=False` leaves out Hedges' g and seeds needed (root finding, the slow part: for simulations)."""
    if delta_on not in ("best", "final"):
        raise WorkbenchError(f"delta must be computed on 'best' or 'final', not {delta_on!r}")
    if not 0 < confidence < 1:
        raise WorkbenchError(f"confidence must be between 0 and 1, got {confidence}")
    if min_effect is not None and not (math.isfinite(min_effect) and min_effect > 0):
        raise WorkbenchError(f"--min-effect must be a positive number (in the metric's display units), got {min_effect}")
    check_metric(all_trials(studies), metric)
    fields, notes = parse_by(by, studies)
    groups = group_trials(studies, fields)
    _summarize(groups, metric)
    chosen, baseline_notes = resolve_baselines(groups, studies, fields, baseline)
    notes.extend(baseline_notes)

    pick = (lambda t: t.best(metric)) if delta_on == "best" else (lambda t: t.final(metric))
    per_study, compared = _apply_baselines(groups, chosen)
    designs = study_designs(studies, metric, 1 - confidence, min_effect)
    stored_effect = None if min_effect is None else min_effect / metrics.info(metric).scale
    family = judge(compared, designs, pick, confidence, stored_effect, effect_sizes, notes)
    notes.extend(_design_notes(studies, metric, delta_on, compared))
    for s in studies:
        notes.extend(f"{s.name}: {p}" for p in s.problems)
        notes.extend(s.source_notes())
    baselines, paired = _baseline_labels(per_study, len(studies) > 1)
    return Comparison(metric=metric, by=fields, delta_on=delta_on, confidence=confidence, groups=groups,
                      studies=studies, baselines=baselines, notes=notes, paired_on=fields[1:] if paired else [],
                      family=family, min_effect=stored_effect, adaptive=adaptive_runs(studies, designs))
