"""Run a study's trials on Ray Tune: locally, on one GPU shared by several trials, or on a Ray cluster.

    prepared = prepare("studies/fused_vs_mb.json")   # validate the study and every trial, once
    outcome = run_prepared(prepared)                 # grid / random / sampled architectures, or Optuna proposals

The trial folders are the ledger (workbench.study.ledger); after Tune ends, every trial gets the status it earned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import ConfigError
from workbench.schema.study import Study
from workbench.study import ledger
from workbench.study.cluster import stop_ray
from workbench.study.sampling import Sampling, finished_reward, sample_space, write_sampled
from workbench.study.trials import TrialSpec, grid_trials, load_study
from workbench.study.tuner import TunePlan, run_tune

@dataclass
class StudyOutcome:
    study: Study
    folder: Path
    trials: list[str]
    skipped: list[str] = field(default_factory=list)  # finished before this run
    interrupted: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # driver seconds: ray_start, tune, ray_shutdown, summary
    rounds: int = 0  # adaptive seeds: the rounds this run trained

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {t: ledger.status_of(self.folder, t) for t in self.trials}

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(t, s.get("reason") or s.get("status")) for t, s in self.statuses().items()
                if s.get("status") in trialdir.FAILURES]


@dataclass
class PreparedStudy:
    """A validated study and its trials (none yet for Optuna, which proposes them while it runs)."""

    study_file: str
    sets: list[str]
    study: Study
    resolved: dict[str, Any]  # the study as validated, for study.json
    folder: Path
    trials: list[TrialSpec]
    allow_cpu: bool = False
    sampling: Sampling | None = None  # an architecture search's draws


def prepare(study_file: str | Path, sets: list[str] | tuple[str, ...] = (), *, allow_cpu: bool = False, out: str | None = None) -> PreparedStudy:
    """Validate the study and every trial's job before anything starts."""
    study, resolved = load_study(study_file, sets)
    if allow_cpu and study.resources.gpus:
        study = study.model_copy(update={"resources": study.resources.model_copy(update={"gpus": 0.0})})
        resolved["resources"]["gpus"] = 0.0
    folder = Path(out) if out else Path(study.storage_path) / study.name
    sampling, trials = _plan(study, study_file)
    for trial in trials:
        absolute_paths(trial.job, allow_cpu, f"{study_file} (trial {trial.trial_id})")
    return PreparedStudy(str(study_file), list(sets), study, resolved, folder, trials, allow_cpu, sampling)


@dataclass(frozen=True)
class TrialRow:
    """One line of a dry run's trial table: the network as trained and its backbone cost at the train resolution."""

    trial_id: str
    variant: str
    seed: int
    hparams: dict[str, Any]
    resolution: int
    params: int
    flops: int
    status: str
    workers: int = 1  # data-parallel workers of the trial
    cpus: float = 1.0  # CPUs of the whole trial (all its workers)
    gpus: float = 0.0  # GPUs of the whole trial


def trial_overview(prepared: PreparedStudy) -> list[TrialRow]:
    from workbench.complexity import analytic_cost
    from workbench.schema.recipe import TrainJob

    rows = []
    for trial in prepared.trials:
        network = TrainJob.model_validate(trial.job).network
        cost = analytic_cost(network, network.resolution.train, num_classes=0)
        status = ledger.status_of(prepared.folder, trial.trial_id)["status"]
        resources = prepared.study.resources
        rows.append(TrialRow(trial.trial_id, trial.variant, trial.seed, trial.hparams, network.resolution.train, cost.params, cost.flops, status,
                             resources.workers, resources.workers * resources.cpus, resources.workers * resources.gpus))
    return rows


def planned_trials(study: Study, study_file: str | Path) -> list[TrialSpec]:
    """The trials a grid, random or architecture-search study runs, in a stable order (Optuna proposes its own)."""
    return _plan(study, study_file)[1]


def _plan(study: Study, study_file: str | Path) -> tuple[Sampling | None, list[TrialSpec]]:
    if study.algorithm == "optuna":
        return None, []
    if study.search is None:
        return None, grid_trials(study, study_file)
    sampling = sample_space(study, study_file)
    return sampling, sampling.trials()


def absolute_paths(job: dict[str, Any], allow_cpu: bool, source: str) -> None:
    """Trials run in Ray worker processes, possibly on other nodes: relative paths must not depend on their cwd."""
    for key in ("path", "root"):
        if job["dataset"].get(key):
            try:
                job["dataset"][key] = str(Path(job["dataset"][key]).expanduser().resolve())
            except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
                raise ConfigError(source, [(f"dataset.{key}", f"cannot resolve {job['dataset'][key]!r}: {exc}")]) from None
    if allow_cpu:
        job["recipe"]["device"] = "cpu"


def run_study(study_file: str | Path, sets: list[str] | tuple[str, ...] = (), *, address: str | None = None, allow_cpu: bool = False,
              out: str | None = None, display: bool = True) -> StudyOutcome:
    return run_prepared(prepare(study_file, sets, allow_cpu=allow_cpu, out=out), address=address, display=display)


