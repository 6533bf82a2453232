"""A study whose trials run out of memory or disk, and a study driver killed at each ledger write (issue 11).

Faults are injected (workbench.faults, read by Ray's workers from the environment the driver started Ray with), so
nothing depends on timing: the chosen trial fails at the chosen step, the others finish, and a re-run of the same
command resumes what is resumable and reruns nothing that finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT
from workbench.faults import EXIT_CODE
from workbench.trialdir import read_metrics

ARCH = str(ROOT / "architectures/v2s_all_fused.json")


def study_file(tmp_path, names, epochs=2):
    study = {
        "name": "faults", "description": "test", "dataset": {"name": "digits", "max_train_images": 128, "max_val_images": 64},
        "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16}, "recipe": {"epochs": epochs, "batch_size": 32},
        "variants": [{"name": name, "architecture": ARCH} for name in names], "resources": {"cpus": 1},
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    return path


@pytest.fixture(autouse=True)
def private_ray(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "local")


def statuses(out):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "trials").glob("*/status.json"))}


def test_memory_and_disk_failures_fail_their_trial_alone_and_resume_cleanly(tmp_path, monkeypatch):
    from workbench.study.runner import run_study

    path = study_file(tmp_path, ["ok", "ram", "gpu", "disk"])
    out = tmp_path / "res"
    monkeypatch.setenv("WORKBENCH_FAULT", "step@3=memory/ram-s0;step@2=cuda_oom/gpu-s0;before:metrics@2=ENOSPC/disk-s0")
    outcome = run_study(path, out=str(out), display=False)
    found = statuses(out)
    assert found["ok-s0"]["status"] == "completed"
    assert found["ram-s0"]["status"] == "failed" and "out of host memory (MemoryError) at epoch 1" in found["ram-s0"]["reason"]
    assert found["gpu-s0"]["status"] == "failed" and "CUDA out of memory at batch size 32" in found["gpu-s0"]["reason"]
    disk = found["disk-s0"]
    assert disk["status"] == "failed" and "No space left on device (ENOSPC)" in disk["reason"] and "at epoch 2" in disk["reason"]
    assert [r["epoch"] for r in read_metrics(out / "trials/disk-s0")] == [1]  # epoch 1's files intact
    assert sorted(t for t, _ in outcome.failed) == ["disk-s0", "gpu-s0", "ram-s0"]
    summary = pd.read_csv(out / "summary.csv").set_index("trial_id")
    assert summary.loc["ram-s0", "reason"] == found["ram-s0"]["reason"]

    monkeypatch.delenv("WORKBENCH_FAULT")
    stamp = (out / "trials/ok-s0/metrics.jsonl").stat().st_mtime_ns
    outcome = run_study(path, out=str(out), display=False)
    assert outcome.skipped == ["ok-s0"] and not outcome.failed
    assert (out / "trials/ok-s0/metrics.jsonl").stat().st_mtime_ns == stamp
    assert {t: s["status"] for t, s in statuses(out).items()} == dict.fromkeys(["disk-s0", "gpu-s0", "ok-s0", "ram-s0"], "completed")
    for trial in ("disk-s0", "gpu-s0", "ok-s0", "ram-s0"):
        assert [r["epoch"] for r in read_metrics(out / "trials" / trial)] == [1, 2]


def run_cli(path, out, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_FAULT"}
    if fault:
        env["WORKBENCH_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "workbench.cli.main", "study", "run", str(path), "--out", str(out), "--no-live"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def test_a_driver_killed_at_each_ledger_write_resumes_to_the_full_study(tmp_path):
    path = study_file(tmp_path, ["a", "b", "c"])
    out = tmp_path / "res"
    # 1. Killed right after the second trial.json: before any trial trained.
    assert run_cli(path, out, "after:trial_json@2=exit").returncode == EXIT_CODE
    assert sorted(p.parent.name for p in (out / "trials").glob("*/trial.json")) == ["a-s0", "b-s0"]
    # 2. Killed after every trial finished, between summary.csv and summary.parquet.
    assert run_cli(path, out, "after:summary_csv@1=exit").returncode == EXIT_CODE
    stamps = {t: (out / "trials" / t / "metrics.jsonl").stat().st_mtime_ns for t in ("a-s0", "b-s0", "c-s0")}
    # 3. The same command: nothing left to train, the ledger is completed.
    done = run_cli(path, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 trials had finished in an earlier run" in done.stdout
    assert {t: (out / "trials" / t / "metrics.jsonl").stat().st_mtime_ns for t in stamps} == stamps
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary.trial_id) == ["a-s0", "b-s0", "c-s0"] and set(summary.status) == {"completed"}
    assert pd.read_parquet(out / "summary.parquet").trial_id.tolist() == summary.trial_id.tolist()
    for row in summary.itertuples():
        assert [r["epoch"] for r in read_metrics(out / "trials" / row.trial_id)] == [1, 2]
        assert row.final_val_top1 == statuses(out)[row.trial_id]["final_val_top1"]
    assert not list(out.glob(".*.tmp")) and not list(out.glob("trials/*/.*.tmp"))
