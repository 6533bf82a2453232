"""How to train: optimiser, schedule, augmentation, EfficientNetV2 progressive learning, transfer, device.

`Recipe()` is a small-CPU recipe (AdamW, cosine, label smoothing) that trains a scaled-down network on the
offline `digits` set in well under a minute. `TrainJob` bundles everything one training run needs.
Pure pydantic, no torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workbench.schema.architecture import SCHEMA_REF, Architecture, Scale
from workbench.schema.common import Strict
from workbench.schema.dataset import DatasetConfig

Range = tuple[float, float]
IntRange = tuple[int, int]


def _ordered(pair: tuple, what: str) -> tuple:
    if pair[0] > pair[1]:
        raise ValueError(f"{what} must be [min, max] with min <= max, got {list(pair)}")
    return pair


class Optimizer(Strict):
    name: Literal["sgd", "adamw", "rmsprop"] = "adamw"
    lr: float = Field(default=3e-3, gt=0, description="Peak learning rate, reached after warm-up.")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd and rmsprop momentum (adamw uses beta1 = 0.9).")
    weight_decay: float = Field(default=0.05, ge=0, description="Decoupled for adamw, L2 for sgd/rmsprop.")
    decay_norm_and_bias: bool = Field(default=False,
        description="Also decay norm weights and biases (off: the usual EfficientNet practice).")
    nesterov: bool = Field(default=False, description="sgd only.")
    eps: float | None = Field(default=None, gt=0, description="adamw/rmsprop epsilon; default torch's (automl's rmsprop uses 0.001).")


class Schedule(Strict):
    name: Literal["cosine", "exponential", "plateau", "constant"] = Field(default="cosine", description=(
        "After warm-up: cosine to min_lr; exponential: x decay_rate every decay_epochs (automl: 0.97 every 2.4 "
        "epochs, staircase); plateau: x plateau_factor when val loss stalls; constant."))
    warmup_epochs: float = Field(default=1.0, ge=0, description="Linear warm-up from warmup_start_factor x lr, counted in optimiser steps.")
    warmup_start_factor: float = Field(default=0.01, gt=0, le=1)
    min_lr: float = Field(default=0.0, ge=0, description="cosine floor and plateau floor.")
    decay_rate: float = Field(default=0.97, gt=0, le=1)
    decay_epochs: float = Field(default=2.4, gt=0)
    plateau_factor: float = Field(default=0.1, gt=0, lt=1)
    plateau_patience: int = Field(default=2, ge=0, description="Epochs without val-loss improvement before the lr drops.")


class Augment(Strict):
    random_resized_crop: bool = Field(default=True, description="RandomResizedCrop to the stage size; off: plain resize.")
    crop_scale: Range = Field(default=(0.35, 1.0),
        description="Area range of RandomResizedCrop (torchvision's ImageNet default is [0.08, 1]).")
    hflip: bool | None = Field(default=None, description="Random horizontal flip; null: the dataset's default (off for digits and MNIST).")
    color_jitter: float = Field(default=0.0, ge=0, le=1, description="Brightness, contrast and saturation jitter strength; 0 is off.")
    randaugment: int | None = Field(default=None, ge=0, le=30,
        description="RandAugment magnitude (0-30); null is off. Progressive learning sets it per stage.")
    randaugment_ops: int = Field(default=2, ge=1, le=14, description="RandAugment operations per image.")
    mixup: float = Field(default=0.0, ge=0, description="MixUp alpha; 0 is off. Progressive learning sets it per stage.")
    cutmix: float = Field(default=0.0, ge=0, description="CutMix alpha; 0 is off. With mixup too, each batch picks one of the two.")

    @field_validator("crop_scale")
    @classmethod
    def _crop_scale(cls, v: Range) -> Range:
        if not 0 < v[0] <= v[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {list(v)}")
        return v


class Progressive(Strict):
    """EfficientNetV2 progressive learning (paper section 4, Table 6).

    Training is split into `stages` of equal epochs; stage i of M uses min + (max - min) * i / (M - 1) of each
    range. The stochastic-depth rate is ramped like dropout: unless given, it rises from
    arch_rate * dropout_min / dropout_max to the architecture's own rate, so the last stage trains with the
    architecture as declared.
    """

    enabled: bool = False
    stages: int = Field(default=4, ge=1)
    image_size: IntRange | None = Field(default=None,
        description=(
            "[min, max] train size; null: [round(max*128/300), max] with max the architecture's train resolution (V2-S: 128 -> "
            "300)."))
    dropout: Range = Field(default=(0.1, 0.3), description="Classifier dropout [min, max] (V2-S: 0.1 -> 0.3).")
    randaugment: IntRange | None = Field(default=(5, 15),
        description="RandAugment magnitude [min, max] (V2-S: 5 -> 15); null: no RandAugment in any stage.")
    mixup: Range = Field(default=(0.0, 0.0), description="MixUp alpha [min, max] (V2-S: 0; V2-M 0 -> 0.2; V2-L 0 -> 0.4).")
    stochastic_depth: Range | None = Field(default=None,
        description="Stochastic-depth rate [min, max]; null: scaled with the dropout ramp up to the architecture's rate.")
    constant_image_size: bool = Field(default=False, description="Ablation: every stage trains at the max image size.")
    constant_regularization: bool = Field(default=False,
        description="Ablation: every stage uses the max dropout, stochastic depth, RandAugment and mixup.")

    @field_validator("image_size", "dropout", "randaugment", "mixup", "stochastic_depth")
    @classmethod
    def _min_max(cls, v, info):
        return v if v is None else _ordered(v, info.field_name)

    @field_validator("image_size")
    @classmethod
    def _sizes(cls, v: IntRange | None) -> IntRange | None:
        if v is not None and not (8 <= v[0] and v[1] <= 2048):
            raise ValueError(f"image sizes must lie in [8, 2048], got {list(v)}")
        return v

    @field_validator("dropout", "stochastic_depth")
    @classmethod
    def _rates(cls, v: Range | None) -> Range | None:
        if v is not None and not (0 <= v[0] and v[1] < 1):
            raise ValueError(f"rates must lie in [0, 1), got {list(v)}")
        return v

    @field_validator("randaugment")
    @classmethod
    def _magnitudes(cls, v: IntRange | None) -> IntRange | None:
        if v is not None and not (0 <= v[0] and v[1] <= 30):
            raise ValueError(f"RandAugment magnitudes must lie in [0, 30], got {list(v)}")
        return v

    @field_validator("mixup")
    @classmethod
    def _alphas(cls, v: Range) -> Range:
        if v[0] < 0:
            raise ValueError(f"mixup alphas must be >= 0, got {list(v)}")
        return v


class EarlyStopping(Strict):
    patience: int = Field(default=5, ge=1, description="Epochs without a val top-1 gain larger than min_delta before stopping.")
    min_delta: float = Field(default=0.0, ge=0, description="Smallest val top-1 gain (a fraction) that counts as improvement.")


class Recipe(Strict):
    schema_: str | None = SCHEMA_REF
    epochs: int = Field(default=15, ge=1)
    batch_size: int = Field(default=64, ge=1)
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    augment: Augment = Augment()
    ema_decay: float | None = Field(default=None, gt=0, lt=1,
        description=(
            "Keep an exponential moving average of the weights and batch-norm statistics, updated every step, and evaluate it "
            "instead; null is off. Its horizon of 1/(1 - decay) steps must be short against the run (0.999: thousands of steps)."))
    early_stopping: EarlyStopping | None = None
    grad_clip: float | None = Field(default=None, gt=0, description="Clip the gradient norm to this value; null is off.")
    seed: int = Field(default=0, ge=0)
    progressive: Progressive = Progressive()
    init: Literal["scratch", "pretrained"] = Field(default="scratch",
        description=(
            "pretrained: torchvision ImageNet weights for preset architectures, read from the torch hub cache (never downloaded "
            "during training)."))
    freeze: Literal["none", "backbone"] | int = Field(default="none",
        description="none; backbone (train the classifier only); or k: freeze the stem and the first k stages.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(default="auto",
        description="CUDA mixed precision; auto: bf16 where supported, else fp16 with a GradScaler. Never on CPU.")
    channels_last: bool | None = Field(default=None, description="null: on for CUDA, off for CPU.")
    num_workers: int | None = Field(default=None, ge=0,
        description="DataLoader workers; null: 0 on CPU (bitwise reproducible), up to 8 on CUDA.")

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze(cls, v: Any) -> Any:
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        if v in ("none", "backbone") or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return v
        raise ValueError(f"freeze must be 'none', 'backbone' or a number of stages k >= 0, got {v!r}")

    @model_validator(mode="after")
    def _stages_fit_epochs(self) -> Recipe:
        if self.progressive.enabled and self.progressive.stages > self.epochs:
            raise ValueError(f"progressive.stages ({self.progressive.stages}) cannot exceed epochs ({self.epochs})")
        return self


class TrainJob(Strict):
    """One training run: the network is `architecture.scaled(scale)`."""

    architecture: Architecture
    scale: Scale = Scale()
    recipe: Recipe = Field(default_factory=Recipe)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)

    @property
    def network(self) -> Architecture:
        return self.architecture.scaled(self.scale)
