"""The trainer on tiny networks and the offline digits set: trial files, determinism, resume, divergence,
progressive rates read from the modules, transfer learning, and learning itself."""

from __future__ import annotations

import csv
import math
import json

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.train.loop import Trainer
from workbench.trialdir import read_metrics
from tests.test_train_helpers import non_timing, quick_fit, tiny_arch, tiny_job

METRIC_KEYS = {"epoch", "stage", "image_size", "dropout", "stochastic_depth", "randaugment", "mixup", "lr", "train_loss",
               "train_top1", "val_loss", "val_top1", "val_top5", "epoch_seconds", "train_images_per_s", "elapsed_seconds"}
STATUS_KEYS = {"status", "reason", "epochs_run", "best_val_top1", "best_epoch", "final_val_top1", "seconds",
               "train_images_per_s", "params", "flops"}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """Four epochs of a tiny job, uninterrupted; other tests compare against it."""
    folder = tmp_path_factory.mktemp("reference")
    status = quick_fit(tiny_job(epochs=4), folder)
    return folder, status


def test_trial_folder_follows_the_design(reference_run):
    folder, status = reference_run
    assert STATUS_KEYS <= set(status) and status["status"] == "completed" and status["epochs_run"] == 4
    assert json.loads((folder / "status.json").read_text()) == status
    rows = read_metrics(folder)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and all(set(r) == METRIC_KEYS for r in rows)
    assert all(0 <= r[k] <= 1 for r in rows for k in ("train_top1", "val_top1", "val_top5"))
    assert status["best_val_top1"] == max(r["val_top1"] for r in rows) and status["final_val_top1"] == rows[-1]["val_top1"]
    config = json.loads((folder / "config.json").read_text())
    assert config["num_classes"] == 10 and config["classes"][0] == "0" and config["params"] == status["params"] > 0
    assert config["flops"] == status["flops"] > 0 and config["recipe"]["epochs"] == 4
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        checkpoint = torch.load(folder / name, weights_only=True)
        assert {"model", "config", "epoch", "optimizer", "scheduler", "ema", "rng"} <= set(checkpoint)
    assert torch.load(folder / "checkpoint_last.pt", weights_only=True)["epoch"] == 4
    assert torch.load(folder / "checkpoint_best.pt", weights_only=True)["epoch"] == status["best_epoch"]
    with open(folder / "val_predictions.csv") as fh:
        predictions = list(csv.DictReader(fh))
    assert len(predictions) == 120 and list(predictions[0]) == ["index", "label", "pred", "confidence", "correct"]
    accuracy = sum(int(p["correct"]) for p in predictions) / len(predictions)
    assert accuracy == pytest.approx(status["best_val_top1"])
    assert list(folder.glob("events.out.tfevents.*"))


