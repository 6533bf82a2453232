"""MBConv and Fused-MBConv, assembled from torchvision.ops so that module names match torchvision's."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

from workbench.schema.architecture import BlockSpec

class GELU(nn.GELU):
    """nn.GELU taking the `inplace` argument torchvision's layers pass to every activation (GELU has no in-place form)."""

    def __init__(self, inplace: bool = False):
        super().__init__()


# The module of each activation of workbench.schema.architecture.ACTIVATIONS.
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": GELU,
    "hardswish": nn.Hardswish, "mish": nn.Mish, "elu": nn.ELU,
}


class _Residual(nn.Module):
    """A block body with torchvision's residual rule: add the input (after stochastic depth) when shapes agree."""

    def __init__(self, spec: BlockSpec, layers: list[nn.Module]):
        super().__init__()
        self.use_res_connect = spec.residual
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(spec.drop_rate, "row")
        self.out_channels = spec.out_channels

    def forward(self, x: Tensor) -> Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += x
        return result


def _se(spec: BlockSpec, activation: type[nn.Module]) -> list[nn.Module]:
    if spec.se_channels == 0:
        return []
    return [SqueezeExcitation(spec.expanded_channels, spec.se_channels, activation=partial(activation, inplace=True))]


class MBConv(_Residual):
    """1x1 expand (skipped when expand is 1), depthwise kxk, squeeze-excitation, 1x1 linear projection."""

    def __init__(self, spec: BlockSpec, norm: Callable[..., nn.Module], activation: type[nn.Module]):
        hidden = spec.expanded_channels
        layers: list[nn.Module] = []
        if hidden != spec.in_channels:
            layers.append(Conv2dNormActivation(spec.in_channels, hidden, kernel_size=1, norm_layer=norm, activation_layer=activation))
        layers.append(Conv2dNormActivation(hidden, hidden, kernel_size=spec.kernel, stride=spec.stride, groups=hidden,
                                           norm_layer=norm, activation_layer=activation))
        layers += _se(spec, activation)
        layers.append(Conv2dNormActivation(hidden, spec.out_channels, kernel_size=1, norm_layer=norm, activation_layer=None))
        super().__init__(spec, layers)


class FusedMBConv(_Residual):
    """kxk expand fused into one dense conv, then 1x1 projection; a single kxk conv when expand is 1."""

    def __init__(self, spec: BlockSpec, norm: Callable[..., nn.Module], activation: type[nn.Module]):
        hidden = spec.expanded_channels
        layers: list[nn.Module] = []
        if hidden != spec.in_channels:
            layers.append(Conv2dNormActivation(spec.in_channels, hidden, kernel_size=spec.kernel, stride=spec.stride,
                                               norm_layer=norm, activation_layer=activation))
            layers += _se(spec, activation)
            layers.append(Conv2dNormActivation(hidden, spec.out_channels, kernel_size=1, norm_layer=norm, activation_layer=None))
        else:
            layers.append(Conv2dNormActivation(spec.in_channels, spec.out_channels, kernel_size=spec.kernel, stride=spec.stride,
                                               norm_layer=norm, activation_layer=activation))
            layers += _se(spec, activation)
        super().__init__(spec, layers)


# The module of each block kind of workbench.schema.architecture.BLOCK_KINDS.
BLOCKS: dict[str, type[_Residual]] = {"mbconv": MBConv, "fused_mbconv": FusedMBConv}
