"""What `search run` and `search analyze` print about a search, computed here so that the CLI only prints: the sampling
report, the best architectures, the Pareto fronts with their hypervolume, predicted against measured latency, and
the good-ranges title.

Hypervolume: the area a front dominates up to a reference point, in (metric × cost) units, computed with Optuna's
hypervolume routine (optuna._hypervolume.compute_hypervolume, the WFG algorithm its multi-objective samplers and
plot_hypervolume_history use; Optuna is already a dependency, and it has no public name for it). The reference point
is stated with every figure: the largest cost of the architectures compared (or the latency budget's max when there
is one) and, for a metric to maximise, 0 (or the worst value when a metric is to be minimised).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.results import metrics
from workbench.results.search_analysis import Sampled, architectures, pareto_members, top_count
from workbench.results.reader import load


def higher_is_better(metric: str) -> bool:
    return metric == metrics.REWARD or not metrics.lower_is_better(metric)


# --- after a run ------------------------------------------------------------------------------------------


def sampling_lines(folder: Path) -> list[tuple[str, bool]]:
    """search.json's sampling report as lines, each with whether it is a warning."""
    report = (trialdir.read_json(folder / trialdir.SEARCH) or {}).get("sampling") or {}
    if not report:
        return []
    rejected = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted((report.get("rejected") or {}).items())) or "none"
    lines = [(f"{report['sampler']} sampling: {report['accepted']} architectures from {report['draws']} draws · "
              f"acceptance rate {report['acceptance_rate']:.1%} · rejected before training: {rejected}", False)]
    if report.get("exhausted"):
        lines.append((f"the sampler found no further architecture within the constraints in {report['max_tries']} tries: "
                      "widen the constraints or raise search.max_tries", True))
    return lines


@dataclass
class Summary:
    metric: str
    archs: list[Sampled]
    ranked: list[Sampled]  # finished architectures with the metric, best first
    flops_front: set[str]
    flops_divisor: float
    flops_unit: str

    def rows(self, top: int) -> list[list[str]]:
        out = []
        for a in self.ranked[:top]:
            seconds = sum(t.seconds or 0 for t in a.trials) / len(a.trials)
            out.append([a.arch_id, f"{(a.params or 0) / 1e6:,.3f} M", f"{(a.flops or 0) / self.flops_divisor:,.2f}", percent(a.accuracy),
                        f"{a.reward:.4f}" if a.reward is not None else "—",
                        f"{a.predicted_ms:.3f}" if a.predicted_ms is not None else "—", str(a.seeds), f"{seconds:,.0f}",
                        "yes" if a.arch_id in self.flops_front else ""])
        return out

    def headers(self) -> list[str]:
        return ["id", "params", self.flops_unit, "val top-1", "reward", "predicted ms", "seeds", "train s", "Pareto (FLOPs)"]


def search_summary(folder: Path, metric: str) -> Summary:
    """The finished architectures of a search folder ranked by `metric` (WorkbenchError when none finished)."""
    archs = architectures(load([folder]), metric)
    higher = higher_is_better(metric)
    ranked = sorted((a for a in archs if a.value is not None), key=lambda a: a.value, reverse=higher)
    divisor, unit = metrics.flops_unit([a.flops for a in archs if a.flops])
    return Summary(metric, archs, ranked, {a.arch_id for a in pareto_members(archs, "flops", higher)}, divisor, unit)


def percent(value) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


# --- fronts and hypervolume -------------------------------------------------------------------------------


@dataclass
class Front:
    x: str  # flops or latency
    label: str  # the cost's name in the text
    members: list[Sampled]
    hypervolume: float | None
    reference: tuple[float, float] | None  # (cost in display units, metric value)
    unit: str

    def text(self) -> str:
        shown = ", ".join(f"{a.arch_id} ({cost_text(a, self.x)}, {percent(a.accuracy)})" for a in self.members)
        if self.hypervolume is None:
            return shown
        cost, value = self.reference
        return (f"{shown} · hypervolume {self.hypervolume:,.4g} (metric × {self.unit}; reference point {value:g}, "
                f"{cost:,.4g} {self.unit})")


def cost_text(arch: Sampled, x: str) -> str:
    if x == "flops":
        return f"{(arch.flops or 0) / 1e6:,.2f} MFLOPs"
    value = arch.latency_ms if arch.latency_ms is not None else arch.train_ms_per_image
    return f"{value:.2f} ms"


def _cost(arch: Sampled, x: str) -> float | None:
    if x == "latency":
        return arch.latency_ms if arch.latency_ms is not None else arch.train_ms_per_image
    return arch.flops


