"""The search-space schema: a study's `"search": {...}` block.

A design space around a base network: per-stage choices (block type, expansion, kernel, layers, output channels,
squeeze-excitation) and global ones (stem and head width, stochastic-depth schedule and rate, dropout), sampled
under a FLOP range and a parameter ceiling that the analytic cost model checks before anything trains, and a
latency range that a latency table of the user's own device predicts (`workbench latency table`); `objectives`
makes the search multi-objective (NSGA-II through Optuna). Pure pydantic, no torch.

Each choice has a key that is the architecture's own dotted path ("stages.3.block", "head_channels",
"stochastic_depth.schedule"); "stages.N.se" switches a stage's squeeze-excitation on (se_ratio) or off.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workbench.schema.architecture import (MAX_BLOCKS, MAX_CHANNELS, MAX_EXPAND, MAX_KERNEL, MAX_LAYERS, MAX_RESOLUTION,
                                           MAX_STAGES, BlockKind)
from workbench.schema.common import PathText, Strict, path_problem, raise_at

Schedule = Literal["linear", "uniform", "power", "none"]
# Stage fields a stage-count base cannot do without (a base architecture supplies them otherwise).
REQUIRED_WITHOUT_BASE = ("block", "expand", "kernel", "layers", "out_channels", "stride")
# Bounds of a design space, far beyond any real one (the shipped GPU space offers at most 5 values a choice and
# allows 20,000 draws), so that no space takes long to list, draw from or cost:
MAX_CHOICES = 256  # values of one list choice (a span lists at most MAX_CHANNELS or MAX_LAYERS values)
MAX_TRIES = 100_000  # rejection sampling's draws
# Rejection sampling also ends once it has costed this many blocks, each draw counted as its network's blocks plus
# DRAW_OVERHEAD (drawing and validating one costs about as much as costing 50 blocks): about two seconds of work,
# whatever the space and max_tries. The shipped spaces need under 10 % of it (V2-S's GPU space: 64 architectures in 568
# draws, 51,000 blocks); a space that accepts 1 draw in 100 still finds 64 architectures within it.
SAMPLING_BUDGET = 600_000
DRAW_OVERHEAD = 50
MAX_FLOPS = 1e15  # multiply-adds: V2-L at 480 px has 5.3e10
MAX_PARAMS = 10**12  # V2-L has 1.2e8
MAX_CLASSES = 100_000  # ImageNet-21k has 21,841
MAX_LATENCY_MS = 1e6  # a thousand seconds a call: far beyond any network's batch latency
# What a multi-objective search can optimise, and in which direction: the accuracy-like figures every epoch reports,
# and the architecture's own costs (each report carries them: latency as the table predicts it before training).
OBJECTIVES = {"val_top1": "max", "val_top5": "max", "reward": "max", "val_loss": "min",
              "latency_ms": "min", "flops": "min", "params": "min"}
Objective = Literal[tuple(OBJECTIVES)]  # type: ignore[valid-type]
LATENCY_TABLE_COMMAND = "workbench latency table"


def _distinct(values: list) -> list:
    if len(values) > MAX_CHOICES:
        raise ValueError(f"{len(values):,} values, more than the limit of {MAX_CHOICES}")
    duplicates = sorted({repr(v) for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"duplicate values {', '.join(duplicates)}")
    return values


class IntSpan(Strict):
    """Every integer from min to max, both included."""

    min: int = Field(ge=1, le=MAX_LAYERS, description=f"1 to {MAX_LAYERS}.")
    max: int = Field(ge=1, le=MAX_LAYERS, description=f"1 to {MAX_LAYERS}.")

    @model_validator(mode="after")
    def _ordered(self) -> IntSpan:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self

    def values(self) -> list[int]:
        return list(range(self.min, self.max + 1))


class ChannelSpan(Strict):
    """Every multiple of `divisor` from min to max."""

    min: int = Field(ge=1, le=MAX_CHANNELS, description=f"1 to {MAX_CHANNELS}.")
    max: int = Field(ge=1, le=MAX_CHANNELS, description=f"1 to {MAX_CHANNELS}.")
    divisor: int = Field(default=8, ge=1, le=MAX_CHANNELS, description=(
        "Channel counts are multiples of this (8 keeps torchvision's rounding a no-op)."))

    @model_validator(mode="after")
    def _not_empty(self) -> ChannelSpan:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if not self.values():
            raise ValueError(f"no multiple of {self.divisor} lies between {self.min} and {self.max}")
        return self

    def values(self) -> list[int]:
        first = -(-self.min // self.divisor) * self.divisor
        return list(range(first, self.max + 1, self.divisor))


Channels = list[int] | ChannelSpan
Layers = list[int] | IntSpan


def _values_or_span(value: Any, span: type[Strict]) -> Any:
    """A list of positive integers, or a span object. Checked here in full so that an error names one shape,
    not both members of the union."""
    if value is None:
        return None
    if isinstance(value, dict):
        return span.model_validate(value)
    if not isinstance(value, list):
        keys = "min, max and divisor" if span is ChannelSpan else "min and max"
        raise ValueError(f"expected a list of values or an object with {keys}, got {_short(value)}")
    if not value:
        raise ValueError("needs at least one value")
    top = MAX_LAYERS if span is IntSpan else MAX_CHANNELS
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top]
    if bad:
        raise ValueError(f"values must be integers from 1 to {top}, got {_short(bad)}")
    return _distinct(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _choice_values(choice: Any) -> list | None:
    if choice is None:
        return None
    return choice.values() if isinstance(choice, (IntSpan, ChannelSpan)) else list(choice)


class StageChoices(Strict):
    """Choices for one stage. A field left out keeps the base architecture's value; a one-value list fixes it."""

    block: list[BlockKind] | None = Field(default=None, min_length=1, max_length=2)
    expand: list[float] | None = Field(default=None, min_length=1, max_length=MAX_CHOICES, description=(
        f"Expansion ratios (each from 1 to {MAX_EXPAND}; at most {MAX_CHOICES} values)."))
    kernel: list[int] | None = Field(default=None, min_length=1, max_length=MAX_CHOICES, description=(
        f"Odd kernel sizes (at most {MAX_KERNEL}; at most {MAX_CHOICES} values)."))
    layers: Layers | None = Field(default=None, description=(
        f'A list of block counts (each 1 to {MAX_LAYERS}, at most {MAX_CHOICES} values), or {{"min": 1, "max": 4}}.'))
    out_channels: Channels | None = Field(default=None, description=(
        f'A list (each 1 to {MAX_CHANNELS}, at most {MAX_CHOICES} values), or {{"min": 16, "max": 64, "divisor": 8}}.'))
    se: list[bool] | None = Field(default=None, min_length=1, max_length=2, description="Squeeze-excitation on (search.se_ratio) or off.")
    stride: Literal[1, 2] | None = Field(default=None, description="Fixed, not searched; required when search.base is a stage count.")

    @field_validator("block", "se")
    @classmethod
    def _unique(cls, values: list | None) -> list | None:
        return values if values is None else _distinct(values)

    @field_validator("expand")
    @classmethod
    def _expansions(cls, values: list[float] | None) -> list[float] | None:
        if values is not None:
            bad = [v for v in values if v < 1]
            if bad:
                raise ValueError(f"expansion ratios must be >= 1, got {_short(bad)}")
            bad = [v for v in values if v > MAX_EXPAND]
            if bad:
                raise ValueError(f"expansion ratios must be at most {MAX_EXPAND}, got {_short(bad)}")
            _distinct(values)
        return values

    @field_validator("kernel")
    @classmethod
    def _odd_kernels(cls, values: list[int] | None) -> list[int] | None:
        if values is not None:
            bad = [k for k in values if k < 1 or k % 2 == 0]
            if bad:
                raise ValueError(f"kernels must be odd and positive, got {_short(bad)}")
            bad = [k for k in values if k > MAX_KERNEL]
            if bad:
                raise ValueError(f"kernels must be at most {MAX_KERNEL}, got {_short(bad)}")
            _distinct(values)
        return values

    @field_validator("layers", "out_channels", mode="before")
    @classmethod
    def _shape(cls, value, info):
        return _values_or_span(value, IntSpan if info.field_name == "layers" else ChannelSpan)

    def dimensions(self, index: int) -> list[tuple[str, list]]:
        fields = ("block", "expand", "kernel", "layers", "out_channels", "se")
        return [(f"stages.{index}.{name}", _choice_values(getattr(self, name))) for name in fields if getattr(self, name) is not None]


