"""Where images come from: scikit-learn's digits or a torchvision dataset class by name (image folders:
workbench.data.folders), and the one-by-one Decoder they share with image folders.

Every source returns an ImageData at one square size, decoded once.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.data.images import (ImageData, check_memory, decode_file, error_reason, pil_to_uint8, square, square_batch,
                                   stack, to_channels)
from workbench.errors import WorkbenchError, printable
from workbench.schema.dataset import DatasetConfig

log = logging.getLogger("workbench.data")
Samples = list[tuple[str, int]]  # (image path, class index)
DEFAULT_ROOT = Path("~/.cache/workbench/datasets")


# --- splits -------------------------------------------------------------------------------------


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and val indices; stratified unless some class is too small to appear on both sides."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    try:
        train, val = train_test_split(indices, test_size=val_fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class with one image, or fewer val images than classes: split without strata
        train, val = train_test_split(indices, test_size=val_fraction, random_state=seed)
    return np.sort(train), np.sort(val)


def subset(indices: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A fixed random subset of at most `limit` indices, in their original order."""
    if limit is None or limit >= len(indices):
        return indices
    chosen = np.random.default_rng(seed).choice(len(indices), size=limit, replace=False)
    return indices[np.sort(chosen)]


# --- digits -------------------------------------------------------------------------------------


def load_digits(cfg: DatasetConfig, channels: int, size: int) -> ImageData:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    # 17 intensity levels 0..16 stretched to the full uint8 range.
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images = square_batch(torch.from_numpy(pixels).unsqueeze(1), size)
    images = to_channels(images, channels)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    train, val = stratified_split(digits.target, cfg.val_fraction, cfg.split_seed)
    train = subset(train, cfg.max_train_images, cfg.split_seed)
    val = subset(val, cfg.max_val_images, cfg.split_seed + 1)
    return ImageData(name="digits", classes=[str(c) for c in digits.target_names],
                     train_images=images[train], train_labels=labels[train],
                     val_images=images[val], val_labels=labels[val])


# --- decoding one image at a time ---------------------------------------------------------------


class Decoder:
    """Decodes images one at a time to uint8 [C, size, size], applying the dataset's bad-image policy."""

    def __init__(self, channels: int, size: int, on_bad: str):
        self.channels, self.size, self.on_bad = channels, size, on_bad
        self.skipped: list[str] = []

    def decode(self, items: Iterable[tuple[str, Callable[[], tuple[Any, int]]]]) -> tuple[torch.Tensor, torch.Tensor]:
        """items: (where, load) pairs; load() returns (image, label) with the image as a tensor or PIL image."""
        images, labels = [], []
        for where, load in items:
            try:
                image, label = load()
                image = as_uint8_image(image, self.channels)
            except (OSError, RuntimeError, ValueError) as exc:
                self._bad_image(where, exc)
                continue
            images.append(square(image, self.size))
            labels.append(int(label))
        return stack(images, self.channels, self.size), torch.tensor(labels, dtype=torch.int64)

    def _bad_image(self, where: str, exc: Exception) -> None:
        where, reason = printable(where), printable(error_reason(exc))  # as listed in ImageData.skipped and the log
        if self.on_bad == "fail":
            raise WorkbenchError([f"cannot read image {where}: {reason}",
                                  "fix or remove the file, or set dataset.on_bad_image=skip to leave unreadable images out"])
        log.warning("skipping unreadable image %s: %s", where, reason)
        self.skipped.append(where)


def as_uint8_image(image: Any, channels: int) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return to_channels(image if image.ndim == 3 else image.unsqueeze(0), channels)
    return pil_to_uint8(image, channels)


# --- torchvision datasets -----------------------------------------------------------------------


def dataset_root(cfg: DatasetConfig) -> Path:
    return Path(cfg.root).expanduser().resolve() if cfg.root else DEFAULT_ROOT.expanduser()


