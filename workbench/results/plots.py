"""Plots of a study, drawn from what workbench.results.analysis computed (as pycls's plotting.py draws analysis).

curves       validation metric per epoch and per wall-clock second, one mean line per group with a band across seeds
pareto       best metric against GFLOPs (or training ms/image, or parameters): every trial, every group mean, and
             the Pareto front of the group means
sensitivity  best metric against each swept hyper-parameter, one panel each, mean ± std per value
edf          empirical distribution of error per variant or design space (pycls): fraction of models with error < e

Every function returns a matplotlib Figure; `save` writes it. Incomplete trials are drawn dotted in `curves`.
"""

from __future__ import annotations

import math

from workbench.errors import WorkbenchError
from workbench.results import analysis
from workbench.results.figures import colors, pyplot, save
from workbench.results.records import StudyRecord, number

KINDS = ("curves", "pareto", "sensitivity", "edf")
__all__ = ["KINDS", "curves", "edf", "pareto", "plot", "save", "sensitivity"]


# --- curves --------------------------------------------------------------------------------------------------


def _draw_curve(ax, axis: str, line: analysis.CurveLine, data: analysis.Curves, color) -> None:
    k, epochs = data.metric.scale, line.epochs
    if len(epochs):
        xs = list(epochs["epoch"] if axis == "epoch" else epochs["seconds"] / data.time_divisor)
        if data.band == "minmax":
            low, high = list(epochs["min"] * k), list(epochs["max"] * k)
        else:
            low, high = list((epochs["mean"] - epochs["std"]) * k), list((epochs["mean"] + epochs["std"]) * k)
        ax.plot(xs, list(epochs["mean"] * k), color=color, lw=2, marker="o" if len(xs) <= 30 else None, ms=3,
                label=line.label)
        if len(line.group.used) > 1:
            ax.fill_between(xs, low, high, color=color, alpha=0.18, lw=0)


def _draw_incomplete(ax, axis: str, line: analysis.CurveLine, data: analysis.Curves, color, first: bool) -> bool:
    """The incomplete trials of a group, dotted; the first one drawn on `ax` carries the legend entry."""
    for trial_points in line.incomplete:
        pts = [p for p in trial_points if number(p[0 if axis == "epoch" else 1]) is not None]
        if pts:
            xs = [p[0] if axis == "epoch" else p[1] / data.time_divisor for p in pts]
            ax.plot(xs, [p[2] * data.metric.scale for p in pts], color=color, lw=1, ls=":", marker="x", ms=4,
                    label="incomplete trial (not averaged)" if first else None)
            first = False
    return first


def _label_curve_axis(ax, axis: str, data: analysis.Curves) -> None:
    name = data.metric.name
    ax.set_ylabel(data.metric.header())
    ax.grid(alpha=0.3)
    if axis == "epoch":
        ax.set_xlabel("epoch")
        ax.set_title(f"{name} per epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        for epoch, text in data.stage_marks:
            ax.axvline(epoch - 0.5, color="0.5", ls="--", lw=0.8)
            ax.text(epoch - 0.4, 0.02, text, transform=ax.get_xaxis_transform(), fontsize=7, color="0.35")
    else:
        ax.set_xlabel(f"wall-clock training time ({data.time_unit}, mean over seeds)")
        ax.set_title(f"{name} per wall-clock time")


def curves(studies: list[StudyRecord], metric: str = "val_top1", x: str | None = None, band: str = "minmax",
           by: str | list[str] | None = None):
    """Mean curve per group with a min–max (or ±std) band across seeds; x = epoch, seconds, or both panels."""
    data = analysis.curves(studies, metric, x, band, by)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(data.axes), figsize=(6.4 * len(data.axes), 4.6), squeeze=False)
    axes = axes[0]
    unlabelled = {id(ax): True for ax in axes}  # the incomplete-trial legend entry is not drawn yet
    for line, color in zip(data.lines, colors(len(data.lines))):
        for ax, axis in zip(axes, data.axes):
            _draw_curve(ax, axis, line, data, color)
            unlabelled[id(ax)] = _draw_incomplete(ax, axis, line, data, color, unlabelled[id(ax)])
    for ax, axis in zip(axes, data.axes):
        _label_curve_axis(ax, axis, data)
    band_text = "min–max across seeds" if band == "minmax" else "mean ± std across seeds"
    fig.suptitle(f"{data.title}: mean over seeds, band = {band_text}", fontsize=10)
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# --- pareto --------------------------------------------------------------------------------------------------