def run_prepared(prepared: PreparedStudy, *, address: str | None = None, display: bool = True) -> StudyOutcome:
    study, folder = prepared.study, prepared.folder
    ledger.check_same_trials(folder, prepared.trials)
    if folder.is_dir():
        trialdir.remove_temporaries(folder)  # of a driver killed while it wrote the summary
    trialdir.write_json(folder / trialdir.STUDY, {**prepared.resolved, "source": prepared.study_file, "sets": prepared.sets}, "study_json")
    if prepared.sampling is not None:
        write_sampled(folder, prepared.sampling, prepared.trials)
    started = time.time()
    if study.algorithm == "optuna":
        outcome = _run_optuna(prepared, address, display)
    elif study.adaptive_seeds is not None:
        outcome = _run_rounds(prepared, address, display)
    else:
        outcome = _run_grid(study, prepared.trials, folder, address, display)
    summary_started = time.perf_counter()
    ledger.write_summary(folder, study.name)
    outcome.timings["summary"] = time.perf_counter() - summary_started
    outcome.seconds = time.time() - started
    return outcome


def _run_grid(study: Study, trials: list[TrialSpec], folder: Path, address: str | None, display: bool,
              keep_ray: bool = False) -> StudyOutcome:
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

    plan = TunePlan(param_space={"trial_id": tune.grid_search([t.trial_id for t in pending])},
                    specs={t.trial_id: t.record() for t in pending}, total=len(trials), done_before=len(outcome.skipped))
    outcome.interrupted = run_tune(study, folder, address, display, plan, outcome.timings, keep_ray=keep_ray)
    return outcome


def _run_rounds(prepared: PreparedStudy, address: str | None, display: bool) -> StudyOutcome:
    """Adaptive seeds: first the trials an earlier run started and did not finish, then round after round the trials
    workbench.study.seeding asks for, until every variant is decided or has max seeds. Each round is a function of
    the finished trial folders, so a re-run after kill -9 continues the same round. Within one run a trial is tried
    once (one that fails still completes its round); Ray stays up between rounds."""
    from workbench.study import seeding

    study, folder = prepared.study, prepared.folder
    finished_before = [t.trial_id for t in prepared.trials if ledger.is_finished(folder, t.trial_id)]
    outcome = StudyOutcome(study, folder, [], skipped=finished_before)
    batch = [t for t in prepared.trials if seeding.started(folder, t.trial_id) and t.trial_id not in finished_before]
    attempted: set[str] = set()
    try:
        while True:
            if not batch:
                batch = [t for t in seeding.next_round(study, prepared.trials, folder).trials if t.trial_id not in attempted]
                if not batch:
                    break
            attempted.update(t.trial_id for t in batch)
            part = _run_grid(study, batch, folder, address, display, keep_ray=True)
            for key, seconds in part.timings.items():
                outcome.timings[key] = outcome.timings.get(key, 0.0) + seconds
            outcome.rounds += 1
            if part.interrupted:
                outcome.interrupted = True
                break
            batch = []
    finally:
        _release_ray(address, outcome.timings)
    outcome.trials = [t.trial_id for t in prepared.trials if seeding.started(folder, t.trial_id)]
    return outcome


def _release_ray(address: str | None, timings: dict[str, float]) -> None:
    """Shut down the private Ray that the rounds kept up (a cluster joined by address stays as it is)."""
    import sys

    ray = sys.modules.get("ray")
    if address is None and ray is not None and ray.is_initialized():
        stop_ray(timings)


def _run_optuna(prepared: PreparedStudy, address: str | None, display: bool) -> StudyOutcome:
    """TPE through OptunaSearch (NSGA-II for several objectives); finished trials seed the searcher again on resume,
    unfinished ones are proposed first."""
    from workbench.study.optuna import OptunaContext, finished_values, make_searcher, objectives, tell_finished

    study, folder = prepared.study, prepared.folder
    context = OptunaContext.of(study, prepared.study_file)
    absolute_paths(context.base_job, prepared.allow_cpu, prepared.study_file)
    done = ledger.recorded_trials(folder)
    finished = [r for r in done if ledger.is_finished(folder, r["trial_id"])]
    unfinished = [r for r in done if r not in finished]
    outcome = StudyOutcome(study, folder, [r["trial_id"] for r in done], skipped=[r["trial_id"] for r in finished])
    remaining = study.num_samples - len(finished)
    if remaining <= 0:
        return outcome
    # (Ray's points_to_evaluate with evaluated_rewards needs a reward for every point: finished ones are told instead.)
    told, modes = objectives(study)
    searcher = make_searcher(study, context, folder, metric=told, mode=modes, seed=study.sample_seed,
                             points_to_evaluate=[r["hparams"] for r in unfinished] or None)
    metric = "val_top1" if study.metric == "reward" else study.metric
    for record in finished:
        trial_id = record["trial_id"]
        value = finished_values(folder, trial_id, told) if isinstance(told, list) else _final_metric(folder, trial_id, study.metric)
        tell_finished(searcher, ledger.trial_dir(folder, trial_id), record["hparams"], metric, value)
    plan = TunePlan(total=study.num_samples, done_before=len(finished), optuna=context, search_alg=searcher, num_samples=remaining)
    outcome.interrupted = run_tune(study, folder, address, display, plan, outcome.timings)
    outcome.trials = [r["trial_id"] for r in ledger.recorded_trials(folder)]
    return outcome


def _final_metric(folder: Path, trial_id: str, metric: str) -> float | None:
    if metric == "reward":
        return finished_reward(folder, trial_id)
    status = ledger.status_of(folder, trial_id)
    return status.get(f"final_{metric}", status.get(metric))

