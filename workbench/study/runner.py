"""Run a study's trials on Ray Tune: locally, on one GPU shared by several trials, or on a Ray cluster."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import ConfigError, WorkbenchError
from workbench.schema.study import Study
from workbench.study import ledger
from workbench.study.trials import TrialSpec, expand, load_study, optuna_trial_id, variant_job

# Ray writes its own per-trial CSV/JSON/TensorBoard loggers and changes into trial folders by default; the
# trainer already writes every file the workbench reads, with absolute paths. Ctrl-C must reach the driver as
# KeyboardInterrupt (Ray's own handler would end tuner.fit() quietly, indistinguishable from a finished run).
RAY_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_DISABLE_SIGINT_HANDLER": "1", "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1", "RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_AIR_NEW_OUTPUT": "0",
           "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1e9", "RAY_DEDUP_LOGS": "0"}

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
class StudyOutcome:
    study: Study
    folder: Path
    trials: list[str]
    skipped: list[str] = field(default_factory=list)  # finished before this run
    interrupted: bool = False
    seconds: float = 0.0

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {t: ledger.status_of(self.folder, t) for t in self.trials}

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(t, s.get("reason") or s.get("status")) for t, s in self.statuses().items()
                if s.get("status") in (trialdir.FAILED, trialdir.DIVERGED)]

    @property
    def unfinished(self) -> list[str]:
        return [t for t, s in self.statuses().items() if s.get("status") not in ledger.FINISHED and s.get("status") != trialdir.FAILED]


def prepare(study_file: str | Path, sets: list[str] = (), *, allow_cpu: bool = False, out: str | None = None) -> tuple[Study, dict, list[TrialSpec], Path]:
    """Validate the study and every trial's job before anything starts."""
    study, resolved = load_study(study_file, sets)
    if allow_cpu and study.resources.gpus:
        study = study.model_copy(update={"resources": study.resources.model_copy(update={"gpus": 0.0})})
        resolved["resources"]["gpus"] = 0.0
    folder = Path(out) if out else Path(study.storage_path) / study.name
    trials = expand(study, study_file) if study.algorithm != "optuna" else []
    for trial in trials:
        _absolute_paths(trial.job, allow_cpu, f"{study_file} (trial {trial.trial_id})")
    return study, resolved, trials, folder


def _absolute_paths(job: dict[str, Any], allow_cpu: bool, source: str) -> None:
    # Trials run in Ray worker processes, possibly on other nodes: relative paths must not depend on their cwd.
    for key in ("path", "root"):
        if job["dataset"].get(key):
            try:
                job["dataset"][key] = str(Path(job["dataset"][key]).expanduser().resolve())
            except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
                raise ConfigError(source, [(f"dataset.{key}", f"cannot resolve {job['dataset'][key]!r}: {exc}")]) from None
    if allow_cpu:
        job["recipe"]["device"] = "cpu"


def run_study(study_file: str | Path, sets: list[str] = (), *, address: str | None = None, allow_cpu: bool = False,
              out: str | None = None, display: bool = True) -> StudyOutcome:
    study, resolved, trials, folder = prepare(study_file, sets, allow_cpu=allow_cpu, out=out)
    ledger.check_same_trials(folder, trials)
    if folder.is_dir():
        trialdir.remove_temporaries(folder)  # of a driver killed while it wrote the summary
    ledger.write_json(folder / "study.json", {**resolved, "source": str(study_file), "sets": list(sets)})
    if study.search is not None and trials:
        from workbench.study.search import write_sampled

        write_sampled(folder, study, study_file, trials)
    started = time.time()
    if study.algorithm == "optuna":
        outcome = _run_optuna(study, study_file, folder, address, allow_cpu, display)
    else:
        outcome = _run_grid(study, trials, folder, address, display)
    outcome.seconds = time.time() - started
    ledger.write_summary(folder, study.name)
    return outcome


