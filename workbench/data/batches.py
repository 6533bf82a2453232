"""Training batches gathered whole from the uint8 images in memory, in an order drawn from the epoch's generator.

A batch is one index_select of the uint8 tensor (no per-image __getitem__ and collate); DataLoader workers, when the
recipe asks for them (CUDA), only gather and pin batches in the background: the augmentation runs on the training
device afterwards (workbench.data.augment).

The epoch's order for data-parallel workers and gradient accumulation (`step_batches`): one permutation of the images,
each repeated `repeats` times in a row (repeated augmentation), dealt round-robin to `replicas` streams and cut to
replicas x (count // replicas) images, as torchvision's references/classification/sampler.py RASampler (and, with
repeats 1, torch's DistributedSampler with drop_last) deal theirs. An optimiser step of worker `rank` of `workers`
accumulates `accumulation` micro-batches; each is the next batch of its own stream (stream j x workers + rank for
micro-batch j), so a global batch on one device holds exactly the images that many devices would, each image's
repeats in different micro-batches. torchvision's RASampler also rounds the dataset down to a multiple of 256 before
dealing (from DeiT), which would leave a 244-image dataset empty; here the batching drops the incomplete last step.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from workbench.errors import WorkbenchError


def batch_order(count: int, batch_size: int, drop_last: bool, generator: torch.Generator) -> list[torch.Tensor]:
    """The epoch's batches as index tensors: a permutation of the images drawn from `generator`, cut into batches
    (without a short last batch when `drop_last`)."""
    batches = list(torch.randperm(count, generator=generator).split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def repeated_order(count: int, repeats: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of range(count) drawn from `generator`, each index repeated `repeats` times in a row."""
    order = torch.randperm(count, generator=generator)
    return order.repeat_interleave(repeats) if repeats > 1 else order


def replica_indices(order: torch.Tensor, count: int, num_replicas: int = 1, rank: int = 0) -> torch.Tensor:
    """Replica `rank`'s share of an epoch of `count` images in `order`: every num_replicas-th, count // num_replicas
    of them (torchvision's RASampler subsample and truncation; DistributedSampler(drop_last=True) when `order` holds
    no repeats)."""
    per_replica = count // num_replicas
    return order[: per_replica * num_replicas][rank::num_replicas]


def micro_batch_size(count: int, batch_size: int, replicas: int) -> int:
    """Images per micro-batch: batch_size, or all of a replica's share when that is not more (then one step per epoch)."""
    per_replica = count // replicas
    if per_replica == 0:
        raise WorkbenchError([f"{count} training images cannot fill {replicas} micro-batches (batch_size x workers x "
                              "gradient accumulation)", "lower recipe.global_batch_size, or use more images"])
    return min(batch_size, per_replica)


def steps_per_epoch(count: int, batch_size: int, replicas: int = 1) -> int:
    """Optimiser steps per epoch for `replicas` = workers x micro-batches per step: full steps only, at least one."""
    return max(1, (count // replicas) // micro_batch_size(count, batch_size, replicas))


def step_batches(count: int, batch_size: int, generator: torch.Generator, *, repeats: int = 1, accumulation: int = 1,
                 workers: int = 1, rank: int = 0) -> list[torch.Tensor]:
    """Worker `rank`'s micro-batches of the epoch, in order; each run of `accumulation` of them makes one optimiser
    step (see the module docstring). With every option at 1 this is a permutation cut into batches of batch_size,
    without a short last batch (or one batch of every image when there are no more than batch_size)."""
    order = repeated_order(count, repeats, generator)
    replicas = workers * accumulation
    size = micro_batch_size(count, batch_size, replicas)
    streams = [replica_indices(order, count, replicas, j * workers + rank) for j in range(accumulation)]
    return [stream[step * size:(step + 1) * size] for step in range(steps_per_epoch(count, batch_size, replicas))
            for stream in streams]


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
