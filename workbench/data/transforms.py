"""Training and evaluation transforms with torchvision.transforms.v2 on uint8 tensors.

Per image (in the DataLoader, so CUDA runs can use workers): RandomResizedCrop (or Resize) from the cached size to
the stage size, horizontal flip, ColorJitter, RandAugment. Per batch, on the training device: scale to [0, 1],
normalise, then MixUp/CutMix, which turn the labels into soft targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from workbench.data.images import square_batch
from workbench.schema.recipe import Augment

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StageAugment:
    """What one progressive stage asks of the data: its image size and regularisation strengths."""

    image_size: int
    randaugment: int | None
    mixup: float


def train_transform(augment: Augment, stage: StageAugment, cache_size: int, hflip: bool, channels: int) -> v2.Transform:
    size = stage.image_size
    ops: list[v2.Transform] = []
    if augment.random_resized_crop:
        ops.append(v2.RandomResizedCrop(size, scale=augment.crop_scale, antialias=True))
    elif cache_size != size:
        ops.append(v2.Resize([size, size], antialias=True))
    if hflip:
        ops.append(v2.RandomHorizontalFlip())
    if augment.color_jitter > 0:
        jitter = augment.color_jitter
        ops.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter if channels == 3 else None))
    if stage.randaugment is not None:
        ops.append(v2.RandAugment(num_ops=augment.randaugment_ops, magnitude=stage.randaugment, num_magnitude_bins=31))
    return v2.Compose(ops) if ops else v2.Identity()  # Compose refuses an empty list


class TransformedImages(Dataset):
    """uint8 images [N, C, S, S] and labels, each image transformed on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def batch_mixer(augment: Augment, mixup: float, num_classes: int) -> v2.Transform | None:
    """MixUp and/or CutMix on a batch (one of them per batch when both are on); None when both are off."""
    mixers: list[v2.Transform] = []
    if mixup > 0:
        mixers.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if augment.cutmix > 0:
        mixers.append(v2.CutMix(alpha=augment.cutmix, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


class Normalizer:
    """uint8 batch -> float batch normalised with ImageNet statistics (their mean for grayscale)."""

    def __init__(self, channels: int, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if channels != 3:
            mean, std = (sum(mean) / 3,) * channels, (sum(std) / 3,) * channels
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.device, self.memory_format = device, memory_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True).float().div_(255)
        return images.sub_(self.mean).div_(self.std).contiguous(memory_format=self.memory_format)


def eval_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Validation images at the evaluation size (resized once, not per epoch)."""
    return square_batch(images, size)

