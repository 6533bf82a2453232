"""Optuna TPE through Ray Tune's OptunaSearch: the searchers, the proposal -> trial step, resuming (imports ray, optuna).

Earned states. Ray's OptunaSearch tells Optuna COMPLETE, with the last reported value, for every trial that did not
raise. A trial the asha scheduler stopped at a rung is not complete: its last value is a rung's accuracy. The
trainable marks the report that ends a trial with `finished` = 1; a trial whose last report has `finished` = 0 is
told PRUNED (Optuna keeps its intermediate values), and a resumed study tells Optuna its earlier trials the same way.

Budgets. For an architecture search, a proposal over budget never becomes a Ray trial: the searcher tells Optuna at
once that it is infeasible (Trial.set_constraint, which TPE's constrained mode ranks below every feasible point by
how far it violates the budget) and asks again. Nothing over budget is trained, no trial slot or folder is spent on
it, and num_samples counts trained architectures.

Several objectives. A search with `search.objectives` (e.g. ["val_top1", "latency_ms"]) runs Optuna's NSGA-II sampler
with a list of metrics and modes, which Ray's OptunaSearch takes itself: Tune's TuneConfig then gets no metric (as
Ray documents for multi-objective OptunaSearch), so the asha scheduler, which ranks trials by one metric at each
rung, cannot run with it (SearchContext refuses the pair). Ray tells Optuna no intermediate values for several
objectives: a trial is told its final values, or PRUNED. A budget violation is a constraint NSGA-II ranks by, too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from workbench import trialdir
from workbench.schema.study import Param, Study
from workbench.study import ledger
from workbench.study.sampling import (Candidate, SamplingReport, SearchContext, architecture_costs, finished_reward,
                                      write_architecture, write_report)
from workbench.study.trials import TrialSpec, build_trial, optuna_trial_id, variant_job

# The objective value told to Optuna for an infeasible proposal. TPE ranks infeasible trials by their constraint
# violation, not by this value; it only has to be a number, and the worst one if anything else ever reads it.
PENALTY = {"max": -1e9, "min": 1e9}
NSGA_POPULATION = (4, 50)  # NSGA-II's generation size: half of num_samples within these bounds (Optuna's default is 50)


def objectives(study: Study) -> tuple[str | list[str], str | list[str]]:
    """What Optuna is told: the study's metric and mode, or the search's objectives and their directions."""
    if study.search is not None and study.search.objectives:
        return list(study.search.objectives), study.search.objective_modes()
    return study.metric, study.mode


def penalty(mode: str | list[str]) -> float | list[float]:
    return [PENALTY[m] for m in mode] if isinstance(mode, list) else PENALTY[mode]


def ray_space(space: dict[str, Param]) -> dict[str, Any]:
    """A study's hyper-parameter space as Ray Tune's sampling functions."""
    makers = {"choice": lambda p: tune.choice(p.values), "uniform": lambda p: tune.uniform(p.low, p.high),
              "loguniform": lambda p: tune.loguniform(p.low, p.high), "randint": lambda p: tune.randint(int(p.low), int(p.high))}
    return {key: makers[p.type](p) for key, p in space.items()}


@dataclass
class OptunaContext:
    """What a Ray worker needs to turn an Optuna proposal into a trial (pickled into the trainable)."""

    study_file: str
    seed: int
    base_job: dict[str, Any]
    variant: str | None = None  # a hyper-parameter study's one variant
    search: SearchContext | None = None  # an architecture search's design space

    @classmethod
    def of(cls, study: Study, study_file: str | Path) -> OptunaContext:
        if study.search is not None:
            search = SearchContext(study, study_file)
            return cls(str(study_file), study.seeds[0], search.base_job, search=search)
        variant = study.variants[0].name
        return cls(str(study_file), study.seeds[0], variant_job(study, study_file, variant), variant=variant)

    def space(self, study: Study) -> dict[str, Any]:
        choices = {key: tune.choice(values) for key, values in self.search.choices().items()} if self.search else {}
        return {**choices, **ray_space(study.space)}

    def trial(self, config: dict[str, Any], folder: Path) -> TrialSpec:
        """The trial of a proposal, its trial.json (and, for a search, its architecture file) written."""
        if self.search is not None:
            candidate = self.search.candidate(*self.search.split(config))
            spec = self.search.trial(candidate, f"h{candidate.digest}", self.seed, "optuna")
            write_architecture(folder, spec.record())
        else:
            hparams = dict(config)
            trial_id = optuna_trial_id(self.variant, self.seed, hparams)
            architecture = self.base_job["architecture"].get("name", "")
            spec = build_trial(self.base_job, hparams, self.seed, trial_id=trial_id, variant=self.variant,
                               architecture=architecture, source=self.study_file)
        ledger.record_trial(folder, spec)
        return spec


class EarnedOptunaSearch(OptunaSearch):
    def add_evaluated_point(self, parameters: dict, value, error: bool = False, pruned: bool = False, intermediate_values=None) -> None:
        if not isinstance(value, (list, tuple)):
            super().add_evaluated_point(parameters, value, error=error, pruned=pruned, intermediate_values=intermediate_values)
            return
        import optuna

        # Ray's version passes `value=` (one objective); several go in `values=`, without intermediate values.
        state = TrialState.FAIL if error else TrialState.PRUNED if pruned else TrialState.COMPLETE
        self._ot_study.add_trial(optuna.trial.create_trial(state=state, values=list(value) if state == TrialState.COMPLETE else None,
                                                           params=parameters, distributions=self._space))

    def result_value(self, result: dict | None):
        """The metric of a result, or the list of its objectives (None if any is missing)."""
        if not result:
            return None
        if isinstance(self._metric, list):
            values = [result.get(name) for name in self._metric]
            return None if any(v is None for v in values) else values
        return result.get(self._metric)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if error or not result or result.get("finished") or trial_id not in self._ot_trials:
            super().on_trial_complete(trial_id, result, error)
            return
        if trial_id in self._completed_trials:
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def tell_finished(searcher: OptunaSearch, trial_folder: Path, hparams: dict[str, Any], metric: str, value: float | None) -> bool:
    """Tell the searcher a trial of an earlier run: its final value, pruned or complete, with its per-epoch values.
    Returns False when there is nothing to tell (no value)."""
    if value is None:
        return False
    status = trialdir.status_of(trial_folder)
    curve = [row[metric] for row in trialdir.read_metrics(trial_folder) if isinstance(row.get(metric), (int, float))]
    searcher.add_evaluated_point(hparams, value, pruned=status.get("status") == trialdir.PRUNED,
                                 intermediate_values=None if isinstance(value, list) else curve or None)
    return True


def finished_values(folder: Path, trial_id: str, names: list[str]) -> list[float] | None:
    """A finished trial's objectives, as its reports gave them: final metrics, the reward, the architecture's costs."""
    trial_folder = ledger.trial_dir(folder, trial_id)
    record = trialdir.read_json(trial_folder / trialdir.TRIAL) or {}
    status, costs = trialdir.status_of(trial_folder), architecture_costs(record)
    last = (trialdir.read_metrics(trial_folder) or [{}])[-1]
    values = []
    for name in names:
        if name == "reward":
            values.append(finished_reward(folder, trial_id))
        else:
            values.append(costs.get(name, status.get(f"final_{name}", last.get(name))))
    return None if any(not isinstance(v, (int, float)) for v in values) else values


def make_searcher(study: Study, context: OptunaContext, folder: Path, **options) -> OptunaSearch:
    if isinstance(options.get("metric"), list):
        from optuna.samplers import NSGAIISampler

        low, high = NSGA_POPULATION
        options["sampler"] = NSGAIISampler(seed=options.pop("seed", None), population_size=max(low, min(high, study.num_samples // 2)))
    if context.search is None:
        return EarnedOptunaSearch(space=context.space(study), **options)
    return BudgetedOptunaSearch(context.search, folder, space=context.space(study), **options)


class BudgetedOptunaSearch(EarnedOptunaSearch):
    """OptunaSearch over the architecture choices (and the study's `space`), with the budget checked at proposal."""

    def __init__(self, context: SearchContext, folder: Path, **options):
        self.context, self.folder = context, folder
        self.known: dict[str, float | list[float] | None] = {}  # proposals made so far: their result (or objectives) once known
        self.proposed: dict[str, str] = {}  # Ray trial id -> proposal key
        super().__init__(**options)
        self.report = previous_report(folder, "optuna", context.space.max_tries)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result, error)
        value = self.result_value(result)
        if trial_id in self.proposed and value is not None:
            self.known[self.proposed[trial_id]] = value

    def add_evaluated_point(self, parameters: dict, value: float, **kwargs) -> None:
        super().add_evaluated_point(parameters, value, **kwargs)
        self.known[json.dumps(parameters, sort_keys=True)] = value

    def suggest(self, trial_id: str):
        for _ in range(self.context.space.max_tries):
            config = super().suggest(trial_id)
            if not isinstance(config, dict):
                return config
            candidate = self.context.candidate(*self.context.split(config))
            self.report.count(candidate)
            if candidate.within_budget and candidate.key not in self.known:
                self.known[candidate.key] = None
                self.proposed[trial_id] = candidate.key
                self.report.accepted += 1
                write_report(self.folder, self.context, self.report)
                return config
            self._reject(trial_id, candidate)
        self.report.exhausted = True
        write_report(self.folder, self.context, self.report)
        return Searcher.FINISHED

    def _reject(self, trial_id: str, candidate: Candidate) -> None:
        ot_trial = self._ot_trials.pop(trial_id)
        if not candidate.within_budget:
            for name, excess in candidate.violations.items():
                ot_trial.set_constraint(name, excess)
            self._ot_study.tell(ot_trial, penalty(self._mode))
            return
        self.report.duplicates += 1
        value = self.known[candidate.key]
        if value is None:  # proposed again while it trains: let TPE ignore this copy
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        else:
            self._ot_study.tell(ot_trial, value)


def previous_report(folder: Path, sampler: str, max_tries: int) -> SamplingReport:
    """Optuna's tallies carry over a resumed run, so the acceptance rate covers the whole study."""
    saved = (trialdir.read_json(folder / trialdir.SEARCH) or {}).get("sampling") or {}
    report = SamplingReport(sampler, max_tries)
    if saved.get("sampler") == sampler:
        for name in ("draws", "within_budget", "accepted", "duplicates"):
            setattr(report, name, int(saved.get(name) or 0))
        report.rejected.update(saved.get("rejected") or {})
    return report
