"""The rule that decides a comparison of seeds: one row's test against its baseline, Holm across the rows, and for
adaptive seeds the sequential version of both and which seeds each row runs next.

A leaf (like trialdir), so that the two rooms that apply the rule run the same code: the study runner
(workbench.study.seeding: after each round, which variants stop and which get one more seed) and the results table
(workbench.results.compare: the verdict of each row), and the results room may not import the study room.

One row compares a variant's per-seed values with its baseline's. When both have one value per seed and at least two
seeds in common, the test is paired (scipy's ttest_rel on the common seeds): a seed fixes the data order and every
augmentation draw in every variant, so the per-seed difference removes that shared noise. Otherwise (several trials
per seed, a baseline of another study, fewer than two common seeds) it is Welch's t-test (ttest_ind, unequal
variances). Verdicts: `higher` / `lower` when the Holm-adjusted p-value is at most alpha, `equivalent` when the
row's equivalence interval lies inside ±min_effect, else `open`.

Adaptive seeds (`{"initial": 3, "max": 10, "min_effect": 0.5}`) look at the data after every round: seeds 0..k-1 at
the look of k seeds, k = initial .. max. Optional stopping would inflate a fixed-sample test's error, so alpha is
spent over the planned looks: the look of k seeds gets the share f(k) = (k/max)^2 - (k_prev/max)^2 (Kim and DeMets'
power family, rho = 2; the first look takes (initial/max)^2), and a row's sequential p-value is min over its looks
of p_k / f(k). By the union bound, P(sequential p <= a) <= sum of a * f(k) = a under the null, whatever rule chose
the looks, so it stays valid when undecided rows continue and decided ones stop; Holm's step-down on these p-values
then bounds the family-wise error of every higher/lower verdict of the study (closed testing of weighted Bonferroni
tests; every compared row is in the family from the start, one without a p as p = 1). Adjusted p-values only fall
as looks are added, so a row decided in a round stays decided at the end. The
equivalence interval is the intersection over the looks of the two-sided 1 - 2 alpha f(k) / m intervals (two
one-sided tests at alpha f(k) / m each, m rows): it errs on any row at any look with probability at most alpha.
A fixed list of seeds is the one-look case, f = 1: Holm on the plain p-values.

Written here rather than taken from a library: scipy and statsmodels have the tests and Holm (used below) but no
group-sequential design or confidence sequence for a t statistic; the union bound over looks is what keeps this
short and valid for any number of looks and any stopping rule (exact group-sequential boundaries for t statistics
at 2 to 9 degrees of freedom need numerical integration no maintained Python library offers).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from workbench import trialdir

HIGHER, LOWER, EQUIVALENT, OPEN = "higher", "lower", "equivalent", "open"
PAIRED, WELCH = "paired", "welch"
SPENDING_RHO = 2  # Kim-DeMets power family alpha * t^rho: little spent on the first looks, whose df is small
SPENDING_NAME = f"alpha spending over the planned looks (power family, rho {SPENDING_RHO}, union bound)"

SeedValues = Mapping[int, "float | None"]  # seed -> the trial's value; None: it ended without one (failed, diverged)


def finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


# --- one comparison ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    diff: float  # mean(a) - mean(b); paired: the mean of the per-seed differences on the common seeds
    low: float | None  # confidence interval of the difference
    high: float | None
    p: float | None  # two-sided
    dof: float | None  # paired: pairs - 1; Welch: Welch-Satterthwaite
    se: float | None
    method: str = WELCH  # PAIRED or WELCH
    pairs: int | None = None  # paired: the seeds both have

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def interval(self, confidence: float) -> tuple[float, float] | None:
        """The two-sided t interval at another level (the same dof and standard error)."""
        from scipy import stats

        if self.se is None or self.dof is None:
            return None
        half = float(stats.t.ppf(0.5 + confidence / 2, self.dof)) * self.se
        return self.diff - half, self.diff + half


def _p(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Difference | None:
    """Difference of means of `a` and `b` with scipy's Welch interval and p-value; None if a group is empty; no
    interval with fewer than two values in a group."""
    from scipy import stats

    a, b = finite(a), finite(b)
    if not a or not b:
        return None
    diff = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(diff, None, None, None, None, None)
    se = math.sqrt(_var(a) / len(a) + _var(b) / len(b))
    if se == 0.0:  # every seed of both groups agrees exactly: a certain difference, or none
        return Difference(diff, diff, diff, 0.0 if diff else None, None, 0.0)
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(confidence)
    return Difference(diff, float(ci.low), float(ci.high), _p(result.pvalue), float(result.df), se)


def paired(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Difference | None:
    """a[i] - b[i] over aligned seeds with scipy's paired t-test (ttest_rel); no interval with fewer than two pairs."""
    if not a:
        return None
    return _paired(tuple(float(v) for v in a), tuple(float(v) for v in b), confidence)


