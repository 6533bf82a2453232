"""Training commands: train (one run), predict (top-k classes of image files), bench (images/s on this device)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from workbench.cli.common import add_scale_option, console
from workbench.errors import WorkbenchError
from workbench.trialdir import FAILURES

SET_PREFIXES = ("recipe.", "dataset.", "scale.")


def register(sub) -> None:
    p = sub.add_parser("train", help="train one network (recipe, dataset, progressive learning)",
                       description="Train an architecture on a dataset with a recipe and write a trial folder "
                                   "(config.json, metrics.jsonl, status.json, checkpoints, val_predictions.csv, TensorBoard events).")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument("--recipe", metavar="R.json", help="recipe file (default: the built-in small-CPU recipe)")
    p.add_argument("--dataset", metavar="NAME", help="registry name: digits (default), imagefolder, CIFAR10, MNIST, ...")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override recipe.*, dataset.* or scale.* (e.g. recipe.epochs=2, scale.width_mult=0.25, "
                        "dataset=CIFAR10); repeatable")
    p.add_argument("--out", metavar="DIR", help="trial folder (default: runs/<arch>-<dataset>-<time>); an existing one resumes")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides recipe.device")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the number of usable cores)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="data-parallel workers: PyTorch DDP through Ray Train's TorchTrainer on a private Ray on this machine "
                        "(or --address), gloo on CPU, nccl with one GPU per worker; recipe.batch_size is split over them. "
                        "Default 1: this process, no Ray")
    p.add_argument("--address", help="with --workers: join this Ray cluster (--out then on storage every node mounts)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="top-k classes of image files from a checkpoint",
                       description="Print the top-k classes with probabilities for each image, preprocessed like the validation split.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("bench", help="eval and train-step images/s of an architecture on this device, against torchvision and timm",
                       description="Time the eval forward pass and the training step (forward, loss, backward, AdamW) on synthetic "
                                   "batches with torch.utils.benchmark: every model warmed up, then measured in alternation for "
                                   "--rounds rounds of blocked_autorange, mirrored within a round (A B B A; fixed threads, CUDA synchronised; on the CPU "
                                   "every model's tensors copied to fresh memory at each round's start). Prints the median and "
                                   "interquartile range of the step times and each row's speed relative to the first row (the median over rounds "
                                   "of the two models' time ratio in the same round).")
    p.add_argument("arch", metavar="ARCH.json")
    p.add_argument("--resolution", type=int, help="input size (default: the architecture's eval resolution after scaling)")
    p.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    p.add_argument("--rounds", "--steps", dest="rounds", type=int, default=7,
                   help="interleaved rounds: two mirrored measurements (A B B A) per model and kind each (default 7; --steps is the older name)")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds each measurement runs at least (default 0.5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per model and kind before the first round (default 1)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto",
                   help="CUDA mixed precision, as recipe.amp (default auto: bf16 where supported; never on CPU)")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="memory format, as recipe.channels_last (default auto: on for CUDA, off for CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile every model first, as recipe.compile")
    p.add_argument("--compile-backend", choices=["inductor", "aot_eager", "cudagraphs"], default="inductor",
                   help="torch.compile's backend (default inductor, as training; aot_eager: a quick check without kernels)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the number of usable cores)")
    p.add_argument("--torchvision", action="store_true", help="also time torchvision's model of the same name")
    p.add_argument("--timm", action="store_true", help="also time timm's model of the same name (optional: pip install 'workbench[reference]')")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_scale_option(p)
    p.set_defaults(func=cmd_bench)


def prefer_sleeping_threads() -> None:
    """Ask OpenMP threads to sleep rather than spin while waiting; call before torch loads.

    On a small machine shared with other processes, spinning threads wait for each other: the tiny test network
    trained 7x slower with 2 threads than with 1. Sleeping threads cost little when the machine is idle.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# --- train ----------------------------------------------------------------------------------------


