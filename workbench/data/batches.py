"""Training batches gathered whole from the uint8 images in memory, in an order drawn from the epoch's generator.

A batch is one index_select of the uint8 tensor (no per-image __getitem__ and collate); DataLoader workers, when the
recipe asks for them (CUDA), only gather and pin batches in the background: the augmentation runs on the training
device afterwards (workbench.data.augment).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


def batch_order(count: int, batch_size: int, drop_last: bool, generator: torch.Generator) -> list[torch.Tensor]:
    """The epoch's batches as index tensors: a permutation of the images drawn from `generator`, cut into batches
    (without a short last batch when `drop_last`)."""
    batches = list(torch.randperm(count, generator=generator).split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


class WholeBatches(Dataset):
    """uint8 images and labels indexed by a whole batch of indices at once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


def train_batches(images: torch.Tensor, labels: torch.Tensor, order: list[torch.Tensor], *, num_workers: int = 0,
                  pin_memory: bool = False) -> DataLoader:
    """The uint8 batches of `order`, in that order. The loader draws its workers' base seed from a generator of its
    own (fixed: the workers draw nothing), not from torch's global RNG."""
    return DataLoader(WholeBatches(images, labels), sampler=order, batch_size=None, num_workers=num_workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(0))
