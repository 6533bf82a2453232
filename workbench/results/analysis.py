"""What each plot shows, computed before anything is drawn: pure functions over trial records (as pycls's
sweep/analysis.py), returning data frames and dataclasses that workbench.results.plots draws.

Only finished trials (completed / early-stopped) are averaged; incomplete ones are kept apart in the curves so a
killed run is visible, and the EDF also counts diverged trials (a model of the design space that did not train is
part of what the space offers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results import metrics
from workbench.results.groups import Group, group_trials, hashable, order_key, parse_by, swept_hparams
from workbench.results.reader import check_metric, require_trial_folders
from workbench.results.records import StudyRecord, TrialRecord, all_trials, number


def title(studies: list[StudyRecord]) -> str:
    return ", ".join(s.name for s in studies)


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points no other point dominates (cost no larger and metric at least as good, one strictly)."""
    front = []
    for i, (ci, mi) in enumerate(points):
        dominated = False
        for j, (cj, mj) in enumerate(points):
            if j == i:
                continue
            better = mj >= mi if higher_is_better else mj <= mi
            strictly = cj < ci or (mj > mi if higher_is_better else mj < mi)
            if cj <= ci and better and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _groups(studies: list[StudyRecord], by: str | list[str] | None) -> tuple[list[Group], bool]:
    fields, _ = parse_by(by, studies)
    groups = group_trials(studies, fields)
    return groups, len({g.study for g in groups}) > 1


# --- curves --------------------------------------------------------------------------------------------------


@dataclass
class CurveLine:
    """One group: its per-epoch mean over seeds and the raw points of its incomplete trials."""

    group: Group
    label: str
    epochs: Any  # DataFrame: epoch, n, mean, std, min, max, seconds (mean elapsed seconds at that epoch)
    incomplete: list[list[tuple[Any, Any, Any]]]  # per incomplete trial: (epoch, elapsed_seconds, value) rows


@dataclass
class Curves:
    metric: metrics.MetricInfo
    axes: list[str]  # "epoch" and/or "seconds"
    band: str  # minmax or std
    lines: list[CurveLine]
    time_divisor: float
    time_unit: str
    stage_marks: list[tuple[int, str]]
    title: str


def epoch_means(trials: list[TrialRecord], metric: str):
    """Per epoch over seeds: mean, std, min, max of the metric and the mean elapsed seconds at that epoch."""
    import numpy as np
    import pandas as pd

    by_epoch: dict[int, list[tuple[float, float | None]]] = {}
    for t in trials:
        for row in t.metrics:
            value, epoch = number(row.get(metric)), number(row.get("epoch"))
            if value is None or epoch is None:
                continue
            by_epoch.setdefault(int(epoch), []).append((value, number(row.get("elapsed_seconds"))))
    out = []
    for epoch in sorted(by_epoch):
        values = np.array([v for v, _ in by_epoch[epoch]])
        seconds = [s for _, s in by_epoch[epoch] if s is not None]
        out.append({"epoch": epoch, "n": len(values), "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "min": float(values.min()), "max": float(values.max()),
                    "seconds": float(np.mean(seconds)) if seconds else math.nan})
    return pd.DataFrame(out, columns=["epoch", "n", "mean", "std", "min", "max", "seconds"])


def time_unit(max_seconds: float) -> tuple[float, str]:
    if max_seconds > 3 * 3600:
        return 3600.0, "hours"
    if max_seconds > 180:
        return 60.0, "minutes"
    return 1.0, "seconds"


def stage_marks(trials: list[TrialRecord]) -> list[tuple[int, str]]:
    """Epochs where a progressive-learning stage begins, when every trial shares them: (epoch, 'stage k · S px')."""
    marks = None
    for t in trials:
        mine, last = [], None
        for row in t.metrics:
            stage = row.get("stage")
            if stage is not None and last is not None and stage != last:
                size = row.get("image_size")
                mine.append((int(row.get("epoch", 0)), f"stage {stage}" + (f" · {size} px" if size else "")))
            last = stage
        if marks is None:
            marks = mine
        elif mine[: len(marks)] != marks[: len(mine)]:
            return []
        elif len(mine) > len(marks):
            marks = mine
    return marks or []