def build_job(arch_path: str, recipe_path: str | None, dataset: str | None, sets: list[str]):
    """Architecture file + optional recipe file + --dataset + --set assignments -> a validated TrainJob."""
    from workbench.schema import Architecture, load
    from workbench.schema.common import read_json, validate
    from workbench.schema.overrides import apply_overrides, parse_assignment
    from workbench.schema.recipe import TrainJob

    arch = load(Architecture, arch_path)
    recipe: Any = read_json(recipe_path) if recipe_path else {}
    if not isinstance(recipe, dict):
        raise WorkbenchError(f"{recipe_path}: expected a JSON object (a recipe)")
    recipe.pop("$schema", None)
    data: dict[str, Any] = {"recipe": recipe, "dataset": {"name": dataset} if dataset else {}, "scale": {}}
    assignments = [parse_assignment(s) for s in sets]
    for key, value in assignments:
        if key == "dataset":
            data["dataset"] = {"name": value} if isinstance(value, str) else value
        elif not key.startswith(SET_PREFIXES):
            raise WorkbenchError(f"--set {key}: keys start with recipe., dataset. or scale. (or dataset=NAME)")
    data = apply_overrides(data, {k: v for k, v in assignments if k != "dataset"})
    source = recipe_path or "train"
    return validate(TrainJob, {"architecture": arch, **data}, source)


def default_out(arch_name: str, dataset: str) -> str:
    return os.path.join("runs", f"{arch_name}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")


def cmd_train(args) -> int:
    prefer_sleeping_threads()
    from workbench.train import fit
    from workbench.train.device import cpu_count

    job = build_job(args.arch, args.recipe, args.dataset, args.sets)
    out = args.out or default_out(job.architecture.name, job.dataset.name)
    if args.workers < 1:
        raise WorkbenchError("--workers must be at least 1")
    if args.address and args.workers == 1:
        raise WorkbenchError("--address joins a Ray cluster for data-parallel workers: give --workers N (N > 1)")
    started = time.perf_counter()
    if args.workers > 1:
        status = train_on_workers(args, job, out)
    else:
        from workbench.data import clear_memory
        from workbench.shm import sweep

        try:
            status = fit(job, out, device=args.device, progress=not args.quiet, resume=not args.no_resume,
                         threads=args.threads or cpu_count())
        finally:
            clear_memory()
            sweep()  # this machine's shared dataset copies that no process uses any more
    print_summary(status, out, time.perf_counter() - started)
    return 1 if status["status"] in FAILURES else 0


def train_on_workers(args, job, out: str) -> dict[str, Any]:
    """`workbench train --workers N`: the same training through Ray Train, on a private Ray unless --address."""
    import ray

    from workbench.shm import sweep
    from workbench.study.cluster import RAY_ENV
    from workbench.train.distributed import fit_on_workers
    from workbench.train.ranks import data_parallel_recipe

    data_parallel_recipe(job.recipe, args.workers)  # a batch that does not split refuses before Ray starts
    os.environ.update(RAY_ENV)
    if args.address:
        ray.init(address=args.address, logging_level="ERROR", log_to_driver=False, runtime_env={"env_vars": RAY_ENV})
        machine = None
    else:
        import torch

        machine = {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}
        workers_for(args, job, machine)  # answered before Ray starts
        ray.init(address="local", num_cpus=int(machine["CPU"]), num_gpus=int(machine["GPU"]), include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)
    follower = EpochFollower(Path(out), job.recipe.epochs, enabled=not args.quiet, resume=not args.no_resume)
    thread = threading.Thread(target=follower.follow, daemon=True)
    try:
        workers = workers_for(args, job, machine or ray.cluster_resources())
        if not args.quiet:
            console().print(f"training {job.architecture.name} on {job.dataset.name} with {workers.count} data-parallel workers "
                            f"(Ray Train, {workers.backend}, {workers.threads} thread{'s' if workers.threads != 1 else ''} each) → {out}",
                            markup=False)
        thread.start()
        result = fit_on_workers(job, out, workers, storage=Path(out).resolve().parent / ".ray_train", name=Path(out).name,
                                resume=not args.no_resume, device=args.device)
    finally:
        if thread.is_alive():
            follower.stop(thread)
        ray.shutdown()
        if not args.address:
            sweep()
    return result.status


