"""Turn a validated Architecture into an nn.Module whose state dict matches torchvision's EfficientNets."""

from __future__ import annotations

from functools import partial
from itertools import groupby

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from workbench.model.blocks import ACTIVATION_LAYERS, BLOCKS
from workbench.schema.architecture import Architecture


class EfficientNet(nn.Module):
    """features (stem, one Sequential per stage, head) -> avgpool -> classifier, as torchvision lays it out."""

    def __init__(self, arch: Architecture, num_classes: int = 1000):
        super().__init__()
        self.arch = arch
        norm = partial(nn.BatchNorm2d, eps=arch.norm.eps, momentum=arch.norm.momentum)
        activation = ACTIVATION_LAYERS[arch.activation]
        layers: list[nn.Module] = [
            Conv2dNormActivation(arch.in_channels, arch.stem_width, kernel_size=3, stride=2, norm_layer=norm, activation_layer=activation)
        ]
        for _, specs in groupby(arch.blocks(), key=lambda spec: spec.stage):
            layers.append(nn.Sequential(*(BLOCKS[spec.block](spec, norm, activation) for spec in specs)))
        last = arch.blocks()[-1].out_channels
        layers.append(Conv2dNormActivation(last, arch.head_width, kernel_size=1, norm_layer=norm, activation_layer=activation))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=arch.dropout, inplace=True), nn.Linear(arch.head_width, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    @property
    def stages(self) -> list[nn.Sequential]:
        return list(self.features[1:-1])


def _init_weights(model: nn.Module) -> None:
    # torchvision's EfficientNet initialisation, so scratch training matches its recipe.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.out_features**0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def build_model(arch: Architecture, num_classes: int = 1000) -> EfficientNet:
    return EfficientNet(arch, num_classes)


def set_dropout(model: EfficientNet, rate: float) -> None:
    """Change the classifier's dropout in place (progressive learning never rebuilds the model)."""
    model.classifier[0].p = rate


def set_stochastic_depth(model: EfficientNet, rate: float) -> None:
    """Re-spread a new stochastic-depth rate over the blocks with the architecture's schedule, in place."""
    blocks = [block for stage in model.stages for block in stage]
    for block, spec in zip(blocks, model.arch.blocks(drop_rate=rate), strict=True):
        block.stochastic_depth.p = spec.drop_rate
