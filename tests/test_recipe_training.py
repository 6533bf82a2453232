"""The training side of the published recipes: the repeated-augmentation sampler and the step layout of workers and
micro-batches, gradient accumulation, the EMA rules (torchvision's interval, adjustment and warm-up; TensorFlow's
decay ramp), TensorFlow's RMSProp, epoch-wise and from-the-start schedules, torchvision's weight-decay groups and the
evaluation resize and crop. Fixed seeds throughout."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data.distributed import DistributedSampler

from tests.test_train_helpers import quick_fit, tiny_arch, tiny_job
from workbench.data.batches import batch_order, replica_indices, repeated_order, step_batches, steps_per_epoch
from workbench.errors import WorkbenchError
from workbench.schema.recipe import Ema, Optimizer, Recipe, Schedule
from workbench.train.ema import ModelEma, torchvision_decay
from workbench.train.optim import LRSchedule, RMSpropTF, build_optimizer


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the repeated-augmentation sampler -------------------------------------------------------------------


def torchvision_rasampler(order: list[int], repeats: int, num_replicas: int, rank: int) -> list[int]:
    """references/classification/sampler.py RASampler.__iter__ after its permutation, written out: each index repeated,
    padded to a multiple of the replicas, every num_replicas-th from `rank`, the first num_selected of them."""
    count = len(order)
    num_samples = math.ceil(count * repeats / num_replicas)
    total = num_samples * num_replicas
    indices = [i for i in order for _ in range(repeats)]
    indices += indices[: total - len(indices)]
    selected = count // 256 * 256 // num_replicas
    return indices[rank:total:num_replicas][:selected]


@pytest.mark.parametrize("repeats, replicas", [(4, 8), (3, 4), (4, 2)])
def test_replica_shares_are_torchvisions_rasampler_where_it_keeps_every_image(repeats, replicas):
    count = 512  # a multiple of 256: RASampler's rounding (see workbench.data.batches) keeps every image
    order = repeated_order(count, repeats, generator())
    base = order[::repeats].tolist()
    for rank in range(replicas):
        assert replica_indices(order, count, replicas, rank).tolist() == torchvision_rasampler(base, repeats, replicas, rank)


def test_without_repeats_the_shares_are_distributed_samplers_with_drop_last():
    count, replicas = 103, 4
    order = repeated_order(count, 1, generator(2))
    for rank in range(replicas):
        sampler = DistributedSampler(range(count), num_replicas=replicas, rank=rank, shuffle=False, drop_last=True)
        assert replica_indices(order, count, replicas, rank).tolist() == [int(order[i]) for i in sampler]


@pytest.mark.parametrize("workers, accumulation", [(1, 1), (4, 1), (1, 4), (2, 2), (2, 4)])
def test_each_drawn_image_appears_repeats_times_per_epoch_on_different_workers(workers, accumulation):
    count, repeats, batch = 1000, 4, 8
    streams = {}
    for rank in range(workers):
        batches = step_batches(count, batch, generator(7), repeats=repeats, accumulation=accumulation, workers=workers, rank=rank)
        for index, micro in enumerate(batches):
            streams.setdefault((rank, index % accumulation), []).extend(micro.tolist())
    everything = [i for stream in streams.values() for i in stream]
    steps = steps_per_epoch(count, batch, workers * accumulation)
    assert len(everything) == steps * batch * workers * accumulation <= count  # the epoch keeps its length
    counts = Counter(everything)
    cut = [i for i, n in counts.items() if n != repeats]
    assert len(cut) <= 2 and all(counts[i] < repeats for i in cut)  # only the images at the epoch's cut lose repeats
    assert len(counts) >= len(everything) / repeats  # about 1/repeats of the images, each `repeats` times
    if workers * accumulation >= repeats:  # each repeat on its own worker or micro-batch, as on that many devices
        for image, n in counts.items():
            holders = [key for key, stream in streams.items() if image in stream]
            assert len(holders) == n, image


def test_with_every_option_at_one_the_batches_are_the_plain_permutation():
    for count, batch in ((100, 32), (32, 32), (20, 32)):
        drop_last = count > batch
        assert [b.tolist() for b in step_batches(count, batch, generator(3))] == [
            b.tolist() for b in batch_order(count, batch, drop_last, generator(3))]


def test_repeats_change_the_order_not_its_generator():
    """The same `order` stream: RA only repeats the permutation the plain run draws."""
    plain = step_batches(64, 8, generator(1))
    repeated = step_batches(64, 8, generator(1), repeats=2)
    first = torch.cat(plain).tolist()[:32]
    assert torch.cat(repeated).tolist() == [i for i in first for _ in range(2)]


def test_too_few_images_for_the_micro_batches_is_a_clear_error():
    with pytest.raises(WorkbenchError, match="cannot fill 8 micro-batches"):
        step_batches(5, 4, generator(), accumulation=8)


# --- gradient accumulation -----------------------------------------------------------------------------


def build_trainer(tmp_path, **recipe):
    from workbench.train.device import resolve_execution
    from workbench.train.display import Display
    from workbench.train.loop import Trainer

    job = tiny_job(epochs=1, train_images=64, val_images=20, **recipe)
    return Trainer(job, tmp_path, resolve_execution(job.recipe, "cpu"), Display(False), None)


def test_accumulated_micro_batches_give_the_gradient_of_one_large_batch(tmp_path):
    trainer = build_trainer(tmp_path, batch_size=8, global_batch_size=32, label_smoothing=0.1)
    assert trainer.accumulation == 4 and trainer.steps_per_epoch == 2
    trainer.model.eval()  # batch norm from its running statistics, no dropout: the loss is a mean over images
    torch.manual_seed(0)
    inputs, targets = torch.randn(32, 1, 16, 16), torch.randint(0, 10, (32,))
    trainer.optimizer.zero_grad()
    trainer.criterion(trainer.model(inputs), targets).backward()
    large = [p.grad.clone() for p in trainer.model.parameters()]
    captured = []
    trainer._optimizer_step = lambda step: captured.append([p.grad.clone() for p in trainer.model.parameters()])
    for micro in range(4):
        trainer._step(inputs[micro * 8:(micro + 1) * 8], targets[micro * 8:(micro + 1) * 8], micro=micro)
    assert len(captured) == 1  # one optimiser step, after the last micro-batch
    for accumulated, reference in zip(captured[0], large):
        assert torch.allclose(accumulated, reference, atol=1e-6, rtol=1e-4)


def test_global_batch_runs_counts_optimiser_steps_and_resumes_exactly(tmp_path):
    job = tiny_job(epochs=2, train_images=96, val_images=20, batch_size=8, global_batch_size=32,
                   schedule={"warmup_epochs": 1}, sampler={"repeats": 2}, ema={"decay": 0.9, "every_steps": 2})
    status = quick_fit(job, tmp_path / "whole")
    assert status["status"] == "completed"
    import json

    config = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert config["accumulation_steps"] == 4 and config["steps_per_epoch"] == 3
    state = torch.load(tmp_path / "whole" / "checkpoint_last.pt", weights_only=True)
    assert state["scheduler"]["steps_done"] == 6  # optimiser steps, not micro-batches
    assert int(state["ema"]["n_averaged"]) == 4  # steps 0 and 2 of each epoch

    def stop_after_first(metrics, folder):
        if metrics["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quick_fit(job, tmp_path / "resumed", on_epoch=stop_after_first)
    quick_fit(job, tmp_path / "resumed")
    resumed = torch.load(tmp_path / "resumed" / "checkpoint_last.pt", weights_only=True)
    assert all(torch.equal(state["model"][k], resumed["model"][k]) for k in state["model"])
    assert all(torch.equal(state["ema"][k], resumed["ema"][k]) for k in state["ema"])


def test_a_global_batch_that_does_not_divide_is_refused():
    from workbench.errors import ConfigError
    from workbench.schema.common import validate

    with pytest.raises(ConfigError, match="global_batch_size: must be a multiple of batch_size"):
        validate(Recipe, {"batch_size": 48, "global_batch_size": 100}, "r.json")
    recipe = Recipe(batch_size=32, global_batch_size=128)
    assert recipe.accumulation_steps(1) == 4 and recipe.accumulation_steps(2) == 2 and recipe.global_batch(8) == 128
    with pytest.raises(ValueError, match=r"32 x 3 = 96"):
        recipe.accumulation_steps(3)
    assert Recipe(batch_size=32).accumulation_steps(4) == 1 and Recipe(batch_size=32).global_batch(4) == 128


# --- EMA ----------------------------------------------------------------------------------------


def test_torchvision_adjustment_of_the_ema_decay():
    # references/classification/train.py with its EfficientNetV2 command: 8 GPUs x 128, --model-ema-steps 32, 600 epochs
    assert torchvision_decay(0.99998, 1024, 32, 600) == pytest.approx(1 - 2e-5 * 1024 * 32 / 600)
    assert torchvision_decay(0.9, 1024, 32, 1) == 0.0  # alpha capped at 1: the average is the weights
    assert Recipe(ema_decay=0.999).ema_settings == Ema(decay=0.999, every_steps=1, warmup=0)


class Weights(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.register_buffer("running", torch.zeros(2))


def weight_sequence(epochs: int, steps: int) -> list[list[torch.Tensor]]:
    g = generator(11)
    return [[torch.randn(5, generator=g) for _ in range(steps)] for _ in range(epochs)]


def set_weights(model: Weights, values: torch.Tensor) -> None:
    with torch.no_grad():
        model.weight.copy_(values[:3])
        model.running.copy_(values[3:])


def test_ema_every_k_steps_is_torchvisions_exponential_moving_average():
    """The reference is torchvision's train_one_epoch written out: utils.ExponentialMovingAverage (an AveragedModel
    with decay x avg + (1 - decay) x param over weights and buffers), the adjusted decay, an update when
    i % model_ema_steps == 0 and n_averaged reset to 0 while epoch < lr_warmup_epochs."""
    epochs, steps, every, warmup, global_batch = 4, 7, 3, 1, 64
    settings = Ema(decay=0.995, every_steps=every, warmup=warmup, adjust="torchvision")
    model = Weights()
    ours = ModelEma(model, settings, global_batch=global_batch, epochs=epochs)
    decay = torchvision_decay(0.995, global_batch, every, epochs)
    assert ours.decay == pytest.approx(decay)
    reference = AveragedModel(Weights(), avg_fn=lambda avg, param, n: decay * avg + (1 - decay) * param, use_buffers=True)
    step = 0
    for epoch, values in enumerate(weight_sequence(epochs, steps)):  # torchvision's epochs count from 0
        for i, value in enumerate(values):
            set_weights(model, value)
            step += 1
            ours.after_step(model, i, epoch + 1, step)
            if i % every == 0:
                reference.update_parameters(model)
                if epoch < warmup:
                    reference.n_averaged.fill_(0)
        if epoch < warmup:
            assert torch.equal(ours.module.weight, model.weight)  # copied during warm-up
    assert torch.allclose(ours.module.weight, reference.module.weight, atol=1e-6)
    assert torch.allclose(ours.module.running, reference.module.running, atol=1e-6)
    assert int(ours.n_averaged) == int(reference.n_averaged)


def test_tensorflow_ramp_starts_from_the_initial_weights():
    """tf.train.ExponentialMovingAverage(decay, num_updates=global_step): shadow = initial value, then at step t
    shadow -= (1 - min(decay, (1 + t) / (10 + t))) x (shadow - value)."""
    model = Weights()
    set_weights(model, torch.full((5,), 2.0))
    ours = ModelEma(model, Ema(decay=0.9999, ramp="tensorflow"), global_batch=32, epochs=10)
    shadow = torch.full((5,), 2.0)
    for t, value in enumerate(weight_sequence(1, 30)[0], start=1):
        set_weights(model, value)
        ours.after_step(model, t - 1, 1, t)
        decay = min(0.9999, (1 + t) / (10 + t))
        shadow = shadow - (1 - decay) * (shadow - value)
    assert torch.allclose(torch.cat([ours.module.weight, ours.module.running]), shadow, atol=1e-6)
    assert ours.decay_at(1) == pytest.approx(2 / 11) and ours.decay_at(10**6) == pytest.approx(0.9999)


def test_ema_and_its_shorthand_together_are_refused():
    from workbench.errors import ConfigError
    from workbench.schema.common import validate

    with pytest.raises(ConfigError, match="ema_decay: give ema or its shorthand ema_decay, not both"):
        validate(Recipe, {"ema_decay": 0.9, "ema": {"decay": 0.9}}, "r.json")


# --- TensorFlow's RMSProp -------------------------------------------------------------------------------


def tf1_rmsprop(weights: torch.Tensor, grads: list[torch.Tensor], lr: float, decay: float, momentum: float, eps: float,
                weight_decay: float) -> torch.Tensor:
    """tf.compat.v1.train.RMSPropOptimizer's update (ApplyRMSProp) in float64, with automl's L2 term."""
    w, ms, mom = weights.double().clone(), torch.ones_like(weights, dtype=torch.float64), torch.zeros_like(weights, dtype=torch.float64)
    for g in grads:
        g = g.double() + weight_decay * w
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / torch.sqrt(ms + eps)
        w = w - mom
    return w


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_rmsprop_tf_is_tensorflows_rmsprop(momentum):
    g = generator(5)
    start = torch.randn(50, generator=g)
    grads = [torch.randn(50, generator=g) * 3 for _ in range(6)]
    param = torch.nn.Parameter(start.clone())
    optimizer = RMSpropTF([param], lr=0.01, alpha=0.9, eps=0.001, momentum=momentum, weight_decay=1e-2)
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()
    assert torch.allclose(param.detach().double(), tf1_rmsprop(start, grads, 0.01, 0.9, momentum, 0.001, 1e-2), atol=1e-6)
    torch_rmsprop = torch.nn.Parameter(start.clone())
    other = torch.optim.RMSprop([torch_rmsprop], lr=0.01, alpha=0.9, eps=0.001, momentum=momentum, weight_decay=1e-2)
    for grad in grads:
        torch_rmsprop.grad = grad.clone()
        other.step()
    assert not torch.allclose(torch_rmsprop, param, atol=1e-3)  # torch's differs: why this one exists


def test_rmsprop_tf_matches_timms_where_it_is_installed():
    timm_optim = pytest.importorskip("timm.optim")
    g = generator(6)
    start, grads = torch.randn(40, generator=g), [torch.randn(40, generator=g) for _ in range(5)]
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    mine = RMSpropTF([ours], lr=0.02, alpha=0.9, eps=0.001, momentum=0.9, weight_decay=1e-5)
    reference = timm_optim.RMSpropTF([theirs], lr=0.02, alpha=0.9, eps=0.001, momentum=0.9, weight_decay=1e-5)
    for grad in grads:
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        mine.step()
        reference.step()
    assert torch.allclose(ours, theirs, atol=1e-6)


# --- schedules ------------------------------------------------------------------------------------


def rates(schedule: dict, steps_per_epoch: int, epochs: int, lr: float = 1.0) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    schedule_ = LRSchedule(optimizer, Schedule.model_validate(schedule), steps_per_epoch, epochs)
    seen = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule_.step_batch()
        schedule_.step_epoch(1.0)
    return seen


def test_epoch_interval_is_torchvisions_per_epoch_scheduler():
    """train.py: SequentialLR([LinearLR(start_factor=lr_warmup_decay, total_iters=warmup), CosineAnnealingLR(T_max=
    epochs - warmup, eta_min=lr_min)], milestones=[warmup]), stepped once after each epoch."""
    epochs, warmup, steps = 12, 3, 5
    ours = rates({"name": "cosine", "warmup_epochs": warmup, "warmup_start_factor": 0.01, "interval": "epoch"}, steps, epochs)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    from torch.optim import lr_scheduler

    reference = lr_scheduler.SequentialLR(optimizer, [lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup),
                                                      lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs - warmup)],
                                          milestones=[warmup])
    expected = []
    for _ in range(epochs):
        expected += [optimizer.param_groups[0]["lr"]] * steps
        optimizer.step()
        reference.step()
    assert ours == pytest.approx(expected)


def test_decay_from_start_is_automls_warmup_learning_rate_schedule():
    """utils.WarmupLearningRateSchedule: lr x step / warmup_steps below warm-up, else lr x 0.97 ^ floor(step /
    (steps_per_epoch x 2.4)) counted from step 0."""
    steps, epochs = 10, 12
    ours = rates({"name": "exponential", "warmup_epochs": 5, "warmup_start_factor": 0.0, "decay_rate": 0.97, "decay_epochs": 2.4,
                  "decay_from_start": True}, steps, epochs, lr=0.256)
    expected = [0.256 * s / 50 if s < 50 else 0.256 * 0.97 ** math.floor(s / 24.0) for s in range(steps * epochs)]
    assert ours == pytest.approx(expected)
    assert ours[50] == pytest.approx(0.256 * 0.97**2)  # at the end of warm-up the decay is two periods in


def test_warmup_from_zero_in_the_chained_schedule():
    lrs = rates({"name": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.0}, 4, 3)
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


@pytest.mark.parametrize("data, path", [
    ({"interval": "epoch", "warmup_epochs": 0.5}, "warmup_epochs"),
    ({"name": "plateau", "decay_from_start": True}, "decay_from_start"),
])
def test_schedule_errors_name_the_field(data, path):
    from workbench.errors import ConfigError
    from workbench.schema.common import validate

    with pytest.raises(ConfigError) as info:
        validate(Schedule, data, "s.json")
    assert any(line.startswith(f"s.json: {path}: ") for line in info.value.lines), info.value.lines


# --- weight-decay groups --------------------------------------------------------------------------------


def test_weight_decay_groups_follow_torchvisions_rules():
    from workbench.model import build_model
    from workbench.train.optim import NORM_LAYERS

    model = build_model(tiny_arch(), 10)
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters()}
    bias_ids = {id(p) for n, p in model.named_parameters() if n.endswith("bias")}

    def rates_by_kind(cfg: Optimizer) -> dict[str, set[float]]:
        kinds: dict[str, set[float]] = {"norm": set(), "bias": set(), "weight": set()}
        for group in build_optimizer(model, cfg).param_groups:
            for p in group["params"]:
                kind = "norm" if id(p) in norm_ids else "bias" if id(p) in bias_ids else "weight"
                kinds[kind].add(group["weight_decay"])
        return kinds

    # torchvision's EfficientNetV2 command: --weight-decay 2e-5 --norm-weight-decay 0.0, biases at the weight decay
    assert rates_by_kind(Optimizer(weight_decay=2e-5, decay_norm_and_bias=True, norm_weight_decay=0.0)) == {
        "norm": {0.0}, "bias": {2e-5}, "weight": {2e-5}}
    assert rates_by_kind(Optimizer(weight_decay=0.05, bias_weight_decay=0.01)) == {"norm": {0.0, 0.01}, "bias": {0.01}, "weight": {0.05}}
    assert rates_by_kind(Optimizer(weight_decay=0.05)) == {"norm": {0.0}, "bias": {0.0}, "weight": {0.05}}


# --- evaluation sizes ------------------------------------------------------------------------------


def test_eval_resize_then_centre_crop_is_torchvisions_eval_preset():
    from torchvision.transforms import v2

    from workbench.data.transforms import eval_images

    images = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    ours = eval_images(images, 32, 28)
    theirs = v2.Compose([v2.Resize(32, antialias=True), v2.CenterCrop(28)])(images)
    assert ours.shape == (3, 3, 28, 28) and torch.equal(ours, theirs)


def test_eval_sizes_default_to_the_architecture_and_follow_the_scale():
    from workbench.schema.recipe import TrainJob

    def sizes(recipe: dict, resolution: int | None = None) -> tuple[int, int]:
        scale = {"resolution": resolution} if resolution else {}
        return TrainJob.model_validate({"architecture": tiny_arch().model_dump(), "recipe": recipe, "scale": scale}).eval_sizes

    assert sizes({}) == (16, 16)
    assert sizes({"eval": {"crop_fraction": 0.875}}, 224) == (256, 224)
    assert sizes({"eval": {"resize": 232, "crop": 224}}) == (232, 224)
    assert sizes({"eval": {"crop": 20}}) == (20, 20)
    from workbench.errors import ConfigError
    from workbench.schema.common import validate

    with pytest.raises(ConfigError, match="recipe.eval.resize: resize \\(12\\) must be at least the crop"):
        validate(TrainJob, {"architecture": tiny_arch().model_dump(), "recipe": {"eval": {"resize": 12}}}, "j.json")
    with pytest.raises(ConfigError, match="give resize or crop_fraction, not both"):
        validate(Recipe, {"eval": {"resize": 40, "crop_fraction": 0.9}}, "r.json")
