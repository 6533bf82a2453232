"""Study scheduling overhead: study wall time over the sum of its trials' training times.

    .venv/bin/python bench/bench_study_overhead.py                 # 8 trials, one at a time, 2 CPUs each
    .venv/bin/python bench/bench_study_overhead.py --concurrency 2 # two trials at once, 1 CPU each

A trial's time is what its trainer measured (status.json `seconds`: every epoch's training and evaluation);
the study's wall time adds Ray's start-up, scheduling, data loading, model building and checkpoint copies.
With c trials at once the ideal wall time is sum / c, so the figure printed is wall / (sum / c).
Goal: <= 1.10 when trials last a minute or more (raise --epochs until they do on your machine).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=24)
    args = parser.parse_args()

    from workbench.study import ledger, run_study

    cpus = max(1, (os.cpu_count() or 2) // args.concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        study = {
            "name": "overhead", "description": "bench", "dataset": "digits",
            "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": args.resolution},
            "recipe": {"epochs": args.epochs, "batch_size": 64},
            "variants": [{"name": "v2s", "architecture": str(ROOT / "architectures/efficientnetv2_s.json")}],
            "seeds": list(range(args.trials)), "resources": {"cpus": cpus, "gpus": 0},
            "max_concurrent_trials": args.concurrency,
        }
        path = Path(tmp) / "study.json"
        path.write_text(json.dumps(study))
        start = time.perf_counter()
        outcome = run_study(path, out=str(Path(tmp) / "results"), display=False)
        wall = time.perf_counter() - start
        seconds = [ledger.status_of(outcome.folder, t).get("seconds") or 0.0 for t in outcome.trials]
    total = sum(seconds)
    ideal = total / args.concurrency
    print(f"trials: {len(seconds)} x {args.epochs} epochs, {args.concurrency} at a time, {cpus} CPU each")
    print(f"trial training time: mean {total / len(seconds):.1f} s, min {min(seconds):.1f} s, max {max(seconds):.1f} s, sum {total:.1f} s")
    print(f"study wall time: {wall:.1f} s; ideal (sum / concurrency): {ideal:.1f} s")
    print(f"overhead ratio wall / ideal: {wall / ideal:.3f}  (goal <= 1.10 when trials last >= 60 s)")


if __name__ == "__main__":
    main()