def pareto(studies: list[StudyRecord], metric: str = "val_top1", x: str | None = None,
           by: str | list[str] | None = None):
    data = analysis.pareto(studies, metric, x, by)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    palette = colors(data.group_count)
    for p in data.groups:
        color = palette[p.index]
        ax.scatter(p.trial_x, p.trial_y, color=color, alpha=0.5, s=16, lw=0, zorder=2)
        ax.errorbar([p.cost], [p.mean], yerr=[p.std], fmt="o", color=color, ms=8, capsize=3, zorder=3, label=p.label)
    fx = [data.groups[i].cost for i in data.front]
    fy = [data.groups[i].mean for i in data.front]
    ax.plot(fx, fy, color="black", lw=1.2, ls="--", drawstyle="steps-post", zorder=1, label="Pareto front (group means)")
    ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="black", lw=1.5, zorder=4)
    for i, p in enumerate(data.groups):
        ax.annotate(p.group.display, (p.cost, p.mean), xytext=(6, 6), textcoords="offset points", fontsize=8,
                    fontweight="bold" if i in data.front else "normal", color=palette[p.index])
    if data.log_x:
        ax.set_xscale("log")
    ax.set_xlabel(data.cost.label)
    ax.set_ylabel(data.metric.best_header)
    ax.set_title(f"{data.title}: best {data.metric.name} vs {data.cost.label.split(' (')[0]}\n"
                 "small dots: trials; large: mean ± std over seeds; circled: on the Pareto front", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# --- sensitivity ---------------------------------------------------------------------------------------------


def _draw_panel(ax, panel: analysis.SensitivityPanel, palette: list, data: analysis.Sensitivity) -> None:
    for line in panel.lines:
        color = palette[line.index]
        ax.errorbar(line.xs, line.ys, yerr=line.errors, color=color, marker="o", capsize=3, lw=1.5, label=line.label)
        ax.scatter(line.scatter_x, line.scatter_y, color=color, s=10, alpha=0.4, lw=0)
    ticks = [panel.positions[v] for v in panel.values]
    if panel.log:
        ax.set_xscale("log")
    if not panel.numeric:
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(v) for v in panel.values], rotation=20 if len(panel.values) > 4 else 0)
    elif len(panel.values) <= 8:
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{v:g}" for v in panel.values])
        ax.minorticks_off()
    ax.set_xlabel(f"hp.{panel.name}")
    ax.set_ylabel(data.metric.best_header)
    ax.grid(alpha=0.3)
    ax.set_title(f"hp.{panel.name}", fontsize=10)


def sensitivity(studies: list[StudyRecord], metric: str = "val_top1", params: list[str] | None = None,
                by: str | list[str] | None = None):
    """One panel per swept hyper-parameter: mean ± std of the best metric per value, one line per variant."""
    data = analysis.sensitivity(studies, metric, params, by)
    plt = pyplot()
    cols = min(3, len(data.panels))
    rows = math.ceil(len(data.panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    palette = colors(data.line_count)
    for ax, panel in zip(axes.flat, data.panels):
        _draw_panel(ax, panel, palette, data)
    for ax in list(axes.flat)[len(data.panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{data.title}: best {metric} against each swept hyper-parameter "
                 "(mean ± std over trials with that value; dots: trials)", fontsize=10)
    fig.tight_layout()
    return fig


# --- edf -----------------------------------------------------------------------------------------------------


def edf(studies: list[StudyRecord], metric: str = "val_top1", by: str | list[str] | None = None):
    """pycls's empirical distribution function of error: F(e) = fraction of models with error < e."""
    data = analysis.edf(studies, metric, by)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for series, color in zip(data.series, colors(len(data.series))):
        ax.step(series.xs, series.ys, where="post", color=color, lw=2, label=series.label)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(data.low, data.high)
    ax.set_xlabel(data.metric.error_label)
    ax.set_ylabel("cumulative prob. (fraction of models with error < e)")
    ax.set_title(f"{data.title}: error EDF by {', '.join(data.fields)} (pycls)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1 if len(data.series) < 4 else 2)
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
