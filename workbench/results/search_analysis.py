"""Analysis of architecture searches: Pareto fronts, the error EDF per design space, and the good range of each choice.

Reads study folders written by `workbench search run` (trial.json carries `space` and a `search` block with the
sampled choices, the analytic cost and the NAS reward factor) and never imports study or train.

Good ranges follow pycls (Radosavovic et al., "Designing Network Design Spaces"): resample the trained
architectures with replacement many times, keep the top-k of each resample, and read off which values of each
choice the best architectures take. A value that is the most frequent one in the top-k of nearly every resample
is a reliable finding; one that wins half the time is not.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results import metrics
from workbench.results.analysis import pareto_front
from workbench.results.format import compact
from workbench.results.reader import require_trial_folders
from workbench.results.records import StudyRecord, TrialRecord, all_trials



@dataclass
class Sampled:
    """One sampled architecture: its choices, cost and the metric averaged over its finished seeds."""

    study: str
    space: str
    arch_id: str
    choices: dict[str, Any]
    params: float | None
    flops: float | None
    accuracy: float | None  # best val_top1 (fraction), mean over seeds
    value: float | None  # the ranking metric (accuracy, reward or any recorded metric), mean over seeds
    reward: float | None
    seeds: int
    train_ms_per_image: float | None
    file: Path | None
    latency_ms: float | None = None  # measured (latency.json)
    predicted_ms: float | None = None  # by the search's latency table, before training
    trials: list[TrialRecord] = field(default_factory=list, repr=False)


def _trial_search(t: TrialRecord) -> dict[str, Any]:
    if t.from_summary:
        # summary.csv's hp.* columns are the sampled choices and its params/flops the cost; the reward factor
        # (trial.json's search block) is not in it.
        return {"architecture_id": t.variant, "choices": dict(t.hparams), "params": t.params, "flops": t.flops}
    search = t.record.get("search")
    return search if isinstance(search, dict) else {}


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _value(t: TrialRecord, metric: str) -> float | None:
    """The trial's ranking figure: its best `metric`, or the NAS reward of its best val_top1."""
    if metric == metrics.REWARD:
        return trialdir.reward_of(t.record, t.best(trialdir.SUMMARY_METRIC))
    return t.best(metric)


def _sampled(study: str, arch_id: str, members: list[tuple[TrialRecord, dict]], folder: Path, metric: str) -> Sampled:
    """One architecture from its finished trials (one per seed) and the search block of the first."""
    trials = [t for t, _ in members]
    search = members[0][1]
    file = folder / trialdir.ARCHITECTURES / f"{arch_id}.json"
    rates = [t.images_per_s for t in trials if t.images_per_s]
    choices = dict(search.get("choices") or {})
    for key, value in trials[0].hparams.items():
        choices.setdefault(key, value)  # hyper-parameters drawn with the architecture count as choices too
    return Sampled(
        study=study, space=trials[0].space or study, arch_id=arch_id, choices=choices,
        params=search.get("params"), flops=search.get("flops"),
        accuracy=_mean([t.best(trialdir.SUMMARY_METRIC) for t in trials]), value=_mean([_value(t, metric) for t in trials]),
        reward=_mean([_value(t, metrics.REWARD) for t in trials]), seeds=len(trials),
        train_ms_per_image=1000 / _mean(rates) if rates else None, file=file if file.exists() else None,
        predicted_ms=search.get("latency_ms"), trials=trials)


def architectures(studies: list[StudyRecord], metric: str = "val_top1") -> list[Sampled]:
    """Finished search trials grouped by (study, architecture id), in trial order."""
    if metric == metrics.REWARD:
        require_trial_folders(studies, f"--metric {metrics.REWARD} (the reward factor of each {trialdir.TRIAL})")
    groups: dict[tuple[str, str], list[tuple[TrialRecord, dict]]] = {}
    for t in all_trials(studies):
        search = _trial_search(t)
        if t.finished and search:
            groups.setdefault((t.study, str(search.get("architecture_id", t.variant))), []).append((t, search))
    if not groups:
        raise WorkbenchError([f"no finished search trial in these folders ({trialdir.TRIAL} without a search block, "
                              "or none finished)",
                              "  run `workbench search run STUDY.json` first; `workbench results compare` reads ordinary studies"])
    folders: dict[str, Path] = {}
    for s in studies:
        folders.setdefault(s.name, s.path)
    return [_sampled(study, arch_id, members, folders.get(study, Path(".")), metric)
            for (study, arch_id), members in groups.items()]


# --- Pareto ---------------------------------------------------------------------------------------------


def pareto_members(archs: list[Sampled], x: str, higher_is_better: bool = True) -> list[Sampled]:
    """The architectures no other one beats on both cost (x: flops, params, latency) and the ranking metric."""
    usable = [a for a in archs if _cost(a, x) is not None and a.value is not None]
    front = pareto_front([(_cost(a, x), a.value) for a in usable], higher_is_better)
    return [usable[i] for i in front]