def open_torchvision(cfg: DatasetConfig, name: str, entry: dict[str, Any], split: str, channels: int,
                     loader: Callable[[str], Any] | None = None):
    """Instantiate the registry entry's torchvision dataset class for one split, with no transform. `loader`
    replaces decoding for classes that read image files through a loader (the default decodes with decode_file)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, entry["class"], None)
    if not isinstance(cls, type):
        raise WorkbenchError(f"dataset {name}: torchvision.datasets has no class {entry['class']!r} "
                             f"(torchvision {torchvision.__version__})")
    root = dataset_root(cfg)
    kwargs = dict(entry.get(split, {}))
    if "loader" in inspect.signature(cls).parameters:
        kwargs["loader"] = loader or (lambda path: decode_file(path, channels))
    try:
        return cls(root=str(root), download=cfg.download, **kwargs)
    except (RuntimeError, OSError, ValueError) as exc:
        raise WorkbenchError(_missing_files_message(cfg, name, entry, root, exc)) from None


def _missing_files_message(cfg: DatasetConfig, name: str, entry: dict[str, Any], root: Path, exc: Exception) -> list[str]:
    lines = [f"dataset {name}: cannot open its files under {root} ({str(exc).strip() or type(exc).__name__})"]
    if cfg.download:
        lines.append("downloading failed; this machine may be offline")
    lines += [f"fetch: {url}" for url in entry.get("fetch", [])]
    if entry.get("layout"):
        lines.append("and place them as " + entry["layout"].format(root=root))
    if not cfg.download:
        lines.append("or, with internet access, run once with --set dataset.download=true")
    lines.append("(dataset.root chooses the folder)")
    return lines


def load_torchvision(cfg: DatasetConfig, name: str, entry: dict[str, Any], channels: int, size: int) -> ImageData:
    train_set = open_torchvision(cfg, name, entry, "train", channels)
    val_set = open_torchvision(cfg, name, entry, "val", channels)
    train_idx = subset(np.arange(len(train_set)), cfg.max_train_images, cfg.split_seed)
    val_idx = subset(np.arange(len(val_set)), cfg.max_val_images, cfg.split_seed + 1)
    check_memory(len(train_idx) + len(val_idx), channels, size, name)
    decoder = Decoder(channels, size, cfg.on_bad_image)
    train_images, train_labels = extract(train_set, train_idx, decoder, f"{name} train")
    val_images, val_labels = extract(val_set, val_idx, decoder, f"{name} val")
    labels = torch.cat([train_labels, val_labels])
    classes = class_names(train_set, entry, int(labels.max()) + 1 if len(labels) else 0)
    return ImageData(name=name, classes=classes, train_images=train_images, train_labels=train_labels,
                     val_images=val_images, val_labels=val_labels, skipped=decoder.skipped)


def torchvision_files(cfg: DatasetConfig, name: str, entry: dict[str, Any], channels: int) -> tuple[list[str], Samples, Samples] | None:
    """The classes and the (file path, class index) samples of both splits of a torchvision dataset that reads its
    images from files (Imagenette, Flowers102, StanfordCars, ...), chosen as load_torchvision chooses them; None for
    a dataset kept in array files (CIFAR, MNIST, SVHN). The files are listed, not read: the loader returns the path."""
    datasets, splits = [], []
    for split, seed, limit in (("train", cfg.split_seed, cfg.max_train_images), ("val", cfg.split_seed + 1, cfg.max_val_images)):
        dataset = open_torchvision(cfg, name, entry, split, channels, loader=str)
        if _array_images(dataset) is not None or (len(dataset) and not isinstance(dataset[0][0], str)):
            return None
        datasets.append(dataset)
        splits.append([(path, int(label)) for path, label in (dataset[int(i)] for i in subset(np.arange(len(dataset)), limit, seed))])
    count = 1 + max((label for samples in splits for _, label in samples), default=-1)
    return class_names(datasets[0], entry, count), splits[0], splits[1]


def extract(dataset, indices: np.ndarray, decoder: Decoder, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen items of a torchvision dataset: straight from its array when it keeps one, else one by one."""
    arrays = _array_images(dataset)
    if arrays is not None:
        images, labels = arrays
        chosen = torch.from_numpy(indices)
        return to_channels(square_batch(images[chosen], decoder.size), decoder.channels), labels[chosen]
    return decoder.decode((f"{what} #{int(i)}", partial(dataset.__getitem__, int(i))) for i in indices)


def _array_images(dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Datasets that keep every image in one array (CIFAR, MNIST, SVHN): uint8 [N, C, H, W] and int64 labels."""
    data = getattr(dataset, "data", None)
    targets = getattr(dataset, "targets", getattr(dataset, "labels", None))
    if targets is None or not isinstance(data, (np.ndarray, torch.Tensor)):
        return None
    data = torch.as_tensor(data)
    if data.dtype != torch.uint8 or data.ndim not in (3, 4):
        return None
    if data.ndim == 3:
        data = data.unsqueeze(1)
    elif data.shape[-1] in (1, 3) and data.shape[1] not in (1, 3):
        data = data.permute(0, 3, 1, 2)  # HWC arrays (CIFAR) to CHW
    return data, torch.as_tensor(np.asarray(targets), dtype=torch.int64)


def class_names(dataset, entry: dict[str, Any], count: int) -> list[str]:
    names = entry.get("classes") or getattr(dataset, "classes", None)
    if not names:
        return [str(i) for i in range(count)]
    # Imagenette lists each class as a tuple of synonyms; the first is the common name.
    return [n[0] if isinstance(n, (tuple, list)) else str(n) for n in names]

