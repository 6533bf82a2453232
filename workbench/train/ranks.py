"""The ranks of a data-parallel run (PyTorch DDP): who writes the trial folder, which share of each batch a rank
trains, and how the ranks agree on metrics.

The training loop is one loop for one process and for N. A World of size 1 (`SINGLE`) makes every operation here
the identity, without a torch.distributed call, so a one-worker run is the run it always was, bit for bit. With N
ranks (the process group set up by Ray Train's TorchTrainer, workbench.train.distributed):

- The batch order and every augmentation draw stay a function of (seed, epoch): every rank deals the same epoch
  order (workbench.data.batches.step_batches: rank r's micro-batches hold every workers x accumulation-th image of
  each step's block) and draws the augmentation parameters of the whole step (`StepAugment`), keeping the rows of
  its images, so the N shares of a step are the images, crops, flips and policies of the one-worker step. (MixUp
  and CutMix pair each image with its neighbour within the rank's share; BatchNorm normalises over the share unless
  recipe.sync_batchnorm.)
- DDP averages the gradients of equal shares, which is the gradient of the global batch's mean loss.
- Each step's loss is summed over the ranks (one all_reduce of a scalar), so every rank reads the same losses and
  a diverged run ends at the same step on all of them; train accuracy is summed at the end of the epoch.
- Each rank evaluates its share of the validation set; the sums are all_reduced and the predictions gathered, so
  every rank computes the same metrics row and takes the same decisions (best epoch, early stopping, the end).
- Only rank 0 touches the trial folder: it holds the lock, decides whether to resume and broadcasts it, writes every
  file; all ranks load the same checkpoint_last.pt before any rank trains, so they resume identically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.schema.recipe import Recipe


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    backend: str | None = None  # gloo or nccl; None for one process
    device: torch.device = torch.device("cpu")  # where collectives run (nccl: this rank's GPU)

    @classmethod
    def current(cls, device: torch.device | None = None) -> World:
        """The process group torch.distributed is set up with (by Ray Train), or SINGLE without one."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return SINGLE
        backend = dist.get_backend()
        where = device if device is not None and backend == "nccl" else torch.device("cpu")
        return cls(dist.get_rank(), dist.get_world_size(), backend, where)

    @property
    def lead(self) -> bool:
        """Rank 0: the one rank that writes the trial folder, displays and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def describe(self) -> str:
        return f"{self.size} workers (DDP, {self.backend})" if self.distributed else "1 worker"

    # --- sharing out ------------------------------------------------------------------------------

    def rows(self, count: int) -> slice:
        """This rank's contiguous share of `count` items (torch.tensor_split's: the first count % size ranks get one more)."""
        share, extra = divmod(count, self.size)
        start = self.rank * share + min(self.rank, extra)
        return slice(start, start + share + (self.rank < extra))

    def seed(self, base: int) -> int:
        """The seed of torch's global RNG (dropout, stochastic depth) on this rank: rank 0 keeps `base`, the others
        get streams of their own, so their shares are not masked alike."""
        if self.rank == 0:
            return base
        return int(np.random.SeedSequence([base, self.rank]).generate_state(1, dtype=np.uint64)[0]) >> 1

    # --- the model --------------------------------------------------------------------------------

    def convert_norms(self, model: nn.Module, sync: bool, cuda: bool) -> nn.Module:
        """BatchNorm as recipe.sync_batchnorm asks: SyncBatchNorm over the global batch (GPUs only, as torch's is)."""
        if not (sync and self.distributed):
            return model
        if not cuda:
            raise WorkbenchError(["recipe.sync_batchnorm needs GPU workers: torch's SyncBatchNorm runs on CUDA only",
                                  "set recipe.sync_batchnorm=false (each worker normalises its own share), or resources.gpus"])
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls: DDP around `model` (which keeps the state dict, unprefixed)."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)

    def sync_buffers(self, model: nn.Module) -> None:
        """Every rank evaluates with rank 0's buffers (BatchNorm statistics), the ones its checkpoint holds."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for buffer in model.buffers():
            moved = buffer.to(self.device)
            dist.broadcast(moved, 0)
            if moved is not buffer:
                buffer.copy_(moved)

    # --- agreeing -----------------------------------------------------------------------------------

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a decision about the trial folder, which only rank 0 reads)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over the ranks (a new tensor on tensor's device)."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        total = tensor.detach().to(self.device, copy=True)
        dist.all_reduce(total)
        return total.to(tensor.device)

    def batch_loss(self, loss: torch.Tensor, count: int, total: int) -> torch.Tensor:
        """The mean loss of the global batch of `total` images from this rank's mean over its `count`."""
        if not self.distributed:
            return loss
        return self.sum(loss * count) / total

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's rows of `tensor` concatenated in rank order (rank r's share of a split comes r-th, so the
        result is in the split's order); the ranks may hold different numbers of rows."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        local = tensor.to(self.device)
        counts = [torch.zeros(1, dtype=torch.long, device=self.device) for _ in range(self.size)]
        dist.all_gather(counts, torch.tensor([len(local)], device=self.device))
        longest = int(max(counts))
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=self.device)
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[:int(n)] for part, n in zip(parts, counts)]).to(tensor.device)