def _cost(arch: Sampled, x: str) -> float | None:
    if x == "latency":
        return arch.latency_ms if arch.latency_ms is not None else arch.train_ms_per_image
    return arch.flops if x == "flops" else arch.params


def attach_latency(archs: list[Sampled], folders: list[Path]) -> str | None:
    """Measured inference latency from each folder's latency.json (written by `workbench search run` with a latency
    table, and by `workbench search analyze`), and the prediction where it was made for the measured device and call.
    Returns the device line of the measurement, or None when only training throughput is at hand."""
    bare = sorted({a.study for a in archs if a.file is None and a.trials and a.trials[0].from_summary})
    if bare:
        paths = sorted({str(a.trials[0].path.parent.parent) for a in archs if a.study in bare})
        raise WorkbenchError([
            f"{', '.join(paths)}: measured latency (--latency measure, the default) needs the sampled architecture "
            f"files ({trialdir.ARCHITECTURES}/<id>.json) and the trial folders, and this folder holds only "
            f"{trialdir.SUMMARY_CSV}",
            "  they are git-ignored, so a clone has none: re-run the search into this folder, or pass --latency train "
            f"to use the training images/s that {trialdir.SUMMARY_CSV} records",
        ])
    devices = set()
    for folder in folders:
        data = trialdir.read_json_object(folder / trialdir.LATENCY)[0] or {}
        rows = data.get("architectures") or {}
        for arch in archs:
            row = rows.get(arch.arch_id)
            if arch.file is not None and arch.file.parent.parent == folder and isinstance(row, dict):
                arch.latency_ms, arch.predicted_ms = row.get("ms_per_image"), row.get("predicted_ms")
                devices.add(f"{data.get('device')}, batch {data.get('batch')}")
    return "; ".join(sorted(devices)) or None


@dataclass
class SearchPareto:
    """What plot_pareto draws: every architecture by design space against a cost, and the front."""

    metric: metrics.MetricInfo
    cost: metrics.CostInfo
    spaces: list[tuple[str, list[float], list[float]]]  # (design space, costs, values) in display units
    front: list[tuple[str, float, float]]  # (label, cost, value) of each front member, by cost
    reach: float  # the largest cost: the front's best value stays attainable up to it
    log_x: bool
    studies: str


def pareto_view(archs: list[Sampled], metric: str, x: str, latency_label: str | None = None) -> SearchPareto:
    info = metrics.info(metric)
    usable = [a for a in archs if _cost(a, x) is not None and a.value is not None]
    if not usable:
        raise WorkbenchError(f"no finished architecture has both {metric} and {x}: nothing to plot")
    cost = metrics.cost_info(x, [a.flops for a in usable if a.flops], measured=latency_label)
    k = info.scale
    names = sorted({a.space for a in usable})
    spaces = []
    for space in names:
        members = [a for a in usable if a.space == space]
        spaces.append((space, [_cost(a, x) / cost.divisor for a in members], [a.value * k for a in members]))
    front = [(a.arch_id if len(names) == 1 else f"{a.space}/{a.arch_id}", _cost(a, x) / cost.divisor, a.value * k)
             for a in pareto_members(usable, x, info.higher_is_better)]
    costs = [_cost(a, x) / cost.divisor for a in usable]
    return SearchPareto(metric=info, cost=cost, spaces=spaces, front=front,
                        reach=max(_cost(a, x) for a in usable) / cost.divisor,
                        log_x=min(costs) > 0 and max(costs) / min(costs) > 20,
                        studies=", ".join(sorted({a.study for a in usable})))


