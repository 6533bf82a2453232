"""Recipe -> torch optimiser and learning-rate schedule (torch.optim.lr_scheduler)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from workbench.schema.recipe import Optimizer, Schedule

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
    """Trainable parameters split into decayed and not decayed (norm weights and biases), as EfficientNet trains.

    torch has no helper for this split, so it is done here by module type and parameter name.
    """
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            exempt = not decay_norm_and_bias and (isinstance(module, NORM_LAYERS) or name == "bias")
            (no_decay if exempt else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: Optimizer) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias)
    eps = {"eps": cfg.eps} if cfg.eps is not None else {}
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, **eps)
    return torch.optim.AdamW(groups, lr=cfg.lr, **eps)


class LRSchedule:
    """Linear warm-up then cosine / exponential / constant, stepped per optimiser step; plateau steps per epoch.

    torch's SequentialLR chains the per-step schedulers; ReduceLROnPlateau cannot join a SequentialLR, so the
    plateau schedule runs after the warm-up steps, once per epoch on the validation loss.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: Schedule, steps_per_epoch: int, epochs: int):
        total = steps_per_epoch * epochs
        self.warmup_steps = min(round(cfg.warmup_epochs * steps_per_epoch), max(total - 1, 0))
        self.steps_done = 0
        main = self._main(optimizer, cfg, steps_per_epoch, total)
        warmup = None
        if self.warmup_steps:
            warmup = lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=self.warmup_steps)
        if warmup and main:
            self.per_step = lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[self.warmup_steps])
        else:
            self.per_step = warmup or main
        self.plateau = None
        if cfg.name == "plateau":
            self.plateau = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.plateau_factor,
                                                          patience=cfg.plateau_patience, min_lr=cfg.min_lr)

    def _main(self, optimizer, cfg: Schedule, steps_per_epoch: int, total: int):
        if cfg.name == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - self.warmup_steps), eta_min=cfg.min_lr)
        if cfg.name == "exponential":  # automl: staircase decay, x decay_rate every decay_epochs
            return lr_scheduler.StepLR(optimizer, step_size=max(1, round(cfg.decay_epochs * steps_per_epoch)), gamma=cfg.decay_rate)
        return None  # constant, and plateau before its first epoch-level step

    def step_batch(self) -> None:
        self.steps_done += 1
        if self.per_step is not None and (self.plateau is None or self.steps_done <= self.warmup_steps):
            self.per_step.step()

    def step_epoch(self, val_loss: float) -> None:
        if self.plateau is not None and self.steps_done >= self.warmup_steps:
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done,
                "per_step": self.per_step.state_dict() if self.per_step is not None else None,
                "plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done = state["steps_done"]
        if self.per_step is not None:
            self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
