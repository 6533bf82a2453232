"""Pixel conventions shared by training, evaluation and prediction: uint8 in memory, float normalised on the device.

Training augmentation works on whole batches on the training device (workbench.data.augment); evaluation images are
resized once (`eval_images`) and only normalised per batch.
"""

from __future__ import annotations

import torch

from workbench.data.images import square_batch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalizer:
    """uint8 batch -> float batch normalised with ImageNet statistics (their mean for grayscale), on `device`."""

    def __init__(self, channels: int, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if channels != 3:
            mean, std = (sum(mean) / 3,) * channels, (sum(std) / 3,) * channels
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.device, self.memory_format = device, memory_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.to_unit(images)).contiguous(memory_format=self.memory_format)

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in [0, 1] on the device (a new tensor)."""
        return images.to(self.device, non_blocking=True).float().div_(255)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] -> normalised, in place."""
        return images.sub_(self.mean).div_(self.std)


def eval_images(images: torch.Tensor, size: int, crop: int | None = None) -> torch.Tensor:
    """Validation images at the evaluation size (resized once, not per epoch): the shorter side resized to `size`,
    then the centre `crop` x `crop` (torchvision's eval preset, Resize then CenterCrop; None: no crop)."""
    resized = square_batch(images, size)
    if crop is None or crop == size:
        return resized
    from torchvision.transforms.v2 import functional as F

    return F.center_crop(resized, [crop, crop]).contiguous()
