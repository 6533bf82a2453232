"""Automatic-augmentation policies as torchvision.transforms.v2 defines them, applied to groups of a batch.

RANDAUGMENT is torchvision's `v2.RandAugment._AUGMENTATION_SPACE` (a private attribute, hence the copy; a test
checks the two are equal): for each operation, its magnitudes over `num_bins` bins at the image's height and width
(None: the operation takes no magnitude) and whether the magnitude is negated with probability 1/2. `apply_op` is
torchvision's `_apply_image_or_video_transform` written with the public functional ops, so the pixels of each
operation are torchvision's own. It takes one magnitude for the whole group it is given: the batched path groups
the images of a batch by (operation, magnitude) and calls it once per group.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

Magnitudes = Callable[[int, int, int], torch.Tensor | None]  # (num_bins, height, width) -> magnitude per bin


def _posterize_bits(top_bits: int) -> Magnitudes:
    return lambda num_bins, height, width: (8 - (torch.arange(num_bins) / ((num_bins - 1) / top_bits))).round().int()


RANDAUGMENT: dict[str, tuple[Magnitudes, bool]] = {
    "Identity": (lambda num_bins, height, width: None, False),
    "ShearX": (lambda num_bins, height, width: torch.linspace(0.0, 0.3, num_bins), True),
    "ShearY": (lambda num_bins, height, width: torch.linspace(0.0, 0.3, num_bins), True),
    "TranslateX": (lambda num_bins, height, width: torch.linspace(0.0, 150.0 / 331.0 * width, num_bins), True),
    "TranslateY": (lambda num_bins, height, width: torch.linspace(0.0, 150.0 / 331.0 * height, num_bins), True),
    "Rotate": (lambda num_bins, height, width: torch.linspace(0.0, 30.0, num_bins), True),
    "Brightness": (lambda num_bins, height, width: torch.linspace(0.0, 0.9, num_bins), True),
    "Color": (lambda num_bins, height, width: torch.linspace(0.0, 0.9, num_bins), True),
    "Contrast": (lambda num_bins, height, width: torch.linspace(0.0, 0.9, num_bins), True),
    "Sharpness": (lambda num_bins, height, width: torch.linspace(0.0, 0.9, num_bins), True),
    "Posterize": (_posterize_bits(4), False),
    "Solarize": (lambda num_bins, height, width: torch.linspace(1.0, 0.0, num_bins), False),
    "AutoContrast": (lambda num_bins, height, width: None, False),
    "Equalize": (lambda num_bins, height, width: None, False),
}
RANDAUGMENT_OPS = tuple(RANDAUGMENT)
RANDAUGMENT_BINS = 31  # torchvision's num_magnitude_bins default; magnitudes 0..30 as in the paper


def randaugment_magnitudes(magnitude: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per operation of RANDAUGMENT: its magnitude at bin `magnitude` (0 for those without one) and whether it is signed."""
    values, signed = [], []
    for magnitudes_fn, is_signed in RANDAUGMENT.values():
        magnitudes = magnitudes_fn(RANDAUGMENT_BINS, height, width)
        values.append(0.0 if magnitudes is None else float(magnitudes[magnitude]))
        signed.append(is_signed)
    return torch.tensor(values, dtype=torch.float64), torch.tensor(signed)


def apply_op(images: torch.Tensor, name: str, magnitude: float,
             interpolation: InterpolationMode = InterpolationMode.NEAREST) -> torch.Tensor:
    """Operation `name` of the policies at `magnitude` on float images [N, C, H, W] in [0, 1] (fill: black)."""
    if name == "Identity":
        return images
    if name in ("ShearX", "ShearY"):  # torchvision shears by atan(magnitude) degrees about the top-left corner
        angle = math.degrees(math.atan(magnitude))
        shear = [angle, 0.0] if name == "ShearX" else [0.0, angle]
        return F.affine(images, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=interpolation,
                        fill=None, center=[0, 0])
    if name in ("TranslateX", "TranslateY"):
        translate = [int(magnitude), 0] if name == "TranslateX" else [0, int(magnitude)]
        return F.affine(images, angle=0.0, translate=translate, scale=1.0, shear=[0.0, 0.0], interpolation=interpolation, fill=None)
    if name == "Rotate":
        return F.rotate(images, angle=magnitude, interpolation=interpolation, fill=None)
    if name == "Brightness":
        return F.adjust_brightness(images, brightness_factor=1.0 + magnitude)
    if name == "Color":
        return F.adjust_saturation(images, saturation_factor=1.0 + magnitude)
    if name == "Contrast":
        return F.adjust_contrast(images, contrast_factor=1.0 + magnitude)
    if name == "Sharpness":
        return F.adjust_sharpness(images, sharpness_factor=1.0 + magnitude)
    if name == "Posterize":
        return F.posterize(images, bits=int(magnitude))
    if name == "Solarize":
        return F.solarize(images, threshold=1.0 * magnitude)  # torchvision: the dtype's maximum (1.0 for float) x magnitude
    if name == "AutoContrast":
        return F.autocontrast(images)
    if name == "Equalize":
        return F.equalize(images)
    raise ValueError(f"no augmentation operation named {name}")
