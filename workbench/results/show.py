"""`workbench results show TRIAL_DIR`: one trial's config, per-epoch curve and final figures, for the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.results import reader
from workbench.results.reader import TrialRecord

SPARKS = "▁▂▃▄▅▆▇█"
EPOCH_COLUMNS = (  # (key, header, kind)
    ("epoch", "epoch", "int"), ("stage", "stage", "int"), ("image_size", "size", "int"),
    ("dropout", "dropout", "float2"), ("stochastic_depth", "sd", "float2"), ("randaugment", "ra", "num"),
    ("mixup", "mixup", "float2"), ("lr", "lr", "sci"), ("train_loss", "train loss", "float4"),
    ("train_top1", "train top-1 %", "pct"), ("val_loss", "val loss", "float4"), ("val_top1", "val top-1 %", "pct"),
    ("val_top5", "val top-5 %", "pct"), ("epoch_seconds", "epoch s", "float1"),
    ("train_images_per_s", "img/s", "float0"), ("elapsed_seconds", "elapsed", "duration"),
)


def sparkline(values: list[float]) -> str:
    """▁▂▄▆█ from low to high; a flat series is a flat line."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[3] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) / (high - low) * (len(SPARKS) - 1) + 0.5))] for v in values)


def _fmt(value: Any, kind: str) -> str:
    number = reader._number(value)
    if number is None:
        return "—" if value is None or isinstance(value, float) else str(value)
    if kind == "int":
        return str(int(number))
    if kind == "pct":
        return f"{number * 100:.2f}"
    if kind == "sci":
        return f"{number:.3g}"
    if kind == "duration":
        from workbench.results.compare import _duration

        return _duration(number)
    if kind == "num":
        return f"{number:g}"
    decimals = int(kind[-1])
    return f"{number:.{decimals}f}"