def curves(studies: list[StudyRecord], metric: str = "val_top1", x: str | None = None, band: str = "minmax",
           by: str | list[str] | None = None) -> Curves:
    """Mean curve per group with a min–max (or ±std) band across seeds; x = epoch, seconds, or both panels."""
    if x not in (None, "both", "epoch", "seconds"):
        raise WorkbenchError(f"--x for curves is epoch or seconds (default: both panels), not {x!r}")
    if band not in ("minmax", "std"):
        raise WorkbenchError(f"--band is minmax or std, not {band!r}")
    require_trial_folders(studies, f"--kind curves (the metric of every epoch, {trialdir.METRICS})")
    trials = all_trials(studies)
    check_metric(trials, metric)
    groups, multi = _groups(studies, by)
    all_seconds = [number(r.get("elapsed_seconds")) for t in trials for r in t.metrics]
    divisor, unit = time_unit(max([s for s in all_seconds if s is not None], default=0.0))
    lines = []
    for g in groups:
        points = [[(r.get("epoch"), r.get("elapsed_seconds"), r.get(metric)) for r in t.metrics] for t in g.incomplete]
        lines.append(CurveLine(g, f"{g.name(multi)} (n={len(g.used)})", epoch_means(g.used, metric),
                               [[p for p in pts if number(p[2]) is not None] for pts in points]))
    return Curves(metric=metrics.info(metric), axes=["epoch", "seconds"] if x in (None, "both") else [x], band=band,
                  lines=lines, time_divisor=divisor, time_unit=unit,
                  stage_marks=stage_marks([t for g in groups for t in g.used]), title=title(studies))


# --- pareto --------------------------------------------------------------------------------------------------


@dataclass
class ParetoGroup:
    group: Group
    index: int  # the group's place among all groups (its colour)
    label: str
    trial_x: list[float]  # every trial, spread a little sideways so trials of one cost stay visible
    trial_y: list[float]  # in display units
    cost: float  # means over the group's trials
    mean: float
    std: float


@dataclass
class Pareto:
    metric: metrics.MetricInfo
    cost: metrics.CostInfo
    groups: list[ParetoGroup]  # the groups with a finished trial that has the metric and the cost
    group_count: int  # all groups, drawn or not (the colours)
    front: list[int]  # indices into `groups`, by cost
    log_x: bool
    title: str


def trial_cost(t: TrialRecord, cost: metrics.CostInfo) -> float | None:
    """A trial's cost in display units: FLOPs, parameters, or training ms per image from its images/s."""
    if cost.name in ("flops", "params"):
        value = t.flops if cost.name == "flops" else t.params
        return None if value is None else value / cost.divisor
    rate = t.images_per_s
    return None if not rate else 1000.0 / rate


def _pareto_group(g: Group, index: int, label: str, pts: list[tuple[float, float]], k: float) -> ParetoGroup:
    import numpy as np

    offsets = np.linspace(-0.012, 0.012, len(pts)) if len(pts) > 1 else np.zeros(1)
    values = np.array([m * k for _, m in pts])
    return ParetoGroup(group=g, index=index, label=label, trial_x=[c * (1 + o) for (c, _), o in zip(pts, offsets)],
                       trial_y=[m * k for _, m in pts], cost=float(np.mean([c for c, _ in pts])),
                       mean=float(values.mean()), std=float(values.std(ddof=1)) if len(values) > 1 else 0.0)


