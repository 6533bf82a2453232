"""Image operations on whole float batches [N, C, H, W] in [0, 1], with a parameter per image, on any device.

Each follows torchvision.transforms.v2's definition of the per-image operation; the per-image parameters come in as
tensors already on the batch's device, and `groups` as one index tensor, so nothing here waits for the device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.ops import roi_align
from torchvision.transforms.v2 import functional as F


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each image to its box (x1, y1, x2, y2 in pixels, one row per image) and resize it to size x size.

    roi_align samples each output pixel bilinearly at ceil(box / size) points per side and averages them (a box filter
    when shrinking, bilinear interpolation when enlarging): one call for the whole batch, where torchvision's
    RandomResizedCrop crops and resizes (bilinear, antialiased) one image at a time. aligned=True puts pixel centres at
    half-integers, as resize does, so a box of the whole image at its own size returns the image unchanged.
    """
    index = torch.arange(len(images), device=images.device, dtype=boxes.dtype)[:, None]
    return roi_align(images, torch.cat([index, boxes], 1), output_size=(size, size), spatial_scale=1.0,
                     sampling_ratio=-1, aligned=True)


def flip(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Horizontally flip the images where `mask` (bool [N]) is set."""
    return torch.where(mask[:, None, None, None], images.flip(-1), images)


# ColorJitter's three operations with a factor per image ([N, 1, 1, 1]); torchvision's adjust_* take one factor per
# call, so their formulas are written out here (torchvision.transforms.v2.functional._color: _blend, adjust_*_image).

def _blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (images * ratio + other * (1.0 - ratio)).clamp_(0.0, 1.0)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (images * factor).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    gray = F.rgb_to_grayscale(images) if images.shape[-3] == 3 else images
    return _blend(images, gray.mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if images.shape[-3] == 1:  # torchvision (and PIL) leave grayscale images as they are
        return images
    return _blend(images, F.rgb_to_grayscale(images), factor)


JITTER_OPS: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (adjust_brightness, adjust_contrast, adjust_saturation)


def color_jitter(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """ColorJitter with per-image factors [N, 3] (brightness, contrast, saturation) applied in a per-image order
    [N, 3] (a permutation of 0, 1, 2 per row). At each position every operation runs on the whole batch, with factor 1
    (the identity, exactly) for the images whose operation at that position is another one."""
    for position in range(order.shape[1]):
        for op, adjust in enumerate(JITTER_OPS):
            ratio = torch.where(order[:, position] == op, factors[:, op], 1.0).view(-1, 1, 1, 1)
            images = adjust(images, ratio)
    return images


def apply_grouped(images: torch.Tensor, groups: list[tuple[object, int, int]], index: torch.Tensor,
                  op: Callable[[torch.Tensor, object], torch.Tensor]) -> torch.Tensor:
    """Apply `op(sub_batch, key)` to each group of images, in place.

    groups: (key, start, end) slices of `index`, which lists the images of each group one after another (on the
    batch's device, moved there in one copy); op is called once per group, with a sub-batch of that group's images.
    """
    for key, start, end in groups:
        rows = index[start:end]
        images.index_copy_(0, rows, op(images.index_select(0, rows), key))
    return images


def erase(images: torch.Tensor, boxes: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """torchvision's erase with a box per image: rows top .. top + height - 1 and columns left .. left + width - 1
    (boxes: long [N, 4] of top, left, height, width; an empty box leaves its image alone) set to `fill`, which
    broadcasts to the batch (one value per channel, or noise per pixel)."""
    rows = torch.arange(images.shape[-2], device=images.device).view(1, -1, 1)
    cols = torch.arange(images.shape[-1], device=images.device).view(1, 1, -1)
    top, left, height, width = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    return torch.where(inside[:, None], fill, images)


def mixup(images: torch.Tensor, targets: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's MixUp: each image and target blended with its predecessor in the batch (roll by one)."""
    return (images.roll(1, 0).mul_(1.0 - lam).add_(images.mul(lam)),
            targets.roll(1, 0).mul_(1.0 - lam).add_(targets.mul(lam)))


def cutmix(images: torch.Tensor, targets: torch.Tensor, box: tuple[int, int, int, int], lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's CutMix: the box (x1, y1, x2, y2) of each image replaced by its predecessor's; `lam` is the share
    of the image kept (after clipping the box to the image)."""
    x1, y1, x2, y2 = box
    output = images.clone()
    output[..., y1:y2, x1:x2] = images.roll(1, 0)[..., y1:y2, x1:x2]
    return output, targets.roll(1, 0).mul_(1.0 - lam).add_(targets.mul(lam))
