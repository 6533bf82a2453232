"""Training augmentation of whole batches on the training device: one factory from the recipe (as timm's
transforms_factory), parameters drawn per image with torchvision.transforms.v2's distributions.

    augment = train_augment(recipe.augment, stage, cache_size=32, hflip=True, channels=3, num_classes=10, normalize=normalize)
    inputs, targets = augment(images, labels, draws)   # uint8 batch on the device -> normalised float, soft targets

In order, as torchvision's reference pipeline has them: RandomResizedCrop (or a resize) from the cached size to the
stage size, horizontal flip, ColorJitter, the automatic augmentation policy (RandAugment, TrivialAugmentWide or
AutoAugment's ImageNet policy); then normalisation, RandomErasing and MixUp/CutMix (targets become soft).

`sample` draws every parameter on the CPU from the epoch's generators (workbench.data.draws), each augmentation from a
generator kind of its own, with the algorithm of the torchvision transform it stands for
(RandomResizedCrop.make_params, RandomHorizontalFlip, ColorJitter.make_params, RandAugment.forward,
TrivialAugmentWide.forward, AutoAugment.forward, RandomErasing.make_params, MixUp/CutMix.make_params, RandomChoice),
one draw per image; `apply` computes the pixels in float on the batch's device (workbench.data.batch_ops). Keeping
the two apart lets the tests check the distributions the recipes promise on the parameters themselves.

Why not kornia.augmentation, which samples per image on CPU and GPU alike: its RandAugment applies the same n
operations to the whole batch, drawn without replacement from 15 operations with magnitude ranges of its own (no
identity; shear in degrees x 180; translation in pixels), its ColorJitter shifts brightness additively and saturates in
HSV, and it draws from the global RNG. None of that is the distribution of torchvision's RandAugment and ColorJitter,
which the recipes name (and issue 18's policies extend); here torchvision's own functional ops make the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import InterpolationMode

from workbench.data import batch_ops
from workbench.data.draws import EpochDraws
from workbench.data.policies import (AUTOAUGMENT, AUTOAUGMENT_BINS, AUTOAUGMENT_IMAGENET, IDENTITY, POLICY_OPS, RANDAUGMENT,
                                     RANDAUGMENT_BINS, RANDAUGMENT_OPS, TRIVIAL_AUGMENT_BINS, TRIVIAL_AUGMENT_WIDE, apply_op,
                                     magnitude_table)
from workbench.data.transforms import Normalizer
from workbench.schema.augment import Augment, RandomErasing

CROP_RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's default aspect-ratio range
CROP_TRIES = 10  # RandomResizedCrop's attempts before its central-crop fallback
ERASE_TRIES = 10  # RandomErasing's attempts before it leaves the image as it is
FLIP_P = 0.5
SIGN_P = 0.5  # the policies negate a signed magnitude when torch.rand(()) <= 0.5


@dataclass(frozen=True)
class StageAugment:
    """What one progressive stage asks of the data: its image size and regularisation strengths."""

    image_size: int
    randaugment: int | None
    mixup: float


@dataclass
class CropParams:
    """RandomResizedCrop boxes in pixels of the cached image, one per image (long [N] each)."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor

    def boxes(self) -> torch.Tensor:
        """(x1, y1, x2, y2) per image, float [N, 4]."""
        return torch.stack([self.left, self.top, self.left + self.width, self.top + self.height], 1).float()


@dataclass
class JitterParams:
    factors: torch.Tensor  # float [N, 3]: brightness, contrast, saturation (1: unchanged)
    order: torch.Tensor  # long [N, 3]: the operations in the order each image gets them


@dataclass
class PolicyParams:
    """The operations an automatic-augmentation policy gives each image, slot after slot."""

    ops: torch.Tensor  # long [N, slots]: indices into policies.POLICY_OPS (Identity where a slot does nothing)
    magnitudes: torch.Tensor  # float64 [N, slots]: signed magnitudes (0 for operations without one)
    bins: torch.Tensor | None = None  # long [N, slots]: the magnitude bins drawn (TrivialAugmentWide, AutoAugment)


RandAugmentParams = PolicyParams  # RandAugment's ops index RANDAUGMENT_OPS too, the first entries of POLICY_OPS


