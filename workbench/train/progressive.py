"""EfficientNetV2 progressive learning: the per-stage image size and regularisation of a recipe.

Stage i of M (0-based) uses min + (max - min) * i / (M - 1) of each range (paper Table 6; one stage uses max).
Stage i ends after floor((i + 1) * epochs / M) epochs, as automl's efficientnetv2 splits its steps, so the
epochs are split evenly and any remainder goes to later stages. Without progressive learning there is one stage
with the architecture's resolution, dropout and stochastic depth, and the recipe's RandAugment and mixup.
No torch here: the plan is printed, tested and stored in config.json as plain data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from workbench.schema.architecture import Architecture
from workbench.schema.recipe import Progressive, Recipe

V2S_SIZE_RATIO = 128 / 300  # Table 6, V2-S: the smallest stage trains at 128 of the final 300 px


@dataclass(frozen=True)
class Stage:
    stage: int  # 1-based
    first_epoch: int  # 1-based, inclusive
    last_epoch: int
    image_size: int
    dropout: float
    stochastic_depth: float
    randaugment: int | None
    mixup: float

    @property
    def epochs(self) -> int:
        return self.last_epoch - self.first_epoch + 1

    def as_dict(self) -> dict:
        return asdict(self)


def interpolate(low: float, high: float, index: int, count: int) -> float:
    return high if count == 1 else low + (high - low) * index / (count - 1)


def plan_stages(recipe: Recipe, arch: Architecture) -> list[Stage]:
    """The stages of training `arch` (already scaled) with `recipe`."""
    if not recipe.progressive.enabled:
        return [Stage(1, 1, recipe.epochs, arch.resolution.train, arch.dropout, arch.stochastic_depth.rate,
                      recipe.augment.randaugment, recipe.augment.mixup)]
    p = recipe.progressive
    sizes = image_size_range(p, arch)
    sd = stochastic_depth_range(p, arch)
    stages, first = [], 1
    for i in range(p.stages):
        last = (i + 1) * recipe.epochs // p.stages
        size_at = p.stages - 1 if p.constant_image_size else i
        reg_at = p.stages - 1 if p.constant_regularization else i
        stages.append(Stage(
            stage=i + 1, first_epoch=first, last_epoch=last,
            image_size=round(interpolate(*sizes, size_at, p.stages) if p.image_size_ramp == "from_min"
                             else sizes[0] + (sizes[1] - sizes[0]) * (size_at + 1) / p.stages),
            dropout=interpolate(*p.dropout, reg_at, p.stages),
            stochastic_depth=interpolate(*sd, reg_at, p.stages),
            randaugment=None if p.randaugment is None else round(interpolate(*p.randaugment, reg_at, p.stages)),
            mixup=interpolate(*p.mixup, reg_at, p.stages),
        ))
        first = last + 1
    return stages


def image_size_range(p: Progressive, arch: Architecture) -> tuple[int, int]:
    if p.image_size is not None:
        return p.image_size
    top = arch.resolution.train
    return max(8, round(top * V2S_SIZE_RATIO)), top


def stochastic_depth_range(p: Progressive, arch: Architecture) -> tuple[float, float]:
    """Given, or the architecture's rate scaled by the dropout ramp (min/max of dropout) up to the full rate."""
    if p.stochastic_depth is not None:
        return p.stochastic_depth
    top = arch.stochastic_depth.rate
    low = top * p.dropout[0] / p.dropout[1] if p.dropout[1] > 0 else top
    return low, top


def stage_of(stages: list[Stage], epoch: int) -> Stage:
    return next(s for s in stages if s.first_epoch <= epoch <= s.last_epoch)


def largest_image_size(stages: list[Stage], arch: Architecture) -> int:
    """The size the dataset is cached at: the biggest stage or the evaluation size."""
    return max([s.image_size for s in stages] + [arch.resolution.eval_size])