def pareto(studies: list[StudyRecord], metric: str = "val_top1", x: str | None = None,
           by: str | list[str] | None = None) -> Pareto:
    """Every finished trial and every group mean against a cost, and the Pareto front of the group means."""
    x = "flops" if x in (None, "gflops") else x
    if x not in metrics.COSTS:
        raise WorkbenchError(f"--x for pareto is flops, latency or params, not {x!r}")
    check_metric(all_trials(studies), metric)
    groups, multi = _groups(studies, by)
    info = metrics.info(metric)
    cost = metrics.cost_info(x, [t.flops for g in groups for t in g.used if t.flops is not None])
    out = []
    for i, g in enumerate(groups):
        pts = [(trial_cost(t, cost), t.best(metric)) for t in g.used]
        pts = [(c, m) for c, m in pts if c is not None and m is not None]
        if pts:
            out.append(_pareto_group(g, i, f"{g.name(multi)} (n={len(pts)})", pts, info.scale))
    if not out:
        need = "train_images_per_s" if x == "latency" else x
        raise WorkbenchError(f"no finished trial has both {metric} and {need}: nothing to plot")
    costs = [p.cost for p in out]
    front = pareto_front([(p.cost, p.mean) for p in out], info.higher_is_better)
    return Pareto(metric=info, cost=cost, groups=out, group_count=len(groups), front=front,
                  log_x=min(costs) > 0 and max(costs) / min(costs) > 20, title=title(studies))


# --- sensitivity ---------------------------------------------------------------------------------------------


@dataclass
class SensitivityLine:
    index: int  # the line's place among all lines (its colour)
    label: str
    xs: list[float]  # positions of the values with trials
    ys: list[float]  # mean best metric there (display units)
    errors: list[float]  # std there
    scatter_x: list[float]  # every trial, jittered
    scatter_y: list[float]


@dataclass
class SensitivityPanel:
    name: str  # the hyper-parameter
    values: list[Any]  # its distinct values in natural order
    numeric: bool
    positions: dict[Any, float]
    log: bool
    lines: list[SensitivityLine] = field(default_factory=list)


@dataclass
class Sensitivity:
    metric: metrics.MetricInfo
    panels: list[SensitivityPanel]
    line_count: int
    title: str


def _swept(trials: list[TrialRecord], finished: list[TrialRecord], params: list[str] | None) -> list[str]:
    swept = swept_hparams(finished)
    if params:
        names = [p[3:] if p.startswith("hp.") else p for p in params]
        unknown = [n for n in names if n not in swept]
        if unknown:
            raise WorkbenchError([f"not a swept hyper-parameter: {', '.join(unknown)}",
                                  f"  swept (more than one value): {', '.join('hp.' + s for s in swept) or 'none'}"])
        swept = names
    if not swept:
        known = sorted({k for t in trials for k in t.hparams})
        raise WorkbenchError([
            "no hyper-parameter takes more than one value among the finished trials: nothing to plot",
            f"  recorded hyper-parameters: {', '.join('hp.' + k for k in known) or 'none'}",
        ])
    return swept


def _lines_of(studies: list[StudyRecord], finished: list[TrialRecord], swept: list[str],
              by: str | list[str] | None) -> dict[tuple, list[TrialRecord]]:
    """The trials of each line: one per study and value of `by` (default variant), pooled when over ten."""
    line_field = by or "variant"
    fields, _ = parse_by(line_field, studies) if isinstance(line_field, str) else (line_field, [])
    fields = [f for f in fields if f[3:] not in swept and f not in swept]
    lines_of: dict[tuple, list[TrialRecord]] = {}
    for t in finished:
        key = (t.study,) + tuple(hashable(t.lookup(f)) for f in fields) if fields else (t.study,)
        lines_of.setdefault(key, []).append(t)
    return lines_of if len(lines_of) <= 10 else {("all trials",): finished}


def _panel(name: str, finished: list[TrialRecord]) -> SensitivityPanel:
    distinct = sorted({hashable(t.hparams[name]) for t in finished if name in t.hparams}, key=order_key)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
    log = numeric and min(distinct) > 0 and max(distinct) / min(distinct) >= 10 and len(distinct) > 2
    return SensitivityPanel(name=name, values=distinct, numeric=numeric, log=log,
                            positions={v: (float(v) if numeric else float(i)) for i, v in enumerate(distinct)})


