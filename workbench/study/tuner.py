"""One tune.Tuner run of a study's trials (workbench.study.runner plans them): Ray started or joined, the trial
function with its resources, the scheduler, a stop the CLI can request, and afterwards every trial's earned status."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.schema.study import Study
from workbench.study import ledger
from workbench.study.cluster import concurrent_trials, start_ray, stop_ray, trial_resources, trial_workers

# Set by the CLI's SIGINT/SIGTERM handler. The KeyboardInterrupt it also raises can be lost inside Ray (seen once
# in tests/test_study_run.py: the driver ran the study to the end after Ctrl-C); a Tune stopper reading this flag
# ends the run anyway, and the run counts as interrupted.
_STOP_REQUESTED = threading.Event()


def request_stop() -> None:
    """Ask the running study to stop as interrupted (statuses written, resumable)."""
    _STOP_REQUESTED.set()


def stop_requested() -> bool:
    return _STOP_REQUESTED.is_set()


@dataclass
class TunePlan:
    """What one tune.Tuner runs: grid trials by id (specs), or Optuna's proposals (search_alg, num_samples)."""

    total: int  # trials of the study, for the live display
    done_before: int  # finished in earlier runs
    param_space: dict[str, Any] = field(default_factory=dict)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    optuna: Any = None  # OptunaContext
    search_alg: Any = None
    num_samples: int = 1


def run_tune(study: Study, folder: Path, address: str | None, display: bool, plan: TunePlan, timings: dict[str, float],
          keep_ray: bool = False) -> bool:
    """Start (or join) Ray, run the trials, and fix up statuses Ray decided. Returns True when interrupted.
    `timings` gets the seconds of Ray's start, the Tune run and Ray's shutdown. `keep_ray`: use a Ray this process
    already runs and leave it up afterwards (adaptive rounds), unless interrupted."""
    import ray
    from ray import tune

    from workbench.study.display import LiveDisplay
    from workbench.study.trainable import run_trial

    _STOP_REQUESTED.clear()
    clock = time.perf_counter()
    if not (keep_ray and ray.is_initialized()):
        start_ray(study, address)
    timings["ray_start"] = time.perf_counter() - clock
    trainable = tune.with_parameters(run_trial, specs=plan.specs, folder=str(folder.resolve()), threads=max(1, int(study.resources.cpus)),
                                     optuna=plan.optuna, workers=trial_workers(study.resources))
    trainable = tune.with_resources(trainable, trial_resources(study.resources))
    live = LiveDisplay(study.name, plan.total, plan.done_before, study.metric, study.mode, enabled=display)
    several = isinstance(getattr(plan.search_alg, "metric", None), list)
    tuner = tune.Tuner(
        trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            # A multi-objective OptunaSearch holds its metrics and modes itself; Tune then takes none (Ray's docs).
            metric=None if several else study.metric, mode=None if several else study.mode, search_alg=plan.search_alg,
            scheduler=_scheduler(study),
            num_samples=plan.num_samples, max_concurrent_trials=concurrent_trials(study, ray.cluster_resources()), reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=trialdir.RAY, storage_path=str(folder.resolve()), verbose=0, callbacks=[live], stop=_stop_on_request(),
            failure_config=tune.FailureConfig(max_failures=study.max_failures, fail_fast=False),
        ),
    )
    interrupted, clock = False, time.perf_counter()
    try:
        results = tuner.fit()
    except KeyboardInterrupt:
        interrupted, results = True, None
    finally:
        live.stop()
    timings["tune"] = time.perf_counter() - clock
    interrupted = interrupted or stop_requested()
    if interrupted or (address is None and not keep_ray):
        stop_ray(timings)
    settle_statuses(folder, results, interrupted, pruning=study.scheduler.name == "asha")
    return interrupted


def _stop_on_request():
    from ray.tune.stopper import Stopper

    class StopOnRequest(Stopper):
        def __call__(self, trial_id, result) -> bool:
            return False

        def stop_all(self) -> bool:
            # Looked up at call time: Tune pickles the stopper with the run config, and an Event does not pickle.
            from workbench.study.tuner import stop_requested

            return stop_requested()

    return StopOnRequest()


def _trial_name(trial) -> str:
    return str(trial.config.get("trial_id") or trial.trial_id)


def _scheduler(study: Study):
    if study.scheduler.name != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    epochs = _epochs(study)
    return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=min(study.scheduler.grace_period, epochs),
                         reduction_factor=study.scheduler.reduction_factor)


def _epochs(study: Study) -> int:
    from workbench.schema.recipe import Recipe

    return study.recipe.epochs if isinstance(study.recipe, Recipe) else Recipe().epochs


def settle_statuses(folder: Path, results, interrupted: bool, pruning: bool) -> None:
    """After Tune ends: give every trial the status it earned, where the trainer could not write it itself.

    The trainer writes completed / early_stopped / diverged before its last report, and failed with the reason of
    its own errors. What is left is a trial that Tune stopped (status still running, or interrupted by the stop):
    interrupted when the study was stopped (resumable), pruned at its rung when the asha scheduler stopped it,
    failed with Ray's error when the trial raised outside the trainer.
    """
    errors = _errors_by_trial(results)
    for trial_json in sorted((folder / trialdir.TRIALS).glob(f"*/{trialdir.TRIAL}")):
        trial_id = trial_json.parent.name
        status = ledger.status_of(folder, trial_id)
        state, epochs = status.get("status"), status.get("epochs_run") or 0
        if state in trialdir.FINISHED or (state == trialdir.FAILED and not interrupted):
            continue
        if state == trialdir.PENDING and trial_id not in errors:
            continue  # never started: the next run trains it
        if interrupted:
            if state != trialdir.FAILED or status.get("reason") is None:
                ledger.mark(folder, trial_id, trialdir.INTERRUPTED, "the study was interrupted; re-run the same command to resume")
        elif trial_id in errors:
            ledger.mark(folder, trial_id, trialdir.FAILED, errors[trial_id])
        elif pruning:
            planned = _planned_epochs(trial_json)
            ledger.mark(folder, trial_id, trialdir.PRUNED, f"stopped by the asha scheduler at its rung after epoch {epochs} of {planned}")
        else:
            ledger.mark(folder, trial_id, trialdir.FAILED, f"Ray Tune ended it after epoch {epochs} without finishing")


def _errors_by_trial(results) -> dict[str, str]:
    """Ray's error text of each trial that raised, by workbench trial id (reported with every result, else the
    trial's directory name, which is the trial id for grid studies)."""
    out = {}
    for result in results or []:
        if result.error is None:
            continue
        metrics = result.metrics or {}
        trial_id = metrics.get("workbench_trial_id") or (Path(result.path).name if result.path else None)
        if trial_id:
            out[str(trial_id)] = _error_text(result.error)
    return out


def _planned_epochs(trial_json: Path) -> int | None:
    record = trialdir.read_json(trial_json) or {}
    return ((record.get("job") or {}).get("recipe") or {}).get("epochs")


def _error_text(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
