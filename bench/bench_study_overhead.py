"""Study scheduling overhead: study wall time over the ideal, the sum of its trials' training times / concurrency.

    .venv/bin/python bench/bench_study_overhead.py                          # 30-s and 60-s trials, two at a time
    .venv/bin/python bench/bench_study_overhead.py --trial-seconds 30 --trials 8
    .venv/bin/python bench/bench_study_overhead.py --demo                   # `make demo`'s own command, timed whole

A trial's time is what its trainer measured (status.json `seconds`: every epoch's training and evaluation); the
study's wall time adds everything else: Python start-up and imports, Ray's start, per-trial set-up (data, model),
Tune's scheduling and reporting, uneven packing of trials onto the slots, Ray's shutdown, the summary and table.
Each run prints that breakdown. Goal: wall / ideal <= 1.10 for the demo's 30-s trials, two at a time on 2 cores.
The epochs of a --trial-seconds run are calibrated from one timed epoch first, so trials land near the target.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROXY = {"scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16}, "dataset": "digits"}
RECIPE = ROOT / "studies/recipes/digits_proxy.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial-seconds", type=float, nargs="+", default=[30.0, 60.0], help="target trial durations")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--demo", action="store_true", help="time `workbench study run studies/fused_vs_mb.json` as a whole instead")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M')}")
    if args.demo:
        demo()
        return
    for target in args.trial_seconds:
        epochs = calibrate(target, args.concurrency)
        run(target, epochs, args.trials, args.concurrency)


def calibrate(target: float, concurrency: int) -> int:
    """Epochs for a trial of about `target` seconds: two epochs of the same job timed in `concurrency` processes at
    once (trials that share the cores run slower than one alone)."""
    code = ("import json, sys, tempfile; from bench.bench_study_overhead import calibration_job; from workbench.train import fit; "
            "d = tempfile.mkdtemp(); print(json.dumps(fit(calibration_job(), d, progress=False, threads=1)['seconds']))")
    runs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(concurrency)]
    seconds = [float(run.communicate()[0].strip().splitlines()[-1]) for run in runs]
    return max(2, round(target / (sum(seconds) / len(seconds) / 2)))


def calibration_job():
    from workbench.schema import load_architecture
    from workbench.schema.recipe import TrainJob

    arch = load_architecture(ROOT / "architectures/efficientnetv2_s.json")
    return TrainJob.model_validate({"architecture": arch, "recipe": _recipe(epochs=2), "scale": PROXY["scale"], "dataset": {"name": "digits"}})


def _recipe(epochs: int) -> dict:
    recipe = {**json.loads(RECIPE.read_text()), "epochs": epochs}
    recipe.pop("$schema", None)
    return recipe


def run(target: float, epochs: int, trials: int, concurrency: int) -> None:
    from workbench.study import ledger, run_study

    with tempfile.TemporaryDirectory() as tmp:
        study = {"name": "overhead", "description": "bench", **PROXY, "recipe": _recipe(epochs),
                 "variants": [{"name": "v2s", "architecture": str(ROOT / "architectures/efficientnetv2_s.json")}],
                 "seeds": list(range(trials)), "resources": {"cpus": max(1, (os.cpu_count() or 2) // concurrency), "gpus": 0},
                 "max_concurrent_trials": concurrency}
        path = Path(tmp) / "study.json"
        path.write_text(json.dumps(study))
        start = time.perf_counter()
        outcome = run_study(path, out=str(Path(tmp) / "results"), display=False)
        wall = time.perf_counter() - start
        statuses = [ledger.status_of(outcome.folder, t) for t in outcome.trials]
    print(f"\n{trials} trials of {epochs} epochs (target {target:g} s), {concurrency} at a time")
    report(wall, statuses, outcome.timings, concurrency)


def report(wall: float, statuses: list[dict], timings: dict[str, float], concurrency: int) -> None:
    seconds = [s.get("seconds") or 0.0 for s in statuses]
    setup = [s.get("setup_seconds") or 0.0 for s in statuses]
    ideal = sum(seconds) / concurrency
    packed = makespan(seconds, concurrency)
    with_setup = makespan([a + b for a, b in zip(seconds, setup)], concurrency)
    driver = sum(timings.get(k, 0.0) for k in ("ray_start", "ray_shutdown", "summary"))
    print(f"trial training time: mean {sum(seconds) / len(seconds):.1f} s (min {min(seconds):.1f}, max {max(seconds):.1f}), sum {sum(seconds):.1f} s")
    print(f"study wall {wall:.1f} s, ideal {ideal:.1f} s: ratio {wall / ideal:.3f}  (goal <= 1.10)")
    print("where the extra time goes:")
    rows = [("trials packed unevenly on the slots (list schedule of the measured times)", packed - ideal),
            ("per-trial set-up (data, model, optimiser), spread over the slots", with_setup - packed),
            ("Ray start / shutdown / summary", driver),
            ("Tune: actors, imports, scheduling, reports", timings.get("tune", 0.0) - with_setup),
            ("before Ray (imports, validating the trials) and the rest", wall - driver - timings.get("tune", 0.0))]
    for label, value in rows:
        print(f"  {label:<76} {value:7.1f} s  ({value / ideal:+.1%})")


def makespan(durations: list[float], slots: int) -> float:
    """Finish time of trials started in order, each on the first free slot (how Tune fills max_concurrent_trials)."""
    free = [0.0] * slots
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def demo() -> None:
    """`make demo`'s command, into a fresh folder: the whole command's wall time over sum(trial seconds) / 2."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fused_vs_mb"
        command = [str(ROOT / ".venv/bin/workbench"), "study", "run", "studies/fused_vs_mb.json", "--out", str(out), "--no-live"]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(done.stdout + done.stderr)
        statuses = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("*/status.json"))]
    seconds = sum(s["seconds"] for s in statuses)
    print(f"make demo's study: {len(statuses)} trials, sum of trial seconds {seconds:.1f} s, whole command {wall:.1f} s")
    print(f"wall / (sum / 2) = {wall / (seconds / 2):.3f}  (goal <= 1.10); list schedule of the measured times alone: "
          f"{makespan([s['seconds'] for s in statuses], 2) / (seconds / 2):.3f}")


if __name__ == "__main__":
    main()
