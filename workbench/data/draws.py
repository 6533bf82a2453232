"""The random draws of a training epoch: data order and augmentation parameters, from dedicated generators.

Each kind of draw has its own torch.Generator, seeded from (recipe.seed, epoch, kind) through numpy's SeedSequence
(a hash designed for this: neighbouring seeds give unrelated streams). Nothing here touches torch's global RNG,
which dropout and stochastic depth consume: two variants of a study with the same seed see the same batches in the
same order with the same augmentation parameters, whatever their architectures; and turning one augmentation on or
off leaves the draws of the others as they were. A resumed run re-creates its epoch's generators from the seed.
"""

from __future__ import annotations

import numpy as np
import torch

# New kinds go at the end: a kind's index is part of its seed, so the streams of the existing ones stay as they were.
KINDS = ("order", "crop", "flip", "jitter", "randaugment", "mix", "trivial_wide", "auto_augment", "erasing")


def stream_seed(seed: int, epoch: int, kind: str) -> int:
    state = np.random.SeedSequence([seed, epoch, KINDS.index(kind)]).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> 1  # 63 bits: any torch.Generator takes it


class EpochDraws:
    """The generators of one epoch, created on first use (all on the CPU: the draws are small, and identical on
    every device)."""

    def __init__(self, seed: int, epoch: int):
        self.seed, self.epoch = seed, epoch
        self._generators: dict[str, torch.Generator] = {}

    def __getitem__(self, kind: str) -> torch.Generator:
        if kind not in self._generators:
            self._generators[kind] = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch, kind))
        return self._generators[kind]
