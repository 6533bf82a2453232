"""A study of data-parallel trials on Ray Train (resources.workers 2, gloo on this machine's CPUs): rank 0 is killed
right after committing epoch 2 (an injected os._exit, as kill -9), the trial fails with the study going on, and the
same command resumes it from checkpoint_last.pt to every epoch exactly once. Two Ray start-ups: the one slow test
of issue 14 (the loop's ranks are tested without Ray in tests/test_distributed.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from workbench.trialdir import read_metrics

ARCH = str(ROOT / "architectures/v2s_all_fused.json")


def run(path, out, fault=None):
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_FAULT", "RAY_ADDRESS")}
    if fault:
        env["WORKBENCH_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "workbench.cli.main", "study", "run", str(path), "--out", str(out), "--no-live"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)


def test_a_two_worker_study_survives_a_killed_rank_and_resumes(tmp_path):
    study = {
        "name": "ddp", "description": "test", "dataset": {"name": "digits", "max_train_images": 256, "max_val_images": 120},
        "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16}, "recipe": {"epochs": 3, "batch_size": 32},
        "variants": [{"name": "v", "architecture": ARCH}], "seeds": [0], "resources": {"workers": 2, "cpus": 1},
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    out = tmp_path / "res"
    trial = out / "trials" / "v-s0"

    first = run(path, out, fault="after:last@2=exit/v-s0")
    assert first.returncode == 1, first.stdout + first.stderr  # the trial failed, the study ended normally
    status = json.loads((trial / "status.json").read_text())
    assert status["status"] == "failed", status
    assert [r["epoch"] for r in read_metrics(trial)] == [1]  # epoch 2 committed, its derived files not yet written

    final = run(path, out)
    assert final.returncode == 0, final.stdout + final.stderr
    assert [r["epoch"] for r in read_metrics(trial)] == [1, 2, 3]
    status = json.loads((trial / "status.json").read_text())
    assert status["status"] == "completed" and "2 workers (DDP, gloo)" in status["device"]
    config = json.loads((trial / "config.json").read_text())
    assert config["world_size"] == 2 and config["batch_size_per_worker"] == 16
    assert (out / "ray" / "train" / "v-s0").is_dir()  # Ray Train's own run state, beside Tune's
