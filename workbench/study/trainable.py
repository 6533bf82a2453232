"""The function Ray Tune runs for one trial: train its job into its trial folder, reporting every epoch.

A data-parallel trial (resources.workers > 1) is the shape of Ray's Train V2 guide "Hyperparameter Tuning with Ray
Tune": this function drives a TorchTrainer whose workers train (workbench.train.distributed), and a
TuneReportCallback passes rank 0's reports on to Tune. The reports are the same either way.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import trialdir
from workbench.study import ledger

if TYPE_CHECKING:
    from workbench.study.optuna import OptunaContext
    from workbench.train.distributed import Workers


def run_trial(config: dict[str, Any], specs: dict[str, dict], folder: str, threads: int, optuna: OptunaContext | None,
              workers: Workers | None = None) -> None:
    """Each report carries `workbench_trial_id` (so the driver matches Ray's results to trial folders) and
    `finished` (1 on the report that ended the trial, whose final status is on disk by then; 0 before): a trial
    that Tune stops after a report with finished 0 was pruned by the scheduler, not completed. A search trial's
    reports also carry its architecture's params, flops and latency_ms (as the latency table predicted it before
    training: a property of the architecture, the same every epoch), so any of them can be an objective.
    workers: the data-parallel workers of each trial (None or 1: the trial trains in this process)."""
    from ray import tune

    from workbench.schema.recipe import TrainJob
    from workbench.train import fit

    spec = optuna.trial(config, Path(folder)).record() if optuna else specs[config["trial_id"]]
    out = ledger.trial_dir(Path(folder), spec["trial_id"])
    job = TrainJob.model_validate(spec["job"])
    meta = {k: spec[k] for k in ("trial_id", "variant", "seed", "hparams", "space") if k in spec}
    if workers is not None and workers.count > 1:
        _run_on_workers(job, out, spec, meta, workers, Path(folder))
        return
    last = {"finished": False}

    def report(metrics: dict[str, Any]) -> None:
        # No tune.Checkpoint: the trial folder (on storage every node mounts) is the checkpoint, and fit resumes from
        # it, so a copy for Tune would only cost a file copy per epoch.
        last["finished"] = bool(metrics.get("finished"))
        tune.report(trial_report(metrics, spec))

    status = fit(job, out, on_epoch=lambda metrics, _: report(metrics), progress=False, resume=True, trial=meta, threads=threads)
    if not last["finished"]:  # finished in an earlier run, or diverged: report its final figures so Ray ranks it too
        report(final_metrics(status))


def _run_on_workers(job, out: Path, spec: dict[str, Any], meta: dict[str, Any], workers: Workers, folder: Path) -> None:
    """Drive the trial's Ray Train run; its workers report each epoch through Tune's TuneReportCallback. Ray Train
    keeps its run state under the study's ray/ folder (shared storage, as the trial folders)."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from workbench.train.distributed import fit_on_workers

    result = fit_on_workers(job, out, workers, storage=folder / trialdir.RAY / "train", name=spec["trial_id"],
                            report=partial(trial_report, spec=spec), callbacks=[TuneReportCallback()], trial=meta, progress=True)
    if not result.last_report.get("finished"):  # as in run_trial: a run that trained no epoch now, or diverged
        tune.report(trial_report(final_metrics(result.status), spec))


def trial_report(metrics: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """What Tune gets for an epoch's metrics row of the trial `spec`."""
    from workbench.study.sampling import architecture_costs, with_reward

    scalars = _scalars({**with_reward(metrics, spec), **architecture_costs(spec)})
    return {**scalars, "finished": float(bool(metrics.get("finished"))), "workbench_trial_id": spec["trial_id"]}


def final_metrics(status: dict[str, Any]) -> dict[str, Any]:
    """The figures of a trial that ended without an epoch's report (finished before, or diverged)."""
    return {"epoch": status.get("epochs_run") or 0, "val_top1": status.get("final_val_top1"), "finished": True}


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """Ray wants numbers; a diverged epoch's NaN or a missing value becomes 0 so ranking still works."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key] = value if math.isfinite(value) else 0.0
    out.setdefault("val_top1", 0.0)
    return out
