"""A real architecture search on Ray Tune: four sampled architectures, one epoch each on a sliver of digits, then
the analysis, `workbench results compare` on the search folder, and the best architecture trained again alone."""

import json

import pandas as pd
import pytest

from tests.conftest import ROOT


def tiny_study(tmp_path, **fields):
    study = {
        "name": "tiny_search", "description": "test", "dataset": {"name": "digits", "max_train_images": 160, "max_val_images": 80},
        "scale": {"resolution": 16}, "recipe": {"epochs": 1, "batch_size": 40}, "num_samples": 4, "metric": "reward",
        "resources": {"cpus": 1},
        "search": {
            "name": "tiny", "base": str(ROOT / "architectures/efficientnetv2_s.json"),
            "stages": [{"out_channels": [16], "layers": [1]}, {"block": ["fused_mbconv", "mbconv"], "layers": [1], "out_channels": [24, 32]},
                       {"layers": [1], "out_channels": [32, 48]}, {"layers": [1], "out_channels": [48], "se": [True, False]},
                       {"layers": [1], "out_channels": [64]}, {"layers": [1], "out_channels": [64, 96]}],
            "global": {"head_channels": [128, 192]},
            "constraints": {"flops": {"max": 1.5e6}, "num_classes": 10},
        },
        **fields,
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    return path


@pytest.fixture(autouse=True)
def private_ray(monkeypatch):
    # ray.init() would otherwise join any cluster someone started with `ray start` on this shared machine.
    monkeypatch.setenv("RAY_ADDRESS", "local")


def test_search_run_writes_architectures_trains_them_and_analyses(tmp_path, workbench_cli):
    path = tiny_study(tmp_path)
    out = tmp_path / "res"

    code, stdout, stderr = workbench_cli("search", "run", path, "--out", out, "--no-live")
    assert code == 0, stdout + stderr
    search = json.loads((out / "search.json").read_text())
    assert search["sampling"]["accepted"] == 4 and search["sampling"]["draws"] >= 4
    files = sorted((out / "architectures").glob("*.json"))
    assert [f.stem for f in files] == ["a000", "a001", "a002", "a003"]
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["trial_id"]) == ["a000-s0", "a001-s0", "a002-s0", "a003-s0"]
    assert set(summary["status"]) == {"completed"} and (summary["flops"] <= 1.5e6).all()
    assert {"hp.stages.1.block", "hp.head_channels"} <= set(summary.columns)
    trial = json.loads((out / "trials/a000-s0/trial.json").read_text())
    assert trial["space"] == "tiny" and trial["architecture"] == "architectures/a000.json"
    assert trial["hparams"] == trial["search"]["choices"]
    assert "acceptance rate" in stdout and "best 4 of 4 finished architectures by reward" in stdout

    code, stdout, stderr = workbench_cli("search", "analyze", out, "--bootstrap", "200")
    assert code == 0, stderr
    for name in ("pareto_flops.png", "pareto_latency.png", "edf.png", "ranges.csv"):
        assert (out / "analysis" / name).stat().st_size > 0
    latency = json.loads((out / "latency.json").read_text())
    assert set(latency["architectures"]) == {"a000", "a001", "a002", "a003"}
    assert "good range of each choice" in stdout and "Pareto front, val_top1 vs FLOPs" in stdout

    code, stdout, stderr = workbench_cli("results", "compare", out, "--format", "csv")
    assert code == 0, stderr
    assert sorted(pd.read_csv(__import__("io").StringIO(stdout))["variant"]) == ["a000", "a001", "a002", "a003"]

    best = summary.sort_values("best_val_top1", ascending=False).iloc[0]["variant"]
    arch = out / "architectures" / f"{best}.json"
    assert workbench_cli("flops", arch, "--num-classes", "10")[0] == 0
    code, stdout, stderr = workbench_cli("train", arch, "--set", "recipe.epochs=1", "--set", "dataset.max_train_images=160",
                                         "--set", "dataset.max_val_images=80", "--out", tmp_path / "again", "--threads", "1", "--quiet")
    assert code == 0, stdout + stderr
    again = json.loads((tmp_path / "again/config.json").read_text())
    trained = json.loads((out / "trials" / f"{best}-s0" / "config.json").read_text())
    assert again["architecture"] == trained["architecture"] and again["flops"] == trained["flops"]


def test_optuna_search_trains_only_architectures_within_budget(tmp_path, workbench_cli):
    path = tiny_study(tmp_path, algorithm="optuna", num_samples=2)
    space = json.loads(path.read_text())
    space["search"]["constraints"]["flops"]["max"] = 1.3e6  # rejects some proposals before any training
    path.write_text(json.dumps(space))
    out = tmp_path / "res"
    code, stdout, stderr = workbench_cli("search", "run", path, "--out", out, "--no-live")
    assert code == 0, stdout + stderr
    sampling = json.loads((out / "search.json").read_text())["sampling"]
    assert sampling["sampler"] == "optuna" and sampling["accepted"] == 2 and sampling["draws"] >= 2
    trials = sorted((out / "trials").glob("*/trial.json"))
    assert len(trials) == 2
    for trial_json in trials:
        trial = json.loads(trial_json.read_text())
        assert trial["trial_id"].startswith("h") and trial["search"]["sampler"] == "optuna"
        assert trial["search"]["flops"] <= 1.3e6 and (out / trial["architecture"]).exists()
        assert json.loads((trial_json.parent / "status.json").read_text())["status"] == "completed"