def plot_pareto(archs: list[Sampled], metric: str, x: str, latency_label: str | None = None):
    """Every architecture as a point coloured by design space; the front as a step line, its members labelled."""
    from workbench.results.figures import colors, pyplot

    view = pareto_view(archs, metric, x, latency_label)
    fig, ax = pyplot().subplots(figsize=(7.5, 5.2))
    for (space, xs, ys), color in zip(view.spaces, colors(len(view.spaces))):
        ax.scatter(xs, ys, color=color, s=28, alpha=0.75, lw=0, zorder=2, label=f"{space} (n={len(xs)})")
    fx, fy = [c for _, c, _ in view.front], [v for _, _, v in view.front]
    ax.plot(fx + [view.reach], fy + [fy[-1]], color="black", lw=1.2, ls="--", drawstyle="steps-post", zorder=1,
            label=f"Pareto front ({len(fx)} architecture{'s' if len(fx) > 1 else ''})")
    ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="black", lw=1.3, zorder=3)
    for label, cx, cy in view.front:
        ax.annotate(label, (cx, cy), xytext=(5, -11), textcoords="offset points", fontsize=7)
    if view.log_x:
        ax.set_xscale("log")
    ax.set_xlabel(view.cost.label)
    ax.set_ylabel(view.metric.best_header)
    ax.set_title(f"{view.studies}: {view.metric.best_name} vs {view.cost.label.split(' (')[0]}\n"
                 "dots: sampled architectures (mean over seeds); circled: Pareto front", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# --- good ranges (pycls bootstrap) ------------------------------------------------------------------------


@dataclass
class ChoiceRange:
    space: str
    choice: str
    offered: list[Any]
    numeric: bool
    top: list[Any]  # values the top-k take over all resamples, most frequent first
    best: Any  # the value most often the most frequent one in a resample's top-k
    confidence: float  # share of resamples whose top-k has `best` as its most frequent value
    low: float | None = None  # numeric: median over resamples of the top-k minimum ...
    high: float | None = None  # ... and maximum
    low_ci: float | None = None  # 2.5th percentile of the resample minima
    high_ci: float | None = None  # 97.5th percentile of the resample maxima
    top_share: float = 0.0  # mean share of the top-k holding `best`
    base_share: float = 0.0  # share of all architectures holding `best`

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _order(values: list[Any]) -> list[Any]:
    return sorted(set(values), key=lambda v: (not _is_number(v), v if _is_number(v) else str(v)))


def _mode(values: list[Any], order: list[Any]) -> Any:
    counts = Counter(values)
    return max(order, key=lambda v: (counts[v], -order.index(v)))  # ties: the first in the offered order


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def top_count(n: int, top: float) -> int:
    """--top 0.25: the best quarter (at least one); --top 5: the best five."""
    if top <= 0:
        raise WorkbenchError("--top must be positive: a fraction (0.25) or a count (5)")
    return max(1, min(n, round(top * n) if top < 1 else int(top)))


def good_ranges(archs: list[Sampled], top: float = 0.25, rounds: int = 1000, seed: int = 0,
                higher_is_better: bool = True) -> list[ChoiceRange]:
    """Per design space and choice: the values its top-k architectures take, with bootstrap confidence."""
    import numpy as np

    if rounds < 1:
        raise WorkbenchError("--bootstrap needs at least one resample")
    out = []
    for space in sorted({a.space for a in archs}):
        members = [a for a in archs if a.space == space and a.value is not None]
        if len(members) < 2:
            continue
        k = top_count(len(members), top)
        values = np.array([a.value for a in members])
        rng = np.random.default_rng(seed)
        tops = []
        for _ in range(rounds):
            sample = rng.integers(0, len(members), len(members))
            ranked = sample[np.argsort(-values[sample] if higher_is_better else values[sample], kind="stable")]
            tops.append([members[i] for i in ranked[:k]])
        for choice in _choices(members):
            out.append(_choice_range(space, choice, members, tops))
    if not out:
        raise WorkbenchError("good ranges need at least two finished architectures of a design space with a choice that varies")
    return out


def _choices(members: list[Sampled]) -> list[str]:
    keys: list[str] = []
    for a in members:
        keys += [k for k in a.choices if k not in keys]
    return [k for k in keys if len({json.dumps(a.choices.get(k)) for a in members}) > 1]


def _choice_range(space: str, choice: str, members: list[Sampled], tops: list[list[Sampled]]) -> ChoiceRange:
    offered = _order([a.choices.get(choice) for a in members if choice in a.choices])
    numeric = all(_is_number(v) for v in offered)
    modes = [_mode([a.choices.get(choice) for a in top], offered) for top in tops]
    best = _mode(modes, offered)
    pooled = Counter(a.choices.get(choice) for top in tops for a in top)
    result = ChoiceRange(
        space=space, choice=choice, offered=offered, numeric=numeric, top=[v for v, _ in pooled.most_common()],
        best=best, confidence=modes.count(best) / len(modes),
        top_share=sum(sum(a.choices.get(choice) == best for a in top) / len(top) for top in tops) / len(tops),
        base_share=sum(a.choices.get(choice) == best for a in members) / len(members))
    if numeric:
        lows = [min(a.choices[choice] for a in top) for top in tops]
        highs = [max(a.choices[choice] for a in top) for top in tops]
        result.low, result.high = _percentile(lows, 0.5), _percentile(highs, 0.5)
        result.low_ci, result.high_ci = _percentile(lows, 0.025), _percentile(highs, 0.975)
    return result


def ranges_rows(ranges: list[ChoiceRange]) -> list[list[str]]:
    multi = len({r.space for r in ranges}) > 1
    rows = []
    for r in ranges:
        span = "—"
        if r.numeric:
            span = f"{r.low:g}–{r.high:g}" + (f"  (95 %: {r.low_ci:g}–{r.high_ci:g})" if (r.low_ci, r.high_ci) != (r.low, r.high) else "")
        rows.append(([r.space] if multi else []) + [
            r.choice, ", ".join(compact(v) for v in r.offered), span, compact(r.best), f"{r.confidence:.0%}",
            f"{r.top_share:.0%} vs {r.base_share:.0%}"])
    return rows


def ranges_headers(ranges: list[ChoiceRange]) -> list[str]:
    multi = len({r.space for r in ranges}) > 1
    return (["space"] if multi else []) + ["choice", "offered", "top-k range", "most frequent in top-k", "confidence",
                                           "share: top-k vs all"]
