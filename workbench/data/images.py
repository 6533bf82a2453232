"""Image tensors: decoding files, channel conversion, square resizing, and the in-memory dataset container."""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from workbench.errors import WorkbenchError

RESIZE_CHUNK = 512  # images resized per call: bounds the float scratch memory of a batched resize
LARGE_IMAGE_PIXELS = 4096 * 4096  # above this, decode at reduced scale (bounds memory and time); below, pixel-exact
MAX_ASPECT = 8  # longer side / shorter side beyond which `square` centre-crops before resizing


@dataclass
class ImageData:
    """A dataset held in memory as uint8 tensors [N, C, S, S]. Shared through the cache: never modify in place."""

    name: str
    classes: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    skipped: list[str] = field(default_factory=list)  # unreadable images (and folders) left out, printable paths
    ignored: list[str] = field(default_factory=list)  # entries under an image folder that are not images, or hidden

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
    return _meminfo("MemAvailable:", "SC_AVPHYS_PAGES")


def total_memory() -> int:
    """Bytes of memory of this machine (Linux's MemTotal)."""
    return _meminfo("MemTotal:", "SC_PHYS_PAGES")


def _meminfo(field_name: str, sysconf_name: str) -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf(sysconf_name) * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown platform: do not guess a limit


def check_memory(count: int, channels: int, size: int, name: str) -> None:
    """Refuse a cache that would not fit in memory, before decoding for minutes."""
    needed = count * channels * size * size
    if needed > 0.8 * available_memory():
        raise WorkbenchError([
            f"dataset {name}: {count:,} images at {size}x{size}x{channels} need {needed / 2**30:.1f} GiB in memory, "
            f"more than is free ({available_memory() / 2**30:.1f} GiB)",
            "lower the image size (scale.resolution, recipe.progressive.image_size), keep a subset with dataset.max_train_images, "
            "or stream the images from their files (dataset.storage=stream)",
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
    short = min(height, width)
    if max(height, width) > MAX_ASPECT * short:  # a 1 x 10000 strip would otherwise be resized to 224 x 2.24M
        images = TF.center_crop(images, [min(height, 2 * short), min(width, 2 * short)])
        height, width = images.shape[-2:]
    if (height, width) != (size, size):
        if height == width:
            images = TF.resize(images, [size, size], antialias=True)
        else:
            images = TF.center_crop(TF.resize(images, size, antialias=True), [size, size])
    return images.contiguous()


def square_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """`square` over a big uint8 batch in chunks; a batch already size x size is returned as it is, not copied (the
    validation images of a dataset cached at the evaluation size stay views of the cache, and of a shared copy)."""
    if len(images) == 0:
        return images.new_zeros((0, images.shape[1], size, size))
    if tuple(images.shape[-2:]) == (size, size) and images.is_contiguous():
        return images
    return torch.cat([square(chunk, size) for chunk in images.split(RESIZE_CHUNK)])


def decode_file(path: str | Path, channels: int, size: int | None = None) -> torch.Tensor:
    """Decode an image file to uint8 [channels, H, W]; raises ValueError with the reason when it cannot be read.

    Any PIL mode is accepted (palette, 1-bit, 16-bit, CMYK, with alpha: see `to_8bit`). PIL refuses images
    above its decompression-bomb limit (Image.MAX_IMAGE_PIXELS x 2) from the header alone. With `size`, an image
    above LARGE_IMAGE_PIXELS is decoded at reduced scale (JPEG: by libjpeg's DCT scaling) keeping its shorter side
    at least `size`, so an 8000 x 8000 photo never costs its full 192 MB.
    """
    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device named x.jpg would block PIL's read
            raise ValueError("not a regular file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # such sizes are decoded reduced, below
            with Image.open(path) as opened:
                large = size is not None and opened.width * opened.height > LARGE_IMAGE_PIXELS
                # JPEG only (a no-op for other formats): decode straight to grayscale, as libjpeg's own gray
                # output, and a large image at 1/2, 1/4 or 1/8 scale, keeping both sides at least `size`.
                opened.draft("RGB" if channels == 3 else "L", (size, size) if large else opened.size)
                image = to_8bit(opened, channels)
        factor = min(image.size) // size if large else 1
        return TF.pil_to_tensor(image.reduce(factor) if factor > 1 else image).contiguous()
    except Exception as exc:  # PIL raises OSError, SyntaxError, EOFError, struct.error, zlib.error, ... on bad files
        raise ValueError(error_reason(exc)) from None


FAST_FORMATS = ("JPEG", "PNG", "WEBP")  # what torchvision.io.decode_image decodes without PIL


def decode_fast(path: str | Path, channels: int) -> torch.Tensor:
    """Decode an image file to uint8 [channels, H, W] with torchvision.io.decode_image (libjpeg-turbo, libpng,
    libwebp; no PIL image in between), as the streaming path does for every sample; raises ValueError with the
    reason when it cannot be read.

    PIL reads the header first (the format, and its decompression-bomb check from the size alone); other formats
    (BMP, TIFF, PGM, ...), images above LARGE_IMAGE_PIXELS and files decode_image refuses go through decode_file.
    The pixels equal decode_file's for 8-bit PNG and lossless WebP and for JPEG with the same libjpeg; 16-bit PNGs
    keep their top 8 bits as there; RGB to grayscale may differ by one level (libpng's weights, not PIL's).
    """
    try:
        image = _torchvision_decode(path, channels)
    except Exception:  # PIL's and torchvision's errors on bad files: PIL's decoder below names the reason
        image = None
    return decode_file(path, channels) if image is None else image


def _torchvision_decode(path: str | Path, channels: int) -> torch.Tensor | None:
    """decode_image's uint8 [channels, H, W], or None for what it should not decode (see decode_fast)."""
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_image

    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device named x.jpg would block the read
        return None
    data = Path(path).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as opened:
            kind, pixels = opened.format, opened.width * opened.height
    if kind not in FAST_FORMATS or pixels > LARGE_IMAGE_PIXELS:
        return None
    gray = channels == 1 and kind != "WEBP"  # libwebp decodes to colour only (to_channels converts)
    image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.GRAY if gray else ImageReadMode.RGB)
    if image.dtype != torch.uint8:  # 16-bit PNG
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    return to_channels(image, channels).contiguous()


def pil_to_uint8(img, channels: int) -> torch.Tensor:
    """A PIL image of any mode as uint8 [channels, H, W] (see `to_8bit`)."""
    return TF.pil_to_tensor(to_8bit(img, channels)).contiguous()


def to_8bit(img, channels: int):
    """A PIL image of any mode in mode RGB (channels 3) or L (1): palette expanded, alpha dropped, CMYK converted,
    16-bit scaled to 8 bits (PIL's own convert would clip every value above 255 to white)."""
    from PIL import Image

    target = "RGB" if channels == 3 else "L"
    if img.mode.startswith("I"):  # I;16 (PNG, TIFF), I (PGM with maxval > 255, 32-bit TIFF): 16-bit range
        img = Image.fromarray((np.clip(np.asarray(img), 0, 65535).astype(np.uint16) >> 8).astype(np.uint8))
    elif img.mode == "F":
        raise ValueError("32-bit floating-point pixels have no defined range; save the image with 8 or 16 bits")
    elif img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")  # what PIL asks for: converting such palettes straight to RGB warns
    if img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", target):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, RGBX, ...: PIL converts each of them to RGB, not all to L
    return img.convert(target)  # a copy even when the mode matches: the result outlives the opened file


def error_reason(exc: BaseException) -> str:
    """The first line of an exception's message, else its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def stack(images: list[torch.Tensor], channels: int, size: int) -> torch.Tensor:
    if not images:
        return torch.zeros((0, channels, size, size), dtype=torch.uint8)
    return torch.stack(images)
