"""Mean and sample standard deviation over seeds; the difference to a baseline (paired or Welch t, from
workbench.sequential, the rule the study runner applies too); Hedges' g with its interval; seeds needed for 80 % power.

The difference, its interval and p-value are scipy's (ttest_rel on the seeds both rows ran, else ttest_ind with
unequal variances and its confidence_interval()); Holm's adjustment is statsmodels' multipletests and the seeds
needed are statsmodels' TTestPower / TTestIndPower.solve_power. Everything needs at least two seeds (or pairs); with
fewer there is no estimate of the spread and the figure is None.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

from workbench.sequential import Difference, finite, paired, welch

__all__ = ["Difference", "Effect", "Summary", "hedges_g", "paired", "seeds_needed", "summarize", "welch"]

POWER = 0.8
MAX_SEEDS = 10_000  # seeds needed beyond this are shown as "more than"


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1); None when n < 2


def summarize(values: Sequence[float]) -> Summary:
    values = finite(values)
    n = len(values)
    if n == 0:
        return Summary(0, None, None)
    mean = sum(values) / n
    if n < 2:
        return Summary(n, mean, None)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Summary(n, mean, math.sqrt(var))


# --- Hedges' g ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    g: float  # Hedges' g: the difference over the seed-to-seed standard deviation, small-sample corrected
    low: float | None  # its confidence interval (of the standardised difference delta)
    high: float | None


def hedges_g(a: Sequence[float], b: Sequence[float], is_paired: bool, confidence: float = 0.95) -> Effect | None:
    """Hedges' g of a - b, standardised by the pooled seed-to-seed standard deviation of the two rows (for paired
    rows the average variance of the common seeds, Cumming's d_av), so that paired and Welch rows read alike.

    Written here: neither scipy nor statsmodels computes an interval of a standardised difference (statsmodels'
    effectsize_smd gives g with a large-sample variance, far too narrow at 3 seeds, and scipy's bootstrap at 3 to
    5 seeds resamples mostly repeated seeds, a degenerate spread). The interval inverts the noncentral t of the
    row's own t statistic (Steiger and Fouladi), with scipy's nct and brentq: exact for Welch rows under normality;
    for paired rows the paired t's interval of mu_d / sigma_d rescaled by s_d / s_av (Algina and Keselman's
    approximation)."""
    a, b = finite(a), finite(b)
    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2 or (is_paired and n_a != n_b):
        return None
    diff = sum(a) / n_a - sum(b) / n_b
    var_a, var_b = _var(a), _var(b)
    if is_paired:
        sd = math.sqrt((var_a + var_b) / 2)
        dof = n_a - 1
        d_sd = math.sqrt(_var([x - y for x, y in zip(a, b)]))
    else:
        dof = n_a + n_b - 2
        sd = math.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / dof)
    if sd == 0.0 or dof < 2:  # Hedges' correction is 0 at one degree of freedom (two pairs): no unbiased g
        return None
    d = diff / sd
    g = d * _correction(dof)
    if is_paired:
        if d_sd == 0.0:
            return Effect(g, None, None)
        t, scale = diff / (d_sd / math.sqrt(n_a)), d_sd / sd / math.sqrt(n_a)
    else:
        root = math.sqrt(1 / n_a + 1 / n_b)
        t, scale = d / root, root
    bounds = _noncentrality_interval(t, dof, confidence)
    if bounds is None:
        return Effect(g, None, None)
    return Effect(g, bounds[0] * scale, bounds[1] * scale)


def _var(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _correction(dof: int) -> float:
    """Hedges' exact small-sample factor J = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2))."""
    return math.exp(math.lgamma(dof / 2) - math.log(math.sqrt(dof / 2)) - math.lgamma((dof - 1) / 2))


def _noncentrality_interval(t: float, dof: int, confidence: float) -> tuple[float, float] | None:
    """The noncentrality parameters whose noncentral t puts `t` at the upper and lower (1 - confidence) / 2 tails."""
    from scipy import optimize, stats

    magnitude = abs(t)
    # T = (Z + nc) / sqrt(V / dof): these bounds hold every solution with room to spare (Z, V at 1e-4 tails).
    z = float(stats.norm.isf(1e-4))
    lo = magnitude * math.sqrt(float(stats.chi2.ppf(1e-4, dof)) / dof) - z
    hi = magnitude * math.sqrt(float(stats.chi2.isf(1e-4, dof)) / dof) + z

    def solve(tail: float) -> float:
        return optimize.brentq(lambda nc: float(stats.nct.cdf(magnitude, dof, nc)) - tail, lo, hi)

    try:
        low, high = solve(0.5 + confidence / 2), solve(0.5 - confidence / 2)
    except (ValueError, RuntimeError):  # nct's cdf is not finite that far out
        return None
    return (low, high) if t >= 0 else (-high, -low)


# --- seeds needed ------------------------------------------------------------------------------------------


def seeds_needed(a: Sequence[float], b: Sequence[float], is_paired: bool, effect: float, alpha: float,
                 power: float = POWER) -> float | None:
    """Seeds (pairs for a paired row, seeds per row for a Welch row) a fixed-seed study needs to detect a difference
    of `effect` (stored units) with `power` by a two-sided test at `alpha`, given the spread these seeds show:
    statsmodels' TTestPower (paired: effect over the sd of the per-seed differences) or TTestIndPower (effect over
    the pooled sd). Power counts rejections in the effect's direction (the upper tail at alpha / 2: the other tail
    is what makes statsmodels' two-sided power NaN at large effects, scipy's nct underflowing there). math.inf
    beyond MAX_SEEDS; None without a spread or an effect."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2 or effect == 0 or (is_paired and len(a) != len(b)):
        return None
    if is_paired:
        sd = math.sqrt(_var([x - y for x, y in zip(a, b)]))
        solver = TTestPower()
    else:
        sd = math.sqrt((_var(a) + _var(b)) / 2)
        solver = TTestIndPower()
    if sd == 0.0:
        return None
    size, tail = abs(effect) / sd, {"alpha": alpha / 2, "alternative": "larger"}

    def enough(n: int) -> bool:
        return solver.power(size, n, **tail) >= power

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns where its root finder gives up; handled below
        if enough(2):
            return 2.0
        if not enough(MAX_SEEDS):
            return math.inf
        needed = float(solver.solve_power(effect_size=size, power=power, **tail))
        if not math.isfinite(needed):  # its root finder can stop short: bisect its power on whole seeds instead
            needed = _smallest(enough, 2, MAX_SEEDS)
    return float(math.ceil(needed - 1e-9))


def _smallest(enough, low: int, high: int) -> int:
    """The smallest n in (low, high] with enough(n), given enough(high), not enough(low) and enough monotone."""
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high
