"""The function Ray Tune runs for one trial: train its job into its trial folder, reporting every epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.study import ledger

if TYPE_CHECKING:
    from workbench.study.optuna import OptunaContext


def run_trial(config: dict[str, Any], specs: dict[str, dict], folder: str, threads: int, optuna: OptunaContext | None) -> None:
    """Each report carries `workbench_trial_id` (so the driver matches Ray's results to trial folders) and
    `finished` (1 on the report that ended the trial, whose final status is on disk by then; 0 before): a trial
    that Tune stops after a report with finished 0 was pruned by the scheduler, not completed. A search trial's
    reports also carry its architecture's params, flops and latency_ms (as the latency table predicted it before
    training: a property of the architecture, the same every epoch), so any of them can be an objective."""
    from ray import tune

    from workbench.schema.recipe import TrainJob
    from workbench.study.sampling import architecture_costs, with_reward
    from workbench.train import fit

    spec = optuna.trial(config, Path(folder)).record() if optuna else specs[config["trial_id"]]
    out = ledger.trial_dir(Path(folder), spec["trial_id"])
    last = {"finished": False}

    def report(metrics: dict[str, Any]) -> None:
        # No tune.Checkpoint: the trial folder (on storage every node mounts) is the checkpoint, and fit resumes from
        # it, so a copy for Tune would only cost a file copy per epoch.
        last["finished"] = bool(metrics.get("finished"))
        scalars = _scalars({**with_reward(metrics, spec), **architecture_costs(spec)})
        tune.report({**scalars, "finished": float(last["finished"]), "workbench_trial_id": spec["trial_id"]})

    meta = {k: spec[k] for k in ("trial_id", "variant", "seed", "hparams", "space") if k in spec}
    status = fit(TrainJob.model_validate(spec["job"]), out, on_epoch=lambda metrics, _: report(metrics), progress=False,
                 resume=True, trial=meta, threads=threads)
    if not last["finished"]:  # finished in an earlier run, or diverged: report its final figures so Ray ranks it too
        report({"epoch": status.get("epochs_run") or 0, "val_top1": status.get("final_val_top1"), "finished": True})


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """Ray wants numbers; a diverged epoch's NaN or a missing value becomes 0 so ranking still works."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key] = value if math.isfinite(value) else 0.0
    out.setdefault("val_top1", 0.0)
    return out
