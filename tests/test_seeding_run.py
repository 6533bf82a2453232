"""A real adaptive study on Ray Tune (tiny digits trials, initial 2, max 4): the driver dies as after kill -9 at the
start of round 2 (an injected exit, no timing), the same command continues that round and finishes the study, and
a further run trains nothing. Two Ray start-ups."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from workbench.faults import EXIT_CODE
from workbench.study import seeding
from workbench.study.runner import prepare, run_study

ARCH = str(ROOT / "architectures" / "v2s_all_fused.json")


def _run(path, out, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_FAULT"}
    if fault:
        env["WORKBENCH_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "workbench.cli.main", "study", "run", str(path), "--out", str(out), "--no-live"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def _status(folder, trial_id):
    path = folder / "trials" / trial_id / "status.json"
    return json.loads(path.read_text())["status"] if path.exists() else None


def test_adaptive_study_continues_its_rounds_after_the_driver_is_killed(tmp_path):
    study = {
        "name": "adaptive_run", "description": "test", "dataset": {"name": "digits", "max_train_images": 300},
        "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16},
        "recipe": {"epochs": 3, "batch_size": 50, "optimizer": {"name": "adamw", "lr": 0.01}},
        # `same` is the baseline's configuration (CPU training is deterministic: equal at every seed, so equivalent
        # after round 1); `other` trains at another learning rate (its first two differences differ in sign: open)
        "variants": [{"name": "base", "architecture": ARCH}, {"name": "same", "architecture": ARCH},
                     {"name": "other", "architecture": ARCH, "override": {"recipe.optimizer.lr": 0.003}}],
        "seeds": {"initial": 2, "max": 4, "min_effect": 1.0}, "max_concurrent_trials": 2,
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    out = tmp_path / "res"

    # 1. Round 1 trains; the driver exits (os._exit, like kill -9) as it records round 2's first trial.
    killed = _run(path, out, fault="after:trial_json=exit/base-s2")
    assert killed.returncode == EXIT_CODE, killed.stdout + killed.stderr
    round_one = [f"{v}-s{s}" for v in ("base", "same", "other") for s in (0, 1)]
    assert all(_status(out, t) == "completed" for t in round_one)
    stamps = {t: (out / "trials" / t / "metrics.jsonl").stat().st_mtime_ns for t in round_one}
    assert (out / "trials" / "base-s2" / "trial.json").exists() and _status(out, "base-s2") is None
    prepared = prepare(path, out=str(out))
    continuing = seeding.next_round(prepared.study, prepared.trials, out)
    assert [t.trial_id for t in continuing.trials] == ["base-s2", "other-s2"]  # the same round 2, from the folders

    # 2. The same command resumes that round and runs the rest.
    finished = _run(path, out)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert {t: (out / "trials" / t / "metrics.jsonl").stat().st_mtime_ns for t in round_one} == stamps  # not rerun
    seeds = {v: sorted(int(p.name.rsplit("-s", 1)[1]) for p in (out / "trials").glob(f"{v}-s*")) for v in ("base", "same", "other")}
    assert seeds["same"] == [0, 1]
    assert seeds["other"] in ([0, 1, 2], [0, 1, 2, 3]) and seeds["base"] == seeds["other"]
    assert all(_status(out, f"{v}-s{s}") == "completed" for v, runs in seeds.items() for s in runs)
    assert seeding.next_round(prepared.study, prepared.trials, out).done
    table = subprocess.run([sys.executable, "-m", "workbench.cli.main", "results", "compare", str(out), "--format", "json"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    rows = {r["variant"]: r for r in json.loads(table.stdout)["rows"]}
    assert rows["same"]["verdict"] == "equivalent" and rows["same"]["n"] == 2
    assert rows["other"]["verdict"] in ("better", "worse", "open") and rows["other"]["n"] == len(seeds["other"])
    assert json.loads(table.stdout)["adaptive"][0]["saved"] == 12 - sum(len(s) for s in seeds.values())
    assert "adaptive seeds ran" in finished.stdout  # the study's own table says what adaptive seeding saved

    # 3. Run again: every trial had finished, nothing trains (no Ray start either).
    again = run_study(path, out=str(out), display=False)
    assert again.rounds == 0 and sorted(again.skipped) == sorted(f"{v}-s{s}" for v, runs in seeds.items() for s in runs)


def test_the_shipped_adaptive_study_runs_shrunk(tmp_path):
    """studies/shallow_sd_adaptive.json as its description shrinks it: every variant ends between initial and max
    seeds, each compared row carries a verdict, and the table counts the trials saved."""
    from workbench.results import compare, reader, tables

    path = ROOT / "studies" / "shallow_sd_adaptive.json"
    sets = ["recipe.epochs=1", 'seeds={"initial": 2, "max": 3, "min_effect": 1.0}', "dataset.max_train_images=100",
            "dataset.max_val_images=100", "scale.resolution=16"]
    outcome = run_study(path, sets, out=str(tmp_path / "res"), display=False)
    assert not outcome.interrupted and not outcome.failed and 1 <= outcome.rounds <= 2
    result = compare.compare(reader.load([tmp_path / "res"]))
    assert len(result.groups) == 5
    for g in result.groups:
        assert 2 <= g.best.n <= 3 and not g.incomplete
        assert g.is_baseline or result.verdict_word(g) in ("better", "worse", "equivalent", "open")
    baseline = next(g for g in result.groups if g.is_baseline)
    assert baseline.best.n == max(g.best.n for g in result.groups)
    [run] = result.adaptive
    assert run.trials == sum(g.best.n for g in result.groups) and run.at_max == 15
    assert f"{run.saved} saved" in tables.markdown(result)
