"""The one table of metrics and costs: name -> label, display scaling, and which way is better.

As pycls's `metrics_info`, every table and plot asks this module how to name and scale a metric or a cost, so no
label or percent factor is written twice. Accuracies are stored as fractions 0..1 and shown in % (differences in
percentage points); a metric the table does not list (anything metrics.jsonl records: lr, epoch_seconds, ...)
gets an entry from the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench import trialdir

# the metrics the trainer records per epoch, and whose best_/final_ figures status.json may hold
KNOWN = ("val_top1", "val_top5", "val_loss", "train_top1", "train_loss")
REWARD = "reward"  # the NAS objective ACC x (FLOPs / T)^w of a search trial, a mean over seeds of best figures


@dataclass(frozen=True)
class MetricInfo:
    name: str  # the key in metrics.jsonl / status.json ("val_top1")
    label: str  # "val top-1"
    percent: bool  # stored as a fraction 0..1, shown in %
    lower_is_better: bool
    best_prefix: str = "best "  # how tables and plots name its best figure ("best val top-1")

    @property
    def higher_is_better(self) -> bool:
        return not self.lower_is_better

    @property
    def scale(self) -> float:
        """Stored value -> shown value."""
        return 100.0 if self.percent else 1.0

    @property
    def decimals(self) -> int:
        return 2 if self.percent else 4

    @property
    def unit(self) -> str:
        return "%" if self.percent else ""

    @property
    def delta_unit(self) -> str:
        """The unit of a difference of two values: percentage points for accuracies."""
        return "pp" if self.percent else ""

    @property
    def delta_words(self) -> str:
        return "percentage points" if self.percent else "metric units"

    def header(self, prefix: str = "") -> str:
        """'val top-1 (%)', with a prefix 'final val top-1 (%)': a column header or an axis label."""
        name = prefix + self.label
        return f"{name} ({self.unit})" if self.unit else name

    @property
    def best_name(self) -> str:
        return f"{self.best_prefix}{self.label}"

    @property
    def best_header(self) -> str:
        """'best val top-1 (%)'."""
        return self.header(self.best_prefix)

    @property
    def as_error(self) -> bool:
        """An accuracy, whose error 100 - value (%) is what an EDF of a design space counts."""
        return self.percent and self.higher_is_better

    def error(self, value: float) -> float:
        return (1 - value) * 100 if self.as_error else value

    @property
    def error_label(self) -> str:
        return f"error e (%) = 100 − best {self.label}" if self.as_error else f"best {self.label}"


def _from_rules(metric: str) -> MetricInfo:
    return MetricInfo(
        name=metric,
        label=metric.replace("_top", " top-").replace("_", " "),
        percent=trialdir.stored_as_fraction(metric),
        lower_is_better=any(tag in metric for tag in ("loss", "error", "seconds")),
    )


METRICS = {name: _from_rules(name) for name in KNOWN}
METRICS[REWARD] = MetricInfo(REWARD, "reward ACC·(FLOPs/T)^w", percent=False, lower_is_better=False, best_prefix="")


def info(metric: str) -> MetricInfo:
    return METRICS.get(metric) or _from_rules(metric)


def is_fraction_metric(metric: str) -> bool:
    """Accuracies are stored as fractions 0..1 and shown in %."""
    return info(metric).percent


def lower_is_better(metric: str) -> bool:
    return info(metric).lower_is_better


# --- costs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostInfo:
    name: str  # flops, params or latency
    label: str  # axis label
    divisor: float  # stored value / divisor = shown value
    column: str = ""  # table header, where shorter than the axis label

    @property
    def header(self) -> str:
        return self.column or self.label


TRAIN_LATENCY = "training time per image (ms, from train images/s)"
COSTS = {
    "flops": CostInfo("flops", "GFLOPs", 1e9),
    "params": CostInfo("params", "parameters (M)", 1e6, column="params (M)"),
    "latency": CostInfo("latency", TRAIN_LATENCY, 1.0),  # already in ms per image
}


def flops_unit(values: list[float]) -> tuple[float, str]:
    """GFLOPs for real networks; MFLOPs when every model is below 0.1 GFLOPs (small proxies)."""
    return (1e6, "MFLOPs") if values and max(values) < 1e8 else (1e9, "GFLOPs")


def cost_info(x: str, flops: list[float] | None = None, measured: str | None = None) -> CostInfo:
    """The cost axis `x` (flops, params, latency): FLOPs in the unit `flops` calls for; latency measured on the
    device `measured` names, else derived from the training throughput."""
    if x == "flops":
        divisor, unit = flops_unit(flops or [])
        return CostInfo("flops", unit, divisor)
    if x == "latency" and measured:
        return CostInfo("latency", f"latency (ms/image, {measured})", 1.0)
    return COSTS[x]
