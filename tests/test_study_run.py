"""A real study on Ray Tune: Ctrl-C and kill -9 halfway, then the same command finishes every trial exactly once.

One test, three Ray start-ups: it is the slowest in the suite, and the behaviour it checks is the main job's.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from tests.conftest import ROOT


def _epochs(trial_dir):
    path = trial_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]


def _status(trial_dir):
    try:
        return json.loads((trial_dir / "status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def _start(study, out):
    return subprocess.Popen([sys.executable, "-m", "workbench.cli.main", "study", "run", str(study), "--out", str(out), "--no-live"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(condition, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    raise AssertionError("condition not reached in time")


def test_interrupted_study_resumes_without_rerunning_finished_trials(tmp_path):
    arch = str(ROOT / "architectures/v2s_all_fused.json")
    study = {
        "name": "resume", "description": "test", "dataset": {"name": "digits", "max_train_images": 300, "max_val_images": 120},
        "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16}, "recipe": {"epochs": 3, "batch_size": 50},
        "variants": [{"name": "ok", "architecture": arch},
                     {"name": "broken", "architecture": arch, "override": {"dataset.name": "imagefolder", "dataset.path": str(tmp_path / "nowhere")}}],
        "seeds": [0, 1, 2], "max_concurrent_trials": 1,
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    out = tmp_path / "res"
    ok = [out / "trials" / f"ok-s{s}" for s in range(3)]

    # 1. Ctrl-C once the first trial has finished and the second is under way.
    proc = _start(path, out)
    _wait_for(lambda: _status(ok[0]) == "completed" and len(_epochs(ok[1])) >= 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    first_done = ok[0] / "metrics.jsonl"
    stamp = first_done.stat().st_mtime_ns

    # 2. kill -9 the driver once the resumed run has trained a further epoch somewhere.
    before = sum(len(_epochs(d)) for d in ok)
    proc = _start(path, out)
    _wait_for(lambda: sum(len(_epochs(d)) for d in ok) > before, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(3)  # Ray's worker notices its driver is gone

    # 3. The same command finishes the study.
    final = subprocess.run([sys.executable, "-m", "workbench.cli.main", "study", "run", str(path), "--out", str(out), "--no-live"],
                           cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert final.returncode == 1, final.stdout + final.stderr  # the broken variant failed, nothing else
    assert "3 of 6 trials failed" in final.stderr
    for trial in ok:
        assert _epochs(trial) == [1, 2, 3], trial
        assert _status(trial) == "completed"
    assert first_done.stat().st_mtime_ns == stamp  # the finished trial was not rerun
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary.trial_id) == sorted([f"ok-s{s}" for s in range(3)] + [f"broken-s{s}" for s in range(3)])
    broken = summary[summary.variant == "broken"]
    assert set(broken.status) == {"failed"}
    assert all("nowhere" in reason for reason in broken.reason)
    assert (out / "summary.parquet").exists() and (out / "study.json").exists()
    assert "ok" in final.stdout and "±" in final.stdout  # the comparison table printed


def test_a_stop_request_ends_the_run_as_interrupted_without_a_keyboardinterrupt(tmp_path):
    """Ctrl-C also sets a flag that a Tune stopper reads, so the study stops even if Ray loses the KeyboardInterrupt."""
    import threading

    from workbench.study import runner, tuner

    arch = str(ROOT / "architectures/v2s_all_fused.json")
    study = {
        "name": "stop", "description": "test", "dataset": {"name": "digits", "max_train_images": 300, "max_val_images": 120},
        "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16}, "recipe": {"epochs": 8, "batch_size": 50},
        "variants": [{"name": "ok", "architecture": arch}], "seeds": [0, 1], "max_concurrent_trials": 1,
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    first = tmp_path / "res" / "trials" / "ok-s0"

    def stop_after_the_first_epoch():
        deadline = time.time() + 240
        while time.time() < deadline and not _epochs(first):
            time.sleep(0.1)
        tuner.request_stop()

    threading.Thread(target=stop_after_the_first_epoch, daemon=True).start()
    outcome = runner.run_study(path, out=str(tmp_path / "res"), display=False)
    assert outcome.interrupted
    assert 1 <= len(_epochs(first)) < 8
    assert _status(first) == "interrupted"
    assert _status(tmp_path / "res" / "trials" / "ok-s1") in (None, "pending")


def test_a_cpu_study_driver_starts_and_stops_ray_without_torch():
    """The driver of a CPU study never imports torch (1.3 s of each study's start on 2 cores, bench/README.md),
    and its Ray prestarts no default workers (Tune's trial actors never take them)."""
    code = """
import sys
import workbench.cli.study, workbench.study.display, workbench.study.trainable, workbench.study.tuner
from workbench.study.cluster import start_ray, stop_ray
from workbench.study.runner import prepare
import ray
study = prepare("studies/fused_vs_mb.json").study
start_ray(study, None)
print("gpus", ray.cluster_resources().get("GPU", 0.0))
timings = {}
stop_ray(timings)
print("after", ray.is_initialized(), "ray_shutdown" in timings, "torch" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert "gpus 0.0" in lines
    assert "after False True False" in lines