class GlobalChoices(Strict):
    stem_channels: Channels | None = Field(default=None, description=(
        f"Width of the stem (and stages[0].in_channels; 1 to {MAX_CHANNELS}); required when search.base is a stage count."))
    head_channels: Channels | None = Field(default=None, description=f"Width of the final 1x1 conv (1 to {MAX_CHANNELS}).")
    stochastic_depth_schedule: list[Schedule] | None = Field(default=None, min_length=1, max_length=4)
    stochastic_depth_rate: list[float] | None = Field(default=None, min_length=1, max_length=MAX_CHOICES)
    dropout: list[float] | None = Field(default=None, min_length=1, max_length=MAX_CHOICES, description="Classifier dropout.")

    @field_validator("stochastic_depth_rate", "dropout")
    @classmethod
    def _rates(cls, values, info):
        if values is not None:
            bad = [v for v in values if not 0 <= v < 1]
            if bad:
                raise ValueError(f"rates must lie in [0, 1), got {_short(bad)}")
            _distinct(values)
        return values

    @field_validator("stem_channels", "head_channels", mode="before")
    @classmethod
    def _shape(cls, value, info):
        return _values_or_span(value, ChannelSpan)

    def dimensions(self) -> list[tuple[str, list]]:
        keys = {"stem_channels": "stem_channels", "head_channels": "head_channels",
                "stochastic_depth_schedule": "stochastic_depth.schedule", "stochastic_depth_rate": "stochastic_depth.rate",
                "dropout": "dropout"}
        return [(key, _choice_values(getattr(self, name))) for name, key in keys.items() if getattr(self, name) is not None]


