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

from workbench.errors import WorkbenchError
from workbench.results import reader
from workbench.results.reader import StudyRecord, TrialRecord

LATENCY_FILE = "latency.json"


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
    latency_ms: float | None = None
    trials: list[TrialRecord] = field(default_factory=list, repr=False)


def _trial_search(t: TrialRecord) -> dict[str, Any]:
    if t.from_summary:
        # summary.csv's hp.* columns are the sampled choices and its params/flops the cost; the reward factor
        # (trial.json's search block) is not in it.
        return {"architecture_id": t.variant, "choices": dict(t.hparams), "params": t.params, "flops": t.flops}
    try:
        data = json.loads((t.path / "trial.json").read_text())
    except (OSError, ValueError):
        return {}
    return data.get("search") if isinstance(data.get("search"), dict) else {}


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _value(t: TrialRecord, metric: str, search: dict[str, Any]) -> float | None:
    if metric == "reward":
        accuracy, factor = t.best("val_top1"), search.get("reward_factor")
        return None if accuracy is None or factor is None else accuracy * factor
    return t.best(metric)


def architectures(studies: list[StudyRecord], metric: str = "val_top1") -> list[Sampled]:
    """Finished search trials grouped by (study, architecture id), in trial order."""
    if metric == "reward":
        reader.require_trial_folders(studies, "--metric reward (the reward factor of each trial.json)")
    groups: dict[tuple[str, str], list[tuple[TrialRecord, dict]]] = {}
    for t in reader.all_trials(studies):
        search = _trial_search(t)
        if t.finished and search:
            groups.setdefault((t.study, str(search.get("architecture_id", t.variant))), []).append((t, search))
    if not groups:
        raise WorkbenchError(["no finished search trial in these folders (trial.json without a search block, or none finished)",
                              "  run `workbench search run STUDY.json` first; `workbench results compare` reads ordinary studies"])
    out = []
    for (study, arch_id), members in groups.items():
        trials = [t for t, _ in members]
        search = members[0][1]
        study_path = next((s.path for s in studies if s.name == study), Path("."))
        file = study_path / "architectures" / f"{arch_id}.json"
        rates = [t.images_per_s for t in trials if t.images_per_s]
        out.append(Sampled(
            study=study, space=trials[0].space or study, arch_id=arch_id, choices=dict(search.get("choices") or {}),
            params=search.get("params"), flops=search.get("flops"), accuracy=_mean([t.best("val_top1") for t in trials]),
            value=_mean([_value(t, metric, s) for t, s in members]), reward=_mean([_value(t, "reward", s) for t, s in members]),
            seeds=len(trials), train_ms_per_image=1000 / _mean(rates) if rates else None,
            file=file if file.exists() else None, trials=trials))
    for arch in out:
        for key, value in arch.trials[0].hparams.items():
            arch.choices.setdefault(key, value)  # hyper-parameters drawn with the architecture count as choices too
    return out


# --- Pareto ---------------------------------------------------------------------------------------------


def pareto_members(archs: list[Sampled], x: str, higher_is_better: bool = True) -> list[Sampled]:
    """The architectures no other one beats on both cost (x: flops, params, latency) and the ranking metric."""
    from workbench.results.plots import pareto_front

    usable = [a for a in archs if _cost(a, x) is not None and a.value is not None]
    front = pareto_front([(_cost(a, x), a.value) for a in usable], higher_is_better)
    return [usable[i] for i in front]


def _cost(arch: Sampled, x: str) -> float | None:
    if x == "latency":
        return arch.latency_ms if arch.latency_ms is not None else arch.train_ms_per_image
    return arch.flops if x == "flops" else arch.params


