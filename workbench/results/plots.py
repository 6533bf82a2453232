"""Plots of a study with matplotlib, headless (Agg).

curves       validation metric per epoch and per wall-clock second, one mean line per group with a band across seeds
pareto       best metric against GFLOPs (or training ms/image, or parameters): every trial, every group mean, and
             the Pareto front of the group means
sensitivity  best metric against each swept hyper-parameter, one panel each, mean ± std per value
edf          empirical distribution of error per variant or design space (pycls): fraction of models with error < e

Every function returns a matplotlib Figure; `save` writes it. Only finished trials (completed / early-stopped) are
averaged; incomplete ones are drawn dotted in `curves` so a killed run is visible, and the EDF also counts diverged
trials (a model of the design space that did not train is part of what the space offers).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.results import reader
from workbench.results.compare import Group, flops_unit, group_trials, parse_by
from workbench.results.reader import StudyRecord, TrialRecord

KINDS = ("curves", "pareto", "sensitivity", "edf")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _metric_label(metric: str) -> str:
    name = metric.replace("_top", " top-").replace("_", " ")
    return f"{name} (%)" if reader.is_fraction_metric(metric) else name


def _scale(metric: str) -> float:
    return 100.0 if reader.is_fraction_metric(metric) else 1.0


def _group_name(g: Group, multi_study: bool) -> str:
    return f"{g.study} · {g.display}" if multi_study else g.display


def _title(studies: list[StudyRecord]) -> str:
    return ", ".join(s.name for s in studies)


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise WorkbenchError(f"{path}: the plot file must end in .png, .svg or .pdf")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _groups(studies: list[StudyRecord], by: str | list[str] | None) -> tuple[list[Group], bool]:
    fields, _ = parse_by(by, studies)
    groups = group_trials(studies, fields)
    return groups, len({g.study for g in groups}) > 1


# --- curves --------------------------------------------------------------------------------------------------


def _aggregate(trials: list[TrialRecord], metric: str) -> list[dict[str, float]]:
    """Per epoch over seeds: mean, std, min, max of the metric and the mean elapsed seconds at that epoch."""
    import numpy as np

    by_epoch: dict[int, list[tuple[float, float | None]]] = {}
    for t in trials:
        for row in t.metrics:
            value = reader._number(row.get(metric))
            epoch = reader._number(row.get("epoch"))
            if value is None or epoch is None:
                continue
            by_epoch.setdefault(int(epoch), []).append((value, reader._number(row.get("elapsed_seconds"))))
    out = []
    for epoch in sorted(by_epoch):
        values = np.array([v for v, _ in by_epoch[epoch]])
        seconds = [s for _, s in by_epoch[epoch] if s is not None]
        out.append({"epoch": epoch, "n": len(values), "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "min": float(values.min()), "max": float(values.max()),
                    "seconds": float(np.mean(seconds)) if seconds else math.nan})
    return out


def _time_unit(max_seconds: float) -> tuple[float, str]:
    if max_seconds > 3 * 3600:
        return 3600.0, "hours"
    if max_seconds > 180:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _stage_marks(trials: list[TrialRecord]) -> list[tuple[int, str]]:
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
           by: str | list[str] | None = None):
    """Mean curve per group with a min–max (or ±std) band across seeds; x = epoch, seconds, or both panels."""
    if x not in (None, "both", "epoch", "seconds"):
        raise WorkbenchError(f"--x for curves is epoch or seconds (default: both panels), not {x!r}")
    if band not in ("minmax", "std"):
        raise WorkbenchError(f"--band is minmax or std, not {band!r}")
    reader.require_trial_folders(studies, "--kind curves (the metric of every epoch, metrics.jsonl)")
    trials = reader.all_trials(studies)
    reader.check_metric(trials, metric)
    groups, multi = _groups(studies, by)
    plt = _pyplot()
    axes_x = ["epoch", "seconds"] if x in (None, "both") else [x]
    fig, axes = plt.subplots(1, len(axes_x), figsize=(6.4 * len(axes_x), 4.6), squeeze=False)
    axes = axes[0]
    k = _scale(metric)
    all_seconds = [reader._number(r.get("elapsed_seconds")) for t in trials for r in t.metrics]
    unit, unit_name = _time_unit(max([s for s in all_seconds if s is not None], default=0.0))
    drawn_incomplete: set[int] = set()
    for g, color in zip(groups, _colors(len(groups))):
        agg = _aggregate(g.used, metric)
        label = f"{_group_name(g, multi)} (n={len(g.used)})"
        for ax, axis in zip(axes, axes_x):
            if agg:
                xs = [a["epoch"] if axis == "epoch" else a["seconds"] / unit for a in agg]
                mean = [a["mean"] * k for a in agg]
                if band == "minmax":
                    low, high = [a["min"] * k for a in agg], [a["max"] * k for a in agg]
                else:
                    low = [(a["mean"] - a["std"]) * k for a in agg]
                    high = [(a["mean"] + a["std"]) * k for a in agg]
                ax.plot(xs, mean, color=color, lw=2, marker="o" if len(xs) <= 30 else None, ms=3, label=label)
                if len(g.used) > 1:
                    ax.fill_between(xs, low, high, color=color, alpha=0.18, lw=0)
            for t in g.incomplete:
                pts = [(r.get("epoch"), r.get("elapsed_seconds"), r.get(metric)) for r in t.metrics]
                pts = [p for p in pts if reader._number(p[2]) is not None and reader._number(p[0 if axis == "epoch" else 1]) is not None]
                if pts:
                    xs = [p[0] if axis == "epoch" else p[1] / unit for p in pts]
                    ax.plot(xs, [p[2] * k for p in pts], color=color, lw=1, ls=":", marker="x", ms=4,
                            label="incomplete trial (not averaged)" if id(ax) not in drawn_incomplete else None)
                    drawn_incomplete.add(id(ax))
    for ax, axis in zip(axes, axes_x):
        ax.set_ylabel(_metric_label(metric))
        ax.grid(alpha=0.3)
        if axis == "epoch":
            ax.set_xlabel("epoch")
            ax.set_title(f"{metric} per epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            for epoch, text in _stage_marks([t for g in groups for t in g.used]):
                ax.axvline(epoch - 0.5, color="0.5", ls="--", lw=0.8)
                ax.text(epoch - 0.4, 0.02, text, transform=ax.get_xaxis_transform(), fontsize=7, color="0.35")
        else:
            ax.set_xlabel(f"wall-clock training time ({unit_name}, mean over seeds)")
            ax.set_title(f"{metric} per wall-clock time")
    band_text = "min–max across seeds" if band == "minmax" else "mean ± std across seeds"
    fig.suptitle(f"{_title(studies)}: mean over seeds, band = {band_text}", fontsize=10)
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# --- pareto --------------------------------------------------------------------------------------------------


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


def _cost(t: TrialRecord, x: str, flops_divisor: float = 1e9) -> float | None:
    if x == "flops":
        return None if t.flops is None else t.flops / flops_divisor
    if x == "params":
        return None if t.params is None else t.params / 1e6
    rate = t.images_per_s
    return None if not rate else 1000.0 / rate


COST_LABELS = {
    "flops": "GFLOPs",
    "params": "parameters (M)",
    "latency": "training time per image (ms, from train images/s)",
}


def pareto(studies: list[StudyRecord], metric: str = "val_top1", x: str | None = None,
           by: str | list[str] | None = None):
    x = x or "flops"
    if x == "gflops":
        x = "flops"
    if x not in COST_LABELS:
        raise WorkbenchError(f"--x for pareto is flops, latency or params, not {x!r}")
    trials = reader.all_trials(studies)
    reader.check_metric(trials, metric)
    groups, multi = _groups(studies, by)
    higher = not reader.lower_is_better(metric)
    k = _scale(metric)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    means: list[tuple[float, float]] = []
    mean_groups: list[tuple[Group, Any]] = []
    divisor, unit = flops_unit([t.flops for g in groups for t in g.used if t.flops is not None])
    cost_label = unit if x == "flops" else COST_LABELS[x]
    for g, color in zip(groups, _colors(len(groups))):
        pts = [(_cost(t, x, divisor), t.best(metric)) for t in g.used]
        pts = [(c, m) for c, m in pts if c is not None and m is not None]
        if not pts:
            continue
        import numpy as np

        # Trials of one group usually share their cost: spread them a little sideways so each stays visible.
        offsets = np.linspace(-0.012, 0.012, len(pts)) if len(pts) > 1 else np.zeros(1)
        ax.scatter([c * (1 + o) for (c, _), o in zip(pts, offsets)], [m * k for _, m in pts], color=color,
                   alpha=0.5, s=16, lw=0, zorder=2)

        cost = float(np.mean([c for c, _ in pts]))
        values = np.array([m * k for _, m in pts])
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        ax.errorbar([cost], [values.mean()], yerr=[std], fmt="o", color=color, ms=8, capsize=3, zorder=3,
                    label=f"{_group_name(g, multi)} (n={len(pts)})")
        means.append((cost, float(values.mean())))
        mean_groups.append((g, color))
    if not means:
        need = "train_images_per_s" if x == "latency" else ("flops" if x == "flops" else "params")
        raise WorkbenchError(f"no finished trial has both {metric} and {need}: nothing to plot")
    front = pareto_front(means, higher)
    fx = [means[i][0] for i in front]
    fy = [means[i][1] for i in front]
    ax.plot(fx, fy, color="black", lw=1.2, ls="--", drawstyle="steps-post",
            zorder=1, label="Pareto front (group means)")
    ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="black", lw=1.5, zorder=4)
    for i, ((cost, value), (g, color)) in enumerate(zip(means, mean_groups)):
        ax.annotate(g.display, (cost, value), xytext=(6, 6), textcoords="offset points", fontsize=8,
                    fontweight="bold" if i in front else "normal", color=color)
    costs = [c for c, _ in means]
    if min(costs) > 0 and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(cost_label)
    ax.set_ylabel(f"best {_metric_label(metric)}")
    ax.set_title(f"{_title(studies)}: best {metric} vs {cost_label.split(' (')[0]}\n"
                 "small dots: trials; large: mean ± std over seeds; circled: on the Pareto front", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# --- sensitivity ---------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sensitivity(studies: list[StudyRecord], metric: str = "val_top1", params: list[str] | None = None,
                by: str | list[str] | None = None):
    """One panel per swept hyper-parameter: mean ± std of the best metric per value, one line per variant."""
    import numpy as np

    trials = reader.all_trials(studies)
    reader.check_metric(trials, metric)
    finished = [t for t in trials if t.finished]
    swept = reader.swept_hparams(finished)
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
    line_field = by or "variant"
    fields, _ = parse_by(line_field, studies) if isinstance(line_field, str) else (line_field, [])
    fields = [f for f in fields if f[3:] not in swept and f not in swept]
    lines_of: dict[tuple, list[TrialRecord]] = {}
    for t in finished:
        key = (t.study,) + tuple(reader.hashable(t.lookup(f)) for f in fields) if fields else (t.study,)
        lines_of.setdefault(key, []).append(t)
    if len(lines_of) > 10:  # too many lines to read: pool them
        lines_of = {("all trials",): finished}
    multi = len({t.study for t in finished}) > 1
    k = _scale(metric)
    plt = _pyplot()
    cols = min(3, len(swept))
    rows = math.ceil(len(swept) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    colors = _colors(len(lines_of))
    rng = np.random.default_rng(0)
    for ax, name in zip(axes.flat, swept):
        values = [reader.hashable(t.hparams[name]) for t in finished if name in t.hparams]
        distinct = sorted(set(values), key=reader.order_key)
        numeric = all(_is_number(v) for v in distinct)
        positions = {v: (float(v) if numeric else float(i)) for i, v in enumerate(distinct)}
        log = numeric and min(distinct) > 0 and max(distinct) / min(distinct) >= 10 and len(distinct) > 2
        for (key, members), color in zip(lines_of.items(), colors):
            xs, ys, es, scatter_x, scatter_y = [], [], [], [], []
            for v in distinct:
                vals = [m.best(metric) for m in members if name in m.hparams and reader.hashable(m.hparams[name]) == v]
                vals = [val * k for val in vals if val is not None]
                if not vals:
                    continue
                xs.append(positions[v])
                ys.append(float(np.mean(vals)))
                es.append(float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0)
                spread = 0.0 if numeric else 0.06
                scatter_x += [positions[v] * (1 + rng.uniform(-0.02, 0.02)) if log else positions[v] + rng.uniform(-spread, spread)
                              for _ in vals]
                scatter_y += vals
            if not xs:
                continue
            parts = [str(p) for p in key[0 if multi else 1:]] if key != ("all trials",) else ["all trials"]
            label = " · ".join(parts) or "all trials"
            ax.errorbar(xs, ys, yerr=es, color=color, marker="o", capsize=3, lw=1.5, label=label)
            ax.scatter(scatter_x, scatter_y, color=color, s=10, alpha=0.4, lw=0)
        if log:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks([positions[v] for v in distinct])
            ax.set_xticklabels([str(v) for v in distinct], rotation=20 if len(distinct) > 4 else 0)
        elif len(distinct) <= 8:
            ax.set_xticks([positions[v] for v in distinct])
            ax.set_xticklabels([f"{v:g}" for v in distinct])
            ax.minorticks_off()
        ax.set_xlabel(f"hp.{name}")
        ax.set_ylabel(f"best {_metric_label(metric)}")
        ax.grid(alpha=0.3)
        ax.set_title(f"hp.{name}", fontsize=10)
    for ax in list(axes.flat)[len(swept):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{_title(studies)}: best {metric} against each swept hyper-parameter "
                 "(mean ± std over trials with that value; dots: trials)", fontsize=10)
    fig.tight_layout()
    return fig


# --- edf -----------------------------------------------------------------------------------------------------


def edf(studies: list[StudyRecord], metric: str = "val_top1", by: str | list[str] | None = None):
    """pycls's empirical distribution function of error: F(e) = fraction of models with error < e."""
    import numpy as np

    trials = reader.all_trials(studies)
    reader.check_metric(trials, metric)
    if by is None:
        by = "space" if any(t.space is not None for t in trials) else "variant"
    elif by == "space" and all(t.space is None for t in trials):
        by = "study"  # trials read from summary.csv carry no space label: a search folder is one design space
    fields, _ = parse_by(by, studies)
    groups = group_trials(studies, fields)
    multi = len({g.study for g in groups}) > 1
    fraction = reader.is_fraction_metric(metric)
    higher = not reader.lower_is_better(metric)

    def error(t: TrialRecord) -> float | None:
        value = t.best(metric)
        if value is None:
            return None
        return (1 - value) * 100 if fraction and higher else value

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    series = []
    for g in groups:
        errs = sorted(e for e in (error(t) for t in g.trials if t.state in reader.ENDED) if e is not None)
        if errs:
            series.append((g, errs))
    if not series:
        raise WorkbenchError(f"no finished trial has {metric}: nothing to plot")
    high = max(e[-1] for _, e in series)
    low = min(e[0] for _, e in series)
    pad = (high - low) * 0.05 or 1.0
    for (g, errs), color in zip(series, _colors(len(series))):
        n = len(errs)
        xs = [low - pad] + errs + [high + pad]
        ys = [0.0] + [i / n for i in range(1, n + 1)] + [1.0]
        diverged = sum(t.state == "diverged" for t in g.trials)
        extra = f", {diverged} diverged" if diverged else ""
        ax.step(xs, ys, where="post", color=color, lw=2,
                label=f"{_group_name(g, multi)} (n={n}{extra}, min {errs[0]:.2f}, median {float(np.median(errs)):.2f})")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(low - pad, high + pad)
    name = metric.replace("_top", " top-").replace("_", " ")
    ax.set_xlabel(f"error e (%) = 100 − best {name}" if fraction and higher else f"best {name}")
    ax.set_ylabel("cumulative prob. (fraction of models with error < e)")
    ax.set_title(f"{_title(studies)}: error EDF by {', '.join(fields)} (pycls)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1 if len(series) < 4 else 2)
    fig.tight_layout()
    return fig


def plot(kind: str, studies: list[StudyRecord], metric: str = "val_top1", x: str | None = None,
         by: str | list[str] | None = None, band: str = "minmax", params: list[str] | None = None):
    if kind == "curves":
        return curves(studies, metric, x, band, by)
    if kind == "pareto":
        return pareto(studies, metric, x, by)
    if x is not None:
        raise WorkbenchError(f"--x applies to curves and pareto, not {kind}")
    if kind == "sensitivity":
        return sensitivity(studies, metric, params, by)
    if kind == "edf":
        return edf(studies, metric, by)
    raise WorkbenchError(f"unknown plot kind {kind!r}: choose one of {', '.join(KINDS)}")