def hypervolume(archs: list[Sampled], x: str, higher: bool, divisor: float = 1.0,
                max_cost: float | None = None) -> tuple[float, tuple[float, float]] | None:
    """The area the architectures dominate (cost in display units = stored / divisor) up to the reference point."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    points = [(_cost(a, x) / divisor, a.value) for a in archs if _cost(a, x) is not None and a.value is not None]
    if not points:
        return None
    ref_cost = max_cost if max_cost is not None else max(c for c, _ in points)
    values = [v for _, v in points]
    ref_value = min(0.0, min(values)) if higher else max(values)
    inside = [(c, -v if higher else v) for c, v in points if c <= ref_cost]
    if not inside:
        return 0.0, (ref_cost, ref_value)
    reference = np.array([ref_cost, -ref_value if higher else ref_value], dtype=float)
    area = float(compute_hypervolume(np.array(inside, dtype=float), reference))
    return area, (ref_cost, ref_value)


def fronts(archs: list[Sampled], metric: str, device: str | None, latency_budget: float | None = None) -> list[Front]:
    higher = higher_is_better(metric)
    out = []
    divisor, unit = metrics.flops_unit([a.flops for a in archs if a.flops])
    for x, label, scale, unit_name, budget in (("flops", "FLOPs", divisor, unit, None),
                                               ("latency", f"latency ({device})" if device else "training time per image", 1.0, "ms",
                                                latency_budget if device else None)):
        members = pareto_members(archs, x, higher)
        area = hypervolume(archs, x, higher, scale, budget)
        out.append(Front(x, label, members, area[0] if area else None, area[1] if area else None, unit_name))
    return out


# --- predicted against measured latency ------------------------------------------------------------------


VERDICTS = {"within": "within", "tolerance": "within 5 %", "over": "OVER", None: ""}


@dataclass
class LatencyRows:
    rows: list[list[str]]
    mape: float | None
    tau: float | None
    compared: int
    budget: dict[str, Any] | None
    verdicts: dict[str, int]

    @staticmethod
    def headers(budget: bool) -> list[str]:
        return ["id", "predicted ms", "measured ms", "95 % CI", "error"] + (["budget"] if budget else [])


def latency_rows(rows: dict[str, dict[str, Any]], budget: dict[str, Any] | None) -> LatencyRows:
    """A latency.json's architectures as table rows, with the predictor's error and the budget verdicts."""
    table, pairs, verdicts = [], [], {"within": 0, "tolerance": 0, "over": 0}
    for arch_id, row in sorted(rows.items()):
        predicted, measured = row.get("predicted_ms"), row["median_ms"]
        error = "—" if predicted is None else f"{(predicted - measured) / measured:+.1%}"
        if predicted is not None:
            pairs.append((predicted, measured))
        ci = f"{row['ci_low_ms']:.3f}–{row['ci_high_ms']:.3f}" if row.get("ci_low_ms") is not None else "—"
        table.append([arch_id, f"{predicted:.3f}" if predicted is not None else "—", f"{measured:.3f}", ci, error]
                     + ([VERDICTS[row.get("budget")]] if budget else []))
        if row.get("budget") in verdicts:
            verdicts[row["budget"]] += 1
    mape, tau = prediction_error(pairs)
    return LatencyRows(table, mape, tau, len(pairs), budget, verdicts)


def prediction_error(pairs: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    """MAPE (a fraction) and Kendall's tau-b (scipy) of (predicted, measured) pairs."""
    import math

    from scipy.stats import kendalltau

    if not pairs:
        return None, None
    mape = sum(abs(p - m) / m for p, m in pairs) / len(pairs)
    tau = float(kendalltau([p for p, _ in pairs], [m for _, m in pairs]).statistic) if len(pairs) > 1 else math.nan
    return mape, None if math.isnan(tau) else tau


def budget_text(budget: dict[str, Any] | None) -> str:
    if not budget:
        return ""
    low, high = budget.get("min"), budget.get("max")
    return f"{low:g}–{high:g} ms" if low is not None and high is not None else f"≥ {low:g} ms" if low is not None else f"≤ {high:g} ms"


# --- good ranges --------------------------------------------------------------------------------------------


def ranges_title(archs: list[Sampled], metric: str, top: float, bootstrap: int) -> str:
    spaces = sorted({a.space for a in archs})
    counts = ", ".join(f"{s}: top {top_count(sum(a.space == s for a in archs), top)} of {sum(a.space == s for a in archs)}"
                       for s in spaces)
    return f"good range of each choice by {metric} ({counts}; {bootstrap} bootstrap resamples)"

