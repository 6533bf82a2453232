"""Streaming a dataset larger than memory (issue 14): the peak memory of the training process does not grow with the
number of training files. Goal: one epoch with dataset.storage=stream over 20,000 and over 80,000 small JPEGs;
peak RSS of the training process grows by less than 10 % between the two.

The folders (train/<class>/*.jpg, the same val/ of --val images for both, so that the validation set, decoded once at
the evaluation size, is the same) are generated under --root once and reused. Each size trains one epoch in a fresh
process (`fit` of the demo's V2-S proxy: width 0.25, depth 0.25, --size px, batch 256, storage stream, --loader-workers
DataLoader workers), which reports its peak RSS (VmHWM), its current RSS, and the largest peak of its DataLoader
workers (getrusage of its children). Printed with the machine and its load average before and after.

    .venv/bin/python bench/bench_stream.py                        # 20,000 and 80,000 files under /tmp/workbench-stream
    .venv/bin/python bench/bench_stream.py --images 5000 20000 --loader-workers 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLASSES = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[20_000, 80_000], help="training files per folder (default 20000 80000)")
    p.add_argument("--val", type=int, default=1000, help="validation files, the same for every size (default 1000)")
    p.add_argument("--pixels", type=int, default=48, help="side of the generated JPEGs (default 48)")
    p.add_argument("--size", type=int, default=32, help="training image size (default 32)")
    p.add_argument("--loader-workers", type=int, default=2, help="DataLoader workers decoding (default 2)")
    p.add_argument("--root", default="/tmp/workbench-stream", help="where the generated folders are kept")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--child", help=argparse.SUPPRESS)  # one measured epoch, in its own process
    return p.parse_args(argv)


def make_folder(root: Path, images: int, val: int, pixels: int) -> Path:
    """train/ with `images` JPEGs and val/ with `val` (the same for every size: a link to the first one made)."""
    import numpy as np
    from PIL import Image

    folder = root / f"train{images}"
    done = root / f"train{images}.complete"  # beside the folder: inside, it would be a stray file
    if done.exists():
        return folder
    rng = np.random.default_rng(images)
    shared_val = root / "val"
    if not (root / "val.complete").exists():
        write_images(shared_val, val, pixels, np.random.default_rng(0), Image)
        (root / "val.complete").touch()
    write_images(folder / "train", images, pixels, rng, Image)
    if not (folder / "val").exists():
        (folder / "val").symlink_to(shared_val, target_is_directory=True)
    done.touch()
    return folder


def write_images(folder: Path, count: int, pixels: int, rng, Image) -> None:
    for c in range(CLASSES):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, (CLASSES, pixels, pixels, 3), dtype="uint8")
    for i in range(count):
        c = i % CLASSES
        noise = rng.integers(-40, 40, (pixels, pixels, 3))
        Image.fromarray((base[c] + noise).clip(0, 255).astype("uint8")).save(folder / f"c{c}" / f"{i:06d}.jpg", quality=90)


def child(args: argparse.Namespace) -> None:
    """One epoch on the folder args.child; prints its memory as JSON."""
    import torch

    from workbench.schema import Architecture, load
    from workbench.schema.recipe import TrainJob
    from workbench.train import fit

    arch = load(Architecture, ROOT / "architectures" / "v2s_all_fused.json")
    job = TrainJob.model_validate({
        "architecture": arch, "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": args.size},
        "recipe": {"epochs": 1, "batch_size": 256, "num_workers": args.loader_workers},
        "dataset": {"name": "imagefolder", "path": args.child, "storage": "stream"},
    })
    out = Path(args.child).parent / f"run-{Path(args.child).name}"
    started = time.perf_counter()
    status = fit(job, out, progress=False, resume=False, threads=max(1, torch.get_num_threads()))
    print(json.dumps({"status": status["status"], "seconds": time.perf_counter() - started,
                      "train_images_per_s": status["train_images_per_s"], "peak_rss_mib": proc_status("VmHWM") / 1024,
                      "rss_mib": proc_status("VmRSS") / 1024,
                      "loader_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def proc_status(field: str) -> int:
    """kB of a field of /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def machine() -> str:
    memory = next((int(line.split()[1]) // 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory} GiB, {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    load_before = os.getloadavg()[0]
    for images in args.images:
        folder = make_folder(root, images, args.val, args.pixels)
        run = subprocess.run([sys.executable, __file__, "--child", str(folder), "--size", str(args.size),
                              "--loader-workers", str(args.loader_workers)], capture_output=True, text=True, cwd=ROOT)
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append({"images": images, **json.loads(run.stdout.strip().splitlines()[-1])})
    load_after = os.getloadavg()[0]
    growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"] - 1
    report = {"machine": machine(), "load": [load_before, load_after], "date": time.strftime("%Y-%m-%d"), "rows": rows,
              "peak_rss_growth": growth}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"storage stream, one epoch, {args.size} px, {args.loader_workers} DataLoader workers · {report['machine']} · "
          f"load {load_before:.1f} -> {load_after:.1f} · {report['date']}")
    print(f"{'train files':>12} {'peak RSS MiB':>13} {'RSS at end':>11} {'loader peak':>12} {'img/s':>8} {'seconds':>8}")
    for row in rows:
        print(f"{row['images']:>12,} {row['peak_rss_mib']:>13.1f} {row['rss_mib']:>11.1f} {row['loader_peak_rss_mib']:>12.1f} "
              f"{row['train_images_per_s']:>8.0f} {row['seconds']:>8.1f}")
    print(f"peak RSS of the training process: {growth:+.1%} from {rows[0]['images']:,} to {rows[-1]['images']:,} files "
          f"(goal: under +10 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
