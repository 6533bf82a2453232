"""Optuna TPE through Ray Tune's OptunaSearch, told the state each trial earned (imports ray and optuna).

Ray's OptunaSearch tells Optuna COMPLETE, with the last reported value, for every trial that did not raise. A trial
the asha scheduler stopped at a rung is not complete: its last value is a rung's accuracy, not a final one. The
trainable marks the report that ends a trial with `finished` = 1; a trial whose last report has `finished` = 0 is
told PRUNED (Optuna keeps its intermediate values), and a resumed study tells Optuna its earlier trials the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from workbench import trialdir


class EarnedOptunaSearch(OptunaSearch):
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
    status = trialdir.read_json(trial_folder / trialdir.STATUS) or {}
    curve = [row[metric] for row in trialdir.read_metrics(trial_folder) if isinstance(row.get(metric), (int, float))]
    if value is None:
        return False
    searcher.add_evaluated_point(hparams, value, pruned=status.get("status") == trialdir.PRUNED, intermediate_values=curve or None)
    return True
