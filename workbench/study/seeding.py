"""Adaptive seeds: the trials of the next round, decided from the study folder by workbench.sequential's rule.

A study with `"seeds": {"initial": 3, "max": 10, "min_effect": 0.5}` runs seeds 0..2 of every variant (and of every
hyper-parameter point of it) first. After each round the rule judges every variant against the baseline at the same
point: a decided one (better, worse or equivalent) stops; an open one, and the baseline, get the next seed, until
every variant is decided or has `max` seeds. The results table replays the same rule (workbench.results.compare
calls workbench.sequential too), so its verdicts are the ones the rounds acted on.

The rounds are a function of the trial folders alone (each trial's status.json, which the trainer writes atomically):
re-running the study after Ctrl-C or kill -9 recomputes the same decisions and continues the same round. A trial
that ended without a result (failed, diverged, pruned) still completes its round; it only has no value to pair.
Values are read as the results table reads them: status.json's best_<metric>, else the best epoch of metrics.jsonl
(best by the study's `mode`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench import sequential, trialdir
from workbench.schema.study import Study
from workbench.study import ledger
from workbench.study.trials import TrialSpec


@dataclass(frozen=True)
class Unit:
    """One variant at one hyper-parameter point: the trials of its seeds."""

    variant: str
    hparams: str  # the point as JSON
    trials: dict[int, TrialSpec]  # seed -> trial

    @property
    def label(self) -> str:
        return self.variant if self.hparams == "{}" else f"{self.variant} {self.hparams}"


def units_of(study: Study, trials: list[TrialSpec]) -> tuple[list[Unit], list[int | None]]:
    """The units of the planned trials, in their order, and for each the index of its baseline (the baseline
    variant at the same point; None for the baseline's own units)."""
    grouped: dict[tuple[str, str], dict[int, TrialSpec]] = {}
    for trial in trials:
        grouped.setdefault((trial.variant, json.dumps(trial.hparams, sort_keys=True, default=str)), {})[trial.seed] = trial
    units = [Unit(variant, point, seeds) for (variant, point), seeds in grouped.items()]
    index = {(u.variant, u.hparams): i for i, u in enumerate(units)}
    baseline = study.baseline_name
    baseline_of = [None if u.variant == baseline else index.get((baseline, u.hparams)) for u in units]
    return units, baseline_of


def design(study: Study) -> sequential.Design:
    return sequential.Design.of(study.adaptive_seeds.model_dump(), study.metric)


def started(folder: Path, trial_id: str) -> bool:
    """The study recorded the trial (trial.json): an earlier run handed it to Ray."""
    return (ledger.trial_dir(folder, trial_id) / trialdir.TRIAL).is_file()


def trial_result(folder: Path, trial_id: str, metric: str, mode: str) -> tuple[bool, float | None]:
    """(ended, value): ended when the trial will not train again in this study (finished, or failed); its value
    when it finished with a result."""
    status = ledger.status_of(folder, trial_id)
    state = status.get("status")
    ended = state in trialdir.FINISHED or state == trialdir.FAILED
    if state not in trialdir.AVERAGED:
        return ended, None
    value = _number(status.get(f"best_{metric}"))
    if value is None:
        values = [v for v in (_number(row.get(metric)) for row in trialdir.read_metrics(ledger.trial_dir(folder, trial_id)))
                  if v is not None]
        value = (min(values) if mode == "min" else max(values)) if values else None
    return ended, value


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def observed(study: Study, units: list[Unit], folder: Path) -> list[dict[int, float | None]]:
    """Per unit: seed -> value of each trial that ended (None: without a result)."""
    out = []
    for unit in units:
        seen: dict[int, float | None] = {}
        for seed, trial in unit.trials.items():
            ended, value = trial_result(folder, trial.trial_id, study.metric, study.mode)
            if ended:
                seen[seed] = value
        out.append(seen)
    return out


@dataclass(frozen=True)
class Round:
    """What the rule asks for next: the trials to run (wanted seeds that have not ended), and why."""

    trials: list[TrialSpec]
    units: list[Unit]
    plan: sequential.Plan

    @property
    def done(self) -> bool:
        return not self.trials

    def verdicts(self) -> dict[str, str]:
        """unit label -> its verdict now (higher, lower, equivalent, open)."""
        return {self.units[i].label: v.verdict for i, v in zip(self.plan.rows, self.plan.family.verdicts)}


def next_round(study: Study, trials: list[TrialSpec], folder: Path) -> Round:
    """The next round of an adaptive study, from its trial folders; no trials when every unit is decided or at max."""
    units, baseline_of = units_of(study, trials)
    values = observed(study, units, folder)
    plan = sequential.plan(values, baseline_of, design(study))
    wanted = [trial for unit, seen, count in zip(units, values, plan.seeds)
              for seed, trial in sorted(unit.trials.items()) if seed < count and seed not in seen]
    return Round(wanted, units, plan)
