"""A training run's view of a dataset decoded into memory (dataset.storage memory): the same calls as
workbench.data.stream.StreamData, so the trainer has one loop for both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from workbench.data.batches import train_batches
from workbench.data.images import ImageData
from workbench.data.transforms import eval_images


@dataclass
class MemoryData:
    """ImageData (shared with the cache and, through it, with this machine's other trials: never modified)."""

    images: ImageData
    storage: str = "memory"
    _val: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.images.name

    @property
    def classes(self) -> list[str]:
        return self.images.classes

    @property
    def num_classes(self) -> int:
        return self.images.num_classes

    @property
    def skipped(self) -> list[str]:
        return self.images.skipped

    @property
    def ignored(self) -> list[str]:
        return self.images.ignored

    @property
    def cache_size(self) -> int:
        return self.images.image_size

    @property
    def train_count(self) -> int:
        return len(self.images.train_images)

    @property
    def val_count(self) -> int:
        return len(self.images.val_images)

    @property
    def train_labels(self) -> torch.Tensor:
        return self.images.train_labels

    def stored_size(self, stage_size: int, random_crop: bool) -> int:
        """Every stage crops from (or resizes) the images as they are stored."""
        return self.images.image_size

    def train_batches(self, order: Sequence[torch.Tensor], size: int, *, num_workers: int, pin_memory: bool) -> DataLoader:
        """The uint8 batches of `order` at the stored size (`size` is always stored_size's answer here)."""
        return train_batches(self.images.train_images, self.images.train_labels, list(order), num_workers=num_workers,
                             pin_memory=pin_memory)

    def val_at(self, resize: int, crop: int | None, rows: slice, *, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation images of `rows` (their shorter side resized to `resize`, then the centre `crop`, as
        transforms.eval_images), made once per size, and their labels."""
        key = (resize, crop, rows.start or 0, rows.stop)
        if key not in self._val:
            self._val[key] = eval_images(self.images.val_images[rows], resize, crop), self.images.val_labels[rows]
        return self._val[key]
