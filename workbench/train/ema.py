"""The moving average of the weights a recipe asks for (recipe.ema, or its shorthand ema_decay), on torch's
AveragedModel (weights and batch-norm buffers, as torchvision's reference averages them).

Three published rules beyond a plain per-step average:
- every_steps k (torchvision's --model-ema-steps): an update after the optimiser steps whose index within the epoch
  is a multiple of k (torchvision: `i % model_ema_steps == 0`, i counting the epoch's batches from 0);
- warmup w (torchvision: `epoch < lr_warmup_epochs`): in the first w epochs each update copies the weights;
- adjust torchvision: --model-ema-decay rescaled for the update interval and run length (`torchvision_decay`);
- ramp tensorflow: automl's tf.train.ExponentialMovingAverage(decay, num_updates=global_step), whose decay at step t
  is min(decay, (1 + t) / (10 + t)) and whose average starts from the initial weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from workbench.schema.recipe import Ema


def torchvision_decay(decay: float, global_batch: int, every_steps: int, epochs: int) -> float:
    """torchvision's references/classification/train.py: adjust = world_size x batch_size x model_ema_steps / epochs,
    alpha = min(1, (1 - decay) x adjust), and the average decays by 1 - alpha per update."""
    alpha = min(1.0, (1.0 - decay) * global_batch * every_steps / epochs)
    return 1.0 - alpha


def update_decay(settings: Ema, global_batch: int, epochs: int) -> float:
    """The decay of each update (before the tensorflow ramp)."""
    if settings.adjust == "torchvision":
        return torchvision_decay(settings.decay, global_batch, settings.every_steps, epochs)
    return settings.decay


class Lerp:
    """AveragedModel's multi_avg_fn with a decay that can change between updates (torch's get_ema_multi_avg_fn
    fixes it)."""

    def __init__(self, decay: float):
        self.decay = decay

    @torch.no_grad()
    def __call__(self, averaged: list[torch.Tensor], current: list[torch.Tensor], _) -> None:
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - self.decay)
        else:  # integer buffers (batch norm's num_batches_tracked), as torch's own EMA treats them
            for a, c in zip(averaged, current, strict=True):
                a.copy_(a * self.decay + c * (1 - self.decay))


class ModelEma(AveragedModel):
    """The averaged model; `after_step` applies the recipe's rules. Its state dict is AveragedModel's (n_averaged and
    module.*), so checkpoints and `workbench predict` read it as before."""

    def __init__(self, model: nn.Module, settings: Ema, *, global_batch: int, epochs: int):
        lerp = Lerp(update_decay(settings, global_batch, epochs))
        super().__init__(model, multi_avg_fn=lerp, use_buffers=True)
        self.lerp, self.settings, self.decay = lerp, settings, lerp.decay
        if settings.ramp == "tensorflow":
            self.n_averaged.fill_(1)  # the average starts from the initial weights: the first update averages

    def decay_at(self, global_step: int) -> float:
        """The decay of an update after optimiser step `global_step` (1 after the first step of the run)."""
        if self.settings.ramp == "tensorflow":
            return min(self.decay, (1 + global_step) / (10 + global_step))
        return self.decay

    def after_step(self, model: nn.Module, step_in_epoch: int, epoch: int, global_step: int) -> None:
        """After optimiser step `step_in_epoch` (0-based) of `epoch` (1-based), the run's step `global_step`."""
        if step_in_epoch % self.settings.every_steps:
            return
        self.lerp.decay = self.decay_at(global_step)
        self.update_parameters(model)
        if epoch <= self.settings.warmup:
            self.n_averaged.fill_(0)  # the next update copies the weights again
