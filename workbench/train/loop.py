"""The training loop: one TrainJob -> one trial folder (docs/design.md).

Reproducibility: the model is initialised from torch.manual_seed(recipe.seed); every epoch then reseeds torch's
global RNG (dropout, stochastic depth) from (seed, epoch), and draws its data order and every augmentation parameter
from generators of its own seeded from (seed, epoch) (workbench.data.draws), never from the global RNG: variants
of a study with the same seed see the same batches with the same augmentation. A run resumed from
checkpoint_last.pt therefore continues exactly as an uninterrupted run would, and on CPU (deterministic algorithms)
the same job gives bitwise the same weights and metrics.

Speed: a batch is gathered whole from the uint8 images in memory, moved to the device and augmented there
(workbench.data.augment); the step returns the loss as a tensor, and the host reads the losses (to check them and to
show them) every `sync_every` steps only, so on a GPU the host queues work ahead instead of waiting each step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench import trialdir as files
from workbench.model import build_model, set_dropout, set_stochastic_depth
from workbench.data import cache_size_for, dataset_defaults, open_training_data
from workbench.data.augment import BatchAugment, StageAugment, train_augment
from workbench.data.batches import step_batches, steps_per_epoch
from workbench.data.draws import EpochDraws
from workbench.data.transforms import Normalizer
from workbench.errors import WorkbenchError
from workbench.faults import fault_point
from workbench.schema.recipe import TrainJob
from workbench.train.commits import EpochCommits
from workbench.train.device import Execution, reproducible, resolve_execution, thread_count
from workbench.train.display import Display
from workbench.train.ema import ModelEma
from workbench.train.failures import record_failure
from workbench.train.optim import LRSchedule, build_optimizer
from workbench.train.progressive import Stage, largest_image_size, plan_stages, stage_of
from workbench.train.epochs import Diverged, LossLog, epoch_seed
from workbench.train.ranks import SINGLE, StepAugment, World, data_parallel_recipe
from workbench.train.transfer import freeze, load_pretrained

OnEpoch = Callable[[dict[str, Any], Path], None]


def fit(job: TrainJob, out_dir: str | Path, *, on_epoch: OnEpoch | None = None, device: str | torch.device | None = None,
        progress: bool = True, resume: bool = True, trial: dict[str, Any] | None = None, threads: int | None = None,
        world: World = SINGLE) -> dict[str, Any]:
    """Train `job` into the trial folder `out_dir` and return its final status (the content of status.json).

    resume: continue from checkpoint_last.pt when there is one; a folder whose run already finished (completed,
    early_stopped, diverged) returns its status without training. resume=False starts over.
    on_epoch(metrics, out_dir) runs after each epoch's files are written; metrics["finished"] is True on the epoch
    that ended the run (its final status is already on disk then).
    trial: extra description stored under "trial" in config.json (the study runner's trial id, hparams, ...).
    threads: torch CPU threads for this run (restored afterwards); None leaves the process setting.
    world: this process's rank of a data-parallel run (workbench.train.distributed starts one fit per rank); only
    rank 0 reads, locks and writes the folder and displays, and every rank returns the same status.
    Errors the user can act on (out of memory, a full or read-only disk) are raised as TrialFailed.
    """
    folder = Path(out_dir)
    if world.lead:
        folder.mkdir(parents=True, exist_ok=True)
    display = Display(progress and world.lead)
    with files.locked(folder, on_wait=display.line) if world.lead else contextlib.nullcontext():
        finished = None
        if world.lead:
            files.remove_temporaries(folder)
            previous = files.read_json(folder / files.STATUS)
            if resume and isinstance(previous, dict) and previous.get("status") in files.TRAINER_DONE:
                finished = previous
            elif not resume:
                files.clear_trial(folder)
        finished = world.broadcast(finished)
        if finished is not None:
            return finished
        trainer = None
        try:
            with thread_count(threads):
                execution = resolve_execution(job.recipe, device)
                with reproducible(execution):
                    trainer = Trainer(job, folder, execution, display, trial, world)
                    return trainer.run(on_epoch, resume)
        except BaseException as exc:
            if not world.lead:
                raise  # rank 0 says in status.json how the run ended; the others never write
            failure = record_failure(folder, trainer, exc)
            if failure is not None:
                raise failure from exc
            raise


class Trainer(EpochCommits):
    # Data-parallel workers and this one's rank: data-parallel training sets them per worker; the epoch's batches are
    # then this worker's share (workbench.data.batches.step_batches) and global_batch_size is split over `workers`
    # (a recipe without one has its batch_size split: data_parallel_recipe).
    workers, rank = 1, 0

    def __init__(self, job: TrainJob, folder: Path, execution: Execution, display: Display, trial: dict[str, Any] | None,
                 world: World = SINGLE):
        self.job, self.folder, self.exe, self.display = job, folder, execution, display
        self.world, self.workers, self.rank = world, world.size, world.rank
        self.recipe = data_parallel_recipe(job.recipe, world.size)
        self.arch = job.network
        self.stages = plan_stages(self.recipe, self.arch)
        self.rows: list[dict[str, Any]] = []
        self.best_top1, self.best_epoch = -1.0, 0
        self.stopping_reference, self.bad_epochs = -1.0, 0
        self.elapsed = 0.0
        self.epoch = 0  # the epoch being trained (0 before the first)
        self.last_predictions: tuple[torch.Tensor, torch.Tensor] | None = None
        self.best_predictions: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_lr = 0.0
        started = time.perf_counter()
        self._load_data()
        self._build_model()
        self.config = self._config(trial)
        self.setup_seconds = time.perf_counter() - started  # data (decoded, or from a cache), model, optimiser

    # --- set-up ---------------------------------------------------------------------------------

    def _load_data(self) -> None:
        channels = self.arch.in_channels
        self.eval_resize, self.eval_size = self.job.eval_sizes
        needed = max(largest_image_size(self.stages, self.arch), self.eval_resize)
        cache_size = cache_size_for(self.job.dataset, channels, needed)
        self.data, self.storage = open_training_data(self.job.dataset, channels, cache_size)
        if self.data.train_count == 0 or self.data.val_count == 0:
            raise WorkbenchError(f"dataset {self.data.name}: the train or val split is empty "
                                 f"({self.data.train_count} train / {self.data.val_count} val images)")
        # Streamed images are decoded in DataLoader workers (the decoding is deterministic: any number keeps the run).
        self.loader_workers = (self.exe.num_workers if self.data.storage == "memory" or self.recipe.num_workers is not None
                               else max(1, min(8, torch.get_num_threads())))
        hflip = self.recipe.augment.hflip
        self.hflip = dataset_defaults(self.job.dataset).get("hflip", True) if hflip is None else hflip
        # Each rank evaluates its share of the validation set, decoded or resized once; val_labels: all of them, in order.
        self.val_x, self.val_y = self.data.val_at(self.eval_resize, self.eval_size, self.world.rows(self.data.val_count),
                                                  num_workers=self.loader_workers)
        self.val_labels = self.world.gather(self.val_y)
        self.normalize = Normalizer(channels, self.exe.device, self.exe.memory_format)
        try:
            self.accumulation = self.recipe.accumulation_steps(self.workers)
        except ValueError as exc:
            raise WorkbenchError([f"recipe: {exc}", "set global_batch_size to a multiple of batch_size x workers"]) from None
        # Full optimiser steps only: a last batch of one image would break batch norm.
        self.steps_per_epoch = steps_per_epoch(self.data.train_count, self.recipe.batch_size, self.workers * self.accumulation)

    def _build_model(self) -> None:
        torch.manual_seed(self.recipe.seed)
        self.model = build_model(self.arch, self.data.num_classes)
        if self.recipe.init == "pretrained":
            load_pretrained(self.model, self.arch)
        self.frozen = freeze(self.model, self.recipe.freeze)
        self.model = self.world.convert_norms(self.model, self.recipe.sync_batchnorm, self.exe.cuda)
        self.model.to(self.exe.device, memory_format=self.exe.memory_format)
        self.optimizer = build_optimizer(self.model, self.recipe.optimizer)
        self.schedule = LRSchedule(self.optimizer, self.recipe.schedule, self.steps_per_epoch, self.recipe.epochs)
        ema = self.recipe.ema_settings
        self.ema = (ModelEma(self.model, ema, global_batch=self.recipe.global_batch(self.workers), epochs=self.recipe.epochs)
                    if ema is not None else None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.exe.amp_dtype == torch.float16)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.recipe.label_smoothing)
        # The compiled module shares its parameters with self.model, whose state dict (no "_orig_mod." prefix) the
        # checkpoints keep. With several ranks the step calls DDP around the model; evaluation calls the model itself
        # (each rank its own share of the validation set: no collective per batch).
        self.eval_forward = torch.compile(self.model) if self.recipe.compile else self.model
        wrapped = self.world.wrap(self.model)
        self.forward = self.eval_forward if wrapped is self.model else torch.compile(wrapped) if self.recipe.compile else wrapped

    # --- the run --------------------------------------------------------------------------------

    def run(self, on_epoch: OnEpoch | None, resume: bool) -> dict[str, Any]:
        """Epochs from the last checkpoint (or the first) to the end; returns the final status. Each epoch is
        committed by checkpoint_last.pt and its files derived from it (workbench.train.commits: crash consistency)."""
        from torch.utils.tensorboard import SummaryWriter

        # Rank 0 decides; every rank loads the same checkpoint before rank 0 writes anything again.
        committed = self.world.broadcast(resume and (self.folder / files.LAST).exists() if self.world.lead else None)
        restored = self._restore() if committed else 0
        self.world.barrier()
        if self.world.lead:
            if restored:
                files.clear_events(self.folder)  # rebuilt from the committed rows below
            else:
                files.clear_trial(self.folder)  # nothing was committed: whatever is here is an orphan of a crash
            files.write_json(self.folder / files.CONFIG, self.config, "config")
        self._write_status(files.RUNNING)
        self._announce(restored + 1)
        with SummaryWriter(log_dir=str(self.folder)) if self.world.lead else contextlib.nullcontext() as writer:
            outcome, reason = self._outcome(restored) if restored else (None, None)
            if restored and self.world.lead:
                self._publish(writer, self.rows)
            for epoch in range(restored + 1, self.recipe.epochs + 1):
                if outcome is not None:
                    break
                try:
                    row = self._epoch(epoch, stage_of(self.stages, epoch))
                except Diverged as exc:
                    outcome, reason = files.DIVERGED, str(exc)
                    break
                self._commit(row, writer)
                outcome, reason = self._outcome(epoch)
                self._write_status(outcome or files.RUNNING, reason)
                if on_epoch is not None:
                    on_epoch({**row, "finished": outcome is not None}, self.folder)
        return self._write_status(outcome or files.COMPLETED, reason)

    def _announce(self, start: int) -> None:
        self.display.line(f"training {self.arch.name} on {self.data.name} ({self.data.train_count} train / "
                          f"{len(self.val_labels)} val images, {self.data.num_classes} classes) on {self.device_text}"
                          + (f", resuming at epoch {start}" if start > 1 else ""))
        self.display.line(self.storage.describe())
        if self.world.distributed:
            self.display.line(f"world size {self.world.size}: {self.world.describe()}, {self.recipe.batch_size} images per worker "
                              f"and micro-batch, {self.recipe.global_batch(self.workers)} per step")
        for path in self.data.skipped:
            self.display.line(f"skipped unreadable image {path}")
        if self.data.ignored:
            self.display.line(f"ignored {len(self.data.ignored)} files that are not images of a class folder "
                              f"(listed in {files.CONFIG} under ignored_files)")

    def _outcome(self, epoch: int) -> tuple[str | None, str | None]:
        """How the run ends after `epoch`: early stopped, completed, or not yet (None)."""
        if self._should_stop():
            return files.EARLY_STOPPED, f"no val top-1 gain above {self.recipe.early_stopping.min_delta} for {self.bad_epochs} epochs"
        return (files.COMPLETED, None) if epoch >= self.recipe.epochs else (None, None)

    def _write_status(self, outcome: str, reason: str | None = None) -> dict[str, Any]:
        status = self.status(outcome, reason)
        if self.world.lead:
            files.write_json(self.folder / files.STATUS, status, "status")
        return status

    def _epoch(self, epoch: int, stage: Stage) -> dict[str, Any]:
        self.epoch = epoch
        started = time.perf_counter()
        torch.manual_seed(self.world.seed(epoch_seed(self.recipe.seed, epoch)))  # dropout and stochastic depth only
        set_dropout(self.model, stage.dropout)
        set_stochastic_depth(self.model, stage.stochastic_depth)
        try:
            train = self._train_epoch(epoch, stage, EpochDraws(self.recipe.seed, epoch))
            train_seconds = time.perf_counter() - started
            val = self._evaluate()
        except torch.cuda.OutOfMemoryError:
            raise WorkbenchError([f"CUDA out of memory at batch size {self.recipe.batch_size} and image size {stage.image_size} px "
                                  f"(stage {stage.stage}, eval {self.eval_size} px)",
                                  "lower recipe.batch_size, or the image size (scale.resolution, recipe.progressive.image_size)"]) from None
        lr = self.last_lr  # the rate of the epoch's last step
        self.schedule.step_epoch(val["val_loss"])
        seconds = time.perf_counter() - started
        self.elapsed += seconds
        self.last_predictions = val.pop("predictions")
        images = train.pop("images")
        return {"epoch": epoch, "stage": stage.stage, "image_size": stage.image_size, "dropout": stage.dropout,
                "stochastic_depth": stage.stochastic_depth, "randaugment": stage.randaugment, "mixup": stage.mixup,
                "lr": lr, **train, **val, "epoch_seconds": seconds,
                "train_images_per_s": images / train_seconds, "elapsed_seconds": self.elapsed}

    def augmentation(self, stage: Stage) -> BatchAugment:
        """The training augmentation of `stage` (its image size, RandAugment magnitude and mixup)."""
        return train_augment(self.recipe.augment, StageAugment(stage.image_size, stage.randaugment, stage.mixup),
                             cache_size=self.stored_size(stage), hflip=self.hflip, channels=self.arch.in_channels,
                             num_classes=self.data.num_classes, normalize=self.normalize)

    def stored_size(self, stage: Stage) -> int:
        """The size of the uint8 training images the stage's augmentation starts from."""
        return self.data.stored_size(stage.image_size, self.recipe.augment.random_resized_crop)

    def batch_order(self, draws: EpochDraws) -> list[torch.Tensor]:
        """The indices of the epoch's training micro-batches, in order: each `accumulation` of them make a step."""
        return step_batches(self.data.train_count, self.recipe.batch_size, draws["order"], repeats=self.recipe.sampler.repeats,
                            accumulation=self.accumulation, workers=self.workers, rank=self.rank)

    @property
    def sync_every(self) -> int:
        """Steps between the host's reads of the losses: every step on a CPU, where reading costs nothing; on a GPU
        each read waits for the queued work, so the divergence check and the progress bar lag by up to this many."""
        return 20 if self.exe.cuda else 1

    def _train_epoch(self, epoch: int, stage: Stage, draws: EpochDraws) -> dict[str, Any]:
        self.model.train()
        for module in self.frozen:
            module.eval()
        augment = StepAugment(self.augmentation(stage), self.world, self.accumulation)
        batches = self.data.train_batches(self.batch_order(draws), self.stored_size(stage), num_workers=self.loader_workers,
                                          pin_memory=self.exe.cuda)
        device = self.exe.device
        losses = LossLog(epoch)
        correct = torch.zeros((), dtype=torch.long, device=device)
        title = f"epoch {epoch}/{self.recipe.epochs} · stage {stage.stage} · {stage.image_size} px"
        last = self.accumulation - 1
        with self.display.epoch(title, self.steps_per_epoch) as advance:
            for index, (images, labels) in enumerate(batches):
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                step, micro = divmod(index, self.accumulation)
                inputs, targets = augment(images, labels, draws, micro)
                fault_point("step", self.folder)
                logits, loss = self._step(inputs, targets, micro=micro, step_in_epoch=step)
                step_loss, step_images = (loss, len(labels)) if micro == 0 else (step_loss + loss, step_images + len(labels))
                correct += (logits.argmax(1) == labels).sum()
                if micro == last:  # the micro-batches are equal in size: the step's loss is their mean
                    # every rank reads the global step's loss, so all of them stop at the same step if it diverges
                    losses.add(self.world.batch_loss(step_loss / self.accumulation if last else step_loss, step_images,
                                                     step_images * self.workers), step_images * self.workers)
                    if (step + 1) % self.sync_every == 0 or step + 1 == self.steps_per_epoch:
                        advance(*losses.read())
            losses.read()  # an epoch shorter than planned (never, with drop_last) is checked too
        return {"train_loss": losses.mean, "train_top1": int(self.world.sum(correct)) / losses.seen, "images": losses.seen}

    def _step(self, inputs: torch.Tensor, targets: torch.Tensor, micro: int = 0, step_in_epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Micro-batch `micro` of optimiser step `step_in_epoch` (0-based): its gradient, divided by the accumulation
        steps, is added to the step's, and the last micro-batch steps the optimiser; so the step follows the mean loss
        of all of them, the gradient of one large batch. Returns the logits and the loss, both detached tensors (not
        read here: on a GPU reading them would wait for the step). A non-finite loss still steps; LossLog ends the
        epoch at the next read, before anything of it is committed."""
        with torch.autocast(self.exe.device.type, dtype=self.exe.amp_dtype or torch.float32, enabled=self.exe.amp_dtype is not None):
            logits = self.forward(inputs)
        loss = self.criterion(logits.float(), targets)
        if micro == 0:
            self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss / self.accumulation if self.accumulation > 1 else loss).backward()
        if micro == self.accumulation - 1:
            self._optimizer_step(step_in_epoch)
        return logits.detach(), loss.detach()

    def _optimizer_step(self, step_in_epoch: int) -> None:
        if self.recipe.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.recipe.grad_clip)
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step_batch()
        if self.ema is not None:
            self.ema.after_step(self.model, step_in_epoch, self.epoch, self.schedule.steps_done)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.eval_forward

    @torch.no_grad()
    def _evaluate(self) -> dict[str, Any]:
        model = self.eval_model.eval()
        self.world.sync_buffers(model)
        batch = max(1, 2 * self.recipe.batch_size)
        k = min(5, self.data.num_classes)
        device = self.exe.device
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        top1 = torch.zeros((), dtype=torch.long, device=device)
        top5 = torch.zeros((), dtype=torch.long, device=device)
        preds, confidences = [], []
        for images, labels in zip(self.val_x.split(batch), self.val_y.split(batch)):
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=self.exe.amp_dtype or torch.float32, enabled=self.exe.amp_dtype is not None):
                logits = model(self.normalize(images)).float()
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum")
            confidence, pred = logits.softmax(1).max(1)
            top1 += (pred == labels).sum()
            top5 += (logits.topk(k, 1).indices == labels[:, None]).any(1).sum()
            preds.append(pred)
            confidences.append(confidence)
        # every rank's sums and predictions (an empty share predicts nothing)
        loss_sum, top1, top5 = self.world.sum(torch.stack([loss_sum, top1.double(), top5.double()])).tolist()
        preds = self.world.gather(torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=device))
        confidences = self.world.gather(torch.cat(confidences) if confidences else torch.zeros(0, device=device))
        n = len(self.val_labels)
        return {"val_loss": loss_sum / n, "val_top1": int(top1) / n, "val_top5": int(top5) / n,
                "predictions": (preds.cpu(), confidences.cpu())}

    @property
    def device_text(self) -> str:
        return self.exe.describe + (f", {self.world.describe()}" if self.world.distributed else "")
