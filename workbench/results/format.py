"""Text of numbers for tables and panels: significant digits, ranges, durations, rates, p-values, mean ± std."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from workbench.results.metrics import MetricInfo

if TYPE_CHECKING:
    from workbench.results.stats import Effect, Summary

NONE = "—"  # a cell without a value


def sig(value: float, digits: int = 3) -> str:
    """3 significant digits without scientific notation: 5.29, 0.153, 21.5, 118."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"


def value_range(values: list[float], divisor: float) -> str:
    """'5.29' when every value agrees, else 'low–high', each divided by `divisor`."""
    if not values:
        return NONE
    low, high = min(values) / divisor, max(values) / divisor
    if math.isclose(low, high, rel_tol=1e-9):
        return sig(low)
    return f"{sig(low)}–{sig(high)}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 100:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def age(seconds: float) -> str:
    """How long ago, coarsely: '40 s', '12 min', '3.5 h', '4 days'."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def rate(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def p_value(p: float | None) -> str:
    if p is None:
        return NONE
    if p < 0.001:
        return "<0.001"
    if p < 0.01:
        return f"{p:.3f}"
    return f"{p:.2f}"


def group_value(value: Any) -> str:
    """A value of a --by field as a row label."""
    if value is None:
        return "(unset)"
    return str(value)


def seed(value: int | None) -> str:
    return "?" if value is None else str(value)


def compact(value: Any) -> str:
    """A choice value: floats without trailing zeros (0.25, 1e-05), anything else as its text."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def mean_std(summary: Summary, metric: MetricInfo) -> str:
    """'80.12 ± 1.03' in the metric's display units."""
    if summary.mean is None:
        return NONE
    k, d = metric.scale, metric.decimals
    if summary.std is None:
        return f"{summary.mean * k:.{d}f}"
    return f"{summary.mean * k:.{d}f} ± {summary.std * k:.{d}f}"


def signed(value: float, metric: MetricInfo) -> str:
    """A difference in the metric's display units with its sign: '+1.25'."""
    return f"{value * metric.scale:+.{metric.decimals}f}"


def magnitude(value: float, metric: MetricInfo) -> str:
    """A size of difference in display units with its unit: '0.5 pp', '0.02'."""
    unit = f" {metric.delta_unit}" if metric.delta_unit else ""
    return f"{value * metric.scale:g}{unit}"


def effect(e: Effect | None) -> str:
    """Hedges' g with its interval: '+1.23 [+0.10, +2.40]'."""
    if e is None:
        return NONE
    if e.low is None:
        return f"{e.g:+.2f}"
    return f"{e.g:+.2f} [{e.low:+.2f}, {e.high:+.2f}]"


def seeds_needed(value: float | None, limit: int = 10_000) -> str:
    if value is None:
        return NONE
    if not math.isfinite(value):
        return f"> {limit:,}"
    return f"{value:,.0f}"


def two_lines(header: str) -> str:
    """'best val top-1 (%)' -> 'best val\ntop-1 (%)': long headers on two lines, split at the middle space."""
    if len(header) <= 9 or " " not in header:
        return header
    spaces = [i for i, c in enumerate(header) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - len(header) / 2))
    return header[:cut] + "\n" + header[cut + 1:]


def md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def md_table(headers: list[str], rows: list[list[str]], left: set[int]) -> list[str]:
    """A markdown table; the columns whose index is in `left` are left-aligned, the others right-aligned."""
    align = [":---" if i in left else "---:" for i in range(len(headers))]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return out