@dataclass
class ErasingParams:
    """RandomErasing boxes in pixels of the stage-size image, one per image; `erased` false: the image is left alone."""

    erased: torch.Tensor  # bool [N]
    top: torch.Tensor  # long [N]
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    noise_seed: int | None  # value 'random': the seed of the noise, drawn on the batch's device


@dataclass
class MixParams:
    kind: str  # "mixup" or "cutmix"
    lam: float  # the Beta(alpha, alpha) draw
    box: tuple[int, int, int, int] | None  # cutmix: (x1, y1, x2, y2) pasted from the previous image
    target_lam: float  # the targets' weight of the image's own label (cutmix: the area share kept)


@dataclass
class AugmentParams:
    """Everything random about one batch; None where the recipe turns the augmentation off."""

    crop: CropParams | None
    flip: torch.Tensor | None  # bool [N]
    jitter: JitterParams | None
    randaugment: PolicyParams | None
    mix: MixParams | None
    trivial_wide: PolicyParams | None = None
    auto_augment: PolicyParams | None = None
    erasing: ErasingParams | None = None

    @property
    def policy(self) -> PolicyParams | None:
        """The automatic augmentation's operations (one policy at most is on)."""
        return self.randaugment or self.trivial_wide or self.auto_augment


# --- sampling (CPU, from the epoch's generators) --------------------------------------------------


def sample_crops(count: int, height: int, width: int, scale: tuple[float, float], generator: torch.Generator,
                 ratio: tuple[float, float] = CROP_RATIO) -> CropParams:
    """RandomResizedCrop.make_params for `count` images at once: up to 10 tries of an area uniform in `scale` times
    the image's and an aspect ratio log-uniform in `ratio`; the first that fits wins, at a uniform position; none
    fits: the central crop of the closest ratio."""
    area = height * width
    log_ratio = torch.tensor(ratio, dtype=torch.float64).log()
    target = area * torch.empty(count, CROP_TRIES, dtype=torch.float64).uniform_(scale[0], scale[1], generator=generator)
    aspect = torch.empty(count, CROP_TRIES, dtype=torch.float64).uniform_(float(log_ratio[0]), float(log_ratio[1]), generator=generator).exp()
    w, h = (target * aspect).sqrt().round(), (target / aspect).sqrt().round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(1, keepdim=True)  # the first try that fits (argmax returns the first maximum)
    found = fits.any(1)
    fallback_w, fallback_h = central_crop_size(height, width, ratio)
    w = torch.where(found, w.gather(1, first).squeeze(1), float(fallback_w))
    h = torch.where(found, h.gather(1, first).squeeze(1), float(fallback_h))
    position = torch.rand(count, 2, dtype=torch.float64, generator=generator)
    top = torch.where(found, (position[:, 0] * (height - h + 1)).floor(), ((height - h) / 2).floor())
    left = torch.where(found, (position[:, 1] * (width - w + 1)).floor(), ((width - w) / 2).floor())
    return CropParams(top.long(), left.long(), h.long(), w.long())