def attach_latency(archs: list[Sampled], folders: list[Path]) -> str | None:
    """Measured inference latency from each folder's latency.json (written by `workbench search analyze`).
    Returns the device line of the measurement, or None when only training throughput is at hand."""
    bare = sorted({a.study for a in archs if a.file is None and a.trials and a.trials[0].from_summary})
    if bare:
        paths = sorted({str(a.trials[0].path.parent.parent) for a in archs if a.study in bare})
        raise WorkbenchError([
            f"{', '.join(paths)}: measured latency (--latency measure, the default) needs the sampled architecture "
            "files (architectures/<id>.json) and the trial folders, and this folder holds only summary.csv",
            "  they are git-ignored, so a clone has none: re-run the search into this folder, or pass --latency train "
            "to use the training images/s that summary.csv records",
        ])
    devices = set()
    for folder in folders:
        data = reader._read_json_object(folder / LATENCY_FILE)[0] or {}
        rows = data.get("architectures") or {}
        for arch in archs:
            row = rows.get(arch.arch_id)
            if arch.file is not None and arch.file.parent.parent == folder and isinstance(row, dict):
                arch.latency_ms = row.get("ms_per_image")
                devices.add(f"{data.get('device')}, batch {data.get('batch')}")
    return "; ".join(sorted(devices)) or None


def plot_pareto(archs: list[Sampled], metric: str, x: str, latency_label: str | None = None):
    """Every architecture as a point coloured by design space; the front as a step line, its members labelled."""
    from workbench.results.compare import flops_unit
    from workbench.results.plots import _colors, _pyplot

    higher = metric == "reward" or not reader.lower_is_better(metric)
    usable = [a for a in archs if _cost(a, x) is not None and a.value is not None]
    if not usable:
        raise WorkbenchError(f"no finished architecture has both {metric} and {x}: nothing to plot")
    divisor, unit = flops_unit([a.flops for a in usable if a.flops]) if x == "flops" else (1e6, "M") if x == "params" else (1.0, "")
    label = {"flops": unit, "params": "parameters (M)",
             "latency": f"latency (ms/image, {latency_label})" if latency_label else "training time per image (ms, from train images/s)"}[x]
    k = 100.0 if reader.is_fraction_metric(metric) else 1.0
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    spaces = sorted({a.space for a in usable})
    for space, color in zip(spaces, _colors(len(spaces))):
        members = [a for a in usable if a.space == space]
        ax.scatter([_cost(a, x) / divisor for a in members], [a.value * k for a in members], color=color, s=28, alpha=0.75,
                   lw=0, zorder=2, label=f"{space} (n={len(members)})")
    front = pareto_members(usable, x, higher)
    fx, fy = [_cost(a, x) / divisor for a in front], [a.value * k for a in front]
    reach = max(_cost(a, x) for a in usable) / divisor  # the best value stays attainable at any larger cost
    ax.plot(fx + [reach], fy + [fy[-1]], color="black", lw=1.2, ls="--", drawstyle="steps-post", zorder=1,
            label=f"Pareto front ({len(front)} architecture{'s' if len(front) > 1 else ''})")
    ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="black", lw=1.3, zorder=3)
    for a, cx, cy in zip(front, fx, fy):
        ax.annotate(a.arch_id if len(spaces) == 1 else f"{a.space}/{a.arch_id}", (cx, cy), xytext=(5, -11),
                    textcoords="offset points", fontsize=7)
    costs = [_cost(a, x) / divisor for a in usable]
    if min(costs) > 0 and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
    name = "reward ACC·(FLOPs/T)^w" if metric == "reward" else f"best {metric.replace('_top', ' top-').replace('_', ' ')}"
    ax.set_xlabel(label)
    ax.set_ylabel(f"{name}{' (%)' if k == 100.0 else ''}")
    ax.set_title(f"{', '.join(sorted({a.study for a in usable}))}: {name} vs {label.split(' (')[0]}\n"
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
            r.choice, ", ".join(_fmt(v) for v in r.offered), span, _fmt(r.best), f"{r.confidence:.0%}",
            f"{r.top_share:.0%} vs {r.base_share:.0%}"])
    return rows


def ranges_headers(ranges: list[ChoiceRange]) -> list[str]:
    multi = len({r.space for r in ranges}) > 1
    return (["space"] if multi else []) + ["choice", "offered", "top-k range", "most frequent in top-k", "confidence",
                                           "share: top-k vs all"]


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
