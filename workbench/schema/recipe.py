"""How to train: optimiser, schedule, augmentation, EfficientNetV2 progressive learning, transfer, device.

`Recipe()` is a small-CPU recipe (AdamW, cosine, label smoothing) that trains a scaled-down network on the
offline `digits` set in well under a minute. `TrainJob` bundles everything one training run needs.
Pure pydantic, no torch.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from workbench.schema.architecture import MAX_RESOLUTION, MAX_STAGES, SCHEMA_REF, Architecture, Scale
from workbench.schema.augment import RANDAUGMENT_DEFAULT_MAGNITUDE, Augment, Range, Sampler
from workbench.schema.common import MAX_SEED, Strict, raise_at
from workbench.schema.dataset import DatasetConfig

IntRange = tuple[int, int]

# Upper bounds far beyond any published recipe (EfficientNet: 350 epochs, batch 4096 on TPUs; V2: 4 progressive
# stages), so that a typo such as 10^9 epochs is named at once instead of planning a run that never ends.
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_PROGRESSIVE_STAGES = 100
MAX_WORKERS = 256
MAX_DESCRIPTION_LINES = 1000


def _ordered(pair: tuple, what: str) -> tuple:
    if pair[0] > pair[1]:
        raise ValueError(f"{what} must be [min, max] with min <= max, got {list(pair)}")
    return pair


class Optimizer(Strict):
    name: Literal["sgd", "adamw", "rmsprop", "rmsprop_tf"] = Field(default="adamw", description=(
        "rmsprop: torch's RMSprop (alpha 0.9, epsilon added outside the square root, the mean square started at zero); "
        "rmsprop_tf: TensorFlow 1's RMSPropOptimizer as automl trains EfficientNet(V2) (decay 0.9, epsilon inside the "
        "square root, the mean square started at one, the learning rate inside the momentum)."))
    lr: float = Field(default=3e-3, gt=0, description="Peak learning rate, reached after warm-up.")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd and rmsprop momentum (adamw uses beta1 = 0.9).")
    weight_decay: float = Field(default=0.05, ge=0, description="Decoupled for adamw, L2 (added to the gradient) for sgd/rmsprop/rmsprop_tf.")
    decay_norm_and_bias: bool = Field(default=False,
        description="Also decay norm weights and biases (off: the usual EfficientNet practice).")
    norm_weight_decay: float | None = Field(default=None, ge=0, description=(
        "Weight decay of normalisation layers' weights and biases (torchvision's --norm-weight-decay); null: "
        "weight_decay when decay_norm_and_bias, else 0."))
    bias_weight_decay: float | None = Field(default=None, ge=0, description=(
        "Weight decay of every parameter named bias, norm layers' too (torchvision's --bias-weight-decay, which takes "
        "precedence over the norm rate); null: biases of other layers follow decay_norm_and_bias, norm layers' biases "
        "the norm rate."))
    nesterov: bool = Field(default=False, description="sgd only.")
    eps: float | None = Field(default=None, gt=0, description=(
        "adamw/rmsprop/rmsprop_tf epsilon; default torch's (rmsprop_tf: TensorFlow's 1e-10; automl uses 0.001)."))


class Schedule(Strict):
    name: Literal["cosine", "exponential", "plateau", "constant"] = Field(default="cosine", description=(
        "After warm-up: cosine to min_lr; exponential: x decay_rate every decay_epochs (automl: 0.97 every 2.4 "
        "epochs, staircase); plateau: x plateau_factor when val loss stalls; constant."))
    warmup_epochs: float = Field(default=1.0, ge=0, le=MAX_EPOCHS, description=(
        f"Linear warm-up from warmup_start_factor x lr, counted in optimiser steps (at most {MAX_EPOCHS:,} epochs)."))
    warmup_start_factor: float = Field(default=0.01, ge=0, le=1, description=(
        "The first warm-up step's fraction of lr (torchvision's --lr-warmup-decay; automl's warm-up starts at 0)."))
    min_lr: float = Field(default=0.0, ge=0, description="cosine floor and plateau floor.")
    decay_rate: float = Field(default=0.97, gt=0, le=1)
    decay_epochs: float = Field(default=2.4, gt=0, le=MAX_EPOCHS, description=f"exponential: epochs between decays (at most {MAX_EPOCHS:,}).")
    plateau_factor: float = Field(default=0.1, gt=0, lt=1)
    plateau_patience: int = Field(default=2, ge=0, le=MAX_EPOCHS, description=(
        f"Epochs without val-loss improvement before the lr drops (at most {MAX_EPOCHS:,})."))
    interval: Literal["step", "epoch"] = Field(default="step", description=(
        "step: the rate changes every optimiser step; epoch: once per epoch, warm-up and decay counted in epochs, as "
        "torchvision's reference steps its schedulers (warmup_epochs must then be whole)."))
    decay_from_start: bool = Field(default=False, description=(
        "false: the decay after warm-up starts when warm-up ends (torch's SequentialLR, torchvision); true: it counts "
        "steps from the start of training and warm-up replaces its first steps, as automl's "
        "WarmupLearningRateSchedule (after 5 warm-up epochs the rate is already 0.97^2 of lr)."))

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        problems: list[tuple[tuple, str]] = []
        if self.interval == "epoch" and not float(self.warmup_epochs).is_integer():
            problems.append((("warmup_epochs",), f"interval epoch warms up over whole epochs, got {self.warmup_epochs}"))
        if self.decay_from_start and self.name not in ("cosine", "exponential"):
            problems.append((("decay_from_start",), f"only cosine and exponential decay from the start; {self.name} has no decay to count"))
        raise_at("Schedule", problems)
        return self


class EvalSizes(Strict):
    """Evaluation images: resize (shorter side) to `resize`, then centre-crop `crop`, as torchvision's eval preset."""

    crop: int | None = Field(default=None, ge=8, le=MAX_RESOLUTION, description=(
        "Centre-crop size (torchvision's --val-crop-size); null: the architecture's resolution.eval (which "
        "scale.resolution sets at proxy scale)."))
    resize: int | None = Field(default=None, ge=8, le=MAX_RESOLUTION, description=(
        "Resize size before the crop (torchvision's --val-resize-size); null: crop / crop_fraction, or the crop size."))
    crop_fraction: float | None = Field(default=None, gt=0, le=1, description=(
        "crop / resize (timm's crop_pct, 0.875 for 224/256): a resize that follows the crop size at any scale; not "
        "with resize."))

    @model_validator(mode="after")
    def _consistent(self) -> EvalSizes:
        if self.resize is not None and self.crop_fraction is not None:
            raise_at("EvalSizes", [(("crop_fraction",), "give resize or crop_fraction, not both")])
        if self.resize is not None and self.crop is not None and self.resize < self.crop:
            raise_at("EvalSizes", [(("resize",), f"resize ({self.resize}) must be at least crop ({self.crop})")])
        return self

    def sizes(self, default_crop: int) -> tuple[int, int]:
        """(resize, crop) in pixels, the crop defaulting to `default_crop`."""
        crop = self.crop if self.crop is not None else default_crop
        if self.resize is not None:
            return self.resize, crop
        if self.crop_fraction is not None:
            return max(crop, round(crop / self.crop_fraction)), crop
        return crop, crop


