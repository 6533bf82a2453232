"""Image tensors: decoding files, channel conversion, square resizing, and the in-memory dataset container."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

from workbench.errors import WorkbenchError

RESIZE_CHUNK = 512  # images resized per call: bounds the float scratch memory of a batched resize


@dataclass
class ImageData:
    """A dataset held in memory as uint8 tensors [N, C, S, S]. Shared through the cache: never modify in place."""

    name: str
    classes: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    skipped: list[str] = field(default_factory=list)

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def available_memory() -> int:
    """Bytes that can be allocated without swapping: Linux's MemAvailable (free memory alone omits the page cache)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown platform: do not guess a limit


def check_memory(count: int, channels: int, size: int, name: str) -> None:
    """Refuse a cache that would not fit in memory, before decoding for minutes."""
    needed = count * channels * size * size
    if needed > 0.8 * available_memory():
        raise WorkbenchError([
            f"dataset {name}: {count:,} images at {size}x{size}x{channels} need {needed / 2**30:.1f} GiB in memory, "
            f"more than is free ({available_memory() / 2**30:.1f} GiB)",
            "lower the image size (scale.resolution, recipe.progressive.image_size) or keep a subset with dataset.max_train_images",
        ])


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [..., C, H, W] with C in {1, 3} -> `channels` (grayscale repeated to RGB, RGB converted to luma)."""
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        return TF.rgb_to_grayscale(images, num_output_channels=1)
    raise WorkbenchError(f"cannot turn {have}-channel images into {channels} channels: datasets provide grayscale (1) "
                         "or RGB (3); set the architecture's in_channels to 1 or 3")


def square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` (antialiased) and center-crop to size x size; works on one image or a batch."""
    height, width = images.shape[-2:]
    if (height, width) != (size, size):
        if height == width:
            images = TF.resize(images, [size, size], antialias=True)
        else:
            images = TF.center_crop(TF.resize(images, size, antialias=True), [size, size])
    return images.contiguous()


def square_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """`square` over a big uint8 batch in chunks."""
    if len(images) == 0:
        return images.new_zeros((0, images.shape[1], size, size))
    return torch.cat([square(chunk, size) for chunk in images.split(RESIZE_CHUNK)])


def decode_file(path: str | Path, channels: int) -> torch.Tensor:
    """Decode an image file to uint8 [C, H, W]; raises OSError/RuntimeError/ValueError when unreadable."""
    from torchvision.io import ImageReadMode, decode_image

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        return decode_image(str(path), mode=mode)
    except (RuntimeError, ValueError):
        # torchvision.io reads JPEG/PNG/GIF/WebP/AVIF/HEIC; PIL covers the other ImageFolder extensions (BMP, TIFF, PPM).
        return _decode_with_pil(path, channels)


def _decode_with_pil(path: str | Path, channels: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return TF.pil_to_tensor(img.convert("RGB" if channels == 3 else "L"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def stack(images: list[torch.Tensor], channels: int, size: int) -> torch.Tensor:
    if not images:
        return torch.zeros((0, channels, size, size), dtype=torch.uint8)
    return torch.stack(images)
