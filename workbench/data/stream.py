"""Datasets larger than memory: training images decoded from their files as batches are drawn.

    data = StreamData.of_folder(cfg, channels=3, cache_size=300, files=imagefolder_files(cfg))
    for images, labels in data.train_batches(order, size=300, num_workers=8, pin_memory=True): ...
    val_images, val_labels = data.val_at(438, 384, slice(0, None))   # resized, centre-cropped, once per size

Each DataLoader worker process decodes the images of whole batches with torchvision.io.decode_image
(workbench.data.images.decode_fast), resizes each once (the same `square` as the memory path) and stacks them into
one uint8 batch, in the order of the batch indices the trainer drew (workbench.data.batches.batch_order): the
augmentation, on the training device, is the memory path's. Only the file list stays in memory (the paths packed in
one byte array, not a Python string each: DataLoader workers touching Python objects would copy every page they
sit on, worker by worker), plus the validation set at the evaluation size, decoded once.

Why DataLoader workers and not Ray Data (`ray.data.read_images`) or WebDataset shards: the trainer needs random
access by index to keep the batch order and every augmentation draw a function of (seed, epoch) and to hand each
data-parallel rank its slice of the same global batch; Ray Data's shuffles are its own (a local shuffle buffer or a
full shuffle of the blocks, seeded per dataset, not per epoch) and its per-worker iterators split blocks, not
batches, and WebDataset's sequential shards allow only a shuffle buffer and need the dataset rewritten into tar
files. Image folders on a shared file system are what users have; a DataLoader worker per core decodes them.

A file that cannot be decoded mid-epoch (it was readable when listed) stops the run naming it
(dataset.on_bad_image=fail), or (skip) is replaced in its batch by the next readable file of the list, so every
batch keeps its size and every rank its share; it is logged once and listed in `skipped`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from workbench.data.images import decode_fast, error_reason, square
from workbench.errors import WorkbenchError, printable

log = logging.getLogger("workbench.data")
VAL_BATCH = 64  # images per DataLoader item while decoding the validation set
MAX_REPLACEMENTS = 1000  # readable files tried in place of an unreadable one before the stream gives up
Problem = tuple[str, str]  # (printable path, reason)


class PathTable:
    """File paths packed into one byte array with offsets (see the module docstring)."""

    def __init__(self, paths: Iterable[str]):
        encoded = [os.fsencode(p) for p in paths]
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in encoded], out=self.offsets[1:])
        self.blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        return os.fsdecode(self.blob[self.offsets[index]:self.offsets[index + 1]].tobytes())


@dataclass
class FileSplit:
    paths: PathTable
    labels: torch.Tensor  # int64 [N]

    @classmethod
    def of(cls, samples: Sequence[tuple[str, int]]) -> FileSplit:
        return cls(PathTable(path for path, _ in samples), torch.tensor([label for _, label in samples], dtype=torch.int64))

    def __len__(self) -> int:
        return len(self.paths)


class StreamImages(Dataset):
    """Image i of a split as uint8 [C, size, size], with its label and the problem of an unreadable file.

    replace: an unreadable file gives the next readable one of the split instead (training); else no image (None).
    crop: the centre crop x crop of the resized image (evaluation), else all of it.
    """

    def __init__(self, split: FileSplit, channels: int, size: int, replace: bool, crop: int | None = None):
        self.split, self.channels, self.size, self.replace, self.crop = split, channels, size, replace, crop

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, Problem | None]:
        problem = None
        for attempt in range(MAX_REPLACEMENTS if self.replace else 1):
            current = (index + attempt) % len(self.split)
            path = self.split.paths[current]
            try:
                image = square(decode_fast(path, self.channels), self.size)
                if self.crop is not None and self.crop != self.size:
                    image = TF.center_crop(image, [self.crop, self.crop]).contiguous()
                return image, int(self.split.labels[current]), problem
            except (OSError, RuntimeError, ValueError) as exc:
                problem = problem or (printable(path), printable(error_reason(exc)))
        return None, int(self.split.labels[index]), problem


def collate(items: list[tuple[torch.Tensor | None, int, Problem | None]]) -> tuple[torch.Tensor, torch.Tensor, list[Problem]]:
    """The decoded images of a batch stacked (those that could not be decoded left out), labels, problems."""
    kept = [(image, label) for image, label, _ in items if image is not None]
    problems = [problem for _, _, problem in items if problem is not None]
    if not kept:
        return torch.zeros((0, 0, 0, 0), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), problems
    return torch.stack([image for image, _ in kept]), torch.tensor([label for _, label in kept], dtype=torch.int64), problems


class IndexBatches:
    """A batch sampler over index tensors, listed only as each batch is drawn."""

    def __init__(self, batches: Sequence[torch.Tensor]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return (batch.tolist() for batch in self.batches)


@dataclass
class StreamData:
    """A dataset whose training images stay in their files (see the module docstring)."""

    name: str
    classes: list[str]
    channels: int
    cache_size: int  # the memory path's stored size: the size random crops are taken from
    train: FileSplit
    val: FileSplit
    on_bad: str
    skipped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    storage: str = "stream"
    _val: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_count(self) -> int:
        return len(self.train)

    @property
    def val_count(self) -> int:
        return len(self.val)

    @property
    def train_labels(self) -> torch.Tensor:
        return self.train.labels

    def stored_size(self, stage_size: int, random_crop: bool) -> int:
        """The size each image is resized to once: the size the augmentation crops from (the memory path's stored
        size, so that both draw the same crops from the same pixels), or the stage size when it only resizes."""
        return self.cache_size if random_crop else stage_size

    def train_batches(self, order: Sequence[torch.Tensor], size: int, *, num_workers: int,
                      pin_memory: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 batches [len(batch), C, size, size] of the training images in `order` (index tensors), decoded in
        `num_workers` processes (0: in this one)."""
        loader = DataLoader(StreamImages(self.train, self.channels, size, replace=self.on_bad == "skip"),
                            batch_sampler=IndexBatches(order), collate_fn=collate, num_workers=num_workers,
                            pin_memory=pin_memory, generator=torch.Generator().manual_seed(0))
        for images, labels, problems in loader:
            self._problems(problems)
            yield images, labels

    def val_at(self, resize: int, crop: int | None, rows: slice, *, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation images of `rows` (their shorter side resized to `resize`, then the centre `crop`, as
        transforms.eval_images) and their labels, decoded once per size (unreadable ones left out, as the memory
        path leaves them out)."""
        key = (resize, crop, rows.start or 0, rows.stop)
        if key not in self._val:
            indices = torch.arange(len(self.val))[rows]
            loader = DataLoader(StreamImages(self.val, self.channels, resize, replace=False, crop=crop),
                                batch_sampler=IndexBatches(indices.split(VAL_BATCH)), collate_fn=collate,
                                num_workers=num_workers)
            images, labels = [], []
            for batch_images, batch_labels, problems in loader:
                self._problems(problems)
                if len(batch_labels):
                    images.append(batch_images)
                    labels.append(batch_labels)
            self._val[key] = ((torch.cat(images), torch.cat(labels)) if images else
                              (torch.zeros((0, self.channels, crop or resize, crop or resize), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)))
        return self._val[key]

    def _problems(self, problems: list[Problem]) -> None:
        for where, reason in problems:
            if self.on_bad == "fail":
                raise WorkbenchError([f"cannot read image {where}: {reason}",
                                      "fix or remove the file, or set dataset.on_bad_image=skip to leave unreadable images out"])
            if where not in self.skipped:
                log.warning("skipping unreadable image %s: %s", where, reason)
                self.skipped.append(where)