@functools.lru_cache(maxsize=4096)  # an adaptive study's planner asks again for every earlier look of every round
def _paired(a: tuple[float, ...], b: tuple[float, ...], confidence: float) -> Difference:
    from scipy import stats

    n = len(a)
    d = [x - y for x, y in zip(a, b)]
    diff = sum(d) / n
    if n < 2:
        return Difference(diff, None, None, None, None, None, PAIRED, n)
    se = math.sqrt(_var(d) / n)
    if se == 0.0:
        return Difference(diff, diff, diff, 0.0 if diff else None, n - 1, 0.0, PAIRED, n)
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(confidence)
    return Difference(diff, float(ci.low), float(ci.high), _p(result.pvalue), float(result.df), se, PAIRED, n)


def _var(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def common(values: SeedValues, base: SeedValues, below: int | None = None) -> tuple[list[float], list[float]]:
    """The aligned values of the seeds (below `below`) where both have a finite value."""
    seeds = sorted(s for s in values if s in base and (below is None or s < below))
    pairs = [(values[s], base[s]) for s in seeds if _ok(values[s]) and _ok(base[s])]
    return [float(a) for a, _ in pairs], [float(b) for _, b in pairs]


def _ok(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def difference(values: SeedValues | Sequence[float], base: SeedValues | Sequence[float],
               confidence: float = 0.95) -> Difference | None:
    """Paired on the common seeds when both are seed -> value maps with at least two seeds in common, else Welch."""
    if isinstance(values, Mapping) and isinstance(base, Mapping):
        a, b = common(values, base)
        if len(a) >= 2:
            return paired(a, b, confidence)
        return welch(list(values.values()), list(base.values()), confidence)
    return welch(list(values.values()) if isinstance(values, Mapping) else values,
                 list(base.values()) if isinstance(base, Mapping) else base, confidence)


# --- the design ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """Fixed seeds (one look at whatever finished) or adaptive seeds 0..max-1 looked at from `initial` seeds on."""

    alpha: float = 0.05
    min_effect: float | None = None  # in stored units (fractions for accuracies)
    initial: int | None = None
    max: int | None = None

    @property
    def adaptive(self) -> bool:
        return self.max is not None

    @property
    def looks(self) -> range:
        """The seed counts looked at: initial .. max (a fixed design has none of its own)."""
        return range(self.initial, self.max + 1) if self.adaptive else range(0)

    def share(self, seeds: int) -> float:
        """The part of alpha spent at the look of `seeds` seeds (1 for a fixed design)."""
        if not self.adaptive:
            return 1.0
        previous = 0 if seeds == self.initial else seeds - 1
        return (seeds / self.max) ** SPENDING_RHO - (previous / self.max) ** SPENDING_RHO

    @classmethod
    def of(cls, seeds: Any, metric: str, alpha: float = 0.05, min_effect: float | None = None) -> Design:
        """The design study.json's `seeds` describes: a list is fixed, {"initial", "max", "min_effect", "alpha"}
        adaptive (min_effect in the metric's display units: percentage points for accuracies). `min_effect`
        (display units) overrides the study's; `alpha` applies to fixed designs."""
        scale = 100.0 if trialdir.stored_as_fraction(metric) else 1.0
        if isinstance(seeds, Mapping) and isinstance(seeds.get("initial"), int) and isinstance(seeds.get("max"), int):
            effect = min_effect if min_effect is not None else seeds.get("min_effect")
            level = seeds.get("alpha", 0.05)
            return cls(alpha=float(level) if isinstance(level, (int, float)) else 0.05,
                       min_effect=None if effect is None else float(effect) / scale,
                       initial=seeds["initial"], max=seeds["max"])
        return cls(alpha=alpha, min_effect=None if min_effect is None else min_effect / scale)


def adaptive_spec(seeds: Any) -> bool:
    """Whether study.json's `seeds` asks for adaptive seeds."""
    return isinstance(seeds, Mapping) and "initial" in seeds


# --- one row over its looks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    seeds: int  # seeds 0 .. seeds-1 (a fixed design: every seed that finished)
    test: Difference
    share: float


@dataclass(frozen=True)
class RowLooks:
    """One row's looks: what its verdict is computed from."""

    looks: list[Look]
    complete: int  # seeds of its last complete look (adaptive), 0 before the first

    @property
    def p(self) -> float | None:
        """min over looks of p / share (capped at 1); a fixed design's plain p."""
        ps = [min(1.0, look.test.p / look.share) for look in self.looks if look.test.p is not None]
        return min(ps) if ps else None

    @property
    def deciding(self) -> Look | None:
        """The look whose p / share is smallest: its sign is the direction of a higher/lower verdict."""
        tested = [look for look in self.looks if look.test.p is not None]
        return min(tested, key=lambda look: look.test.p / look.share) if tested else None


def complete_look(values: SeedValues, base: SeedValues, design: Design) -> int:
    """The largest planned look whose seeds 0..k-1 have all ended in both (0 if none)."""
    done = 0
    for k in design.looks:
        if all(s in values and s in base for s in range(k)):
            done = k
        else:
            break
    return done


def looks_of(values: SeedValues | Sequence[float], base: SeedValues | Sequence[float], design: Design,
             confidence: float = 0.95) -> RowLooks:
    """The row's looks. `values` / `base`: seed -> value of the trials that ended (None: without a value), or plain
    lists when the seeds do not pair (several trials per seed), which a fixed analysis reads once."""
    mappings = isinstance(values, Mapping) and isinstance(base, Mapping)
    if not design.adaptive or not mappings:
        test = difference(values, base, confidence)
        looks = [Look(len(test_values(values)), test, 1.0)] if test is not None else []
        return RowLooks(looks, 0)
    complete = complete_look(values, base, design)
    looks = []
    for k in design.looks:
        if k > complete:
            break
        a, b = common(values, base, below=k)
        test = paired(a, b, confidence) if len(a) >= 2 else None
        if test is not None:
            looks.append(Look(k, test, design.share(k)))
    return RowLooks(looks, complete)


def test_values(values: SeedValues | Sequence[float]) -> list[float]:
    return finite(list(values.values()) if isinstance(values, Mapping) else values)


# --- the family of rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    verdict: str  # HIGHER, LOWER, EQUIVALENT or OPEN
    p: float | None  # the row's sequential p-value (fixed design: its p)
    p_holm: float | None  # Holm-adjusted across the rows (None for a row without a p of its own)
    eq_low: float | None = None  # the equivalence interval (see the module docstring)
    eq_high: float | None = None

    @property
    def decided(self) -> bool:
        return self.verdict != OPEN


@dataclass(frozen=True)
class Family:
    verdicts: list[Verdict]
    alpha: float
    tested: int  # m: the rows compared, the size of Holm's family
    designs: list[Design] = field(default_factory=list)


def holm(ps: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels' multipletests)."""
    if not ps:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(ps), method="holm")[1]]


def decide(rows: Sequence[RowLooks], designs: Sequence[Design], alpha: float) -> Family:
    """Each row's verdict: Holm across the rows on their (sequential) p-values, at level `alpha`; equivalence from
    each row's own design's min_effect."""
    ps = [row.p for row in rows]
    # Every compared row belongs to the family from its first round on, one without a p (fewer than two pairs, or
    # no spread at all) as p = 1: the family, and with it each row's level, stays the same from round to round.
    adjusted = holm([1.0 if p is None else p for p in ps])
    m = max(1, len(rows))
    verdicts = []
    for i, (row, design) in enumerate(zip(rows, designs)):
        eq = _equivalence_interval(row, alpha, m)
        p_holm = None if ps[i] is None else adjusted[i]
        if p_holm is not None and p_holm <= alpha:
            verdict = HIGHER if row.deciding.test.diff > 0 else LOWER
        elif eq is not None and design.min_effect is not None and -design.min_effect < eq[0] and eq[1] < design.min_effect:
            verdict = EQUIVALENT
        else:
            verdict = OPEN
        verdicts.append(Verdict(verdict, ps[i], p_holm, *(eq or (None, None))))
    return Family(verdicts, alpha, len(rows), list(designs))


def _equivalence_interval(row: RowLooks, alpha: float, m: int) -> tuple[float, float] | None:
    low, high = -math.inf, math.inf
    for look in row.looks:
        bounds = look.test.interval(1 - 2 * alpha * look.share / m)
        if bounds is None:
            continue
        low, high = max(low, bounds[0]), min(high, bounds[1])
    if not math.isfinite(low) or not math.isfinite(high):
        return None
    if low > high:  # the looks' intervals miss each other: the rare miss the error bound allows; the last look's
        return row.looks[-1].test.interval(1 - 2 * alpha * row.looks[-1].share / m)
    return low, high


# --- the next round ------------------------------------------------------------------------------------------


def wanted(row: RowLooks, verdict: Verdict, design: Design) -> int:
    """Seeds (0 .. k-1) a compared row should have ended by the end of the next round: `initial` until its first
    look is complete, one more than its last complete look while it is open and below max, else what it has."""
    if row.complete < design.initial:
        return design.initial
    if verdict.decided or row.complete >= design.max:
        return row.complete
    return row.complete + 1


@dataclass(frozen=True)
class Plan:
    seeds: list[int]  # per unit: seeds 0 .. n-1 it should have ended by the end of the next round
    family: Family
    rows: list[int]  # the units compared with a baseline, in the order of family.verdicts


def plan(units: Sequence[SeedValues], baseline_of: Sequence[int | None], design: Design) -> Plan:
    """The next round of an adaptive study of `units` (each: seed -> value of its ended trials); `baseline_of[i]`
    is the unit unit i is compared with (None for a baseline). A baseline runs as many seeds as its rows want, and
    every unit at least `initial`."""
    rows = [i for i, b in enumerate(baseline_of) if b is not None and b != i]
    sequences = [looks_of(units[i], units[baseline_of[i]], design) for i in rows]
    family = decide(sequences, [design] * len(rows), design.alpha)
    seeds = [design.initial] * len(units)
    for i, row, verdict in zip(rows, sequences, family.verdicts):
        seeds[i] = wanted(row, verdict, design)
        base = baseline_of[i]
        seeds[base] = max(seeds[base], seeds[i])
    return Plan(seeds, family, rows)