def test_same_seed_gives_identical_metrics_and_weights(reference_run, tmp_path):
    folder, _ = reference_run
    quick_fit(tiny_job(epochs=4), tmp_path)
    assert non_timing(read_metrics(tmp_path)) == non_timing(read_metrics(folder))
    ours = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["model"]
    theirs = torch.load(folder / "checkpoint_last.pt", weights_only=True)["model"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_another_seed_gives_other_metrics(reference_run, tmp_path):
    folder, _ = reference_run
    quick_fit(tiny_job(epochs=1, seed=1), tmp_path)
    assert non_timing(read_metrics(tmp_path))[0] != non_timing(read_metrics(folder))[0]


class Stop(Exception):
    pass


def test_resume_after_interruption_runs_only_the_missing_epochs(reference_run, tmp_path):
    folder, _ = reference_run

    def stop_after_two(metrics, out):
        assert (out / "checkpoint_last.pt").exists() and read_metrics(out)[-1]["epoch"] == metrics["epoch"]
        if metrics["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        quick_fit(tiny_job(epochs=4), tmp_path, on_epoch=stop_after_two)
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "failed"
    resumed = []
    status = quick_fit(tiny_job(epochs=4), tmp_path, on_epoch=lambda m, out: resumed.append(m["epoch"]))
    assert resumed == [3, 4] and status["status"] == "completed" and status["epochs_run"] == 4
    assert non_timing(read_metrics(tmp_path)) == non_timing(read_metrics(folder))  # as if never interrupted
    again = quick_fit(tiny_job(epochs=4), tmp_path, on_epoch=lambda m, out: resumed.append(m["epoch"]))
    assert again == status and resumed == [3, 4]  # finished folders are not trained again


def stop_now(metrics, out):
    raise Stop


def test_resume_refuses_a_folder_of_another_job(tmp_path):
    with pytest.raises(Stop):
        quick_fit(tiny_job(epochs=2), tmp_path, on_epoch=stop_now)
    with pytest.raises(WorkbenchError, match="checkpoint of a different job"):
        quick_fit(tiny_job(epochs=2, seed=5), tmp_path)
    assert quick_fit(tiny_job(epochs=2, seed=5), tmp_path, resume=False)["status"] == "completed"


def test_nan_loss_ends_the_run_as_diverged_keeping_metrics(tmp_path, monkeypatch):
    original = Trainer._epoch

    def poison_second_epoch(self, epoch, stage):
        if epoch == 2:
            with torch.no_grad():
                self.model.classifier[1].weight.fill_(float("nan"))
        return original(self, epoch, stage)

    monkeypatch.setattr(Trainer, "_epoch", poison_second_epoch)
    status = quick_fit(tiny_job(epochs=3), tmp_path)
    assert status["status"] == "diverged" and "training loss became nan at epoch 2, step 1" in status["reason"]
    assert status["epochs_run"] == 1 and [r["epoch"] for r in read_metrics(tmp_path)] == [1]
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "diverged"


def test_huge_learning_rate_diverges_without_raising(tmp_path):
    status = quick_fit(tiny_job(epochs=2, optimizer={"name": "sgd", "lr": 1e9}, schedule={"warmup_epochs": 0}), tmp_path)
    assert status["status"] == "diverged" and "training loss became" in status["reason"]


def test_progressive_stages_change_dropout_and_stochastic_depth_in_place(tmp_path, monkeypatch):
    seen = []
    original = Trainer._train_epoch

    def spy(self, epoch, stage, generator):
        blocks = [block for s in self.model.stages for block in s]
        seen.append({"model": id(self.model), "dropout": self.model.classifier[0].p, "sd": [b.stochastic_depth.p for b in blocks],
                     "size": stage.image_size})
        return original(self, epoch, stage, generator)

    monkeypatch.setattr(Trainer, "_train_epoch", spy)
    job = tiny_job(epochs=4, train_images=128, val_images=40,
                   progressive={"enabled": True, "stages": 4, "image_size": [12, 24], "dropout": [0.1, 0.4], "stochastic_depth": [0.0, 0.3],
                             "randaugment": [0, 9]})
    quick_fit(job, tmp_path)
    assert len({s["model"] for s in seen}) == 1  # never rebuilt
    assert [s["dropout"] for s in seen] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert [s["size"] for s in seen] == [12, 16, 20, 24]
    last_block = [s["sd"][-1] for s in seen]  # linear schedule: the last block carries rate * 5/6
    assert last_block == pytest.approx([0.0, 0.1 * 5 / 6, 0.2 * 5 / 6, 0.3 * 5 / 6])
    assert all(s["sd"] == sorted(s["sd"]) for s in seen)
    rows = read_metrics(tmp_path)
    assert [(r["stage"], r["image_size"], r["randaugment"]) for r in rows] == [(1, 12, 0), (2, 16, 3), (3, 20, 6), (4, 24, 9)]
    assert [r["dropout"] for r in rows] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    status = json.loads((tmp_path / "status.json").read_text())
    assert [s["image_size"] for s in status["stage_epoch_seconds"]] == [12, 16, 20, 24]
    assert all(s["epoch_seconds"] > 0 for s in status["stage_epoch_seconds"])


def test_frozen_stem_and_first_stage_do_not_change(tmp_path):
    status = quick_fit(tiny_job(epochs=1, freeze=1), tmp_path)
    assert status["status"] == "completed"
    torch.manual_seed(0)
    from workbench.model import build_model

    initial = build_model(tiny_arch(), 10).state_dict()
    trained = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["model"]
    frozen = [k for k in initial if k.startswith(("features.0.", "features.1."))]
    assert frozen and all(torch.equal(initial[k], trained[k]) for k in frozen)  # weights and batch-norm statistics
    assert not torch.equal(initial["features.2.0.block.0.0.weight"], trained["features.2.0.block.0.0.weight"])


def test_recipe_variants_run(tmp_path):
    """SGD + plateau + EMA + mixup/cutmix + RandAugment + grad clipping + early stopping, all in one short run."""
    job = tiny_job(epochs=3, train_images=128, val_images=40, optimizer={"name": "sgd", "lr": 0.05, "nesterov": True},
                   schedule={"name": "plateau", "plateau_patience": 0}, ema_decay=0.9, grad_clip=1.0,
                   augment={"mixup": 0.2, "cutmix": 1.0, "randaugment": 5, "color_jitter": 0.2, "hflip": True},
                   early_stopping={"patience": 1, "min_delta": 0.5})
    status = quick_fit(job, tmp_path)
    assert status["status"] == "early_stopped" and status["epochs_run"] == 2
    checkpoint = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert checkpoint["eval_weights"] == "ema" and "n_averaged" in checkpoint["ema"]


@pytest.mark.parametrize("name", ["rmsprop", "adamw"])
def test_exponential_schedule_decays_in_steps(tmp_path, name):
    job = tiny_job(epochs=3, train_images=128, val_images=20, batch_size=32, optimizer={"name": name, "lr": 0.01},
                   schedule={"name": "exponential", "warmup_epochs": 0, "decay_rate": 0.5, "decay_epochs": 1})
    quick_fit(job, tmp_path)
    # 4 steps per epoch; the lr of each epoch's last step halves once per epoch (staircase)
    assert [r["lr"] for r in read_metrics(tmp_path)] == pytest.approx([0.01, 0.005, 0.0025])


def test_setup_errors_are_recorded_as_failed(tmp_path):
    job = tiny_job().model_copy(update={"dataset": tiny_job().dataset.model_copy(update={"name": "CIFAR10", "root": str(tmp_path)})})
    with pytest.raises(WorkbenchError, match="cannot open its files"):
        quick_fit(job, tmp_path / "trial")
    status = json.loads((tmp_path / "trial" / "status.json").read_text())
    assert status["status"] == "failed" and "CIFAR10" in status["reason"]


def test_tiny_network_learns_digits(tmp_path):
    """The slowest training test (~15 s): all 1,437 training digits, 5 epochs; chance is 10 %, this reaches ~95 %."""
    job = tiny_job(epochs=5, train_images=None, val_images=None)
    status = quick_fit(job, tmp_path)
    assert status["best_val_top1"] >= 0.8, status


# --- optimiser and schedule (no training) ----------------------------------------------------------


def lrs_over(schedule_cfg: dict, steps_per_epoch: int, epochs: int, val_losses=None) -> list[float]:
    from workbench.schema.recipe import Schedule
    from workbench.train.optim import LRSchedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = LRSchedule(optimizer, Schedule.model_validate(schedule_cfg), steps_per_epoch, epochs)
    lrs = []
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step_batch()
        schedule.step_epoch(val_losses[epoch] if val_losses else 1.0)
    return lrs


def test_warmup_then_cosine():
    lrs = lrs_over({"name": "cosine", "warmup_epochs": 1, "warmup_start_factor": 0.1, "min_lr": 0.01}, 10, 5)
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0)
    assert lrs[:11] == sorted(lrs[:11]) and lrs[10:] == sorted(lrs[10:], reverse=True)
    assert lrs[-1] == pytest.approx(0.01 + 0.99 * (1 + math.cos(39 / 40 * math.pi)) / 2)  # step 39 of 40 after warm-up


def test_plateau_drops_after_warmup_when_val_loss_stalls():
    lrs = lrs_over({"name": "plateau", "warmup_epochs": 1, "plateau_patience": 1, "plateau_factor": 0.5}, 4, 6,
                   val_losses=[3.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    per_epoch = lrs[::4]
    assert lrs[0] < 0.1 and per_epoch[1:] == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5])


def test_norm_weights_and_biases_get_no_weight_decay():
    from workbench.model import build_model
    from workbench.schema.recipe import Optimizer
    from workbench.train.optim import build_optimizer

    model = build_model(tiny_arch(), 10)
    decayed, exempt = build_optimizer(model, Optimizer(weight_decay=0.05)).param_groups
    assert decayed["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    norm_ids = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    assert {id(p) for p in exempt["params"]} == norm_ids | {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    assert all(p.ndim > 1 for p in decayed["params"])
    assert len(build_optimizer(model, Optimizer(decay_norm_and_bias=True)).param_groups) == 1


# --- paired seeds ---------------------------------------------------------------------------------


def record_draws(monkeypatch) -> list[tuple[str, object]]:
    """Spy on every batch order and every sampled augmentation parameter of a run."""
    from workbench.data.augment import BatchAugment

    log: list[tuple[str, object]] = []
    order, sample = Trainer.batch_order, BatchAugment.sample

    def spy_order(self, draws):
        batches = order(self, draws)
        log.append(("order", [b.tolist() for b in batches]))
        return batches

    def spy_sample(self, count, draws):
        params = sample(self, count, draws)
        log.append(("params", params))
        return params

    monkeypatch.setattr(Trainer, "batch_order", spy_order)
    monkeypatch.setattr(BatchAugment, "sample", spy_sample)
    return log


def flatten(entry) -> list:
    kind, value = entry
    if kind == "order":
        return [kind, value]
    p = value
    return [kind, p.crop.boxes().tolist(), p.flip.tolist(), p.jitter.factors.tolist(), p.jitter.order.tolist(),
            p.randaugment.ops.tolist(), p.randaugment.magnitudes.tolist(), (p.mix.kind, p.mix.lam, p.mix.box)]


def test_same_seed_gives_two_architectures_the_same_batches_and_augmentation(tmp_path, monkeypatch):
    """Issue 15's paired seeds: the data order and every augmentation draw depend on the seed, not on the network
    (dropout and stochastic depth, which the architectures use differently, draw from the global RNG instead)."""
    from tests.test_train_helpers import TINY_ARCH

    other = {**TINY_ARCH, "name": "other", "stages": TINY_ARCH["stages"][:2], "dropout": 0.5}
    augment = {"hflip": True, "color_jitter": 0.3, "randaugment": 9, "mixup": 0.2, "cutmix": 1.0}
    runs = {}
    for name, arch, seed in (("tiny", TINY_ARCH, 3), ("other", other, 3), ("tiny-seed-4", TINY_ARCH, 4)):
        log = record_draws(monkeypatch)
        job = tiny_job(epochs=2, train_images=96, val_images=20, batch_size=32, augment=augment, seed=seed)
        job = job.model_copy(update={"architecture": tiny_arch(**{k: v for k, v in arch.items() if k != "name"}, name=arch["name"])})
        quick_fit(job, tmp_path / name)
        runs[name] = [flatten(entry) for entry in log]
        monkeypatch.undo()
    assert len(runs["tiny"]) == 2 * (1 + 3)  # per epoch: one order, three batches
    assert runs["tiny"] == runs["other"]
    assert runs["tiny"][0] != runs["tiny-seed-4"][0] and runs["tiny"][1] != runs["tiny-seed-4"][1]
    assert runs["tiny"][0] != runs["tiny"][4]  # each epoch draws anew
