"""Builders of realistic trial and study folders for the results tests (no torch, no training).

The files follow docs/design.md: trial.json, config.json, metrics.jsonl, status.json, val_predictions.csv.
`make_study` builds a study with three variants x two learning rates x three seeds, plus the damaged trials a real
run leaves behind: one diverged, one killed mid-epoch (status still `running`, last metrics line cut in half), one
that never wrote status.json. Every number is drawn from a seeded generator, so the tests recompute the expected
tables from the files with numpy / scipy, independently of workbench.results.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ["ant", "bee", "cat", "dog"]
N_VAL = 40
DATASET = {"name": "synthetic_fixture", "root": "unused", "val_fraction": 0.2}
VARIANTS = {  # variant -> (quality, params, flops, train images/s)
    "v2s_fused": (0.80, 5_290_000, 390_000_000, 210.0),
    "v2s_mbconv": (0.76, 4_870_000, 350_000_000, 240.0),
    "v2s_shallow": (0.70, 2_100_000, 160_000_000, 420.0),
}
LRS = (0.01, 0.05)
SEEDS = (0, 1, 2)
EPOCHS = 6


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_trial(
    folder: Path, *, variant: str, seed: int | None, val_top1: list[float], params: int = 1_000_000,
    flops: int = 100_000_000, images_per_s: float = 300.0, epoch_seconds: float = 10.0,
    hparams: dict[str, Any] | None = None, study: str | None = None, trial_id: str | None = None,
    status: str | None = "completed", reason: str | None = None, truncate_last: bool = False,
    with_trial_json: bool = True, predictions: tuple[list[int], list[int]] | None = None,
    image_sizes: list[int] | None = None, val_loss: list[float] | None = None,
) -> Path:
    """One trial folder. `status=None` writes no status.json; `truncate_last` cuts the last metrics line."""
    folder.mkdir(parents=True, exist_ok=True)
    trial_id = trial_id or folder.name
    hparams = dict(hparams or {})
    arch = {"name": variant, "width_mult": 1.0, "depth_mult": 1.0, "in_channels": 3, "dropout": 0.2,
            "resolution": {"train": 32, "eval": 32}, "stages": []}
    config = {
        "architecture": arch, "scale": {"width_mult": 0.5, "depth_mult": 0.5, "resolution": 32},
        "recipe": {"epochs": len(val_top1), "batch_size": 64, "seed": seed,
                   "optimizer": {"name": "rmsprop", "lr": hparams.get("recipe.optimizer.lr", 0.016),
                                 "weight_decay": 1e-5}, "schedule": {"name": "cosine", "warmup_epochs": 1}},
        "dataset": DATASET, "num_classes": len(CLASSES), "classes": CLASSES, "params": params, "flops": flops,
    }
    if study is not None:
        config["trial"] = {"study": study, "trial_id": trial_id, "variant": variant, "seed": seed, "hparams": hparams}
    _write_json(folder / "config.json", config)
    if with_trial_json:
        _write_json(folder / "trial.json", {"trial_id": trial_id, "variant": variant, "seed": seed,
                                           "hparams": hparams, "architecture": f"architectures/{variant}.json"})
    sizes = image_sizes or [24 if e < len(val_top1) // 2 else 32 for e in range(len(val_top1))]
    lines = []
    elapsed = 0.0
    for e, acc in enumerate(val_top1):
        elapsed += epoch_seconds * (sizes[e] / 32) ** 2
        loss = val_loss[e] if val_loss is not None else -math.log(max(acc, 1e-3))
        row = {"epoch": e + 1, "stage": 1 if sizes[e] == sizes[0] else 2, "image_size": sizes[e],
               "dropout": 0.1 if e < len(val_top1) // 2 else 0.2, "stochastic_depth": 0.0, "randaugment": 0,
               "mixup": 0.0, "lr": 0.01 * (1 - e / len(val_top1)), "train_loss": None if not math.isfinite(loss) else loss * 0.9,
               "train_top1": min(1.0, acc + 0.05), "val_loss": loss if math.isfinite(loss) else None, "val_top1": acc,
               "val_top5": min(1.0, acc + 0.15), "epoch_seconds": epoch_seconds, "train_images_per_s": images_per_s,
               "elapsed_seconds": round(elapsed, 3)}
        lines.append(json.dumps(row))
    text = "\n".join(lines) + "\n"
    if truncate_last:
        text = text[: len(text) - len(lines[-1]) // 2 - 1]  # cut the last line in half, no newline
    (folder / "metrics.jsonl").write_text(text, encoding="utf-8")
    if status is not None:
        written = val_top1[:-1] if truncate_last else val_top1
        best = max(written) if written else None
        _write_json(folder / "status.json", {
            "status": status, "reason": reason, "epochs_run": len(written), "best_val_top1": best,
            "best_epoch": written.index(best) + 1 if written else None, "final_val_top1": written[-1] if written else None,
            "seconds": round(elapsed, 3), "train_images_per_s": images_per_s, "params": params, "flops": flops,
        })
    if predictions is not None:
        labels, preds = predictions
        with (folder / "val_predictions.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "label", "pred", "confidence", "correct"])
            for i, (label, pred) in enumerate(zip(labels, preds)):
                writer.writerow([i, label, pred, f"{0.5 + 0.4 * ((i * 7) % 10) / 10:.3f}", int(label == pred)])
    return folder


def labels() -> list[int]:
    return [i % len(CLASSES) for i in range(N_VAL)]


def _predictions(rng: np.random.Generator, quality: float) -> list[int]:
    """Examples 0-3 wrong almost always; the rest wrong with probability falling with `quality`."""
    y = labels()
    out = []
    for i, label in enumerate(y):
        p_wrong = 0.95 if i < 4 else (1 - quality) * (1.5 if i < 12 else 0.5)
        out.append((label + 1 + int(rng.integers(0, 2))) % len(CLASSES) if rng.random() < p_wrong else label)
    return out


def curve(rng: np.random.Generator, quality: float, epochs: int = EPOCHS) -> list[float]:
    ramp = [quality * (1 - 0.6 * math.exp(-1.2 * e)) for e in range(epochs)]
    return [round(float(np.clip(v + rng.normal(0, 0.01), 0, 1)), 4) for v in ramp]


def make_study(root: Path, name: str = "fused_vs_mb", broken: bool = True, summary: bool = True) -> Path:
    """The standard fixture study; returns its folder."""
    study_dir = root / name
    trials_dir = study_dir / "trials"
    trials_dir.mkdir(parents=True)
    _write_json(study_dir / "study.json", {
        "name": name, "baseline": "v2s_fused", "seeds": list(SEEDS), "machine": "fixture machine (2 CPU cores)",
        "variants": [{"name": v, "architecture": f"architectures/{v}.json"} for v in VARIANTS],
    })
    rng = np.random.default_rng(1234)
    rows = []
    for variant, (quality, params, flops, ips) in VARIANTS.items():
        for lr in LRS:
            for seed in SEEDS:
                q = quality - (0.03 if lr == 0.05 else 0.0)
                trial_id = f"{variant}-lr{lr}-s{seed}"
                write_trial(trials_dir / trial_id, variant=variant, seed=seed, val_top1=curve(rng, q),
                            params=params, flops=flops, images_per_s=ips * (1 + rng.normal(0, 0.02)),
                            epoch_seconds=1000.0 / ips, hparams={"recipe.optimizer.lr": lr}, study=name,
                            predictions=(labels(), _predictions(rng, q)))
                rows.append(trial_id)
    if broken:
        # diverged: accuracy collapses and the loss becomes NaN at epoch 4
        acc = curve(rng, 0.76)[:3] + [0.25, 0.25]
        write_trial(trials_dir / "v2s_mbconv-lr0.05-s3", variant="v2s_mbconv", seed=3, val_top1=acc,
                    val_loss=[1.0, 0.8, 0.7, float("nan"), float("nan")], hparams={"recipe.optimizer.lr": 0.05},
                    study=name, status="diverged", reason="loss is NaN at epoch 4", params=4_870_000, flops=350_000_000)
        # killed mid-epoch: status still running, the last metrics line half-written
        write_trial(trials_dir / "v2s_shallow-lr0.01-s3", variant="v2s_shallow", seed=3, val_top1=curve(rng, 0.9, 4),
                    hparams={"recipe.optimizer.lr": 0.01}, study=name, status="running", truncate_last=True,
                    params=2_100_000, flops=160_000_000)
        # no status.json at all
        write_trial(trials_dir / "v2s_fused-lr0.01-s3", variant="v2s_fused", seed=3, val_top1=curve(rng, 0.99, 2),
                    hparams={"recipe.optimizer.lr": 0.01}, study=name, status=None, params=5_290_000, flops=390_000_000)
    if summary:
        # a stale summary.csv written before the last trials: it must not be trusted for the table
        with (study_dir / "summary.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["study", "trial_id", "variant", "seed", "hp.recipe.optimizer.lr", "best_val_top1", "status"])
            for trial_id in rows[:4]:
                writer.writerow([name, trial_id, trial_id.split("-")[0], 0, 0.01, 0.5, "completed"])
    return study_dir


def read_expected(study_dir: Path) -> dict[str, dict[str, list[float]]]:
    """variant -> {"best": [...], "final": [...]} over finished trials, read with plain json (no workbench code)."""
    out: dict[str, dict[str, list[float]]] = {}
    for folder in sorted((study_dir / "trials").iterdir()):
        status_path = folder / "status.json"
        if not status_path.exists():
            continue
        status = json.loads(status_path.read_text())
        if status["status"] not in ("completed", "early_stopped"):
            continue
        variant = json.loads((folder / "trial.json").read_text())["variant"]
        entry = out.setdefault(variant, {"best": [], "final": []})
        entry["best"].append(status["best_val_top1"])
        entry["final"].append(status["final_val_top1"])
    return out
