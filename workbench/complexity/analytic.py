"""An analytic cost model: parameters, multiply-adds and activations from the stage table alone, no torch.

fvcore needs a built model and a traced forward pass (seconds for the big presets); a search that checks a
FLOP budget before training samples thousands of candidates, so it needs the closed form below. It counts
what fvcore counts under the workbench's convention: convolution and linear multiply-adds (no bias, no batch
norm, no pooling, no element-wise ops), and the outputs of those layers as activations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.schema.architecture import Architecture, BlockSpec

CONVENTION = "FLOPs = multiply-adds of conv and linear layers (batch norm, pooling, element-wise ops excluded), batch 1"


@dataclass
class StageCost:
    name: str
    block: str
    blocks: int
    params: int = 0
    flops: int = 0
    activations: int = 0
    output_shape: tuple[int, int, int] = (0, 0, 0)


@dataclass
class Cost:
    name: str
    resolution: int
    num_classes: int
    params: int = 0
    flops: int = 0
    activations: int = 0
    stages: list[StageCost] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name, "resolution": self.resolution, "num_classes": self.num_classes,
            "params": self.params, "flops": self.flops, "activations": self.activations,
            "stages": [vars(s) | {"output_shape": list(s.output_shape)} for s in self.stages],
        }


def _out(size: int, kernel: int, stride: int) -> int:
    # Conv2dNormActivation pads (k - 1) // 2, so the output is ceil(size / stride) for odd kernels.
    pad = (kernel - 1) // 2
    return (size + 2 * pad - kernel) // stride + 1


class _Tally:
    """Accumulates one conv/linear layer at a time into a StageCost."""

    def __init__(self, stage: StageCost):
        self.stage = stage

    def conv(self, cin: int, cout: int, kernel: int, out_hw: int, groups: int = 1, bias: bool = False, norm: bool = True) -> None:
        weights = cout * (cin // groups) * kernel * kernel
        self.stage.params += weights + (cout if bias else 0) + (2 * cout if norm else 0)
        self.stage.flops += weights * out_hw * out_hw
        self.stage.activations += cout * out_hw * out_hw

    def squeeze_excitation(self, channels: int, squeeze: int) -> None:
        self.conv(channels, squeeze, 1, 1, bias=True, norm=False)
        self.conv(squeeze, channels, 1, 1, bias=True, norm=False)


def _mbconv(t: _Tally, spec: BlockSpec, size: int, out: int) -> None:
    hidden = spec.expanded_channels
    if hidden != spec.in_channels:
        t.conv(spec.in_channels, hidden, 1, size)
    t.conv(hidden, hidden, spec.kernel, out, groups=hidden)
    if spec.se_channels:
        t.squeeze_excitation(hidden, spec.se_channels)
    t.conv(hidden, spec.out_channels, 1, out)


def _fused_mbconv(t: _Tally, spec: BlockSpec, size: int, out: int) -> None:
    hidden = spec.expanded_channels
    if hidden != spec.in_channels:
        t.conv(spec.in_channels, hidden, spec.kernel, out)
        if spec.se_channels:
            t.squeeze_excitation(hidden, spec.se_channels)
        t.conv(hidden, spec.out_channels, 1, out)
    else:
        t.conv(spec.in_channels, spec.out_channels, spec.kernel, out)
        if spec.se_channels:
            t.squeeze_excitation(spec.out_channels, spec.se_channels)


# The cost of each block kind of workbench.schema.architecture.BLOCK_KINDS, layer for layer as workbench.model builds it.
BLOCK_COSTS: dict[str, Callable[[_Tally, BlockSpec, int, int], None]] = {"mbconv": _mbconv, "fused_mbconv": _fused_mbconv}


def _block(t: _Tally, spec: BlockSpec, size: int) -> int:
    out = _out(size, spec.kernel, spec.stride)
    BLOCK_COSTS[spec.block](t, spec, size, out)
    return out


def analytic_cost(arch: Architecture, resolution: int | None = None, num_classes: int = 1000) -> Cost:
    """Cost of `arch` at `resolution` (default: its eval resolution), stage by stage."""
    size = resolution or arch.resolution.eval_size
    cost = Cost(arch.name, size, num_classes)
    stem = StageCost("stem", "conv", 1)
    size = _out(size, 3, 2)
    _Tally(stem).conv(arch.in_channels, arch.stem_width, 3, size)
    stem.output_shape = (arch.stem_width, size, size)
    cost.stages.append(stem)
    specs = arch.blocks()
    for index, raw in enumerate(arch.stages):
        stage_specs = [s for s in specs if s.stage == index]
        stage = StageCost(f"stage{index + 1}", raw.block, len(stage_specs))
        tally = _Tally(stage)
        for spec in stage_specs:
            size = _block(tally, spec, size)
        stage.output_shape = (stage_specs[-1].out_channels, size, size)
        cost.stages.append(stage)
    head = StageCost("head", "conv1x1+pool+fc", 1)
    tally = _Tally(head)
    tally.conv(specs[-1].out_channels, arch.head_width, 1, size)
    head.params += arch.head_width * num_classes + num_classes
    head.flops += arch.head_width * num_classes
    head.activations += num_classes
    head.output_shape = (num_classes, 1, 1)
    cost.stages.append(head)
    for stage in cost.stages:
        cost.params += stage.params
        cost.flops += stage.flops
        cost.activations += stage.activations
    return cost
