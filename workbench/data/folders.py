"""Image folders: finding the class folders and their images, then decoding them once.

Two layouts: `path/train/<class>/...` with `path/val/<class>/...`, or `path/<class>/...` split by
dataset.val_fraction. The classes, their order and the order of the images are torchvision ImageFolder's (sorted
names, images found recursively, files of IMG_EXTENSIONS, case-insensitive). The walk itself is written here
because torchvision's make_dataset follows folder links without remembering where it has been (a link loop lists
each image dozens of times, two loops never end) and stops at the first empty class; this one visits each real
folder once, leaves out hidden entries (.DS_Store, ._photo.jpg, .ipynb_checkpoints) and macOS's __MACOSX, and
reports every problem at once. What it leaves out is listed in ImageData.ignored; images it cannot decode are
skipped or refused by dataset.on_bad_image.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from workbench.data.images import ImageData, check_memory, decode_file, error_reason
from workbench.data.sources import Decoder, Samples, stratified_split, subset
from workbench.errors import WorkbenchError, printable
from workbench.schema.dataset import DatasetConfig

log = logging.getLogger("workbench.data")
JUNK_FOLDERS = {"__MACOSX"}  # resource forks that macOS's zip adds beside the real folders
SPLIT_NAMES = {"train", "training", "val", "valid", "validation", "test", "testing"}
IGNORED_EXAMPLES = 3  # entries named in the one-line warning about ignored entries


@dataclass
class FolderFiles:
    """An image folder's classes and (path, class index) samples, before decoding."""

    classes: list[str]
    train: Samples
    val: Samples
    ignored: list[str] = field(default_factory=list)  # printable paths of entries that are not images, or hidden
    unreadable: list[str] = field(default_factory=list)  # printable paths of folders that could not be listed

    def samples(self) -> Samples:
        return self.train + self.val


@dataclass
class _Walk:
    """What a scan found besides images."""

    ignored: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (folder, reason)


def imagefolder_files(cfg: DatasetConfig) -> FolderFiles:
    """The classes and samples of the image folder at dataset.path, in sorted order; refuses a folder that is not a
    usable image folder, naming the folders to fix."""
    root = Path(cfg.path or "").expanduser()
    _check_root(root)
    walk = _Walk()
    if os.path.isdir(root / "train") and os.path.isdir(root / "val"):
        classes, train = _scan_split(root / "train", walk)
        val = _scan_val(root / "val", classes, walk)
        walk.ignored += [printable(str(p)) for p in _entries(root, walk) if p.name not in ("train", "val")]
    else:
        _refuse_split_lookalike(root)
        classes, samples = _scan_split(root, walk)
        train, val = _split(root, samples, cfg)
    _refuse_unreadable(walk, cfg.on_bad_image)
    train = [train[i] for i in subset(np.arange(len(train)), cfg.max_train_images, cfg.split_seed)]
    val = [val[i] for i in subset(np.arange(len(val)), cfg.max_val_images, cfg.split_seed + 1)]
    return FolderFiles(classes, train, val, ignored=walk.ignored,
                       unreadable=[printable(folder) + os.sep for folder, _ in walk.unreadable])


def load_imagefolder(cfg: DatasetConfig, channels: int, size: int, files: FolderFiles) -> ImageData:
    check_memory(len(files.train) + len(files.val), channels, size, "imagefolder")
    if files.ignored:
        log.warning("image folder %s: left out what is not an image or is hidden (%d: %s%s)", printable(str(cfg.path)),
                    len(files.ignored), ", ".join(files.ignored[:IGNORED_EXAMPLES]),
                    ", ..." if len(files.ignored) > IGNORED_EXAMPLES else "")
    for folder in files.unreadable:
        log.warning("skipping unreadable folder %s", folder)
    decoder = Decoder(channels, size, cfg.on_bad_image)
    decoder.skipped += files.unreadable
    train_images, train_labels = decoder.decode(_file_items(files.train, channels, size))
    val_images, val_labels = decoder.decode(_file_items(files.val, channels, size))
    return ImageData(name=Path(cfg.path or "").name or "imagefolder", classes=[printable(c) for c in files.classes],
                     train_images=train_images, train_labels=train_labels, val_images=val_images,
                     val_labels=val_labels, skipped=decoder.skipped, ignored=files.ignored)