SINGLE = World()


class StepAugment:
    """The augmentation of this rank's micro-batches with the parameters drawn for its whole optimiser step.

    On one worker this is `augment` itself (drawing per micro-batch). With N ranks micro-batch j of rank r holds the images
    at positions j x workers + r, j x workers + r + replicas, ... of the step's block of replicas x micro-batch images
    (replicas = workers x accumulation: step_batches deals stream j x workers + r to it); the parameters of the
    block are drawn at the step's first micro-batch, from the epoch's generators, as one worker drawing for the whole
    global batch would, and each micro-batch takes its rows.
    """

    def __init__(self, augment, world: World, accumulation: int):
        self.augment, self.world, self.replicas = augment, world, world.size * accumulation
        self.params: Any = None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, draws, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.world.distributed:
            return self.augment(images, labels, draws)
        count = len(images) * self.replicas  # the micro-batches of a step are equal in size
        if micro == 0:
            self.params = self.augment.sample(count, draws)
        rows = slice(micro * self.world.size + self.world.rank, None, self.replicas)
        return self.augment.apply(images, labels, take_rows(self.params, rows, count))


def take_rows(params: Any, rows: slice, count: int) -> Any:
    """Augmentation parameters (dataclasses of per-image tensors [count, ...] and per-batch values) restricted to
    `rows`; per-batch values (a MixUp weight, a noise seed) are kept as drawn."""
    if isinstance(params, torch.Tensor):
        return params[rows] if params.ndim and len(params) == count else params
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return dataclasses.replace(params, **{f.name: take_rows(getattr(params, f.name), rows, count)
                                              for f in dataclasses.fields(params) if f.init})
    return params


def data_parallel_recipe(recipe: Recipe, workers: int) -> Recipe:
    """The recipe each of `workers` data-parallel ranks trains by. Without global_batch_size the recipe keeps its
    global batch, batch_size, split over the workers (each trains batch_size / workers images of every step), so a
    trial on N workers optimises as on one; with global_batch_size, batch_size is per worker as the recipe says."""
    if workers == 1 or recipe.global_batch_size is not None:
        return recipe
    if recipe.batch_size % workers:
        raise WorkbenchError([f"recipe.batch_size ({recipe.batch_size}) is not a multiple of the {workers} data-parallel workers "
                              "(resources.workers, or train --workers): each trains batch_size / workers images of every step",
                              f"choose a batch size divisible by {workers}, or set recipe.global_batch_size (batch_size "
                              "is then each worker's)"])
    return recipe.model_copy(update={"batch_size": recipe.batch_size // workers, "global_batch_size": recipe.batch_size})
