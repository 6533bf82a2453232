"""Mean, sample standard deviation, and Welch's t-test over seeds.

The difference of two group means gets a confidence interval from the t distribution with the
Welch–Satterthwaite degrees of freedom; the p-value is scipy's two-sided Welch test (ttest_ind, equal_var=False).
Both need at least two seeds in each group; with fewer there is no estimate of the spread and both are None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1); None when n < 2


def summarize(values: Sequence[float]) -> Summary:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(values)
    if n == 0:
        return Summary(0, None, None)
    mean = sum(values) / n
    if n < 2:
        return Summary(n, mean, None)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Summary(n, mean, math.sqrt(var))


@dataclass(frozen=True)
class Difference:
    diff: float  # mean(a) - mean(b)
    low: float | None  # confidence interval of the difference
    high: float | None
    p: float | None  # two-sided Welch t-test
    dof: float | None  # Welch–Satterthwaite degrees of freedom
    se: float | None

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Difference | None:
    """Difference of means of `a` and `b` with its Welch confidence interval and p-value; None if a group is empty."""
    from scipy import stats

    a = [float(v) for v in a if v is not None and math.isfinite(float(v))]
    b = [float(v) for v in b if v is not None and math.isfinite(float(v))]
    if not a or not b:
        return None
    sa, sb = summarize(a), summarize(b)
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return Difference(diff, None, None, None, None, None)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0.0:
        # Every seed of both groups agrees exactly: no spread to test against.
        return Difference(diff, diff, diff, None, None, 0.0)
    dof = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return Difference(diff, diff - half, diff + half, p if math.isfinite(p) else None, dof, se)