def _file_items(samples: Samples, channels: int, size: int) -> Iterable[tuple[str, Callable[[], tuple[torch.Tensor, int]]]]:
    return ((path, partial(_read_sample, path, label, channels, size)) for path, label in samples)


def _read_sample(path: str, label: int, channels: int, size: int) -> tuple[torch.Tensor, int]:
    return decode_file(path, channels, size), label


# --- the layout ---------------------------------------------------------------------------------
# WorkbenchError escapes what a terminal cannot show (an undecodable file name), so paths go in its lines as they are.
# os.path.isdir, not Path.is_dir: it answers False, never raises, for an entry whose folder cannot be searched.


def _check_root(root: Path) -> None:
    if not os.path.exists(root):
        raise WorkbenchError(f"dataset.path {root} does not exist")
    if not os.path.isdir(root):
        raise WorkbenchError([f"dataset.path {root} is a file, not a folder",
                              "point dataset.path at a folder of class folders, or at one holding train/ and val/ folders of them"])


def _refuse_split_lookalike(root: Path) -> None:
    """A folder holding only train/ and test/ (or Train/ and Val/) would otherwise train on the split names as classes."""
    names = [p.name for p in _entries(root, _Walk()) if os.path.isdir(p)]
    if names and all(name.lower() in SPLIT_NAMES for name in names):
        raise WorkbenchError([f"dataset.path {root} holds {', '.join(n + '/' for n in names)} but not both train/ and val/",
                              "name the two folders train/ and val/ exactly, or set dataset.path to the training "
                              "folder alone to split it by dataset.val_fraction"])


def _scan_split(folder: Path, walk: _Walk) -> tuple[list[str], Samples]:
    """The class folders of `folder` (each must hold an image) and their samples."""
    class_dirs, files = [], []
    for entry in _entries(folder, walk):
        (class_dirs if os.path.isdir(entry) else files).append(entry)
    if not class_dirs:
        images = [f for f in files if _is_image_name(f.name)]
        raise WorkbenchError([f"{folder}: no class folders"
                              + (f" (it holds {len(images)} images directly)" if images else ""),
                              "an image folder holds one folder of images per class (or train/ and val/ folders of them): "
                              "move the images into class folders, or point dataset.path at the folder that holds them"])
    walk.ignored += [printable(str(f)) for f in files]
    classes = [d.name for d in class_dirs]
    samples: Samples = []
    empty = []
    for index, class_dir in enumerate(class_dirs):
        images = _images_under(class_dir, walk)
        if not images and not any(_within(folder, class_dir) for folder, _ in walk.unreadable):
            empty.append(str(class_dir))
        samples += [(path, index) for path in images]
    if empty:
        raise WorkbenchError([f"class folder{'s' if len(empty) > 1 else ''} without any image file: {', '.join(empty)}",
                              f"every folder in {folder} is a class: add images ({_extensions()}), "
                              "or move the empty folder out"])
    return classes, samples


def _scan_val(folder: Path, classes: list[str], walk: _Walk) -> Samples:
    """val/'s samples, labelled by train/'s classes; a val class without a train folder is refused, an empty
    folder is ignored."""
    index = {name: i for i, name in enumerate(classes)}
    samples: Samples = []
    orphans = []
    for entry in _entries(folder, walk):
        if not os.path.isdir(entry):
            walk.ignored.append(printable(str(entry)))
            continue
        images = _images_under(entry, walk)
        if entry.name in index:
            samples += [(path, index[entry.name]) for path in images]
        elif images:
            orphans.append(entry.name)
        else:
            walk.ignored.append(printable(str(entry)))
    if orphans:
        train, several = folder.parent / "train", len(orphans) > 1
        raise WorkbenchError([f"{folder}: class folder{'s' if several else ''} {', '.join(orphans)} "
                              f"{'have' if several else 'has'} no counterpart in {train}",
                              f"the classes are the folders of train/: add training images in {train}/<class>, "
                              "or move the val folder out"])
    if not samples:
        raise WorkbenchError([f"{folder}: none of its class folders holds an image",
                              f"add validation images in {folder}/<class>, or set dataset.path={folder.parent / 'train'} "
                              "to split the training folder by dataset.val_fraction"])
    return samples


