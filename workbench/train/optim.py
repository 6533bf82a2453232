"""Recipe -> torch optimiser and learning-rate schedule (torch.optim.lr_scheduler)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from workbench.schema.recipe import Optimizer, Schedule

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
TF_RMSPROP_EPS = 1e-10  # tf.compat.v1.train.RMSPropOptimizer's default epsilon


def decay_rate(module: nn.Module, name: str, cfg: Optimizer) -> float:
    """The weight decay of parameter `name` of `module`, by torchvision's rules (set_weight_decay): a bias rate, when
    given, for every parameter named bias; the norm rate for the rest of a normalisation layer's; weight_decay for
    other weights; other biases follow decay_norm_and_bias."""
    exempt = cfg.weight_decay if cfg.decay_norm_and_bias else 0.0
    if name == "bias" and cfg.bias_weight_decay is not None:
        return cfg.bias_weight_decay
    if isinstance(module, NORM_LAYERS):
        return exempt if cfg.norm_weight_decay is None else cfg.norm_weight_decay
    return exempt if name == "bias" else cfg.weight_decay


def parameter_groups(model: nn.Module, cfg: Optimizer) -> list[dict[str, Any]]:
    """Trainable parameters grouped by their weight decay (decay_rate), the weight_decay group first.

    torch has no helper for this split (torchvision's lives in its reference scripts), so it is done here by module
    type and parameter name.
    """
    groups: dict[float, list[nn.Parameter]] = {cfg.weight_decay: []}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                groups.setdefault(decay_rate(module, name, cfg), []).append(param)
    return [{"params": params, "weight_decay": rate} for rate, params in groups.items() if params]


class RMSpropTF(torch.optim.Optimizer):
    """TensorFlow 1's RMSPropOptimizer, which automl trains EfficientNet and EfficientNetV2 with:

        ms  <- decay x ms + (1 - decay) x g^2          ms starts at 1
        mom <- momentum x mom + lr x g / sqrt(ms + eps)
        w   <- w - mom

    with g the gradient plus weight_decay x w (automl's L2 term in the loss). Written here because torch.optim.RMSprop
    differs where it matters at the start of training: its mean square starts at 0 (the first steps divide by
    sqrt(0.1 g^2), about 3 g: steps of about lr / 3 whatever the gradient's size) and it adds eps outside the square
    root (0.001 there is a different floor from 0.001 inside), and lr scales its update after the momentum buffer
    rather than entering it. timm's RMSpropTF implements the same but is only an optional extra of this project.
    """

    def __init__(self, params, lr: float, alpha: float = 0.9, eps: float = TF_RMSPROP_EPS, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            squares, buffers = self._state(params, group["momentum"] > 0)
            torch._foreach_mul_(squares, group["alpha"])
            torch._foreach_addcmul_(squares, grads, grads, value=1 - group["alpha"])
            root = torch._foreach_add(squares, group["eps"])
            torch._foreach_sqrt_(root)
            if buffers:
                torch._foreach_mul_(buffers, group["momentum"])
                torch._foreach_addcdiv_(buffers, grads, root, value=group["lr"])
                torch._foreach_sub_(params, buffers)
            else:
                torch._foreach_addcdiv_(params, grads, root, value=-group["lr"])
        return loss

    def _state(self, params: list[torch.Tensor], momentum: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        squares, buffers = [], []
        for p in params:
            state = self.state[p]
            if not state:
                state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                if momentum:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            squares.append(state["square_avg"])
            if momentum:
                buffers.append(state["momentum_buffer"])
        return squares, buffers


def build_optimizer(model: nn.Module, cfg: Optimizer) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg)
    eps = {"eps": cfg.eps} if cfg.eps is not None else {}
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, **eps)
    if cfg.name == "rmsprop_tf":
        return RMSpropTF(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, **eps)
    return torch.optim.AdamW(groups, lr=cfg.lr, **eps)


class LRSchedule:
    """Linear warm-up then cosine / exponential / constant, stepped per optimiser step (or per epoch, interval
    epoch); plateau steps per epoch.

    torch's SequentialLR chains the per-step schedulers; ReduceLROnPlateau cannot join a SequentialLR, so the
    plateau schedule runs after the warm-up steps, once per epoch on the validation loss. decay_from_start: one
    LambdaLR of the step counted from the start (automl's WarmupLearningRateSchedule). `steps_done` counts optimiser
    steps whatever the interval.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: Schedule, steps_per_epoch: int, epochs: int):
        self.per_epoch = cfg.interval == "epoch"
        units = 1 if self.per_epoch else steps_per_epoch  # scheduler steps per epoch
        total = units * epochs
        self.warmup_steps = min(round(cfg.warmup_epochs * units), max(total - 1, 0))
        self.steps_done = 0
        self.epochs_done = 0
        if cfg.decay_from_start and cfg.name in ("cosine", "exponential"):
            self.per_step = lr_scheduler.LambdaLR(optimizer, self._from_start(cfg, optimizer.param_groups[0]["lr"], units, total))
        else:
            self.per_step = self._chained(optimizer, cfg, units, total)
        self.plateau = None
        if cfg.name == "plateau":
            self.plateau = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.plateau_factor,
                                                          patience=cfg.plateau_patience, min_lr=cfg.min_lr)

    def _chained(self, optimizer, cfg: Schedule, units: int, total: int):
        main = self._main(optimizer, cfg, units, total)
        warmup = None
        if self.warmup_steps and cfg.warmup_start_factor > 0:
            warmup = lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=self.warmup_steps)
        elif self.warmup_steps:  # LinearLR cannot start at 0: its chained form divides by the start factor
            steps = self.warmup_steps
            warmup = lr_scheduler.LambdaLR(optimizer, lambda step: min(step, steps) / steps)
        if warmup and main:
            return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[self.warmup_steps])
        return warmup or main

    def _main(self, optimizer, cfg: Schedule, units: int, total: int):
        if cfg.name == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - self.warmup_steps), eta_min=cfg.min_lr)
        if cfg.name == "exponential":  # automl: staircase decay, x decay_rate every decay_epochs
            return lr_scheduler.StepLR(optimizer, step_size=max(1, round(cfg.decay_epochs * units)), gamma=cfg.decay_rate)
        return None  # constant, and plateau before its first epoch-level step

    def _from_start(self, cfg: Schedule, lr: float, units: int, total: int):
        """The rate's factor at step s counted from the start: the warm-up's below warmup_steps, else the decay's at s
        (exponential: decay_rate ^ floor(s / (decay_epochs x steps per epoch)), the float period automl uses)."""
        warmup, start, floor = self.warmup_steps, cfg.warmup_start_factor, cfg.min_lr / lr
        period = cfg.decay_epochs * units

        def factor(step: int) -> float:
            if step < warmup:
                return start + (1.0 - start) * step / warmup
            if cfg.name == "exponential":
                return max(cfg.decay_rate ** math.floor(step / period), floor)
            return floor + (1.0 - floor) * (1 + math.cos(math.pi * min(step, total) / total)) / 2

        return factor

    def _step_scheduler(self) -> None:
        units = self.epochs_done if self.per_epoch else self.steps_done
        if self.per_step is not None and (self.plateau is None or units <= self.warmup_steps):
            self.per_step.step()

    def step_batch(self) -> None:
        self.steps_done += 1
        if not self.per_epoch:
            self._step_scheduler()

    def step_epoch(self, val_loss: float) -> None:
        if self.per_epoch:
            self.epochs_done += 1
            self._step_scheduler()
        units = self.epochs_done if self.per_epoch else self.steps_done
        if self.plateau is not None and units >= self.warmup_steps:
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done, "epochs_done": self.epochs_done,
                "per_step": self.per_step.state_dict() if self.per_step is not None else None,
                "plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done = state["steps_done"]
        self.epochs_done = state.get("epochs_done", 0)
        if self.per_step is not None:
            self.per_step.load_state_dict(state["per_step"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
