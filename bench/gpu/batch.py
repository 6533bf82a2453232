"""The steps of the GPU batch (bench/gpu/run.sh), each a subprocess under its own time cap, so that a failing or slow
step loses nothing of the others.

Files under $OUT (the device tool returns at most 8): steps.txt (each step's exit status and seconds), logs.txt (every
step's output), figures.jsonl (one JSON object per figure, the device line first), summary.md (the figures as tables,
with the device line), table.md and summary.csv (the full-scale study). `--dry-run` runs every step on CPU at tiny
sizes (the test suite does), so the script is proven before GPU time is spent. With every cap reached the batch
takes 7.5 minutes; the steps usually end well before their caps.
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

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ("efficientnetv2_s", "efficientnet_b0")
PRECISIONS = (("fp32 NCHW", ["--amp", "off", "--channels-last", "off"]), ("AMP bf16", ["--amp", "bf16", "--channels-last", "off"]),
              ("AMP bf16 + channels_last", ["--amp", "bf16", "--channels-last", "on"]))
COMPILED = ("AMP bf16 + channels_last + compile", ["--amp", "bf16", "--channels-last", "on", "--compile"])


def steps(dry: bool, out: Path) -> list[tuple[str, int, list[str], str | None]]:
    """(name, cap seconds, argv, figure kind or None): the figure kind's step prints JSON."""
    py, wb = sys.executable, [sys.executable, "-m", "workbench.cli.main"]
    sizes = (["--resolution", "32", "--batch", "4", "--rounds", "1", "--min-time", "0.05", "--warmup", "1",
              "--set", "scale.width_mult=0.25", "--set", "scale.depth_mult=0.25"] if dry else
             ["--resolution", "224", "--batch", "64", "--rounds", "3", "--min-time", "0.5", "--warmup", "2"])
    bench = [(f"bench {arch} {label}", 60, [*wb, "bench", f"architectures/{arch}.json", *sizes, *flags, "--torchvision", "--timm", "--json"], "bench")
             for arch in ARCHS for label, flags in PRECISIONS]
    # On CPU, torch.compile's inductor takes minutes for the two models; the dry run traces them with aot_eager.
    backend = ["--compile-backend", "aot_eager"] if dry else []
    bench.append((f"bench efficientnetv2_s {COMPILED[0]}", 150,
                  [*wb, "bench", "architectures/efficientnetv2_s.json", *sizes, *COMPILED[1], *backend, "--torchvision", "--json"], "bench"))
    data = ROOT / ".gpu-data/hymenoptera"
    data = data if data.is_dir() else ROOT.parent / "shared/datasets/hymenoptera"
    loop = (["--cases", "proxy", "--repetitions", "1", "--device", "cpu"] if dry else
            ["--cases", "hymenoptera", "--hymenoptera", str(data), "--size", "224", "--repetitions", "3", "--device", "cuda", "--threads", "4"])
    progressive = (["--min-size", "16", "--max-size", "24", "--width", "0.25", "--depth", "0.25", "--epochs", "4", "--max-train-images", "64",
                    "--max-val-images", "32", "--device", "cpu"] if dry else
                   ["--min-size", "128", "--max-size", "300", "--width", "1", "--depth", "1", "--epochs", "8", "--batch", "64",
                    "--max-train-images", "2048", "--max-val-images", "256", "--device", "cuda"])
    study = (["--set", "scale.width_mult=0.25", "--set", "scale.depth_mult=0.25", "--set", "scale.resolution=16", "--set", "recipe.epochs=1",
              "--set", "dataset.max_train_images=64", "--set", "dataset.max_val_images=32", "--set", "resources.cpus=1", "--allow-cpu"] if dry else
             ["--set", "scale.width_mult=1", "--set", "scale.depth_mult=1", "--set", "scale.resolution=224", "--set", "recipe.epochs=30",
              "--set", "recipe.batch_size=32", "--set", "resources.gpus=0.25", "--set", "resources.cpus=3"])
    return [
        ("cuda tests", 150, [py, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py", "-p", "no:cacheprovider"], None),
        *bench,
        ("training loop efficiency", 90, [py, "bench/bench_loop.py", *loop, "--json"], "loop"),
        ("progressive 128 -> 300 px against fixed 300 px", 120, [py, "bench/bench_progressive.py", *progressive, "--json"], "progressive"),
        ("4 trials at 0.25 GPU against 1 at 1 GPU", 150, [py, "bench/gpu/fractional.py", *(["--dry-run"] if dry else [])], "fractional"),
        ("full-scale fused_vs_mb on hymenoptera", 180, [*wb, "study", "run", "studies/fused_vs_mb.json", "--set", "dataset.name=imagefolder",
                                                        "--set", f"dataset.path={data}", "--set", "seeds=[0]", *study, "--out", str(out / "study"), "--no-live"], None),
        ("study table", 60, [*wb, "results", "compare", str(out / "study"), "--format", "markdown", "-o", str(out / "table.md"),
                             "--note", f"bench/gpu/run.sh{' --dry-run, on CPU' if dry else ''}"], None),
    ]


def device_line() -> dict:
    import platform

    import torch

    driver = "n/a"
    if torch.cuda.is_available():
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True)
        driver = done.stdout.strip() or "n/a"
    return {"figure": "device", "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device (CPU)",
            "driver": driver, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def run_step(name: str, cap: int, argv: list[str], figure: str | None, out: Path) -> tuple[int, list[dict]]:
    started = time.perf_counter()
    with open(out / "logs.txt", "a") as log:
        log.write(f"\n== {name} (cap {cap} s): {' '.join(argv)}\n")
        log.flush()
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=cap)
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            code, stdout, stderr = 124, _text(exc.stdout), _text(exc.stderr) + f"\nstopped at its cap of {cap} s"
        log.write(stdout + stderr)
    seconds = time.perf_counter() - started
    with open(out / "steps.txt", "a") as fh:
        fh.write(f"{name}: rc={code} {seconds:.0f} s\n")
    print(f"{name}: rc={code} {seconds:.0f} s", flush=True)
    return code, _figures(stdout, figure, name) if code == 0 and figure else []


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def _figures(stdout: str, kind: str, name: str) -> list[dict]:
    """The JSON a step printed (its last JSON value), labelled with the step."""
    decoder = json.JSONDecoder()
    text = stdout.strip()
    for start in range(len(text)):
        if text[start] in "[{":
            try:
                value, end = decoder.raw_decode(text[start:])
            except json.JSONDecodeError:
                continue
            if not text[start + end:].strip():
                return [{"figure": kind, "step": name, "data": value}]
    return []


def summary(figures: list[dict]) -> str:
    device = next((f for f in figures if f["figure"] == "device"), {})
    lines = ["# GPU batch figures", "", f"Device: {device.get('gpu')}, driver {device.get('driver')}, torch {device.get('torch')} "
             f"(CUDA {device.get('cuda')}), Python {device.get('python')}, {device.get('cpus')} CPUs, {device.get('date')}", ""]
    lines += ["## workbench bench (median step time; images/s; ratio to workbench, paired by round)", "",
              "| configuration | model | eval img/s | eval ratio | train img/s | train ratio |", "|:---|:---|---:|---:|---:|---:|"]
    for f in (f for f in figures if f["figure"] == "bench"):
        for row in f["data"]:
            lines.append(f"| {f['step'].removeprefix('bench ')} | {row['model']} | {row['eval_images_per_s']:,.0f} | {row['eval_ratio']:.3f} | "
                         f"{row['train_images_per_s']:,.0f} | {row['train_ratio']:.3f} |")
    for kind, title in (("loop", "training loop efficiency"), ("progressive", "progressive learning"), ("fractional", "fractional GPUs")):
        for f in (f for f in figures if f["figure"] == kind):
            lines += ["", f"## {title}", "", "```", json.dumps(f["data"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every step on CPU at tiny sizes")
    args = parser.parse_args()
    out = Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu_batch_"))
    out.mkdir(parents=True, exist_ok=True)
    for name in ("logs.txt", "steps.txt"):
        (out / name).write_text("")
    figures, failed = [device_line()], []
    for name, cap, argv, kind in steps(args.dry_run, out):
        code, found = run_step(name, cap, argv, kind, out)
        figures += found
        if code != 0:
            failed.append(name)
    study = out / "study"
    if (study / "summary.csv").exists():
        (out / "summary.csv").write_text((study / "summary.csv").read_text())
    subprocess.run(["rm", "-rf", str(study)])
    (out / "figures.jsonl").write_text("".join(json.dumps(f) + "\n" for f in figures))
    (out / "summary.md").write_text(summary(figures))
    print(f"figures: {out / 'summary.md'}" + (f"; failed steps: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