def _split(root: Path, samples: Samples, cfg: DatasetConfig) -> tuple[Samples, Samples]:
    if len(samples) - math.ceil(cfg.val_fraction * len(samples)) < 1:
        raise WorkbenchError([f"{root}: {len(samples)} image{'s' if len(samples) != 1 else ''} cannot be "
                              f"split into train and val by dataset.val_fraction={cfg.val_fraction}: none would be left to train on",
                              "add images, lower dataset.val_fraction, or give the folder train/ and val/ class folders"])
    train_idx, val_idx = stratified_split(np.array([label for _, label in samples]), cfg.val_fraction, cfg.split_seed)
    return [samples[i] for i in train_idx], [samples[i] for i in val_idx]


def _refuse_unreadable(walk: _Walk, on_bad: str) -> None:
    if walk.unreadable and on_bad == "fail":
        folder, reason = walk.unreadable[0]
        raise WorkbenchError([f"cannot read folder {folder}: {reason}"
                              + (f" (and {len(walk.unreadable) - 1} more)" if len(walk.unreadable) > 1 else ""),
                              "fix its permissions, or set dataset.on_bad_image=skip to leave unreadable folders out"])


# --- walking ------------------------------------------------------------------------------------


def _entries(folder: Path, walk: _Walk) -> list[Path]:
    """The visible entries of `folder`, sorted by name; hidden and junk ones go to walk.ignored."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise WorkbenchError([f"cannot read folder {folder}: {exc.strerror or error_reason(exc)}",
                              "fix its permissions, or point dataset.path at another folder"]) from None
    walk.ignored += [printable(str(folder / name)) for name in names if _hidden(name)]
    return [folder / name for name in names if not _hidden(name)]


def _images_under(top: Path, walk: _Walk) -> list[str]:
    """Image files anywhere under `top`, following links, in the order of torchvision's make_dataset: by folder
    path, then by file name. Each real folder is entered once, and a link to `top` or above it not at all (it
    would bring in the other classes)."""
    found: list[tuple[str, list[str]]] = []
    seen: set[tuple[int, int]] = set()
    top_real = os.path.realpath(top)
    pending = [str(top)]
    while pending:
        folder = pending.pop()
        real = os.path.realpath(folder)
        try:
            info = os.stat(folder)
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            walk.unreadable.append((folder, exc.strerror or error_reason(exc)))
            continue
        if (info.st_dev, info.st_ino) in seen or (folder != str(top) and _within(top_real, real)):  # a link loop
            walk.ignored.append(printable(folder))
            continue
        seen.add((info.st_dev, info.st_ino))
        names, subfolders = [], []
        for entry in entries:
            if _hidden(entry.name):
                walk.ignored.append(printable(entry.path))
            elif _is_dir(entry):
                subfolders.append(entry.path)
            elif _is_image_name(entry.name):
                names.append(entry.name)
            else:
                walk.ignored.append(printable(entry.path))
        found.append((folder, names))
        pending += reversed(subfolders)  # depth first in name order: which of two links to a folder is kept is fixed
    found.sort()
    return [os.path.join(folder, name) for folder, names in found for name in names]


def _within(folder: str, top: Path | str) -> bool:
    """`folder` is `top` or inside it (as paths: links are not resolved here)."""
    return folder == str(top) or folder.startswith(str(top).rstrip(os.sep) + os.sep)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links; a dangling link is a file (and, named x.jpg, an unreadable image)
    except OSError:
        return False


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in JUNK_FOLDERS


def _is_image_name(name: str) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return name.lower().endswith(IMG_EXTENSIONS)


def _extensions() -> str:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return ", ".join(IMG_EXTENSIONS)
