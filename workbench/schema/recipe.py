"""How to train: optimiser, schedule, augmentation, EfficientNetV2 progressive learning, transfer, device.

`Recipe()` is a small-CPU recipe (AdamW, cosine, label smoothing) that trains a scaled-down network on the
offline `digits` set in well under a minute. `TrainJob` bundles everything one training run needs.
Pure pydantic, no torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workbench.schema.architecture import MAX_RESOLUTION, MAX_STAGES, SCHEMA_REF, Architecture, Scale
from workbench.schema.common import MAX_SEED, Strict, raise_at
from workbench.schema.dataset import DatasetConfig

Range = tuple[float, float]
IntRange = tuple[int, int]

# Upper bounds far beyond any published recipe (EfficientNet: 350 epochs, batch 4096 on TPUs; V2: 4 progressive
# stages), so that a typo such as 10^9 epochs is named at once instead of planning a run that never ends.
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_PROGRESSIVE_STAGES = 100
MAX_WORKERS = 256


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
    warmup_epochs: float = Field(default=1.0, ge=0, le=MAX_EPOCHS, description=(
        f"Linear warm-up from warmup_start_factor x lr, counted in optimiser steps (at most {MAX_EPOCHS:,} epochs)."))
    warmup_start_factor: float = Field(default=0.01, gt=0, le=1)
    min_lr: float = Field(default=0.0, ge=0, description="cosine floor and plateau floor.")
    decay_rate: float = Field(default=0.97, gt=0, le=1)
    decay_epochs: float = Field(default=2.4, gt=0, le=MAX_EPOCHS, description=f"exponential: epochs between decays (at most {MAX_EPOCHS:,}).")
    plateau_factor: float = Field(default=0.1, gt=0, lt=1)
    plateau_patience: int = Field(default=2, ge=0, le=MAX_EPOCHS, description=(
        f"Epochs without val-loss improvement before the lr drops (at most {MAX_EPOCHS:,})."))


class Augment(Strict):
    random_resized_crop: bool = Field(default=True, description="RandomResizedCrop to the stage size; off: plain resize.")
    crop_scale: Range = Field(default=(0.35, 1.0),
        description="Area range of RandomResizedCrop (torchvision's ImageNet default is [0.08, 1]).")
    hflip: bool | None = Field(default=None, description="Random horizontal flip; null: the dataset's default (off for digits and MNIST).")
    color_jitter: float = Field(default=0.0, ge=0, le=1, description="Brightness, contrast and saturation jitter strength; 0 is off.")
    randaugment: int | None = Field(default=None, ge=0, le=30,
        description="RandAugment magnitude (0-30); null is off. Progressive learning sets it per stage.")
    randaugment_ops: int = Field(default=2, ge=1, le=14, description="RandAugment operations per image.")
    mixup: float = Field(default=0.0, ge=0, le=100, description="MixUp alpha (at most 100); 0 is off. Progressive learning sets it per stage.")
    cutmix: float = Field(default=0.0, ge=0, le=100, description=(
        "CutMix alpha (at most 100); 0 is off. With mixup too, each batch picks one of the two."))

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
    stages: int = Field(default=4, ge=1, le=MAX_PROGRESSIVE_STAGES, description=(
        f"Training stages of equal epochs (at most {MAX_PROGRESSIVE_STAGES} and at most epochs; V2: 4)."))
    image_size: IntRange | None = Field(default=None,
        description=(
            f"[min, max] train size in [8, {MAX_RESOLUTION}]; null: [round(max*128/300), max] with max the architecture's train "
            "resolution (V2-S: 128 -> 300)."))
    dropout: Range = Field(default=(0.1, 0.3), description="Classifier dropout [min, max] (V2-S: 0.1 -> 0.3).")
    randaugment: IntRange | None = Field(default=(5, 15),
        description="RandAugment magnitude [min, max] (V2-S: 5 -> 15); null: no RandAugment in any stage.")
    mixup: Range = Field(default=(0.0, 0.0), description="MixUp alpha [min, max] in [0, 100] (V2-S: 0; V2-M 0 -> 0.2; V2-L 0 -> 0.4).")
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
        if v is not None and not (8 <= v[0] and v[1] <= MAX_RESOLUTION):
            raise ValueError(f"image sizes must lie in [8, {MAX_RESOLUTION}], got {list(v)}")
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
        if not (0 <= v[0] and v[1] <= 100):
            raise ValueError(f"mixup alphas must lie in [0, 100], got {list(v)}")
        return v


class EarlyStopping(Strict):
    patience: int = Field(default=5, ge=1, le=MAX_EPOCHS, description=(
        f"Epochs without a val top-1 gain larger than min_delta before stopping (at most {MAX_EPOCHS:,})."))
    min_delta: float = Field(default=0.0, ge=0, description="Smallest val top-1 gain (a fraction) that counts as improvement.")


class Recipe(Strict):
    schema_: str | None = SCHEMA_REF
    epochs: int = Field(default=15, ge=1, le=MAX_EPOCHS, description=f"Training epochs (at most {MAX_EPOCHS:,}).")
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH, description=f"Images per optimiser step (at most {MAX_BATCH:,}).")
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
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description=(
        f"Seed of initialisation and data order (0 to {MAX_SEED:,}); a study sets it per trial."))
    progressive: Progressive = Progressive()
    init: Literal["scratch", "pretrained"] = Field(default="scratch",
        description=(
            "pretrained: torchvision ImageNet weights for preset architectures, read from the torch hub cache (never downloaded "
            "during training)."))
    freeze: Literal["none", "backbone"] | int = Field(default="none",
        description=f"none; backbone (train the classifier only); or k: freeze the stem and the first k stages (k <= {MAX_STAGES}).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(default="auto",
        description="CUDA mixed precision; auto: bf16 where supported, else fp16 with a GradScaler. Never on CPU.")
    channels_last: bool | None = Field(default=None, description="null: on for CUDA, off for CPU.")
    compile: bool = Field(default=False, description=(
        "torch.compile the model for training and evaluation (inductor: GPU kernels, or C++ on CPU through the "
        "system's compiler); the first steps of each new image size pay the compilation. Checkpoints hold the plain "
        "model's weights, so a compiled run's checkpoint loads anywhere."))
    num_workers: int | None = Field(default=None, ge=0, le=MAX_WORKERS,
        description=f"DataLoader workers (at most {MAX_WORKERS}); null: 0 on CPU (bitwise reproducible), up to 8 on CUDA.")

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze(cls, v: Any) -> Any:
        if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 3:
            v = int(v)
        if isinstance(v, str) and v in ("none", "backbone"):
            return v
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_STAGES:
            return v
        shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:40] + "..."
        raise ValueError(f"freeze must be 'none', 'backbone' or a number of stages k from 0 to {MAX_STAGES}, got {shown}")

    @model_validator(mode="after")
    def _stages_fit_epochs(self) -> Recipe:
        if self.progressive.enabled and self.progressive.stages > self.epochs:
            message = f"progressive.stages ({self.progressive.stages}) cannot exceed epochs ({self.epochs})"
            raise_at("Recipe", [(("progressive", "stages"), message)])
        return self


class TrainJob(Strict):
    """One training run: the network is `architecture.scaled(scale)`."""

    architecture: Architecture
    scale: Scale = Scale()
    recipe: Recipe = Field(default_factory=Recipe)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)

    @model_validator(mode="after")
    def _network_size(self) -> TrainJob:
        # The architecture is within bounds on its own; the scale compounds onto its multipliers.
        raise_at("TrainJob", [(("scale",) + loc, f"the scaled network: {message}") for loc, message in self.network.size_problems()])
        return self

    @property
    def network(self) -> Architecture:
        return self.architecture.scaled(self.scale)
