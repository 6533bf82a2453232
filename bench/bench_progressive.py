"""Cost of EfficientNetV2 progressive learning: a 4-stage image-size ramp against a fixed-max-size run.

Both runs train the same network for the same epochs with the same per-stage regularisation; the fixed run only
switches on `progressive.constant_image_size` (the paper's ablation). If training cost were FLOPs alone, the ramp
would cost sum over stages of (size_i / max)^2 / stages of the fixed run; the quotient of the measured ratio by
that ideal shows how much per-image overhead the small stages carry (goal: within 1.1x).

    .venv/bin/python bench/bench_progressive.py                 # digits, scaled V2-S, 96 -> 192 px, 8 epochs, CPU
    .venv/bin/python bench/bench_progressive.py --min-size 128 --max-size 300 --width 1 --depth 1 --device cuda --dataset CIFAR10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=str(ROOT / "architectures" / "efficientnetv2_s.json"))
    p.add_argument("--width", type=float, default=0.5, help="scale.width_mult (default 0.5)")
    p.add_argument("--depth", type=float, default=0.25, help="scale.depth_mult (default 0.25)")
    p.add_argument("--min-size", type=int, default=96)
    p.add_argument("--max-size", type=int, default=192)
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--epochs", type=int, default=8, help="a multiple of --stages keeps the stages equal (default 8)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--max-train-images", type=int, default=512, help="a fixed subset keeps the benchmark to minutes on a CPU")
    p.add_argument("--max-val-images", type=int, default=200, help="a small validation split keeps evaluation out of the comparison")
    p.add_argument("--randaugment", action="store_true", help="ramp RandAugment 5 -> 15 as in Table 6 (per-image CPU work)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object instead of the table")
    return p.parse_args(argv)


def job_for(args: argparse.Namespace, constant_size: bool):
    from workbench.schema import load_architecture
    from workbench.schema.recipe import TrainJob

    recipe = {
        "epochs": args.epochs, "batch_size": args.batch,
        "progressive": {"enabled": True, "stages": args.stages, "image_size": [args.min_size, args.max_size],
                        "randaugment": [5, 15] if args.randaugment else None, "constant_image_size": constant_size},
    }
    dataset = {"name": args.dataset, "max_train_images": args.max_train_images, "max_val_images": args.max_val_images}
    scale = {"width_mult": args.width, "depth_mult": args.depth, "resolution": args.max_size}
    return TrainJob.model_validate({"architecture": load_architecture(args.arch), "scale": scale, "recipe": recipe, "dataset": dataset})


@contextmanager
def cpu_seconds_of_training_passes(log: list[float]):
    """Append the process CPU seconds of every training pass (no evaluation, no bookkeeping) to `log`.

    The trainer reports wall seconds; on a machine shared with other processes those measure the neighbours as
    much as the ramp, so the benchmark also times Trainer._train_epoch in CPU seconds.
    """
    from workbench.train.loop import Trainer

    original = Trainer._train_epoch

    def timed(self, *args, **kwargs):
        started = time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            log.append(time.process_time() - started)

    Trainer._train_epoch = timed
    try:
        yield
    finally:
        Trainer._train_epoch = original


def timed_run(job, folder: Path, args: argparse.Namespace) -> dict:
    """Train; return wall seconds of the training passes and of whole epochs, CPU seconds of the training passes,
    and the per-stage epoch times."""
    from workbench.train import fit
    from workbench.trialdir import read_json, read_metrics

    cpu_per_epoch: list[float] = []
    with cpu_seconds_of_training_passes(cpu_per_epoch):
        status = fit(job, folder, device=None if args.device == "auto" else args.device, progress=False, resume=False,
                     threads=args.threads)
    config = read_json(folder / "config.json")
    rows = read_metrics(folder)
    images = config["steps_per_epoch"] * job.recipe.batch_size
    train_seconds = sum(images / r["train_images_per_s"] for r in rows)
    return {"cpu": sum(cpu_per_epoch), "cpu_per_epoch": cpu_per_epoch, "epochs": sum(r["epoch_seconds"] for r in rows),
            "train": train_seconds, "status": status, "stages": status["stage_epoch_seconds"], "best": status["best_val_top1"],
            "config": config}


def ideal_ratio(stages) -> float:
    top = max(s.image_size for s in stages)
    total = sum(s.epochs for s in stages)
    return sum(s.epochs * (s.image_size / top) ** 2 for s in stages) / total


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see workbench.cli.train
    args = parse_args(argv)
    from workbench.train.progressive import plan_stages

    ramp_job, fixed_job = job_for(args, constant_size=False), job_for(args, constant_size=True)
    stages = plan_stages(ramp_job.recipe, ramp_job.network)
    with tempfile.TemporaryDirectory(prefix="bench_progressive_") as tmp:
        fixed = timed_run(fixed_job, Path(tmp) / "fixed", args)
        ramp = timed_run(ramp_job, Path(tmp) / "progressive", args)
    ideal = ideal_ratio(stages)
    if args.json:
        import json

        print(json.dumps({"architecture": ramp_job.architecture.name, "width": args.width, "depth": args.depth,
                          "sizes": [s.image_size for s in stages], "fixed_size": args.max_size, "epochs": args.epochs,
                          "device": ramp["status"]["device"], "fixed_train_s": fixed["train"], "ramp_train_s": ramp["train"],
                          "measured_ratio": ramp["train"] / fixed["train"], "flops_ideal_ratio": ideal,
                          "measured_over_ideal": ramp["train"] / fixed["train"] / ideal, "stages": ramp["stages"]}))
        return 0
    config = ramp["config"]
    print(f"{ramp_job.architecture.name} x width {args.width} depth {args.depth} on {args.dataset} "
          f"({config['train_images']} train images, batch {args.batch}), {args.epochs} epochs, {ramp['status']['device']}")
    sizes = " -> ".join(str(s.image_size) for s in stages)
    print(f"progressive sizes: {sizes} px over {len(stages)} stages; fixed run: {args.max_size} px")
    print()
    columns = (("train s", "train"), ("epochs s", "epochs"), ("train CPU s", "cpu"))
    print(f"{'':24}" + "".join(f"{title:>12}" for title, _ in columns) + f"{'best val':>10}")
    for name, run in (("fixed max size", fixed), ("progressive ramp", ramp)):
        print(f"{name:24}" + "".join(f"{run[key]:>12.1f}" for _, key in columns) + f"{run['best']:>10.1%}")
    ratios = [ramp[key] / fixed[key] for _, key in columns]
    print(f"{'measured ratio':24}" + "".join(f"{r:>12.3f}" for r in ratios))
    print(f"{'FLOPs-ideal ratio':24}" + "".join(f"{ideal:>12.3f}" for _ in ratios))
    print(f"{'measured / ideal':24}" + "".join(f"{r / ideal:>12.2f}" for r in ratios) + "   (goal <= 1.10)")
    print("train s: wall seconds of the training passes; epochs s: with evaluation; "
          "train CPU s: process CPU seconds of the training passes")
    print()
    print("per epoch by stage (progressive run): wall seconds of whole epochs, CPU seconds of the training passes")
    first = 0
    for stage in ramp["stages"]:
        cpu = ramp["cpu_per_epoch"][first:first + stage["epochs"]]
        first += stage["epochs"]
        print(f"  stage {stage['stage']}: {stage['image_size']:>4} px  {stage['epoch_seconds']:6.2f} s/epoch wall"
              f"  {sum(cpu) / len(cpu):6.2f} s/epoch CPU  over {stage['epochs']} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