def workers_for(args, job, cluster: dict[str, float]):
    """The workers `--workers` asks for on `cluster` (this machine's private Ray, or the one joined): one GPU each
    where the device is cuda, or auto with GPUs there; refused at once where they do not fit."""
    from workbench.train.distributed import Workers

    device = args.device or job.recipe.device
    where = f"the Ray cluster at {args.address}" if args.address else "this machine"
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    use_gpu = device == "cuda" or (device == "auto" and gpus > 0)
    if use_gpu and gpus < args.workers:
        raise WorkbenchError([f"--workers {args.workers} with one GPU each, but {where} has {gpus:g}",
                              "give fewer workers, --device cpu (gloo), or --address of a Ray cluster with more GPUs"])
    if cpus < args.workers:
        raise WorkbenchError([f"--workers {args.workers}, but {where} has {cpus:g} CPUs: each worker needs one",
                              "give fewer workers, or --address of a Ray cluster"])
    threads = args.threads or max(1, int(cpus // args.workers))
    # Locally the workers share this machine's cores; on a cluster each asks for its threads' worth.
    return Workers(args.workers, cpus=threads if args.address else cpus / args.workers, gpus=1.0 if use_gpu else 0.0,
                   threads_per_worker=threads)


class EpochFollower:
    """The driver's progress display of a data-parallel run: the lines of each epoch rank 0 commits (metrics.jsonl),
    so that the workers' own output (with Ray's) can stay in Ray's logs."""

    def __init__(self, folder: Path, epochs: int, enabled: bool, resume: bool):
        from workbench.trialdir import read_metrics

        self.folder, self.epochs, self.enabled = folder, epochs, enabled
        self.done = threading.Event()
        self.shown = len(read_metrics(folder)) if resume else 0  # the epochs of an earlier run are not news
        self.told_storage = False
        self.started = time.time()

    def follow(self) -> None:
        while not self.done.wait(0.5):
            self.show()
        self.show()

    def show(self) -> None:
        from workbench.train.display import Display
        from workbench.trialdir import CONFIG, read_json, read_metrics

        if not self.enabled:
            return
        display = Display(True)
        path = self.folder / CONFIG
        if not self.told_storage and path.exists() and path.stat().st_mtime >= self.started - 1:  # this run's
            config = read_json(path)
            if isinstance(config, dict) and config.get("world_size"):
                display.line(f"world size {config['world_size']}, storage {config.get('storage')}, "
                             f"{config.get('batch_size_per_worker')} images per worker and micro-batch"
                             + (f", resuming after epoch {self.shown}" if self.shown else ""))
                self.told_storage = True
        rows = read_metrics(self.folder)
        for row in rows[self.shown:]:
            display.epoch_summary(row, self.epochs)
        self.shown = max(self.shown, len(rows))

    def stop(self, thread) -> None:
        self.done.set()
        thread.join(timeout=5)


def print_summary(status: dict[str, Any], out: str, wall: float) -> None:
    from rich.table import Table

    from workbench.trialdir import read_metrics

    con = console()
    stages = {}
    for row in read_metrics(Path(out)):
        stages.setdefault(row["stage"], []).append(row)
    table = Table(title="stages", title_justify="left")
    columns = ("stage", "epochs", "image px", "dropout", "stoch. depth", "RandAugment", "mixup", "s / epoch", "train img/s",
               "best val top-1")
    for column in columns:
        table.add_column(column, justify="right")
    for stage, rows in stages.items():
        first = rows[0]
        table.add_row(str(stage), f"{first['epoch']}-{rows[-1]['epoch']}", str(first["image_size"]), f"{first['dropout']:.3f}",
                      f"{first['stochastic_depth']:.3f}", "-" if first["randaugment"] is None else str(first["randaugment"]),
                      f"{first['mixup']:.2f}", f"{sum(r['epoch_seconds'] for r in rows) / len(rows):.2f}",
                      f"{sum(r['train_images_per_s'] for r in rows) / len(rows):.0f}", f"{max(r['val_top1'] for r in rows):.1%}")
    if stages:
        con.print(table)
    best = status.get("best_val_top1")
    con.print(f"{status['status']}" + (f" ({status['reason']})" if status.get("reason") else "")
              + (f" · best val top-1 {best:.1%} at epoch {status['best_epoch']}" if best is not None else "")
              + f" · {status['epochs_run']} epochs · {wall:.1f} s wall · {out}", markup=False)


# --- predict --------------------------------------------------------------------------------------


def cmd_predict(args) -> int:
    prefer_sleeping_threads()
    from workbench.train.predict import predict_files

    if args.top_k < 1:
        raise WorkbenchError("--top-k must be at least 1")
    results = predict_files(args.checkpoint, args.images, top_k=args.top_k, device=args.device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    from rich.table import Table

    table = Table()
    for column, justify in (("image", "left"), ("rank", "right"), ("class", "left"), ("probability", "right")):
        table.add_column(column, justify=justify)
    for result in results:
        for rank, (name, prob) in enumerate(result["top"], start=1):
            table.add_row(result["image"] if rank == 1 else "", str(rank), name, f"{prob:.1%}", end_section=rank == len(result["top"]))
    console().print(table)
    return 0


# --- bench ----------------------------------------------------------------------------------------


def cmd_bench(args) -> int:
    prefer_sleeping_threads()
    from workbench.cli.common import load_scaled
    from workbench.schema.recipe import Recipe
    from workbench.train.bench import benchmark
    from workbench.train.device import cpu_count, thread_count

    arch = load_scaled(args.arch, args.sets)
    if args.batch < 1 or args.rounds < 1 or args.warmup < 0 or not args.min_time > 0:
        raise WorkbenchError("--batch and --rounds must be at least 1, --warmup at least 0, --min-time above 0")
    references = tuple(name for name in ("torchvision", "timm") if getattr(args, name))
    channels_last = {"auto": None, "on": True, "off": False}[args.channels_last]
    recipe = Recipe(device=args.device, amp=args.amp, channels_last=channels_last, compile=args.compile)
    with thread_count(args.threads or cpu_count()):
        rows = benchmark(arch, resolution=args.resolution, batch=args.batch, recipe=recipe, rounds=args.rounds,
                         min_run_time=args.min_time, warmup=args.warmup, num_classes=args.num_classes, references=references,
                         compile_backend=args.compile_backend)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_bench(rows, arch.name)
    return 0


def print_bench(rows: list[dict[str, Any]], name: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    first = rows[0]
    table = Table(title=f"{escape(name)} at {first['resolution']} px, batch {first['batch']}, {first['device']} · "
                        f"{first['rounds']} interleaved rounds", title_justify="left")
    for column in ("model", "params", "eval ms", "IQR", "eval img/s", "ratio", "train ms", "IQR", "train img/s", "ratio"):
        table.add_column(column, justify="right")
    for row in rows:
        cells = [row["model"], f"{row['params'] / 1e6:.2f} M"]
        for kind in ("eval", "train"):
            cells += [f"{row[f'{kind}_ms']:.1f}", f"{row[f'{kind}_iqr_ms']:.1f}", f"{row[f'{kind}_images_per_s']:.1f}",
                      f"{row[f'{kind}_ratio']:.3f}"]
        table.add_row(*cells)
    console().print(table)
    console().print("ms: median step time over all rounds; IQR: its interquartile range; ratio: speed over the first row's "
                    "(median over rounds of the two models' time ratio in the same round)",
                    markup=False)
