"""One dataset copy per machine (issue 14): the memory of four concurrent trials on one dataset, with and without the
shared copy. Goal: the four trials together hold less than 1.5 decoded copies beyond what their runtime and models
take.

Four trial processes (as Ray's trial workers are) each train one epoch of the demo's V2-S proxy (width 0.25, depth
0.25) at --size px on a generated image folder of JPEGs (train/ --images, val/ a quarter as many; 2,000 images are
147 MiB decoded at 160 px), read from the disk cache this script fills first, as a study's trials read the cache
of the first run. After its epoch each process waits while the parent reads every process's memory, then all end.
Three rounds: shared (WORKBENCH_SHM, default /dev/shm), private (WORKBENCH_SHM=off: each trial holds its own copy,
as before issue 14) and baseline (the same trials on a folder of 128 + 128 images, each holding its own: the runtime,
model, optimiser and activations, at the same batch shapes). Per round: the sum of the four processes' RSS, which
counts a shared page in every process that maps it, and of their PSS (proportional set size: a page shared by k
processes counts 1/k in each), which adds up to the memory the four really take; "data copies": (PSS sum - the
baseline's PSS sum without its small copies) / one copy.

    .venv/bin/python bench/bench_shared.py                  # 4 trials, 160 px, 1,600 + 400 images
    .venv/bin/python bench/bench_shared.py --trials 4 --size 224 --images 3200 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROUNDS = ("shared", "private", "baseline")
WAIT_S = 600


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4, help="concurrent trial processes (default 4)")
    p.add_argument("--size", type=int, default=160, help="image size the dataset is decoded and trained at (default 160)")
    p.add_argument("--images", type=int, default=1600, help="training images of the folder, val a quarter of it (default 1600)")
    p.add_argument("--root", default="/tmp/workbench-shared", help="where the generated folders are kept")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--child", nargs=3, metavar=("OUT", "MARKERS", "FOLDER"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_folder(folder: Path, train: int, val: int, pixels: int) -> Path:
    import numpy as np
    from PIL import Image

    done = folder.with_name(folder.name + ".complete")  # beside the folder: inside, it would be a stray file
    if done.exists():
        return folder
    rng = np.random.default_rng(train)
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            c = i % 10
            (folder / split / f"c{c}").mkdir(parents=True, exist_ok=True)
            pixels_ = rng.integers(0, 256, (pixels, pixels, 3), dtype="uint8")
            Image.fromarray(pixels_).save(folder / split / f"c{c}" / f"{i:05d}.jpg", quality=85)
    done.touch()
    return folder


def job(size: int, folder: str):
    from workbench.schema import Architecture, load
    from workbench.schema.recipe import TrainJob

    dataset = {"name": "imagefolder", "path": folder, "storage": "memory"}
    return TrainJob.model_validate({
        "architecture": load(Architecture, ROOT / "architectures" / "v2s_all_fused.json"),
        "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": size},
        "recipe": {"epochs": 1, "batch_size": 64}, "dataset": dataset,
    })


def child(args: argparse.Namespace) -> None:
    """One trial: an epoch, then wait (holding everything) until the parent has measured."""
    from workbench.train import fit

    out, markers, folder = args.child
    markers = Path(markers)

    def hold(metrics, folder) -> None:
        (markers / f"ready-{os.getpid()}").touch()
        deadline = time.time() + WAIT_S
        while not (markers / "measured").exists() and time.time() < deadline:
            time.sleep(0.1)

    fit(job(args.size, folder), out, on_epoch=hold, progress=False, resume=False, threads=1)


def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of process `pid`."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) * 1024
    return fields["Rss"], fields["Pss"]


def run_round(name: str, args: argparse.Namespace, work: Path, folder: Path) -> dict:
    markers = work / f"markers-{name}"
    markers.mkdir()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("WORKBENCH_SHM", None)
    if args.shm is not None:
        env["WORKBENCH_SHM"] = args.shm
    if name != "shared":
        env["WORKBENCH_SHM"] = "off"
    procs = [subprocess.Popen([sys.executable, __file__, "--size", str(args.size), "--child", str(work / f"{name}-{i}"), str(markers), str(folder)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(args.trials)]
    deadline = time.time() + WAIT_S
    while len(list(markers.glob("ready-*"))) < args.trials:
        if any(p.poll() is not None for p in procs) or time.time() > deadline:
            errors = [p.stderr.read()[-2000:] for p in procs if p.poll() is not None]
            raise SystemExit(f"round {name}: a trial ended before its epoch did\n" + "\n".join(errors))
        time.sleep(0.2)
    measured = [memory_of(p.pid) for p in procs]
    (markers / "measured").touch()
    for p in procs:
        p.wait(timeout=120)
    return {"round": name, "rss_sum": sum(m[0] for m in measured), "pss_sum": sum(m[1] for m in measured),
            "rss": [m[0] for m in measured], "pss": [m[1] for m in measured]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    from workbench.data import load_dataset
    from workbench.model import build_model

    root = Path(args.root)
    folders = {"main": make_folder(root / f"images{args.images}", args.images, args.images // 4, args.size + 20),
               "baseline": make_folder(root / "images128", 128, 128, args.size + 20)}
    args.shm = os.environ.get("WORKBENCH_SHM")
    os.environ["WORKBENCH_SHM"] = "off"  # this process only fills the disk caches, which every trial reads
    sizes = {}
    for name, folder in folders.items():
        data = load_dataset(job(args.size, str(folder)).dataset, 3, args.size)
        sizes[name] = sum(t.numel() for t in (data.train_images, data.val_images)) + 8 * (len(data.train_labels) + len(data.val_labels))
        num_classes = data.num_classes
        del data
    copy_bytes = sizes["main"]
    params = sum(p.numel() for p in build_model(job(args.size, str(folders["main"])).network, num_classes).parameters())
    from workbench.data import clear_memory
    from workbench.shm import sweep

    clear_memory()
    if args.shm is not None:
        os.environ["WORKBENCH_SHM"] = args.shm
    else:
        os.environ.pop("WORKBENCH_SHM")
    sweep()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
        rounds = {name: run_round(name, args, Path(tmp), folders["baseline" if name == "baseline" else "main"]) for name in ROUNDS}
    sweep()
    load_after = os.getloadavg()[0]
    baseline = rounds["baseline"]["pss_sum"] - args.trials * sizes["baseline"]  # runtime, models, activations
    for r in rounds.values():
        r["data_copies"] = (r["pss_sum"] - baseline) / copy_bytes
    report = {"trials": args.trials, "size": args.size, "copy_bytes": copy_bytes, "model_params": params,
              "machine": f"{os.cpu_count()} cores", "load": [load_before, load_after], "date": time.strftime("%Y-%m-%d"),
              "rounds": rounds}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    mib = 2**20
    print(f"{args.trials} concurrent trials on {args.images + args.images // 4:,} JPEGs at {args.size} px (one decoded copy {copy_bytes / mib:.1f} MiB; model "
          f"{params / 1e6:.2f} M parameters, {16 * params / mib:.1f} MiB with gradients and AdamW's moments) · "
          f"{report['machine']} · load {load_before:.1f} -> {load_after:.1f} · {report['date']}")
    print(f"{'round':>9} {'RSS sum MiB':>12} {'PSS sum MiB':>12} {'data copies':>12}")
    for r in rounds.values():
        copies = "-" if r["round"] == "baseline" else f"{r['data_copies']:.2f}"
        print(f"{r['round']:>9} {r['rss_sum'] / mib:>12.1f} {r['pss_sum'] / mib:>12.1f} {copies:>12}")
    print("RSS counts a shared page in every process mapping it; PSS splits it among them and sums to what the trials "
          "take. data copies: (PSS sum - baseline PSS sum) / one copy (goal: under 1.5 with sharing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
