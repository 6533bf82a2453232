"""Every trial ends with the status it earned, under each search algorithm with each scheduler (issue 19).

completed: every planned epoch ran, whatever stopped the trial afterwards (asha stops every trial at max_t);
pruned: the asha scheduler stopped it at a rung, with that rung in the reason. Trials run one at a time, so the
scheduler's decisions follow from the (deterministic, CPU) accuracies alone, never from timing.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import ROOT
from workbench.trialdir import read_metrics

EPOCHS = 3
ARCH = str(ROOT / "architectures/v2s_all_fused.json")
TINY = {
    "description": "test", "dataset": {"name": "digits", "max_train_images": 128, "max_val_images": 64},
    "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16},
    "recipe": {"epochs": EPOCHS, "batch_size": 32, "schedule": {"warmup_epochs": 0}},
    "resources": {"cpus": 1}, "max_concurrent_trials": 1,
}
LR = {"recipe.optimizer.lr": {"type": "loguniform", "low": 1e-6, "high": 2e-2}}
LR_CHOICE = {"recipe.optimizer.lr": {"type": "choice", "values": [2e-2, 1e-6]}}  # some trials barely learn: asha prunes them
SEARCH = {
    "name": "tiny", "base": str(ROOT / "architectures/efficientnetv2_s.json"),
    "stages": [{"out_channels": [16], "layers": [1]}, {"block": ["fused_mbconv", "mbconv"], "layers": [1], "out_channels": [24, 32]},
               {"layers": [1], "out_channels": [32, 48]}, {"layers": [1], "out_channels": [48], "se": [True, False]},
               {"layers": [1], "out_channels": [64]}, {"layers": [1], "out_channels": [64, 96]}],
    "global": {"head_channels": [128, 192]},
    "constraints": {"flops": {"max": 1.5e6}, "num_classes": 10},
}
ALGORITHMS = {
    "grid": {"variants": [{"name": "good", "architecture": ARCH, "override": {"recipe.optimizer.lr": 0.01}},
                          {"name": "slow", "architecture": ARCH, "override": {"recipe.optimizer.lr": 1e-6}},
                          {"name": "mid", "architecture": ARCH, "override": {"recipe.optimizer.lr": 1e-4}}]},
    "random": {"variants": [{"name": "v", "architecture": ARCH}], "space": LR, "algorithm": "random", "num_samples": 3},
    "optuna": {"variants": [{"name": "v", "architecture": ARCH}], "space": LR, "algorithm": "optuna", "num_samples": 3},
    "search_random": {"search": SEARCH, "space": LR_CHOICE, "algorithm": "random", "num_samples": 3},
    "search_optuna": {"search": SEARCH, "space": LR_CHOICE, "algorithm": "optuna", "num_samples": 3},
}


@pytest.fixture(autouse=True)
def private_ray(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "local")


# Every algorithm under asha, whose rungs stop trials mid-run; under fifo, where every trial completes, one algorithm
# that Ray Tune expands itself (grid) and one whose searcher is told each trial's state (optuna).
CASES = [(algorithm, "asha") for algorithm in sorted(ALGORITHMS)] + [("grid", "fifo"), ("optuna", "fifo")]


@pytest.mark.parametrize(("algorithm", "scheduler"), CASES)
def test_every_trial_ends_with_the_status_it_earned(tmp_path, algorithm, scheduler):
    from workbench.study.runner import run_study

    study = {"name": f"{algorithm}_{scheduler}", **TINY, **ALGORITHMS[algorithm],
             "scheduler": {"name": scheduler, "grace_period": 1, "reduction_factor": 2}}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    out = tmp_path / "res"
    outcome = run_study(path, out=str(out), display=False)
    assert not outcome.interrupted and not outcome.failed

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 3 and sorted(summary.trial_id) == sorted(outcome.trials)
    for row in summary.itertuples():
        folder = out / "trials" / row.trial_id
        status = json.loads((folder / "status.json").read_text())
        epochs = [r["epoch"] for r in read_metrics(folder)]
        assert epochs == list(range(1, len(epochs) + 1)), row.trial_id  # each epoch exactly once
        assert (row.status, row.epochs_run, row.final_val_top1) == (status["status"], status["epochs_run"], status["final_val_top1"])
        assert row.epochs_run == len(epochs)
        if row.status == "completed":
            assert row.epochs_run == EPOCHS and pd.isna(row.reason), row
        else:
            assert scheduler == "asha" and row.status == "pruned" and row.epochs_run < EPOCHS, row
            assert row.reason == f"stopped by the asha scheduler at its rung after epoch {row.epochs_run} of {EPOCHS}"
    if scheduler == "asha":  # one trial at a time: the rung decisions follow from the accuracies, never from timing
        assert {row.trial_id: (row.status, row.epochs_run) for row in summary.itertuples()} == asha_decisions(out)
    else:
        assert set(summary.status) == {"completed"}


def asha_decisions(out, rungs=(2, 1), reduction_factor=2):
    """What Ray's asynchronous successive halving decides for these trials, replayed in the order they ran: at each
    rung (descending, as Ray keeps them) a trial stops when its value is below the (1 - 1/rf) quantile of the values
    recorded there before it."""
    import numpy as np

    folders = sorted((out / "trials").iterdir(), key=lambda f: (f / "config.json").stat().st_mtime_ns)
    recorded: dict[int, dict[str, float]] = {rung: {} for rung in rungs}
    decisions = {}
    for folder in folders:
        decisions[folder.name] = ("completed", EPOCHS)
        for row in read_metrics(folder):
            rung = next((r for r in rungs if row["epoch"] >= r and folder.name not in recorded[r]), None)
            if rung is None:
                continue
            before = list(recorded[rung].values())
            cutoff = np.nanpercentile(before, (1 - 1 / reduction_factor) * 100) if before else None
            recorded[rung][folder.name] = row["val_top1"]
            if cutoff is not None and row["val_top1"] < cutoff:
                decisions[folder.name] = ("pruned", row["epoch"])
                break
    return decisions


def test_optuna_is_told_pruned_trials_as_pruned_and_finished_ones_with_their_final_value():
    from optuna.trial import TrialState
    from ray import tune

    from workbench.study.optuna import EarnedOptunaSearch

    searcher = EarnedOptunaSearch(space={"x": tune.uniform(0, 1)}, metric="val_top1", mode="max", seed=0)
    for trial_id in ("a", "b", "c"):
        searcher.suggest(trial_id)
    for trial_id, values in (("a", [0.2, 0.5]), ("b", [0.1]), ("c", [0.3])):
        for epoch, value in enumerate(values, start=1):
            searcher.on_trial_result(trial_id, {"val_top1": value, "training_iteration": epoch})
    searcher.on_trial_complete("a", {"val_top1": 0.5, "finished": 1.0})
    searcher.on_trial_complete("b", {"val_top1": 0.1, "finished": 0.0})  # stopped at a rung
    searcher.on_trial_complete("c", None, error=True)
    trials = {t.number: t for t in searcher._ot_study.trials}
    assert [trials[i].state for i in range(3)] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert trials[0].value == 0.5 and trials[1].intermediate_values == {1: 0.1}
