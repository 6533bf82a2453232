"""Automatic-augmentation policies as torchvision.transforms.v2 defines them, applied to groups of a batch.

RANDAUGMENT, TRIVIAL_AUGMENT_WIDE and AUTOAUGMENT are the `_AUGMENTATION_SPACE`s of torchvision's v2.RandAugment,
v2.TrivialAugmentWide and v2.AutoAugment, and AUTOAUGMENT_IMAGENET the sub-policies of
v2.AutoAugment(AutoAugmentPolicy.IMAGENET) (private attributes, hence the copies; tests check they are equal): for each
operation, its magnitudes over `num_bins` bins at the image's height and width (None: the operation takes no
magnitude) and whether the magnitude is negated with probability 1/2. TrivialAugmentWide's ranges are wider than
RandAugment's (shear 0.99, rotation 135 degrees, translation 32 px at any image size, posterize down to 2 bits);
AutoAugment samples 10 bins and adds Invert. `apply_op` is torchvision's `_apply_image_or_video_transform` written
with the public functional ops, so the pixels of each operation are torchvision's own. It takes one magnitude for the
whole group it is given: the batched path groups the images of a batch by (operation, magnitude) and calls it once
per group.
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

TRIVIAL_AUGMENT_WIDE: dict[str, tuple[Magnitudes, bool]] = {
    "Identity": (lambda num_bins, height, width: None, False),
    "ShearX": (lambda num_bins, height, width: torch.linspace(0.0, 0.99, num_bins), True),
    "ShearY": (lambda num_bins, height, width: torch.linspace(0.0, 0.99, num_bins), True),
    "TranslateX": (lambda num_bins, height, width: torch.linspace(0.0, 32.0, num_bins), True),
    "TranslateY": (lambda num_bins, height, width: torch.linspace(0.0, 32.0, num_bins), True),
    "Rotate": (lambda num_bins, height, width: torch.linspace(0.0, 135.0, num_bins), True),
    "Brightness": (lambda num_bins, height, width: torch.linspace(0.0, 0.99, num_bins), True),
    "Color": (lambda num_bins, height, width: torch.linspace(0.0, 0.99, num_bins), True),
    "Contrast": (lambda num_bins, height, width: torch.linspace(0.0, 0.99, num_bins), True),
    "Sharpness": (lambda num_bins, height, width: torch.linspace(0.0, 0.99, num_bins), True),
    "Posterize": (_posterize_bits(6), False),
    "Solarize": (lambda num_bins, height, width: torch.linspace(1.0, 0.0, num_bins), False),
    "AutoContrast": (lambda num_bins, height, width: None, False),
    "Equalize": (lambda num_bins, height, width: None, False),
}
TRIVIAL_AUGMENT_BINS = 31  # TrivialAugmentWide's num_magnitude_bins default

AUTOAUGMENT: dict[str, tuple[Magnitudes, bool]] = {
    **{name: RANDAUGMENT[name] for name in RANDAUGMENT_OPS if name != "Identity"},
    "Invert": (lambda num_bins, height, width: None, False),
}
AUTOAUGMENT_BINS = 10  # AutoAugment's magnitude indices 0..9
# (operation, probability, magnitude bin or None), two per sub-policy: AutoAugmentPolicy.IMAGENET.
AUTOAUGMENT_IMAGENET: list[tuple[tuple[str, float, int | None], tuple[str, float, int | None]]] = [
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
]

# Every operation of the three policies: sampled parameters name operations by their index here (RandAugment's
# first, in its order, so that its indices are RANDAUGMENT_OPS's too).
POLICY_OPS = RANDAUGMENT_OPS + ("Invert",)
IDENTITY = POLICY_OPS.index("Identity")


def magnitude_table(space: dict[str, tuple[Magnitudes, bool]], num_bins: int, height: int,
                    width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A policy's operations as indices into POLICY_OPS (long [K]), their magnitudes per bin (float64 [K, num_bins],
    0 where an operation takes none) and whether each is signed (bool [K])."""
    ops, values, signed = [], [], []
    for name, (magnitudes_fn, is_signed) in space.items():
        magnitudes = magnitudes_fn(num_bins, height, width)
        ops.append(POLICY_OPS.index(name))
        values.append(torch.zeros(num_bins, dtype=torch.float64) if magnitudes is None else magnitudes.double())
        signed.append(is_signed)
    return torch.tensor(ops), torch.stack(values), torch.tensor(signed)


def randaugment_magnitudes(magnitude: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per operation of RANDAUGMENT: its magnitude at bin `magnitude` (0 for those without one) and whether it is signed."""
    _, values, signed = magnitude_table(RANDAUGMENT, RANDAUGMENT_BINS, height, width)
    return values[:, magnitude].contiguous(), signed


def apply_op(images: torch.Tensor, name: str, magnitude: float,
             interpolation: InterpolationMode = InterpolationMode.NEAREST) -> torch.Tensor:
    """Operation `name` of the policies at `magnitude` on float images [N, C, H, W] in [0, 1] (fill: black)."""
    if name == "Identity":
        return images
    if name == "Invert":
        return F.invert(images)
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