class Ema(Strict):
    """An exponential moving average of the weights and batch-norm statistics, evaluated instead of the model."""

    decay: float = Field(gt=0, lt=1, description=(
        "Decay per update (torchvision's --model-ema-decay, automl's ema_decay); its horizon of 1/(1 - decay) "
        "updates must be short against the run."))
    every_steps: int = Field(default=1, ge=1, le=1_000_000, description=(
        "Update after the optimiser steps whose index within the epoch is a multiple of this (torchvision's "
        "--model-ema-steps: i % steps == 0)."))
    warmup: int = Field(default=0, ge=0, le=MAX_EPOCHS, description=(
        "Epochs in which every update copies the weights instead of averaging them (torchvision ties this to "
        "--lr-warmup-epochs)."))
    adjust: Literal["none", "torchvision"] = Field(default="none", description=(
        "torchvision: the decay per update is 1 - min(1, (1 - decay) x global batch x every_steps / epochs), "
        "torchvision's adjustment (from pycls) of --model-ema-decay; none: decay as given."))
    ramp: Literal["none", "tensorflow"] = Field(default="none", description=(
        "tensorflow: the decay at optimiser step t is min(decay, (1 + t) / (10 + t)) and the average starts from the "
        "initial weights, as TensorFlow's ExponentialMovingAverage(num_updates=global_step) that automl uses; none: "
        "decay throughout, the first update copying the weights."))


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
    image_size_ramp: Literal["from_min", "after_min"] = Field(default="from_min", description=(
        "from_min: stage i of M trains at min + (max - min) x i / (M - 1), the first stage at min (the paper's Table 6); "
        "after_min: at min + (max - min) x (i + 1) / M, as automl's main.py grows it from ibase (V2-S, 128 -> 300: 171, "
        "214, 257, 300 px)."))
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
    description: str | Annotated[list[str], Field(max_length=MAX_DESCRIPTION_LINES)] = Field(default="", description=(
        f"Where the recipe comes from: text, or one line per flag or config line of its source (at most "
        f"{MAX_DESCRIPTION_LINES:,} lines)."))
    epochs: int = Field(default=15, ge=1, le=MAX_EPOCHS, description=f"Training epochs (at most {MAX_EPOCHS:,}).")
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH, description=(
        f"Images per forward pass of one worker (at most {MAX_BATCH:,}): per optimiser step unless global_batch_size "
        "asks for more. Without global_batch_size, data-parallel workers (resources.workers) split it: each trains "
        "batch_size / workers images of every step."))
    global_batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH, description=(
        "Images per optimiser step over all workers, whatever their number: when batch_size x workers is smaller, "
        "each step accumulates the gradients of global_batch_size / (batch_size x workers) micro-batches (a whole "
        "number). The learning-rate schedule counts optimiser steps. null: batch_size, split over the data-parallel workers."))
    sampler: Sampler = Sampler()
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    augment: Augment = Augment()
    ema_decay: float | None = Field(default=None, gt=0, lt=1,
        description=(
            "Keep an exponential moving average of the weights and batch-norm statistics, updated every step, and evaluate it "
            "instead; null is off. Its horizon of 1/(1 - decay) steps must be short against the run (0.999: thousands of steps). "
            "Shorthand of ema {decay: x, every_steps: 1, warmup: 0}; not with ema."))
    ema: Ema | None = Field(default=None, description="The moving average in full (update interval, warm-up, torchvision's and TensorFlow's decay rules); null is off.")
    eval: EvalSizes = Field(default_factory=EvalSizes, description="Evaluation resize and centre-crop sizes.")
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
    sync_batchnorm: bool = Field(default=False, description=(
        "Data-parallel trials (resources.workers > 1, on GPUs): batch-norm statistics over the whole global batch "
        "(torch.nn.SyncBatchNorm) instead of each worker's share of it; no effect with one worker."))
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

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        problems: list[tuple[tuple, str]] = []
        if self.ema is not None and self.ema_decay is not None:
            problems.append((("ema_decay",), "give ema or its shorthand ema_decay, not both"))
        if self.global_batch_size is not None and self.global_batch_size % self.batch_size:
            problems.append((("global_batch_size",), f"must be a multiple of batch_size ({self.batch_size}), got {self.global_batch_size}"))
        raise_at("Recipe", problems)
        self._resolve_policy()
        return self

    def _resolve_policy(self) -> None:
        """RandAugment's magnitude belongs to auto_augment randaugment only: trivial_wide and imagenet have none to set
        or ramp, so progressive learning's default ramp is dropped for them (an explicit one is an error)."""
        policy, augment, progressive = self.augment.auto_augment, self.augment, self.progressive
        if policy is None:
            return
        if policy == "randaugment":
            if progressive.enabled and progressive.randaugment is None:
                raise_at("Recipe", [(("progressive", "randaugment"), "auto_augment randaugment with progressive learning "
                                     "needs the per-stage magnitudes [min, max]")])
            if augment.randaugment is None:
                self.augment = augment.model_copy(update={"randaugment": RANDAUGMENT_DEFAULT_MAGNITUDE})
            return
        problems: list[tuple[tuple, str]] = []
        if augment.randaugment is not None:
            problems.append((("augment", "randaugment"), f"is a RandAugment magnitude; auto_augment {policy} has none "
                                                          "(use auto_augment randaugment, or leave randaugment null)"))
        if progressive.randaugment is not None:
            if progressive.enabled and "randaugment" in progressive.model_fields_set:
                problems.append((("progressive", "randaugment"), f"auto_augment {policy} has no magnitude to ramp; set it "
                                                                  "to null, or use auto_augment randaugment"))
            else:
                self.progressive = progressive.model_copy(update={"randaugment": None})
        raise_at("Recipe", problems)

    @property
    def ema_settings(self) -> Ema | None:
        """The moving average asked for, the ema_decay shorthand expanded."""
        if self.ema_decay is not None:
            return Ema(decay=self.ema_decay)
        return self.ema

    def accumulation_steps(self, workers: int = 1) -> int:
        """Micro-batches per optimiser step on each of `workers` data-parallel workers; ValueError when the global
        batch is not a whole number of batch_size x workers."""
        if self.global_batch_size is None:
            return 1
        per_pass = self.batch_size * workers
        if self.global_batch_size % per_pass:
            raise ValueError(f"global_batch_size ({self.global_batch_size}) must be a multiple of batch_size x workers "
                             f"({self.batch_size} x {workers} = {per_pass})")
        return self.global_batch_size // per_pass

    def global_batch(self, workers: int = 1) -> int:
        """Images per optimiser step over all workers."""
        return self.global_batch_size if self.global_batch_size is not None else self.batch_size * workers


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

    @model_validator(mode="after")
    def _recipe_fits_network(self) -> TrainJob:
        problems: list[tuple[tuple, str]] = []
        resize, crop = self.eval_sizes
        if resize < crop:
            problems.append((("recipe", "eval", "resize"), f"resize ({resize}) must be at least the crop, the architecture's "
                                                           f"eval resolution ({crop})"))
        if resize > MAX_RESOLUTION:
            problems.append((("recipe", "eval", "crop_fraction"), f"the crop {crop} / crop_fraction resizes to {resize} px, "
                                                                  f"more than {MAX_RESOLUTION}"))
        erasing = self.recipe.augment.random_erasing
        channels = self.architecture.in_channels
        if erasing is not None and isinstance(erasing.value, list) and len(erasing.value) not in (1, channels):
            problems.append((("recipe", "augment", "random_erasing", "value"),
                             f"{len(erasing.value)} values for {channels}-channel images: give 1 or {channels}"))
        raise_at("TrainJob", problems)
        return self

    @property
    def network(self) -> Architecture:
        return self.architecture.scaled(self.scale)

    @property
    def eval_sizes(self) -> tuple[int, int]:
        """(resize, crop) of the evaluation images, in pixels."""
        return self.recipe.eval.sizes(self.network.resolution.eval_size)
