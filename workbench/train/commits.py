"""The trainer's bookkeeping (a mixin of workbench.train.loop.Trainer): an epoch's commit, the files derived from it,
early stopping, the checkpoint's content and its restore, and the status it reports.

Crash consistency: checkpoint_last.pt is the commit point of an epoch. It holds everything the epoch produced
(weights, trainer state, every metrics row so far, the predictions of a new best), and every other file is derived
from it afterwards (`_publish`), so a resumed run rewrites whatever a crash cut short.
"""

from __future__ import annotations

from typing import Any

import torch

from workbench import trialdir as files
from workbench.complexity import analytic_cost
from workbench.errors import WorkbenchError
from workbench.faults import fault_point
from workbench.train.epochs import stage_epoch_seconds
from workbench.train.trial_files import load_checkpoint, publish_best, save_checkpoint, write_predictions


class EpochCommits:
    """Reads the trainer's job, arch, data, stages, folder, world, recipe, model, optimizer, schedule, ema, scaler,
    display, exe, val_labels, setup_seconds and device_text; keeps rows, the best epoch and the early-stopping
    counters, and `_config` makes the config.json the trial folder records."""

    def _config(self, trial: dict[str, Any] | None) -> dict[str, Any]:
        config = {
            "architecture": self.arch.model_dump(mode="json"),
            "recipe": self.job.recipe.model_dump(mode="json"),
            "dataset": self.job.dataset.model_dump(mode="json"),
            "scale": self.job.scale.model_dump(mode="json"),
            "num_classes": self.data.num_classes,
            "classes": self.data.classes,
            "params": sum(p.numel() for p in self.model.parameters()),
            "flops": analytic_cost(self.arch, self.eval_size, self.data.num_classes).flops,
            "stages": [s.as_dict() for s in self.stages],
            "eval_size": self.eval_size,
            "eval_resize": self.eval_resize,
            "accumulation_steps": self.accumulation,
            "cache_size": self.data.cache_size,
            "storage": self.data.storage,
            "world_size": self.world.size,
            "batch_size_per_worker": self.recipe.batch_size,
            "train_images": self.data.train_count,
            "val_images": len(self.val_labels),
            "steps_per_epoch": self.steps_per_epoch,
            "skipped_images": list(self.data.skipped),
            "ignored_files": list(self.data.ignored),
        }
        if trial:
            config["trial"] = trial
        return config

    def _commit(self, row: dict[str, Any], writer) -> None:
        """Epoch `row` is done: update the trackers, write checkpoint_last.pt (the commit), then the derived files."""
        self.rows.append(row)
        if row["val_top1"] > self.best_top1:
            self.best_top1, self.best_epoch = row["val_top1"], row["epoch"]
            self.best_predictions = self.last_predictions
        self._track_early_stopping(row["val_top1"])
        if self.world.lead:
            save_checkpoint(self.folder / files.LAST, self._checkpoint(row["epoch"]), "last")
            self._publish(writer, [row])
        self.display.epoch_summary(row, self.recipe.epochs)

    def _publish(self, writer, new_rows: list[dict[str, Any]]) -> None:
        """The files derived from the last commit; idempotent, so a resumed run redoes whatever a crash cut short.
        new_rows: the rows TensorBoard has not seen (a resumed run rebuilds its event files from every row)."""
        row = self.rows[-1]
        if self.best_epoch == row["epoch"] and self.best_predictions is not None:  # None: an older checkpoint, published
            publish_best(self.folder / files.LAST)
            write_predictions(self.folder / files.PREDICTIONS, self.val_labels, *self.best_predictions)
        files.write_metrics(self.folder, self.rows)
        for logged in new_rows:
            for key, value in logged.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, logged["epoch"])
        writer.flush()
        fault_point("after:tensorboard", self.folder)

    def _track_early_stopping(self, top1: float) -> None:
        stopping = self.recipe.early_stopping
        if stopping is None or top1 > self.stopping_reference + stopping.min_delta:
            self.stopping_reference, self.bad_epochs = max(top1, self.stopping_reference), 0
        else:
            self.bad_epochs += 1

    def _should_stop(self) -> bool:
        stopping = self.recipe.early_stopping
        return stopping is not None and self.bad_epochs >= stopping.patience

    def _checkpoint(self, epoch: int) -> dict[str, Any]:
        new_best = self.best_epoch == epoch
        return {
            "model": self.model.state_dict(),
            "config": self.config,
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "eval_weights": "ema" if self.ema is not None else "model",
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": {"torch": torch.get_rng_state()},
            "trainer": {"best_top1": self.best_top1, "best_epoch": self.best_epoch, "elapsed": self.elapsed,
                        "stopping_reference": self.stopping_reference, "bad_epochs": self.bad_epochs},
            "rows": self.rows,
            "best_predictions": list(self.best_predictions) if new_best else None,
        }

    def _restore(self) -> int:
        """Load checkpoint_last.pt into this trainer; returns the epoch it committed."""
        state = load_checkpoint(self.folder / files.LAST, self.exe.device)
        saved = {k: state["config"].get(k) for k in ("architecture", "recipe", "dataset", "scale")}
        if saved != {k: self.config[k] for k in saved}:
            raise WorkbenchError([f"{self.folder} holds a checkpoint of a different job (architecture, recipe, dataset or scale differ)",
                                  "choose another output folder, or start over (--no-resume / fit(resume=False))"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        trainer = state["trainer"]
        self.best_top1, self.best_epoch, self.elapsed = trainer["best_top1"], trainer["best_epoch"], trainer["elapsed"]
        self.stopping_reference, self.bad_epochs = trainer["stopping_reference"], trainer["bad_epochs"]
        epoch = int(state["epoch"])
        # Checkpoints of older versions hold no rows: keep the metrics lines up to their epoch.
        self.rows = state.get("rows") or [r for r in files.read_metrics(self.folder) if r.get("epoch", 0) <= epoch]
        if state.get("best_predictions") is not None:
            self.best_predictions = tuple(state["best_predictions"])
        return epoch

    def status(self, outcome: str, reason: str | None = None) -> dict[str, Any]:
        rows = self.rows
        rates = [r["train_images_per_s"] for r in rows if r.get("train_images_per_s")]
        return {
            "status": outcome,
            "reason": reason,
            "epochs_run": rows[-1]["epoch"] if rows else 0,
            "best_val_top1": self.best_top1 if self.best_epoch else None,
            "best_epoch": self.best_epoch or None,
            "final_val_top1": rows[-1]["val_top1"] if rows else None,
            "seconds": self.elapsed,
            # every epoch trains the same number of images, so the overall rate is the harmonic mean
            "train_images_per_s": len(rates) / sum(1 / r for r in rates) if rates else None,
            "params": self.config["params"],
            "flops": self.config["flops"],
            "stage_epoch_seconds": stage_epoch_seconds(rows),
            "setup_seconds": self.setup_seconds,
            "device": self.device_text,
        }
