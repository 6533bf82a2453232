"""The latency predictor's error on architectures it has not seen (goal on the 2-core CPU: MAPE <= 10 %, Kendall's tau >= 0.9).

Builds (or reads, --table) the latency table of a design space, as `workbench latency table STUDY.json` does, then draws
--count architectures from the same space with a seed of their own (none of them one the table's constant was fitted
on), measures each whole with `workbench latency`'s protocol and cache (the table's device, runtime, batch and
threads), and prints each one's predicted and measured latency, the mean absolute percentage error and Kendall's tau,
with the machine and its load average before and after. --write DIR also saves the drawn architectures, so that
`workbench latency DIR/*.json --predict TABLE` asks the same question from the command line.

    .venv/bin/python bench/bench_latency.py                                    # the CPU search space, 12 architectures
    .venv/bin/python bench/bench_latency.py --table latency/v2s_cpu.json --count 24 --write held_out/
    .venv/bin/python bench/bench_latency.py --study studies/search_v2s_space_gpu.json --device cuda --threads 1

Its exit code is 0 whether or not the goal is met (it prints which); 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOAL_MAPE, GOAL_TAU = 0.10, 0.90


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", default=str(ROOT / "studies" / "search_v2s_space.json"), help="a study with a search block")
    p.add_argument("--table", help="an existing latency table of that space (default: build one into a temporary file)")
    p.add_argument("--count", type=int, default=12, help="held-out architectures to measure (default 12)")
    p.add_argument("--seed", type=int, default=1, help="seed of their draws (the table fits on seed 0's; default 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--runtime", default="eager", choices=["eager", "compile", "onnxruntime"])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the measurements (default 5)")
    p.add_argument("--min-run-time", type=float, default=0.1, help="seconds per network and round (default 0.1)")
    p.add_argument("--part-run-time", type=float, default=0.02, help="seconds per part and round when building (default 0.02)")
    p.add_argument("--write", metavar="DIR", help="also write the held-out architectures there as architecture files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    if args.count < 2:
        p.error("--count must be at least 2 (Kendall's tau needs two)")
    return args


def machine() -> str:
    from workbench.complexity.latency import device_name, torch_version

    return f"{device_name('cpu')}, torch {torch_version()}"


def held_out(study_file: str, table, count: int, seed: int):
    """`count` networks of the space the table was not fitted on, drawn from `seed`."""
    from workbench.complexity.latency_table import Network, content_hash, network_content
    from workbench.study.latency_space import draw_networks, latency_free
    from workbench.study.sampling import SearchContext
    from workbench.study.trials import load_study

    study, _ = load_study(study_file)
    context = SearchContext(latency_free(study), study_file)
    seen = table.seen()
    drawn = [n for n in draw_networks(context, count + len(seen), seed)
             if content_hash(network_content(n.arch, n.resolution, n.num_classes)) not in seen]
    return [Network(f"held{i:02d}", n.arch, n.resolution, n.num_classes) for i, n in enumerate(drawn[:count])]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from workbench.complexity.latency import Protocol, measure
    from workbench.complexity.latency_table import LatencyTable, prediction_error
    from workbench.errors import WorkbenchError
    from workbench.study.latency_space import build_space_table

    load_before, started = os.getloadavg()[0], time.time()
    try:
        protocol = Protocol(device=args.device, runtime=args.runtime, threads=args.threads, rounds=args.rounds,
                            min_run_time=args.min_run_time)
        if args.table:
            table = LatencyTable.load(args.table)
            problems = table.problems()
            if problems:
                raise WorkbenchError([f"{args.table}: {p}" for p in problems])
            protocol = Protocol(**{**table.protocol.as_dict(), "rounds": args.rounds, "min_run_time": args.min_run_time})
        else:
            log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
            table = build_space_table(args.study, [], protocol, part_run_time=args.part_run_time, progress=log)
            table.save(Path(tempfile.mkdtemp(prefix="bench-latency-")) / "table.json")
        built = time.time() - started
        networks = held_out(args.study, table, args.count, args.seed)
        timings = measure([n.subject() for n in networks], protocol)
        predicted = [table.predict(n.arch, n.resolution, n.num_classes).ms for n in networks]
    except WorkbenchError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return 2
    measured = [t.median_ms for t in timings]
    mape, tau = prediction_error(predicted, measured)
    met = mape is not None and tau is not None and mape <= GOAL_MAPE and tau >= GOAL_TAU
    result = {"machine": machine(), "load_before": load_before, "load_after": os.getloadavg()[0], "protocol": protocol.as_dict(),
              "table": str(table.path), "parts": len(table.parts), "constant_ms": table.constant_ms, "table_seconds": built,
              "architectures": [{"name": n.label, "predicted_ms": p, "measured_ms": m, "cached": t.cached}
                                for n, p, m, t in zip(networks, predicted, measured, timings)],
              "mape": mape, "kendall_tau": tau, "goal": {"mape": GOAL_MAPE, "kendall_tau": GOAL_TAU, "met": met}}
    if args.write:
        folder = Path(args.write)
        folder.mkdir(parents=True, exist_ok=True)
        for n in networks:
            (folder / f"{n.label}.json").write_text(json.dumps({**n.arch.model_dump(mode="json", exclude={"schema_"}), "name": n.label}, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {result['machine']} · load {load_before:.2f} before, {result['load_after']:.2f} after")
    print(f"table: {table.path} · {len(table.parts)} parts · constant {table.constant_ms:+.3f} ms · {protocol.describe()}")
    print(f"{'architecture':<14}{'predicted ms':>14}{'measured ms':>13}{'error':>9}")
    for row in result["architectures"]:
        error = (row["predicted_ms"] - row["measured_ms"]) / row["measured_ms"]
        print(f"{row['name']:<14}{row['predicted_ms']:>14.3f}{row['measured_ms']:>13.3f}{error:>+9.1%}")
    print(f"held-out architectures: {len(networks)} · MAPE {mape:.1%} (goal ≤ {GOAL_MAPE:.0%}) · Kendall's τ {tau:.3f} "
          f"(goal ≥ {GOAL_TAU}) · goal {'met' if met else 'NOT met'}" + (f" · wrote {args.write}" if args.write else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