def _line(panel: SensitivityPanel, index: int, label: str, members: list[TrialRecord], metric: str, k: float,
          rng) -> SensitivityLine | None:
    import numpy as np

    line = SensitivityLine(index, label, [], [], [], [], [])
    for v in panel.values:
        vals = [m.best(metric) for m in members if panel.name in m.hparams and hashable(m.hparams[panel.name]) == v]
        vals = [val * k for val in vals if val is not None]
        if not vals:
            continue
        at = panel.positions[v]
        line.xs.append(at)
        line.ys.append(float(np.mean(vals)))
        line.errors.append(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0)
        spread = 0.0 if panel.numeric else 0.06
        line.scatter_x += [at * (1 + rng.uniform(-0.02, 0.02)) if panel.log else at + rng.uniform(-spread, spread)
                           for _ in vals]
        line.scatter_y += vals
    return line if line.xs else None


def sensitivity(studies: list[StudyRecord], metric: str = "val_top1", params: list[str] | None = None,
                by: str | list[str] | None = None) -> Sensitivity:
    """One panel per swept hyper-parameter: mean ± std of the best metric per value, one line per variant."""
    import numpy as np

    trials = all_trials(studies)
    check_metric(trials, metric)
    finished = [t for t in trials if t.finished]
    swept = _swept(trials, finished, params)
    lines_of = _lines_of(studies, finished, swept, by)
    multi = len({t.study for t in finished}) > 1
    info = metrics.info(metric)
    rng = np.random.default_rng(0)  # the jitter of the trial dots, the same on every run
    panels = []
    for name in swept:
        panel = _panel(name, finished)
        for index, (key, members) in enumerate(lines_of.items()):
            parts = [str(p) for p in key[0 if multi else 1:]] if key != ("all trials",) else ["all trials"]
            line = _line(panel, index, " · ".join(parts) or "all trials", members, metric, info.scale, rng)
            if line is not None:
                panel.lines.append(line)
        panels.append(panel)
    return Sensitivity(metric=info, panels=panels, line_count=len(lines_of), title=title(studies))


# --- edf -----------------------------------------------------------------------------------------------------


@dataclass
class EdfSeries:
    group: Group
    label: str
    errors: list[float]  # sorted
    xs: list[float]  # the step function, padded on both sides
    ys: list[float]


@dataclass
class Edf:
    metric: metrics.MetricInfo
    fields: list[str]
    series: list[EdfSeries]
    low: float  # x range
    high: float
    title: str


def edf(studies: list[StudyRecord], metric: str = "val_top1", by: str | list[str] | None = None) -> Edf:
    """pycls's empirical distribution function of error: F(e) = fraction of models with error < e."""
    import numpy as np

    trials = all_trials(studies)
    check_metric(trials, metric)
    if by is None:
        by = "space" if any(t.space is not None for t in trials) else "variant"
    elif by == "space" and all(t.space is None for t in trials):
        by = "study"  # trials read from summary.csv carry no space label: a search folder is one design space
    fields, _ = parse_by(by, studies)
    groups = group_trials(studies, fields)
    multi = len({g.study for g in groups}) > 1
    info = metrics.info(metric)
    found = []
    for g in groups:
        values = [t.best(metric) for t in g.trials if t.state in trialdir.TRAINER_DONE]
        errs = sorted(info.error(v) for v in values if v is not None)
        if errs:
            found.append((g, errs))
    if not found:
        raise WorkbenchError(f"no finished trial has {metric}: nothing to plot")
    high = max(e[-1] for _, e in found)
    low = min(e[0] for _, e in found)
    pad = (high - low) * 0.05 or 1.0
    series = []
    for g, errs in found:
        n = len(errs)
        diverged = g.count(trialdir.DIVERGED)
        extra = f", {diverged} {trialdir.DIVERGED}" if diverged else ""
        label = f"{g.name(multi)} (n={n}{extra}, min {errs[0]:.2f}, median {float(np.median(errs)):.2f})"
        series.append(EdfSeries(g, label, errs, [low - pad] + errs + [high + pad],
                                [0.0] + [i / n for i in range(1, n + 1)] + [1.0]))
    return Edf(metric=info, fields=fields, series=series, low=low - pad, high=high + pad, title=title(studies))
