"""Training-loop efficiency: the loop's images/s over the bare model step's (goal: at least 0.90 on CPU).

loop: the train_images_per_s of one epoch of `fit`, as `workbench train` reports it (data order, batch gathering,
augmentation on the device, the step, the loss bookkeeping; evaluation excluded). bare: the model alone, as
`workbench bench` times it (make_train_step: forward, loss, backward, AdamW step on one fixed batch of the recipe's
batch size), for as many steps as the epoch has, with the same threads and device. The two alternate: epoch, bare,
epoch, bare, ... (the bare steps run in fit's on_epoch callback), and the first pair is dropped as warm-up. Printed
per case: the median and spread (min-max) of each, the ratio of the medians, and the median of the per-repetition
ratios; the load average before and after, since other processes on the cores change both.

Cases: `proxy` is the demo's V2-S proxy (studies/fused_vs_mb.json: width 0.25, depth 0.25, 16 px, batch 64, 3 channels,
its recipe: AdamW, label smoothing, random-resized crop) on digits; `hymenoptera` is V2-S at 96 px (width and depth
1 unless --width/--depth) on the ants-and-bees photos with studies/hymenoptera.json's recipe (batch 32, crop, colour
jitter 0.2).

    .venv/bin/python bench/bench_loop.py                                   # both cases, 5 repetitions, 1 thread
    .venv/bin/python bench/bench_loop.py --cases proxy --repetitions 9
    .venv/bin/python bench/bench_loop.py --cases hymenoptera --device cuda --threads 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CASES = ("proxy", "hymenoptera")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default: both)")
    p.add_argument("--repetitions", type=int, default=5, help="measured pairs (epoch, bare) per case, after one warm-up pair")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1, as `workbench train --threads 1`)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--hymenoptera", default=str(ROOT.parent / "shared" / "datasets" / "hymenoptera"), help="the ImageFolder")
    p.add_argument("--size", type=int, default=96, help="hymenoptera image size (default 96)")
    p.add_argument("--width", type=float, default=1.0, help="hymenoptera scale.width_mult (default 1)")
    p.add_argument("--depth", type=float, default=1.0, help="hymenoptera scale.depth_mult (default 1)")
    p.add_argument("--max-train-images", type=int, default=None, help="a subset of the training split (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := [c for c in args.cases if c not in CASES]:
        p.error(f"unknown case {unknown[0]!r} (cases: {', '.join(CASES)})")
    if args.repetitions < 1:
        p.error("--repetitions must be at least 1")
    return args


def job_for(case: str, args: argparse.Namespace):
    from workbench.schema import load_architecture
    from workbench.schema.common import read_json
    from workbench.schema.recipe import TrainJob

    arch = load_architecture(ROOT / "architectures" / "efficientnetv2_s.json")
    if case == "proxy":
        study = read_json(ROOT / "studies" / "fused_vs_mb.json")
        recipe = read_json(ROOT / "studies" / "recipes" / "digits_proxy.json")
        scale, dataset = study["scale"], {"name": "digits"}
    else:
        study = read_json(ROOT / "studies" / "hymenoptera.json")
        recipe = study["recipe"]
        scale = {"width_mult": args.width, "depth_mult": args.depth, "resolution": args.size}
        dataset = {"name": "imagefolder", "path": args.hymenoptera}
    recipe = {k: v for k, v in recipe.items() if k != "$schema"}
    recipe["epochs"] = args.repetitions + 1
    dataset["max_train_images"] = args.max_train_images
    dataset["max_val_images"] = 32  # evaluation is not timed; a small split keeps the run short
    return TrainJob.model_validate({"architecture": arch, "scale": scale, "recipe": recipe, "dataset": dataset})


def measure(case: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from workbench.model import build_model
    from workbench.train import fit
    from workbench.train.bench import make_train_step
    from workbench.train.device import resolve_execution
    from workbench.trialdir import read_json

    job = job_for(case, args)
    exe = resolve_execution(job.recipe, args.device)
    loop, bare = [], []
    state: dict[str, Any] = {}

    def bare_steps(metrics: dict[str, Any], folder: Path) -> None:
        """Time the bare step for as many steps as the epoch just trained (the loop's rate is in `metrics`)."""
        from torch.utils import benchmark as torch_benchmark

        config = read_json(folder / "config.json")
        state["device"] = exe.describe  # here, under fit's thread count
        if "step" not in state:
            net = job.network
            torch.manual_seed(0)
            model = build_model(net, config["num_classes"]).to(exe.device, memory_format=exe.memory_format)
            size = metrics["image_size"]
            images = torch.randn(job.recipe.batch_size, net.in_channels, size, size, device=exe.device)
            labels = torch.randint(0, config["num_classes"], (job.recipe.batch_size,), device=exe.device)
            state["step"] = make_train_step(model, images.contiguous(memory_format=exe.memory_format), labels, exe)
            state["step"]()
        steps = config["steps_per_epoch"]
        timer = torch_benchmark.Timer(stmt="step()", globals={"step": state["step"]}, num_threads=torch.get_num_threads())
        bare.append(job.recipe.batch_size / timer.timeit(steps).median)
        loop.append(metrics["train_images_per_s"])

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        fit(job, folder, on_epoch=bare_steps, progress=False, resume=False, threads=args.threads, device=args.device)
    load_after = os.getloadavg()
    loop, bare = loop[1:], bare[1:]  # the first pair warms up
    ratios = [a / b for a, b in zip(loop, bare)]
    return {"case": case, "architecture": job.network.name, "image_size": job.network.resolution.train,
            "batch": job.recipe.batch_size, "device": state["device"], "threads": args.threads, "repetitions": len(loop),
            "loop_images_per_s": loop, "bare_images_per_s": bare,
            "loop_median": statistics.median(loop), "bare_median": statistics.median(bare),
            "ratio_of_medians": statistics.median(loop) / statistics.median(bare),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "load_before": load_before[0], "load_after": load_after[0]}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def report(rows: list[dict[str, Any]]) -> str:
    lines = ["case          net / size / batch            loop img/s median [min-max]   bare img/s median [min-max]   "
             "loop/bare: of medians, per-rep median [min-max]   load before/after"]
    for r in rows:
        net = f"{r['architecture']} {r['image_size']} px b{r['batch']}"
        lines.append(f"{r['case']:<13} {net:<29} {spread(r['loop_images_per_s']):<29} {spread(r['bare_images_per_s']):<29} "
                     f"{r['ratio_of_medians']:.3f}, {r['ratio_median']:.3f} [{r['ratio_min']:.3f}-{r['ratio_max']:.3f}]"
                     f"{'':<22}{r['load_before']:.2f} / {r['load_after']:.2f}")
    first = rows[0]
    lines.append(f"{first['device']}, {first['threads']} thread(s), {first['repetitions']} repetitions (goal: loop/bare >= 0.90)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the workbench CLI does before torch loads
    rows = [measure(case, args) for case in args.cases]
    print(json.dumps(rows, indent=2) if args.json else report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
