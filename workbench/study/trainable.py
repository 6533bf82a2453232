"""The function Ray Tune runs for one trial: train its job into its trial folder, reporting every epoch."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from workbench.study import ledger
from workbench.study.trials import TrialSpec, _assign, _validated, optuna_trial_id


def run_trial(config: dict[str, Any], specs: dict[str, dict], folder: str, threads: int, optuna: dict | None) -> None:
    from ray import tune

    from workbench.schema.recipe import TrainJob
    from workbench.study.search import with_reward
    from workbench.train import fit

    spec = _optuna_spec(config, optuna, Path(folder)) if optuna else specs[config["trial_id"]]
    out = ledger.trial_dir(Path(folder), spec["trial_id"])
    _restore_from_ray(out)
    reported = False

    def on_epoch(metrics: dict[str, Any], out_dir: Path) -> None:
        nonlocal reported
        reported = True
        with tempfile.TemporaryDirectory() as tmp:
            _link(out_dir / "checkpoint_last.pt", Path(tmp) / "checkpoint_last.pt")
            tune.report(_scalars(with_reward(metrics, spec)), checkpoint=tune.Checkpoint.from_directory(tmp))

    meta = {k: spec[k] for k in ("trial_id", "variant", "seed", "hparams", "space") if k in spec}
    status = fit(TrainJob.model_validate(spec["job"]), out, on_epoch=on_epoch, progress=False, resume=True, trial=meta, threads=threads)
    if not reported:  # finished in an earlier run: report its figures so Ray ranks it too
        tune.report(_scalars(with_reward({"epoch": status.get("epochs_run") or 0, "val_top1": status.get("best_val_top1")}, spec)))


def _optuna_spec(config: dict[str, Any], context: dict[str, Any], folder: Path) -> dict[str, Any]:
    if context.get("search") is not None:
        return context["search"].optuna_spec(config, folder)
    hparams = {k: v for k, v in config.items()}
    trial_id = optuna_trial_id(context["variant"], context["seed"], hparams)
    job = _assign(context["base"], hparams, f"{context['study_file']}: space")
    job["recipe"]["seed"] = context["seed"]
    job = _validated(job, f"{context['study_file']} (trial {trial_id})")
    spec = TrialSpec(trial_id, context["variant"], context["seed"], hparams, context["base"]["architecture"].get("name", ""), job)
    ledger.record_trial(folder, spec)
    return spec.record()


def _restore_from_ray(out: Path) -> None:
    """A retried trial on a node without the shared trial folder gets Ray's last checkpoint back."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None or (out / "checkpoint_last.pt").exists():
        return
    with checkpoint.as_directory() as path:
        source = Path(path) / "checkpoint_last.pt"
        if source.exists():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out / "checkpoint_last.pt")


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """Ray wants numbers; a diverged epoch's NaN or a missing value becomes 0 so ranking still works."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key] = value if math.isfinite(value) else 0.0
    out.setdefault("val_top1", 0.0)
    return out