def _scalar_lines(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    """Flatten a config section into (dotted key, compact value) pairs; long lists become a count."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _scalar_lines(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list):
        text = json.dumps(value, separators=(",", ":"))
        if len(text) <= 60:
            out.append((prefix, text))
        else:
            kind = "stages" if prefix.endswith("stages") else "items"
            out.append((prefix, f"{len(value)} {kind}"))
    else:
        out.append((prefix, "null" if value is None else str(value)))


def _architecture_lines(arch: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [("name", str(arch.get("name", "?")))]
    stages = arch.get("stages") if isinstance(arch.get("stages"), list) else []
    if stages:
        blocks = []
        for s in stages:
            if isinstance(s, dict):
                blocks.append(f"{'F' if s.get('block') == 'fused_mbconv' else 'MB'}{s.get('expand', '?'):g}"
                              f" k{s.get('kernel', '?')} ×{s.get('layers', '?')}" if isinstance(s.get("expand"), (int, float))
                              else str(s.get("block")))
        lines.append(("stages", f"{len(stages)}: " + ", ".join(blocks)))
    for key in ("width_mult", "depth_mult", "in_channels", "dropout", "activation"):
        if key in arch:
            lines.append((key, str(arch[key])))
    if isinstance(arch.get("resolution"), dict):
        r = arch["resolution"]
        lines.append(("resolution", f"train {r.get('train')}, eval {r.get('eval') or r.get('train')}"))
    if isinstance(arch.get("stochastic_depth"), dict):
        sd = arch["stochastic_depth"]
        lines.append(("stochastic_depth", f"{sd.get('rate')} ({sd.get('schedule', 'linear')})"))
    return lines


def load_trial(path: str | Path) -> TrialRecord:
    path = Path(path)
    if not path.exists() and path.parent.name == "trials" and reader.is_study_dir(path.parent.parent):
        reader.require_trial_folders([reader.read_study(path.parent.parent)], f"`results show {path}`")
    if not path.is_dir():
        raise WorkbenchError(f"{path}: no such folder" if not path.exists() else f"{path}: is a file, expected a trial folder")
    if reader.is_study_dir(path) and not reader.is_trial_dir(path):
        trials = sorted(p.name for p in (path / "trials").iterdir() if p.is_dir()) if (path / "trials").is_dir() else []
        hint = f", e.g. {path / 'trials' / trials[0]}" if trials else ""
        raise WorkbenchError([f"{path}: is a study folder; `results show` reads one trial folder{hint}",
                              "  (use `workbench results compare` for the whole study)"])
    if not reader.is_trial_dir(path):
        raise WorkbenchError([f"{path}: not a trial folder (no metrics.jsonl, status.json, config.json or trial.json)",
                              "  a trial folder is what `workbench train --out DIR` writes, or results/<study>/trials/<id>"])
    study = path.parent.parent.name if path.parent.name == "trials" else None
    return reader.read_trial(path, study=study)


KEY_FIELDS = (  # config fields `show` prints without --full-config (scale and architecture are always shown)
    "dataset.name", "dataset.path", "dataset.root", "dataset.max_train_images", "dataset.max_val_images",
    "recipe.epochs", "recipe.batch_size", "recipe.seed", "recipe.optimizer.name", "recipe.optimizer.lr",
    "recipe.optimizer.weight_decay", "recipe.optimizer.momentum", "recipe.schedule.name",
    "recipe.schedule.warmup_epochs", "recipe.label_smoothing", "recipe.ema_decay", "recipe.early_stopping",
    "recipe.augment.randaugment", "recipe.augment.mixup", "recipe.augment.cutmix", "recipe.progressive.enabled",
    "recipe.progressive.stages", "recipe.progressive.image_size", "recipe.progressive.dropout",
    "recipe.progressive.randaugment", "recipe.init", "recipe.freeze",
)


def _key_field(key: str, value: str) -> bool:
    if key.startswith("scale."):
        return True
    if key.startswith("recipe.progressive.") and key != "recipe.progressive.enabled":
        return False  # the resolved plan is shown stage by stage instead
    return (key in KEY_FIELDS or any(key.startswith(k + ".") for k in KEY_FIELDS)) and value not in ("null", "None")


def _stage_text(st: dict[str, Any]) -> str:
    parts = [f"epochs {st.get('first_epoch')}–{st.get('last_epoch')}"]
    if st.get("image_size") is not None:
        parts.append(f"{st['image_size']} px")
    for key, name in (("dropout", "dropout"), ("stochastic_depth", "sd"), ("randaugment", "RA"), ("mixup", "mixup")):
        value = st.get(key)
        if value is not None:
            parts.append(f"{name} {value:.3g}" if isinstance(value, (int, float)) else f"{name} {value}")
    return ", ".join(parts)


def render(trial: TrialRecord, max_epochs: int = 40, metric: str = "val_top1", full: bool = False):
    """A rich renderable: config summary, per-epoch table with a sparkline, final figures and status."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    config = trial.config
    parts: list[Any] = []

    # --- identity and config -------------------------------------------------------------------------
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold cyan", no_wrap=True)
    info.add_column()
    info.add_row("trial", f"{trial.trial_id}  ({trial.path})")
    if trial.study != reader.LOOSE_STUDY:
        info.add_row("study", trial.study)
    info.add_row("variant", trial.variant + (f"   seed {trial.seed}" if trial.seed is not None else ""))
    for key, value in trial.hparams.items():
        info.add_row(f"hp.{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value))
    if isinstance(config.get("architecture"), dict):
        for key, value in _architecture_lines(config["architecture"]):
            info.add_row(f"architecture.{key}", value)
    hidden = 0
    for section in ("scale", "dataset", "recipe"):
        if isinstance(config.get(section), dict):
            lines: list[tuple[str, str]] = []
            _scalar_lines(section, config[section], lines)
            for key, value in lines:
                if full or _key_field(key, value):
                    info.add_row(key, value)
                else:
                    hidden += 1
    if isinstance(config.get("stages"), list) and config["stages"]:
        for st in config["stages"]:
            if isinstance(st, dict):
                info.add_row(f"stage {st.get('stage', '?')}", _stage_text(st))
    if hidden:
        info.add_row("", Text(f"… {hidden} more config fields (--full-config shows them)", style="dim"))
    if config.get("classes"):
        classes = [str(c) for c in config["classes"]]
        text = ", ".join(classes[:12]) + (f", … ({len(classes)} in all)" if len(classes) > 12 else "")
        info.add_row("classes", text)
    if not config:
        info.add_row("config", "no config.json")
    parts.append(Panel(info, title="configuration", title_align="left"))

    # --- per-epoch curve -----------------------------------------------------------------------------
    rows = trial.metrics
    if rows:
        present = [c for c in EPOCH_COLUMNS if any(c[0] in r for r in rows)]
        table = Table(title=f"per epoch ({len(rows)} recorded)", header_style="bold", show_edge=False, pad_edge=False)
        for _, header, _ in present:
            table.add_column(header, justify="right")
        best_value = trial.best(metric)
        best_epoch = (trial.status or {}).get("best_epoch") if trial.state != "incomplete" else None
        if best_epoch is None and best_value is not None:
            best_epoch = next((r.get("epoch") for r in rows if reader._number(r.get(metric)) == best_value), None)
        indices = list(range(len(rows)))
        if len(rows) > max_epochs:
            head = max_epochs // 4
            indices = list(range(head)) + [-1] + list(range(len(rows) - (max_epochs - head), len(rows)))
        for i in indices:
            if i == -1:
                table.add_row(*(["…"] * len(present)))
                continue
            r = rows[i]
            cells = [_fmt(r.get(key), kind) for key, _, kind in present]
            style = "bold green" if best_epoch is not None and r.get("epoch") == best_epoch else None
            table.add_row(*cells, style=style)
        parts.append(table)
        curve = [v for _, v in trial.curve(metric)]
        if curve:
            k = 100 if reader.is_fraction_metric(metric) else 1
            unit = "%" if k == 100 else ""
            parts.append(Text(f"{metric}  {sparkline(curve)}  {min(curve) * k:.2f}{unit} → {curve[-1] * k:.2f}{unit} "
                              f"(best {max(curve) * k if not reader.lower_is_better(metric) else min(curve) * k:.2f}{unit}"
                              + (f" at epoch {best_epoch}" if best_epoch is not None else "") + ")"))
    else:
        parts.append(Text("no epoch recorded in metrics.jsonl yet", style="yellow"))

    # --- final figures -------------------------------------------------------------------------------
    final = Table.grid(padding=(0, 2))
    final.add_column(style="bold cyan", no_wrap=True)
    final.add_column()
    state_style = {"completed": "green", "early_stopped": "green", "diverged": "red", "failed": "red"}.get(trial.state, "yellow")
    final.add_row("status", Text(trial.state, style=f"bold {state_style}"))
    if trial.reason:
        final.add_row("reason", trial.reason)
    final.add_row("epochs run", str(trial.epochs_run))
    best = trial.best(metric)
    fin = trial.final(metric)
    k = 100 if reader.is_fraction_metric(metric) else 1
    unit = " %" if k == 100 else ""
    if best is not None:
        epoch = (trial.status or {}).get("best_epoch")
        final.add_row(f"best {metric}", f"{best * k:.2f}{unit}" + (f" (epoch {epoch})" if epoch and trial.state != "incomplete" else ""))
    if fin is not None:
        final.add_row(f"final {metric}", f"{fin * k:.2f}{unit}")
    from workbench.results.compare import _duration, _rate, _sig, flops_unit

    if trial.seconds is not None:
        final.add_row("training time", _duration(trial.seconds))
    if trial.images_per_s is not None:
        final.add_row("train images/s", _rate(trial.images_per_s))
    device = (trial.status or {}).get("device")
    if isinstance(device, str) and device:
        final.add_row("device", device)
    if trial.params is not None:
        final.add_row("params", f"{_sig(trial.params / 1e6)} M ({int(trial.params):,})")
    if trial.flops is not None:
        divisor, unit = flops_unit([trial.flops])
        final.add_row(unit, _sig(trial.flops / divisor))
    files = []
    for pattern, name in (("val_predictions.csv", "val predictions"), ("checkpoint_best.pt", "best checkpoint"),
                          ("checkpoint_last.pt", "last checkpoint"), ("events.out.tfevents*", "TensorBoard events")):
        if any(trial.path.glob(pattern)):
            files.append(name)
    final.add_row("files", ", ".join(files) if files else "—")
    for problem in trial.problems:
        final.add_row("problem", Text(problem, style="yellow"))
    parts.append(Panel(final, title="result", title_align="left"))
    return Group(*parts)
