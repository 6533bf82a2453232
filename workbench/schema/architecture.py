"""The architecture schema: stages of MBConv / Fused-MBConv blocks, compound scaling, stochastic depth.

Pure pydantic, no torch: validating a file or printing its stage table stays instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from workbench.schema.common import Strict, raise_at


@dataclass(frozen=True)
class BlockKindInfo:
    """One kind of block. Adding one: an entry here, its module in workbench.model.blocks.BLOCKS and its cost function
    in workbench.complexity.analytic.BLOCK_COSTS; tests/test_block_kinds.py checks the three agree, block by block."""

    name: str
    short: str  # its label in stage tables
    default_se: float  # squeeze-excitation ratio when a stage does not say
    description: str


BLOCK_KINDS: dict[str, BlockKindInfo] = {info.name: info for info in (
    BlockKindInfo("mbconv", "MB", 0.25, "1x1 expand, depthwise kxk, squeeze-excitation, 1x1 project (EfficientNet's MBConv)"),
    BlockKindInfo("fused_mbconv", "F", 0.0, "kxk expand, 1x1 project (EfficientNetV2's Fused-MBConv; a single kxk conv at expand 1)"),
)}
BlockKind = Literal[tuple(BLOCK_KINDS)]  # type: ignore[valid-type]
# Activations by name; workbench.model.blocks.ACTIVATION_LAYERS maps each to its torch module (checked by a test).
ACTIVATIONS = ("silu", "relu", "relu6", "gelu", "hardswish", "mish", "elu")
SCHEMA_REF = Field(default=None, alias="$schema", exclude=True, description="Path or URL of this file's JSON Schema.")

# Upper bounds no real network comes near (each is several times the largest published EfficientNet's value), so
# that validating, showing or costing any file stays instant and no network is thousands of times B7's size:
MAX_STAGES = 32  # B0-B7 and V2-M/L have 7 stages
MAX_LAYERS = 100  # blocks per stage before depth scaling; V2-L's widest stage has 25
MAX_BLOCKS = 500  # blocks after depth scaling (depth_mult, compounded with a study's scale); V2-L has 79, B7 55
MAX_CHANNELS = 8192  # any declared width; V2's head is 1280, B0's widest stage 320
MAX_WIDTH = 16384  # any width after width scaling, expanded widths included; B7's widest is 3840 (640 x 6)
MAX_EXPAND = 16  # expansion ratio; every EfficientNet uses at most 6
MAX_KERNEL = 31  # kernel size; EfficientNets use 3 and 5, MixNet up to 11
MAX_RESOLUTION = 2048  # pixels; B7 trains at 600, Noisy-Student L2 at 800


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's `_make_divisible`: round to a multiple of `divisor`, never more than 10 % below `value`."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def scale_depth(layers: int, depth_mult: float) -> int:
    return int(math.ceil(layers * depth_mult))


class Stage(Strict):
    block: BlockKind = Field(description="; ".join(f"{info.name}: {info.description}" for info in BLOCK_KINDS.values()) + ".")
    expand: float = Field(ge=1, le=MAX_EXPAND, description=f"Expansion ratio of the hidden width to the block's input width (1 to {MAX_EXPAND}).")
    kernel: int = Field(ge=1, le=MAX_KERNEL, description=f"Kernel size of the spatial convolution (odd, at most {MAX_KERNEL}).")
    stride: Literal[1, 2] = Field(description="Stride of the stage's first block.")
    in_channels: int = Field(ge=1, le=MAX_CHANNELS, description=f"Input width before width scaling (at most {MAX_CHANNELS}).")
    out_channels: int = Field(ge=1, le=MAX_CHANNELS, description=f"Output width before width scaling (at most {MAX_CHANNELS}).")
    layers: int = Field(ge=1, le=MAX_LAYERS, description=(
        f"Number of blocks before depth scaling (at most {MAX_LAYERS}; all stages together at most {MAX_BLOCKS} after it)."))
    se_ratio: float | None = Field(default=None, ge=0, le=1, description="Squeeze-excitation width over block input width; default 0.25 for mbconv, 0 for fused_mbconv.")
    stochastic_depth: float | None = Field(default=None, ge=0, lt=1, description="Drop rate for every block of this stage; overrides the global schedule.")

    @field_validator("kernel")
    @classmethod
    def _odd_kernel(cls, k: int) -> int:
        if k % 2 == 0:
            raise ValueError(f"kernel must be odd, got {k}")
        return k

    @property
    def se(self) -> float:
        if self.se_ratio is not None:
            return self.se_ratio
        return BLOCK_KINDS[self.block].default_se


class StochasticDepth(Strict):
    rate: float = Field(default=0.2, ge=0, lt=1, description="Drop rate: the largest rate of the schedule.")
    schedule: Literal["linear", "uniform", "power", "none"] = Field(default="linear", description="linear: rate*i/N (torchvision); uniform: rate everywhere; power: rate*(i/N)^power; none.")
    power: float = Field(default=2.0, gt=0, le=100, description="Exponent of the power schedule (at most 100); larger keeps shallow blocks more often.")

    def block_rate(self, index: int, total: int) -> float:
        if self.schedule == "linear":
            return self.rate * index / total  # torchvision's exact expression, so rates match bit for bit
        if self.schedule == "uniform":
            return self.rate
        if self.schedule == "power":
            return self.rate * (index / total) ** self.power
        return 0.0


class Norm(Strict):
    eps: float = Field(default=1e-5, gt=0, lt=1)
    momentum: float = Field(default=0.1, gt=0, le=1)


class Resolution(Strict):
    train: int = Field(default=224, ge=8, le=MAX_RESOLUTION, description=f"Training image size in pixels (8 to {MAX_RESOLUTION}).")
    eval: int | None = Field(default=None, ge=8, le=MAX_RESOLUTION, description=(
        f"Evaluation image size (8 to {MAX_RESOLUTION}); defaults to the train resolution."))

    @property
    def eval_size(self) -> int:
        return self.eval if self.eval is not None else self.train


class Scale(Strict):
    """Compound scaling applied on top of an architecture, e.g. to make a cheap proxy of a big network."""

    width_mult: float = Field(default=1.0, gt=0, le=16, description=(
        f"Multiplies the architecture's width_mult (at most 16; every scaled width at most {MAX_WIDTH})."))
    depth_mult: float = Field(default=1.0, gt=0, le=16, description=(
        f"Multiplies the architecture's depth_mult (at most 16; at most {MAX_BLOCKS} blocks after scaling)."))
    resolution: int | None = Field(default=None, ge=8, le=MAX_RESOLUTION, description=(
        f"Replaces both train and eval resolution (8 to {MAX_RESOLUTION})."))


@dataclass(frozen=True)
class BlockSpec:
    """One block after scaling: everything the builder and the cost model need."""

    stage: int
    index: int  # position inside its stage
    block: str
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    expanded_channels: int
    se_channels: int  # 0 when the block has no squeeze-excitation
    drop_rate: float

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class ResolvedStage:
    block: str
    expand: float
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int
    se_ratio: float


class Architecture(Strict):
    schema_: str | None = SCHEMA_REF
    name: str = Field(min_length=1, max_length=200, description="Label in tables and trial records (at most 200 characters).")
    description: str = ""
    in_channels: int = Field(default=3, ge=1, le=64, description="Image channels: 1 for grayscale, 3 for RGB (at most 64).")
    stem_channels: int | None = Field(default=None, ge=1, le=MAX_CHANNELS, description=(
        f"Output of the 3x3 stride-2 stem (at most {MAX_CHANNELS}); default: stages[0].in_channels."))
    stages: list[Stage] = Field(min_length=1, max_length=MAX_STAGES, description=f"1 to {MAX_STAGES} stages.")
    head_channels: int | None = Field(default=None, ge=1, le=MAX_CHANNELS, description=(
        f"Width of the final 1x1 conv (at most {MAX_CHANNELS}); null: 4 x last stage's out_channels (torchvision V1)."))
    dropout: float = Field(default=0.2, ge=0, lt=1, description="Dropout before the classifier.")
    stochastic_depth: StochasticDepth = StochasticDepth()
    width_mult: float = Field(default=1.0, gt=0, le=16, description=f"Width multiplier (at most 16; every scaled width at most {MAX_WIDTH}).")
    depth_mult: float = Field(default=1.0, gt=0, le=16, description=(
        f"Depth multiplier: each stage gets ceil(layers x depth_mult) blocks (at most 16; at most {MAX_BLOCKS} blocks in all)."))
    norm: Norm = Norm()
    activation: Literal[ACTIVATIONS] = "silu"  # type: ignore[valid-type]
    resolution: Resolution = Resolution()

    @model_validator(mode="after")
    def _stages_chain(self) -> Architecture:
        problems = []
        if self.stem_channels is not None and self.stem_channels != self.stages[0].in_channels:
            problems.append(f"stem_channels is {self.stem_channels} but stages[0].in_channels is {self.stages[0].in_channels}")
        for i in range(1, len(self.stages)):
            prev, cur = self.stages[i - 1], self.stages[i]
            if cur.in_channels != prev.out_channels:
                problems.append(f"stages[{i}].in_channels is {cur.in_channels} but stages[{i - 1}].out_channels is {prev.out_channels}")
        if problems:
            raise ValueError("\n".join(problems))
        raise_at("Architecture", self.size_problems())
        return self

    def size_problems(self) -> list[tuple[tuple, str]]:
        """Where this network, after its own width and depth multipliers, exceeds MAX_BLOCKS or MAX_WIDTH.

        Stage by stage, without listing the blocks, so that even 10^9 layers are refused at once."""
        total = sum(scale_depth(s.layers, self.depth_mult) for s in self.stages)
        if total > MAX_BLOCKS:
            return [(("depth_mult",), f"{total:,} blocks after depth scaling (x{self.depth_mult:g}), more than the limit of "
                                      f"{MAX_BLOCKS} (EfficientNetV2-L has 79): lower layers or depth_mult")]
        widths = {"the stem": self.stem_width, "the head": self.head_width}
        for i, stage in enumerate(self.stages):
            out = self.channels(stage.out_channels)
            widest_input = max(self.channels(stage.in_channels), out if scale_depth(stage.layers, self.depth_mult) > 1 else 0)
            widths[f"the expanded width of stages[{i}]"] = make_divisible(widest_input * stage.expand)
            widths[f"stages[{i}].out_channels"] = out
        where, widest = max(widths.items(), key=lambda item: item[1])
        if widest > MAX_WIDTH:
            return [(("width_mult",), f"{where} is {widest:,} channels after width scaling (x{self.width_mult:g}), more than the "
                                      f"limit of {MAX_WIDTH:,} (EfficientNet-B7's widest is 3,840): lower the widths or width_mult")]
        return []

    # --- derived values -------------------------------------------------------------------------

    def channels(self, value: float) -> int:
        return make_divisible(value * self.width_mult)

    def resolved_stages(self) -> list[ResolvedStage]:
        return [
            ResolvedStage(
                block=s.block, expand=s.expand, kernel=s.kernel, stride=s.stride,
                in_channels=self.channels(s.in_channels), out_channels=self.channels(s.out_channels),
                layers=scale_depth(s.layers, self.depth_mult), se_ratio=s.se,
            )
            for s in self.stages
        ]

    @property
    def stem_width(self) -> int:
        return self.channels(self.stem_channels if self.stem_channels is not None else self.stages[0].in_channels)

    @property
    def head_width(self) -> int:
        last = self.channels(self.stages[-1].out_channels)
        return 4 * last if self.head_channels is None else self.channels(self.head_channels)

    def blocks(self, drop_rate: float | None = None) -> list[BlockSpec]:
        """Every block after scaling, in order, with its stochastic-depth rate.

        `drop_rate` replaces the schedule's rate (progressive learning changes it between stages).
        """
        schedule = self.stochastic_depth if drop_rate is None else self.stochastic_depth.model_copy(update={"rate": drop_rate})
        stages = self.resolved_stages()
        total = sum(s.layers for s in stages)
        specs, position = [], 0
        for stage_index, (stage, raw) in enumerate(zip(stages, self.stages)):
            for index in range(stage.layers):
                in_ch = stage.in_channels if index == 0 else stage.out_channels
                rate = raw.stochastic_depth if raw.stochastic_depth is not None else schedule.block_rate(position, total)
                specs.append(BlockSpec(
                    stage=stage_index, index=index, block=stage.block, kernel=stage.kernel,
                    stride=stage.stride if index == 0 else 1, in_channels=in_ch, out_channels=stage.out_channels,
                    expanded_channels=make_divisible(in_ch * stage.expand),
                    se_channels=max(1, int(in_ch * stage.se_ratio)) if stage.se_ratio > 0 else 0,
                    drop_rate=rate,
                ))
                position += 1
        return specs

    def scaled(self, scale: Scale | None) -> Architecture:
        """This architecture with `scale` compounded onto its multipliers and resolution (not validated: check
        `size_problems()` of the result, as TrainJob does)."""
        if scale is None:
            return self
        update = {"width_mult": self.width_mult * scale.width_mult, "depth_mult": self.depth_mult * scale.depth_mult}
        if scale.resolution is not None:
            update["resolution"] = Resolution(train=scale.resolution, eval=scale.resolution)
        return self.model_copy(update=update)