class Bounds(Strict):
    min: float | None = Field(default=None, ge=0, le=MAX_FLOPS, description=f"0 to {MAX_FLOPS:.0e}.")
    max: float | None = Field(default=None, ge=1, le=MAX_FLOPS, description=f"1 to {MAX_FLOPS:.0e}.")

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not exceed max ({self.max:g})")
        return self


class LatencyBounds(Strict):
    min: float | None = Field(default=None, ge=0, le=MAX_LATENCY_MS, description=f"Milliseconds, 0 to {MAX_LATENCY_MS:.0e}.")
    max: float | None = Field(default=None, gt=0, le=MAX_LATENCY_MS, description=f"Milliseconds, above 0, at most {MAX_LATENCY_MS:.0e}.")

    @model_validator(mode="after")
    def _ordered(self) -> LatencyBounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both (milliseconds)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g} ms) must not exceed max ({self.max:g} ms)")
        return self


class Constraints(Strict):
    """Checked on the network as trained (after the study's scale) with the analytic cost model, before training;
    latency with search.latency_table's predictor, before training, and measured after it."""

    flops: Bounds | None = Field(default=None, description="Multiply-adds range, e.g. {\"min\": 2e6, \"max\": 6e6}.")
    max_params: int | None = Field(default=None, ge=1, le=MAX_PARAMS, description=f"1 to {MAX_PARAMS:.0e}.")
    resolution: int | None = Field(default=None, ge=8, le=MAX_RESOLUTION, description=(
        f"Input size of the count (8 to {MAX_RESOLUTION}); default: the network's eval resolution."))
    num_classes: int = Field(default=1000, ge=1, le=MAX_CLASSES, description=(
        f"Classifier width of the count (workbench flops --num-classes; at most {MAX_CLASSES:,}); the dataset's class "
        "count makes it the trained network's."))
    latency_ms: LatencyBounds | None = Field(default=None, description=(
        'Latency range in milliseconds per call, e.g. {"max": 1.5}, on the device, runtime, batch and threads of '
        "search.latency_table: predicted by the table before anything trains, measured after training."))

    def violations(self, params: int, flops: int, latency_ms: float | None = None) -> dict[str, float]:
        """Relative excess over each bound: > 0 means violated (Optuna's constraint convention)."""
        out = {}
        if self.latency_ms is not None and latency_ms is not None:
            if self.latency_ms.max is not None:
                out["latency_above_max"] = latency_ms / self.latency_ms.max - 1
            if self.latency_ms.min:
                out["latency_below_min"] = 1 - latency_ms / self.latency_ms.min
        if self.flops is not None and self.flops.max is not None:
            out["flops_above_max"] = flops / self.flops.max - 1
        if self.flops is not None and self.flops.min is not None and self.flops.min > 0:
            out["flops_below_min"] = 1 - flops / self.flops.min
        if self.max_params is not None:
            out["params_above_max"] = params / self.max_params - 1
        return out


class Reward(Strict):
    """EfficientNet's NAS objective ACC(m) x [FLOPS(m)/T]^w, reported every epoch as `reward`."""

    target_flops: float | None = Field(default=None, ge=1, le=MAX_FLOPS, description=f"T (1 to {MAX_FLOPS:.0e}); default: constraints.flops.max.")
    weight: float = Field(default=-0.07, ge=-2, le=0, description=(
        "w, from -2 to 0: -0.07 in EfficientNet (MnasNet's soft constraint), -1 MnasNet's hard one."))


