"""The GPU batch, proven on CPU before GPU time is spent: `bash bench/gpu/run.sh --dry-run` runs every step of the
batch at tiny sizes and writes what the device tool would bring back (issue 17)."""

import json
import os
import subprocess

from tests.conftest import ROOT


def test_the_gpu_batch_runs_every_step_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out)}
    done = subprocess.run(["bash", "bench/gpu/run.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    steps = (out / "steps.txt").read_text().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr + (out / "logs.txt").read_text()[-5000:]
    assert len(steps) >= 12 and all(": rc=0 " in line for line in steps), steps
    figures = [json.loads(line) for line in (out / "figures.jsonl").read_text().splitlines()]
    kinds = [f["figure"] for f in figures]
    assert kinds[0] == "device" and kinds.count("bench") == 7 and {"loop", "progressive", "fractional"} <= set(kinds)
    bench = next(f for f in figures if f["figure"] == "bench")
    assert [row["model"] for row in bench["data"]] == ["workbench", "torchvision", "timm"]
    assert "Device:" in (out / "summary.md").read_text() and "| val top-1" in (out / "table.md").read_text().lower() or (out / "table.md").exists()
    files = sorted(p.name for p in out.iterdir())
    assert files == ["figures.jsonl", "logs.txt", "steps.txt", "summary.csv", "summary.md", "table.md"]  # at most 8, no folder