def _run_grid(study: Study, trials: list[TrialSpec], folder: Path, address: str | None, display: bool) -> StudyOutcome:
    outcome = StudyOutcome(study, folder, [t.trial_id for t in trials])
    pending = []
    for trial in trials:
        if ledger.is_finished(folder, trial.trial_id):
            outcome.skipped.append(trial.trial_id)
        else:
            ledger.record_trial(folder, trial)
            pending.append(trial)
    if not pending:
        return outcome
    from ray import tune

    specs = {t.trial_id: t.record() for t in pending}
    param_space = {"trial_id": tune.grid_search([t.trial_id for t in pending])}
    outcome.interrupted = _tune(study, folder, address, param_space, specs, None, len(trials), len(outcome.skipped), display)
    return outcome


def _run_optuna(study: Study, study_file: str | Path, folder: Path, address: str | None, allow_cpu: bool, display: bool) -> StudyOutcome:
    """TPE through OptunaSearch; finished trials seed the searcher again on resume (evaluated_rewards)."""
    from workbench.study.optuna import EarnedOptunaSearch, tell_finished

    if study.search is not None:
        from workbench.study.search import optuna_context, optuna_searcher

        context = optuna_context(study, study_file)
    else:
        variant, seed = study.variants[0].name, study.seeds[0]
        context = {"base": variant_job(study, study_file, variant), "variant": variant, "seed": seed, "study_file": str(study_file)}
    _absolute_paths(context["base"], allow_cpu, str(study_file))
    done = [r for r in (ledger.read_json(p) for p in sorted((folder / "trials").glob("*/trial.json"))) if r]
    finished = [r for r in done if ledger.is_finished(folder, r["trial_id"])]
    unfinished = [r for r in done if r not in finished]
    outcome = StudyOutcome(study, folder, [r["trial_id"] for r in done], skipped=[r["trial_id"] for r in finished])
    remaining = study.num_samples - len(finished)
    if remaining <= 0:
        return outcome
    # Unfinished trials are proposed again first (they resume from their checkpoints); finished ones are told with
    # their results. (Ray's points_to_evaluate with evaluated_rewards needs a reward for every point.)
    options = dict(metric=study.metric, mode=study.mode, seed=study.sample_seed, points_to_evaluate=[r["hparams"] for r in unfinished] or None)
    searcher = optuna_searcher(context["search"], folder, **options) if study.search else EarnedOptunaSearch(space=_ray_space(study), **options)
    for record in finished:
        trial_id = record["trial_id"]
        metric = "val_top1" if study.metric == "reward" else study.metric
        tell_finished(searcher, ledger.trial_dir(folder, trial_id), record["hparams"], metric, _final_metric(folder, trial_id, study.metric))
    outcome.interrupted = _tune(study, folder, address, {}, {}, context, study.num_samples, len(finished), display,
                                search_alg=searcher, num_samples=remaining)
    outcome.trials = [r["trial_id"] for r in (ledger.read_json(p) for p in sorted((folder / "trials").glob("*/trial.json"))) if r]
    return outcome


def _ray_space(study: Study) -> dict[str, Any]:
    from ray import tune

    makers = {"choice": lambda p: tune.choice(p.values), "uniform": lambda p: tune.uniform(p.low, p.high),
              "loguniform": lambda p: tune.loguniform(p.low, p.high), "randint": lambda p: tune.randint(int(p.low), int(p.high))}
    return {key: makers[p.type](p) for key, p in study.space.items()}


def _final_metric(folder: Path, trial_id: str, metric: str) -> float | None:
    if metric == "reward":
        from workbench.study.search import finished_reward

        return finished_reward(folder, trial_id)
    status = ledger.status_of(folder, trial_id)
    return status.get(f"final_{metric}", status.get(metric))