class SearchSpace(Strict):
    name: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_.+-]+$", description=(
        "Design-space label (the EDF groups by it); default: the study's name."))
    base: str | int = Field(description=(
        f"Base architecture JSON (relative to the study file), or a stage count (1 to {MAX_STAGES}) when every stage's "
        "choices are complete."))
    stages: list[StageChoices] = Field(min_length=1, max_length=MAX_STAGES, description="One entry per stage of the base, in order.")
    global_: GlobalChoices = Field(default_factory=GlobalChoices, alias="global")
    se_ratio: float = Field(default=0.25, gt=0, le=1, description="Squeeze-excitation ratio of a stage whose se choice is true.")
    constraints: Constraints = Field(default_factory=Constraints)
    reward: Reward = Field(default_factory=Reward)
    max_tries: int = Field(default=20000, ge=1, le=MAX_TRIES, description=(
        f"Rejection sampling: draws allowed to find num_samples architectures within the constraints (at most "
        f"{MAX_TRIES:,}). Sampling also ends once it has costed {SAMPLING_BUDGET:,} blocks, each draw counting "
        f"{DRAW_OVERHEAD} more (about two seconds; some 10,000 draws of a small proxy, 1,100 of a {MAX_BLOCKS}-block network)."))
    latency_table: PathText | None = Field(default=None, description=(
        f"Latency table of this design space on the target device (relative to the study file), written by "
        f"`{LATENCY_TABLE_COMMAND} STUDY.json`; needed by constraints.latency_ms and a latency_ms objective. A study "
        "refuses one made on another device or torch version."))
    objectives: list[Objective] | None = Field(default=None, min_length=2, max_length=4, description=(
        "Two to four figures to optimise at once, e.g. [\"val_top1\", \"latency_ms\"] (" +
        ", ".join(f"{name}: {mode}" for name, mode in OBJECTIVES.items()) + "): algorithm optuna runs NSGA-II on them "
        "(asha cannot rank several objectives), random samples as usual; `search analyze` draws the measured Pareto front."))

    @field_validator("base")
    @classmethod
    def _base(cls, base: str | int) -> str | int:
        if isinstance(base, int) and not 1 <= base <= MAX_STAGES:
            raise ValueError(f"a stage count must lie in [1, {MAX_STAGES}]")
        if isinstance(base, str) and not base.strip():
            raise ValueError("give an architecture path or a stage count")
        if isinstance(base, str) and path_problem(base):
            raise ValueError(path_problem(base))
        return base

    @model_validator(mode="after")
    def _complete(self) -> SearchSpace:
        problems: list[tuple[tuple, str]] = []
        if isinstance(self.base, int):
            if len(self.stages) != self.base:
                problems.append((("stages",), f"{len(self.stages)} entries but base declares {self.base} stages"))
            for i, stage in enumerate(self.stages):
                problems += [(("stages", i, name), "required when search.base is a stage count")
                             for name in REQUIRED_WITHOUT_BASE if getattr(stage, name) is None]
            if self.global_.stem_channels is None:
                problems.append((("global", "stem_channels"), "required when search.base is a stage count"))
        if not self.searched():
            problems.append((("stages",), "nothing to search: give at least one choice with two or more values"))
        problems += self._objective_problems()
        raise_at("SearchSpace", problems)
        return self

    def _objective_problems(self) -> list[tuple[tuple, str]]:
        problems: list[tuple[tuple, str]] = []
        objectives = self.objectives or []
        if len(set(objectives)) != len(objectives):
            problems.append((("objectives",), "duplicate objectives"))
        if self.latency_table is None:
            build = f"build one on the target device with `{LATENCY_TABLE_COMMAND} STUDY.json -o FILE` and name it here"
            if self.constraints.latency_ms is not None:
                problems.append((("latency_table",), f"constraints.latency_ms needs a latency table: {build}"))
            elif "latency_ms" in objectives:
                problems.append((("latency_table",), f"the latency_ms objective needs a latency table: {build}"))
        if "reward" in objectives and self.target_flops is None:
            problems.append((("reward", "target_flops"), "the reward objective needs T: set it, or constraints.flops.max"))
        return problems

    @property
    def uses_latency(self) -> bool:
        """Whether the search predicts latency: a latency budget, a latency objective, or a table named anyway."""
        return self.latency_table is not None

    def objective_modes(self) -> list[str]:
        return [OBJECTIVES[name] for name in self.objectives or []]

    def dimensions(self) -> list[tuple[str, list]]:
        """Every declared choice as (architecture dotted key, values), in a fixed order (sampling depends on it)."""
        dims = [d for i, stage in enumerate(self.stages) for d in stage.dimensions(i)]
        return dims + self.global_.dimensions()

    def searched(self) -> list[tuple[str, list]]:
        return [(key, values) for key, values in self.dimensions() if len(values) > 1]

    @property
    def target_flops(self) -> float | None:
        if self.reward.target_flops is not None:
            return self.reward.target_flops
        bounds = self.constraints.flops
        return bounds.max if bounds is not None else None