def central_crop_size(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """RandomResizedCrop's fallback: (width, height) of the whole image, or of the closest allowed ratio."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        return width, int(round(width / min(ratio)))
    if in_ratio > max(ratio):
        return int(round(height * max(ratio))), height
    return width, height


def sample_flips(count: int, generator: torch.Generator, p: float = FLIP_P) -> torch.Tensor:
    return torch.rand(count, generator=generator) < p


def jitter_range(strength: float) -> tuple[float, float]:
    """ColorJitter's factor range for brightness=contrast=saturation=strength."""
    return max(0.0, 1.0 - strength), 1.0 + strength


def sample_jitter(count: int, strength: float, channels: int, generator: torch.Generator) -> JitterParams:
    """ColorJitter.make_params per image: each factor uniform in [max(0, 1 - s), 1 + s], the operations in a random
    order (a uniform permutation); grayscale images get no saturation factor (torchvision's saturation=None)."""
    low, high = jitter_range(strength)
    factors = torch.empty(count, 3).uniform_(low, high, generator=generator)
    order = torch.rand(count, 3, generator=generator).argsort(1)
    if channels != 3:
        factors[:, 2] = 1.0
    return JitterParams(factors, order)


def sample_randaugment(count: int, num_ops: int, magnitude: int, height: int, width: int,
                       generator: torch.Generator) -> PolicyParams:
    """RandAugment.forward per image: `num_ops` operations, each uniform over the 14 of the policy, at bin
    `magnitude` of 31, negated with probability 1/2 where the operation is signed."""
    _, table, signed = magnitude_table(RANDAUGMENT, RANDAUGMENT_BINS, height, width)
    values = table[:, magnitude]
    ops = torch.randint(len(RANDAUGMENT_OPS), (count, num_ops), generator=generator)
    negate = torch.rand(count, num_ops, generator=generator) <= SIGN_P
    magnitudes = torch.where(signed[ops] & negate, -values[ops], values[ops])
    return PolicyParams(ops, magnitudes)


def sample_trivial_wide(count: int, height: int, width: int, generator: torch.Generator) -> PolicyParams:
    """TrivialAugmentWide.forward per image: one operation uniform over its 14, a magnitude bin uniform over 31,
    negated with probability 1/2 where the operation is signed (three draws per image, whichever operation)."""
    op_index, table, signed = magnitude_table(TRIVIAL_AUGMENT_WIDE, TRIVIAL_AUGMENT_BINS, height, width)
    choice = torch.randint(len(op_index), (count, 1), generator=generator)
    bins = torch.randint(TRIVIAL_AUGMENT_BINS, (count, 1), generator=generator)
    negate = torch.rand(count, 1, generator=generator) <= SIGN_P
    values = table[choice, bins]
    return PolicyParams(op_index[choice], torch.where(signed[choice] & negate, -values, values), bins)


def autoaugment_imagenet_table() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AUTOAUGMENT_IMAGENET as tensors [25, 2]: operation (index into POLICY_OPS), probability, magnitude bin (0 where none)."""
    ops = torch.tensor([[POLICY_OPS.index(name) for name, _, _ in pair] for pair in AUTOAUGMENT_IMAGENET])
    probabilities = torch.tensor([[p for _, p, _ in pair] for pair in AUTOAUGMENT_IMAGENET], dtype=torch.float64)
    bins = torch.tensor([[b or 0 for _, _, b in pair] for pair in AUTOAUGMENT_IMAGENET])
    return ops, probabilities, bins


def sample_auto_augment(count: int, height: int, width: int, generator: torch.Generator) -> PolicyParams:
    """AutoAugment(IMAGENET).forward per image: a sub-policy uniform over the 25; each of its two operations applied
    when a uniform draw is <= its probability (else Identity), at its bin of 10, negated with probability 1/2 where
    signed."""
    policy_ops, probabilities, policy_bins = autoaugment_imagenet_table()
    space_ops, table, signed = magnitude_table(AUTOAUGMENT, AUTOAUGMENT_BINS, height, width)
    row = torch.full((len(POLICY_OPS),), -1, dtype=torch.long)
    row[space_ops] = torch.arange(len(space_ops))  # POLICY_OPS index -> row of the AutoAugment table
    choice = torch.randint(len(AUTOAUGMENT_IMAGENET), (count,), generator=generator)
    applied = torch.rand(count, 2, dtype=torch.float64, generator=generator) <= probabilities[choice]
    negate = torch.rand(count, 2, generator=generator) <= SIGN_P
    ops, bins = policy_ops[choice], policy_bins[choice]
    values = table[row[ops], bins]
    magnitudes = torch.where(signed[row[ops]] & negate, -values, values)
    return PolicyParams(torch.where(applied, ops, IDENTITY), torch.where(applied, magnitudes, 0.0), bins)


def sample_erasing(count: int, height: int, width: int, erasing: RandomErasing, generator: torch.Generator) -> ErasingParams:
    """RandomErasing.make_params per image: erased with probability p; up to 10 tries of an area uniform in `scale`
    times the image's and an aspect ratio log-uniform in `ratio` (height = sqrt(area x ratio)); the first box
    strictly smaller than the image wins, at a uniform position; none fits: the image is left as it is."""
    erased = torch.rand(count, dtype=torch.float64, generator=generator) < erasing.p  # torchvision skips when rand >= p
    log_ratio = torch.tensor(erasing.ratio, dtype=torch.float64).log()
    area = height * width * torch.empty(count, ERASE_TRIES, dtype=torch.float64).uniform_(*erasing.scale, generator=generator)
    aspect = torch.empty(count, ERASE_TRIES, dtype=torch.float64).uniform_(float(log_ratio[0]), float(log_ratio[1]),
                                                                              generator=generator).exp()
    h, w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (h < height) & (w < width)
    first = fits.int().argmax(1, keepdim=True)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    position = torch.rand(count, 2, dtype=torch.float64, generator=generator)
    top, left = (position[:, 0] * (height - h + 1)).floor(), (position[:, 1] * (width - w + 1)).floor()
    noise_seed = int(torch.randint(2**62, (1,), generator=generator)) if erasing.value == "random" else None
    return ErasingParams(erased & fits.any(1), top.long(), left.long(), h.long(), w.long(), noise_seed)


def beta_quantile(alpha: float, u: float) -> float:
    """The u-quantile of Beta(alpha, alpha): a Beta draw from one uniform of a dedicated generator (torch's Beta
    sampler only uses the global RNG)."""
    from scipy.special import betaincinv

    return float(betaincinv(alpha, alpha, u))


def sample_mix(mixup: float, cutmix: float, height: int, width: int, generator: torch.Generator) -> MixParams | None:
    """RandomChoice([MixUp, CutMix]) (or the one that is on), then its make_params; always four uniforms per batch."""
    kinds = [(kind, alpha) for kind, alpha in (("mixup", mixup), ("cutmix", cutmix)) if alpha > 0]
    if not kinds:
        return None
    u = torch.rand(4, dtype=torch.float64, generator=generator).tolist()
    kind, alpha = kinds[min(int(u[0] * len(kinds)), len(kinds) - 1)]
    lam = beta_quantile(alpha, u[1])
    if kind == "mixup":
        return MixParams("mixup", lam, None, lam)
    r_x, r_y = int(u[2] * width), int(u[3] * height)  # torch.randint(W), torch.randint(H)
    r = 0.5 * math.sqrt(1.0 - lam)
    r_w_half, r_h_half = int(r * width), int(r * height)
    x1, y1 = max(r_x - r_w_half, 0), max(r_y - r_h_half, 0)
    x2, y2 = min(r_x + r_w_half, width), min(r_y + r_h_half, height)
    return MixParams("cutmix", lam, (x1, y1, x2, y2), 1.0 - (x2 - x1) * (y2 - y1) / (width * height))


# --- the batch transform ------------------------------------------------------------------------------


class BatchAugment:
    """The training augmentation of one progressive stage (see the module docstring)."""

    def __init__(self, augment: Augment, stage: StageAugment, *, cache_size: int, hflip: bool, channels: int,
                 num_classes: int, normalize: Normalizer):
        self.augment, self.stage = augment, stage
        self.cache_size, self.hflip, self.channels, self.num_classes = cache_size, hflip, channels, num_classes
        self.normalize = normalize
        self.interpolation = InterpolationMode(augment.policy_interpolation)

    @property
    def size(self) -> int:
        return self.stage.image_size

    @property
    def policy(self) -> str:
        """The automatic augmentation of this stage: auto_augment, or (null) RandAugment when the stage has a magnitude."""
        if self.augment.auto_augment is not None:
            return self.augment.auto_augment
        return "none" if self.stage.randaugment is None else "randaugment"

    def sample(self, count: int, draws: EpochDraws) -> AugmentParams:
        augment, stage, size, policy = self.augment, self.stage, self.size, self.policy
        return AugmentParams(
            crop=sample_crops(count, self.cache_size, self.cache_size, augment.crop_scale, draws["crop"]) if augment.random_resized_crop else None,
            flip=sample_flips(count, draws["flip"]) if self.hflip else None,
            jitter=sample_jitter(count, augment.color_jitter, self.channels, draws["jitter"]) if augment.color_jitter > 0 else None,
            randaugment=(sample_randaugment(count, augment.randaugment_ops, stage.randaugment, size, size, draws["randaugment"])
                         if policy == "randaugment" else None),
            trivial_wide=sample_trivial_wide(count, size, size, draws["trivial_wide"]) if policy == "trivial_wide" else None,
            auto_augment=sample_auto_augment(count, size, size, draws["auto_augment"]) if policy == "imagenet" else None,
            erasing=(None if augment.random_erasing is None else
                     sample_erasing(count, size, size, augment.random_erasing, draws["erasing"])),
            mix=sample_mix(stage.mixup, augment.cutmix, size, size, draws["mix"]),
        )

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, draws: EpochDraws) -> tuple[torch.Tensor, torch.Tensor]:
        return self.apply(images, labels, self.sample(len(images), draws))

    def apply(self, images: torch.Tensor, labels: torch.Tensor, params: AugmentParams) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images [N, C, S, S] and labels, both on the training device -> normalised float inputs at the stage
        size and targets (the labels, or soft targets [N, classes] after a mix)."""
        device = images.device
        x = self.normalize.to_unit(images)
        if params.crop is not None:
            x = batch_ops.crop_resize(x, to_device(params.crop.boxes(), device), self.size)
        elif x.shape[-1] != self.size:
            from torchvision.transforms.v2 import functional as F

            x = F.resize(x, [self.size, self.size], antialias=True)
        if params.flip is not None:
            x = batch_ops.flip(x, to_device(params.flip, device))
        if params.jitter is not None:
            x = batch_ops.color_jitter(x, to_device(params.jitter.factors, device), to_device(params.jitter.order, device))
        if params.policy is not None:
            x = self._policy(x, params.policy)
        x = self.normalize.normalize(x)
        if params.erasing is not None:
            x = self._erase(x, params.erasing)
        targets = labels
        if params.mix is not None:
            x, targets = self._mix(x, labels, params.mix)
        return x.contiguous(memory_format=self.normalize.memory_format), targets

    def _policy(self, x: torch.Tensor, params: PolicyParams) -> torch.Tensor:
        for slot in range(params.ops.shape[1]):
            groups, index = group_rows(params.ops[:, slot], params.magnitudes[:, slot])
            x = batch_ops.apply_grouped(x, groups, to_device(index, x.device),
                                        lambda sub, key: apply_op(sub, POLICY_OPS[key[0]], key[1], self.interpolation))
        return x

    def _erase(self, x: torch.Tensor, params: ErasingParams) -> torch.Tensor:
        boxes = torch.stack([params.top, params.left, params.height, params.width], 1)
        boxes = torch.where(params.erased[:, None], boxes, torch.zeros_like(boxes))  # an empty box leaves the image alone
        value = self.augment.random_erasing.value
        if params.noise_seed is not None:
            generator = torch.Generator(device=x.device).manual_seed(params.noise_seed)
            fill = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        else:
            fill = torch.tensor(value if isinstance(value, list) else [value], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return batch_ops.erase(x, to_device(boxes, x.device), fill)

    def _mix(self, x: torch.Tensor, labels: torch.Tensor, mix: MixParams) -> tuple[torch.Tensor, torch.Tensor]:
        targets = torch.nn.functional.one_hot(labels, self.num_classes).float()
        if mix.kind == "mixup":
            return batch_ops.mixup(x, targets, mix.lam)
        return batch_ops.cutmix(x, targets, mix.box, mix.target_lam)


def group_rows(ops: torch.Tensor, magnitudes: torch.Tensor) -> tuple[list[tuple[tuple[int, float], int, int]], torch.Tensor]:
    """The images of one RandAugment slot grouped by (operation, magnitude), identity left out:
    ([((op, magnitude), start, end), ...], index) with index[start:end] the rows of each group."""
    keys, inverse, counts = torch.unique(torch.stack([ops.double(), magnitudes], 1), dim=0, return_inverse=True, return_counts=True)
    index = torch.argsort(inverse, stable=True)
    ends = counts.cumsum(0).tolist()
    groups = [((int(op), magnitude), start, end)
              for (op, magnitude), start, end in zip(keys.tolist(), [0] + ends[:-1], ends) if int(op) != IDENTITY]
    return groups, index


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor on `device`; to a GPU through pinned memory, so the copy does not wait for queued work."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def train_augment(augment: Augment, stage: StageAugment, *, cache_size: int, hflip: bool, channels: int, num_classes: int,
                  normalize: Normalizer) -> BatchAugment:
    """The training augmentation a recipe asks for at one progressive stage."""
    return BatchAugment(augment, stage, cache_size=cache_size, hflip=hflip, channels=channels, num_classes=num_classes,
                        normalize=normalize)