def _tune(study: Study, folder: Path, address: str | None, param_space: dict, specs: dict, optuna_context: dict | None,
          total: int, done_before: int, display: bool, search_alg=None, num_samples: int = 1) -> bool:
    """Start (or join) Ray, run the trials, and fix up statuses Ray decided. Returns True when interrupted."""
    import ray
    from ray import tune

    from workbench.study.display import LiveDisplay
    from workbench.study.trainable import run_trial

    os.environ.update(RAY_ENV)
    _STOP_REQUESTED.clear()
    _start_ray(study, address)
    trainable = tune.with_parameters(run_trial, specs=specs, folder=str(folder.resolve()), threads=max(1, int(study.resources.cpus)),
                                     optuna=optuna_context)
    trainable = tune.with_resources(trainable, {"cpu": study.resources.cpus, "gpu": study.resources.gpus})
    live = LiveDisplay(study.name, total, done_before, study.metric, study.mode, enabled=display)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=study.metric, mode=study.mode, search_alg=search_alg, scheduler=_scheduler(study),
            num_samples=num_samples, max_concurrent_trials=study.max_concurrent_trials, reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name="ray", storage_path=str(folder.resolve()), verbose=0, callbacks=[live], stop=_stop_on_request(),
            failure_config=tune.FailureConfig(max_failures=study.max_failures, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    interrupted = False
    try:
        results = tuner.fit()
    except KeyboardInterrupt:
        interrupted, results = True, None
    finally:
        live.stop()
    interrupted = interrupted or stop_requested()
    if interrupted or address is None:
        ray.shutdown()  # stops the trial actors; their folders keep the last finished epoch
    _settle_statuses(folder, results, interrupted, pruning=study.scheduler.name == "asha")
    return interrupted


def _stop_on_request():
    from ray.tune.stopper import Stopper

    class StopOnRequest(Stopper):
        def __call__(self, trial_id, result) -> bool:
            return False

        def stop_all(self) -> bool:
            # Looked up at call time: Tune pickles the stopper with the run config, and an Event does not pickle.
            from workbench.study.runner import stop_requested

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


def _start_ray(study: Study, address: str | None) -> None:
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        ray.shutdown()
    if address:
        _probe(address)
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
            raise WorkbenchError([
                f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}",
                "Is `ray start --head` running there, and does this machine have the cluster's auth token "
                "(~/.ray/auth_token, or RAY_AUTH_MODE=disabled on both sides of a trusted network)?",
            ]) from None
        _check_gpus(study, ray.cluster_resources().get("GPU", 0), f"the Ray cluster at {address}")
        return
    import torch

    gpus = torch.cuda.device_count()
    _check_gpus(study, gpus, "this machine")
    # address="local": always a private Ray, never a cluster someone else started on this machine.
    ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=gpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=256 * 1024 * 1024, runtime_env={"env_vars": RAY_ENV})


def _probe(address: str) -> None:
    """ray.init(address=...) retries an unreachable head for minutes; a plain TCP connect answers in seconds."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise WorkbenchError([f"no Ray cluster answers at {address} ({exc.strerror or exc})",
                              "Start one with `ray start --head --port=PORT` (see README: On a Ray cluster)."]) from None


def check_gpus_available(study: Study) -> None:
    """Answer at once, before Ray starts, when a local study asks for GPUs this machine lacks."""
    if study.resources.gpus <= 0:
        return
    import torch

    _check_gpus(study, torch.cuda.device_count(), "this machine")


def _check_gpus(study: Study, available: float, where: str) -> None:
    wanted = study.resources.gpus
    if wanted > 0 and available < wanted:
        raise WorkbenchError([
            f"the study asks for {wanted:g} GPU per trial (resources.gpus) but {where} has {available:g}: "
            "Ray would wait for GPUs forever.",
            "Run on CPU with --allow-cpu, set resources.gpus=0, or pass --address of a Ray cluster with GPUs.",
        ])


def _settle_statuses(folder: Path, results, interrupted: bool, pruning: bool) -> None:
    """After Tune ends: give every trial the status it earned, where the trainer could not write it itself.

    The trainer writes completed / early_stopped / diverged before its last report, and failed with the reason of
    its own errors. What is left is a trial that Tune stopped (status still running, or interrupted by the stop):
    interrupted when the study was stopped (resumable), pruned at its rung when the asha scheduler stopped it,
    failed with Ray's error when the trial raised outside the trainer.
    """
    errors = _errors_by_trial(results)
    for trial_json in sorted((folder / "trials").glob(f"*/{ledger.TRIAL}")):
        trial_id = trial_json.parent.name
        status = ledger.status_of(folder, trial_id)
        state, epochs = status.get("status"), status.get("epochs_run") or 0
        if state in ledger.FINISHED or (state == trialdir.FAILED and not interrupted):
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
    record = ledger.read_json(trial_json) or {}
    return ((record.get("job") or {}).get("recipe") or {}).get("epochs")


def _error_text(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
