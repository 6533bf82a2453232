"""A recipe's training augmentation and sampling: torchvision's crops, flips, policies (TrivialAugmentWide,
AutoAugment, RandAugment), RandomErasing, MixUp/CutMix, and repeated augmentation. Pure pydantic, no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from workbench.schema.common import Strict

Range = tuple[float, float]

AUTO_AUGMENT_POLICIES = ("none", "trivial_wide", "imagenet", "randaugment")
RANDAUGMENT_DEFAULT_MAGNITUDE = 9  # torchvision's RandAugment default and its reference's --ra-magnitude


class RandomErasing(Strict):
    """torchvision's RandomErasing, per image, after normalisation (where torchvision's reference applies it)."""

    p: float = Field(default=0.5, ge=0, le=1, description="Probability that an image gets a box erased (torchvision's reference: --random-erase).")
    scale: Range = Field(default=(0.02, 0.33), description="Range of the erased area as a fraction of the image (torchvision's default).")
    ratio: Range = Field(default=(0.3, 3.3), description="Range of the box's aspect ratio, drawn log-uniformly (torchvision's default).")
    value: float | list[float] | Literal["random"] = Field(default=0.0, description=(
        "The erased pixels, in normalised units (0: the dataset mean): one number, one per channel, or 'random' "
        "(standard normal noise per pixel)."))

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: Range) -> Range:
        if not 0 <= v[0] <= v[1] <= 1:
            raise ValueError(f"scale must satisfy 0 <= min <= max <= 1, got {list(v)}")
        return v

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: Range) -> Range:
        if not 0 < v[0] <= v[1] <= 1e3:
            raise ValueError(f"ratio must satisfy 0 < min <= max <= 1000, got {list(v)}")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: float | list[float] | str) -> float | list[float] | str:
        if isinstance(v, list) and len(v) not in (1, 3):
            raise ValueError(f"value must be one number, one per channel (1 or 3 of them) or 'random', got {len(v)} numbers")
        return v


class Augment(Strict):
    random_resized_crop: bool = Field(default=True, description="RandomResizedCrop to the stage size; off: plain resize.")
    crop_scale: Range = Field(default=(0.35, 1.0),
        description="Area range of RandomResizedCrop (torchvision's ImageNet default is [0.08, 1]).")
    hflip: bool | None = Field(default=None, description="Random horizontal flip; null: the dataset's default (off for digits and MNIST).")
    color_jitter: float = Field(default=0.0, ge=0, le=1, description="Brightness, contrast and saturation jitter strength; 0 is off.")
    auto_augment: Literal["none", "trivial_wide", "imagenet", "randaugment"] | None = Field(default=None, description=(
        "Automatic augmentation policy, torchvision.transforms.v2's: trivial_wide (TrivialAugmentWide: one of 14 "
        "operations per image at a uniform magnitude bin of 31; no magnitude to set or ramp), imagenet (AutoAugment's "
        "ImageNet policy: one of 25 sub-policies of two operations, each applied with its probability), randaugment "
        "(randaugment_ops operations at magnitude randaugment, default 9; progressive learning ramps it), none. null: "
        "randaugment when a RandAugment magnitude is given (randaugment, or progressive.randaugment with progressive "
        "learning), else none."))
    randaugment: int | None = Field(default=None, ge=0, le=30,
        description="RandAugment magnitude (0-30); null is off. Progressive learning sets it per stage.")
    randaugment_ops: int = Field(default=2, ge=1, le=14, description="RandAugment operations per image.")
    policy_interpolation: Literal["nearest", "bilinear"] = Field(default="nearest", description=(
        "Interpolation of the policies' geometric operations (shear, translate, rotate): nearest is the transforms' "
        "default; torchvision's reference passes its --interpolation (bilinear)."))
    random_erasing: RandomErasing | None = Field(default=None, description="torchvision's RandomErasing; null is off.")
    mixup: float = Field(default=0.0, ge=0, le=100, description="MixUp alpha (at most 100); 0 is off. Progressive learning sets it per stage.")
    cutmix: float = Field(default=0.0, ge=0, le=100, description=(
        "CutMix alpha (at most 100); 0 is off. With mixup too, each batch picks one of the two."))

    @field_validator("crop_scale")
    @classmethod
    def _crop_scale(cls, v: Range) -> Range:
        if not 0 < v[0] <= v[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {list(v)}")
        return v


class Sampler(Strict):
    repeats: int = Field(default=1, ge=1, le=64, description=(
        "Repeated augmentation (torchvision's --ra-sampler --ra-reps, DeiT's RASampler): each image drawn into the "
        "epoch appears this many times, on different workers (or micro-batches of a global batch) with different "
        "augmentations; the epoch keeps its length, so it holds 1/repeats of the images. 1 is off."))
