"""`workbench results show TRIAL_DIR`: one trial's config, per-epoch curve and final figures, for the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results import format as fmt
from workbench.results import metrics
from workbench.results.metrics import flops_unit
from workbench.results.reader import is_study_dir, is_trial_dir, read_study, read_trial, require_trial_folders
from workbench.results.records import LOOSE_STUDY, TrialRecord, number

SPARKS = "▁▂▃▄▅▆▇█"
EPOCH_METRICS = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5")  # columns in this order


def _metric_column(key: str) -> tuple[str, str, str]:
    info = metrics.info(key)
    return key, f"{info.label} {info.unit}".strip(), "metric"


EPOCH_COLUMNS = (  # (key, header, kind)
    ("epoch", "epoch", "int"), ("stage", "stage", "int"), ("image_size", "size", "int"),
    ("dropout", "dropout", "float2"), ("stochastic_depth", "sd", "float2"), ("randaugment", "ra", "num"),
    ("mixup", "mixup", "float2"), ("lr", "lr", "sci"), *(_metric_column(key) for key in EPOCH_METRICS),
    ("epoch_seconds", "epoch s", "float1"), ("train_images_per_s", "img/s", "float0"),
    ("elapsed_seconds", "elapsed", "duration"),
)
STATE_STYLES = {trialdir.COMPLETED: "green", trialdir.EARLY_STOPPED: "green", trialdir.DIVERGED: "red",
                trialdir.FAILED: "red"}  # others (incomplete, pruned) yellow
FILES = ((trialdir.PREDICTIONS, "val predictions"), (trialdir.BEST, "best checkpoint"),
         (trialdir.LAST, "last checkpoint"), (trialdir.EVENTS_GLOB, "TensorBoard events"))


def sparkline(values: list[float]) -> str:
    """▁▂▄▆█ from low to high; a flat series is a flat line."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[3] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) / (high - low) * (len(SPARKS) - 1) + 0.5))] for v in values)


def _fmt(value: Any, kind: str, key: str) -> str:
    value_number = number(value)
    if value_number is None:
        return fmt.NONE if value is None or isinstance(value, float) else str(value)
    if kind == "int":
        return str(int(value_number))
    if kind == "metric":
        info = metrics.info(key)
        return f"{value_number * info.scale:.{info.decimals}f}"
    if kind == "sci":
        return f"{value_number:.3g}"
    if kind == "duration":
        return fmt.duration(value_number)
    if kind == "num":
        return f"{value_number:g}"
    decimals = int(kind[-1])
    return f"{value_number:.{decimals}f}"


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
    in_study = path.parent.name == trialdir.TRIALS
    if not path.exists() and in_study and is_study_dir(path.parent.parent):
        require_trial_folders([read_study(path.parent.parent)], f"`results show {path}`")
    if not path.is_dir():
        raise WorkbenchError(f"{path}: no such folder" if not path.exists() else f"{path}: is a file, expected a trial folder")
    if is_study_dir(path) and not is_trial_dir(path):
        folder = path / trialdir.TRIALS
        trials = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        hint = f", e.g. {folder / trials[0]}" if trials else ""
        raise WorkbenchError([f"{path}: is a study folder; `results show` reads one trial folder{hint}",
                              "  (use `workbench results compare` for the whole study)"])
    if not is_trial_dir(path):
        markers = ", ".join(trialdir.TRIAL_MARKERS[:-1]) + f" or {trialdir.TRIAL_MARKERS[-1]}"
        raise WorkbenchError([f"{path}: not a trial folder (no {markers})",
                              "  a trial folder is what `workbench train --out DIR` writes, or "
                              f"results/<study>/{trialdir.TRIALS}/<id>"])
    return read_trial(path, study=path.parent.parent.name if in_study else None)


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



def _key_value_grid():
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    return grid


def _config_rows(info, config: dict[str, Any], full: bool) -> int:
    """The scale, dataset and recipe fields (the key ones unless `full`); returns how many were left out."""
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
    return hidden


def _config_panel(trial: TrialRecord, full: bool):
    """Identity, hyper-parameters, architecture and the key config fields."""
    from rich.panel import Panel
    from rich.text import Text

    config = trial.config
    info = _key_value_grid()
    info.add_row("trial", f"{trial.trial_id}  ({trial.path})")
    if trial.study != LOOSE_STUDY:
        info.add_row("study", trial.study)
    info.add_row("variant", trial.variant + (f"   seed {trial.seed}" if trial.seed is not None else ""))
    for key, value in trial.hparams.items():
        info.add_row(f"hp.{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value))
    if isinstance(config.get("architecture"), dict):
        for key, value in _architecture_lines(config["architecture"]):
            info.add_row(f"architecture.{key}", value)
    hidden = _config_rows(info, config, full)
    for st in config.get("stages") if isinstance(config.get("stages"), list) else []:
        if isinstance(st, dict):
            info.add_row(f"stage {st.get('stage', '?')}", _stage_text(st))
    if hidden:
        info.add_row("", Text(f"… {hidden} more config fields (--full-config shows them)", style="dim"))
    if config.get("classes"):
        classes = [str(c) for c in config["classes"]]
        info.add_row("classes", ", ".join(classes[:12]) + (f", … ({len(classes)} in all)" if len(classes) > 12 else ""))
    if not config:
        info.add_row("config", f"no {trialdir.CONFIG}")
    return Panel(info, title="configuration", title_align="left")


def _best_epoch(trial: TrialRecord, metric: str):
    """The epoch status.json names as the best, else the first epoch that recorded the best value."""
    best_epoch = (trial.status or {}).get("best_epoch") if not trial.incomplete else None
    best_value = trial.best(metric)
    if best_epoch is None and best_value is not None:
        best_epoch = next((r.get("epoch") for r in trial.metrics if number(r.get(metric)) == best_value), None)
    return best_epoch


def _epoch_table(trial: TrialRecord, metric: str, max_epochs: int, best_epoch):
    """One row per epoch (the first quarter and the last ones beyond `max_epochs`), the best in bold green."""
    from rich.table import Table

    rows = trial.metrics
    present = [c for c in EPOCH_COLUMNS if any(c[0] in r for r in rows)]
    table = Table(title=f"per epoch ({len(rows)} recorded)", header_style="bold", show_edge=False, pad_edge=False)
    for _, header, _ in present:
        table.add_column(header, justify="right")
    indices = list(range(len(rows)))
    if len(rows) > max_epochs:
        head = max_epochs // 4
        indices = list(range(head)) + [-1] + list(range(len(rows) - (max_epochs - head), len(rows)))
    for i in indices:
        if i == -1:
            table.add_row(*(["…"] * len(present)))
            continue
        r = rows[i]
        style = "bold green" if best_epoch is not None and r.get("epoch") == best_epoch else None
        table.add_row(*[_fmt(r.get(key), kind, key) for key, _, kind in present], style=style)
    return table


def _curve_line(trial: TrialRecord, metric: str, best_epoch):
    """'val_top1  ▁▃▆█  31.00% → 74.00% (best 75.00% at epoch 3)'."""
    from rich.text import Text

    curve = [v for _, v in trial.curve(metric)]
    if not curve:
        return None
    info = metrics.info(metric)
    k, unit = info.scale, info.unit
    best = min(curve) if info.lower_is_better else max(curve)
    return Text(f"{metric}  {sparkline(curve)}  {min(curve) * k:.2f}{unit} → {curve[-1] * k:.2f}{unit} "
                f"(best {best * k:.2f}{unit}" + (f" at epoch {best_epoch}" if best_epoch is not None else "") + ")")


def _figure_rows(final, trial: TrialRecord, metric: str) -> None:
    """Best and final metric, time, throughput, device, parameters and FLOPs."""
    info = metrics.info(metric)
    unit = f" {info.unit}" if info.unit else ""
    best, last = trial.best(metric), trial.final(metric)
    if best is not None:
        epoch = (trial.status or {}).get("best_epoch")
        final.add_row(f"best {metric}", f"{best * info.scale:.2f}{unit}"
                      + (f" (epoch {epoch})" if epoch and not trial.incomplete else ""))
    if last is not None:
        final.add_row(f"final {metric}", f"{last * info.scale:.2f}{unit}")
    if trial.seconds is not None:
        final.add_row("training time", fmt.duration(trial.seconds))
    if trial.images_per_s is not None:
        final.add_row("train images/s", fmt.rate(trial.images_per_s))
    device = (trial.status or {}).get("device")
    if isinstance(device, str) and device:
        final.add_row("device", device)
    if trial.params is not None:
        final.add_row("params", f"{fmt.sig(trial.params / 1e6)} M ({int(trial.params):,})")
    if trial.flops is not None:
        divisor, flops_name = flops_unit([trial.flops])
        final.add_row(flops_name, fmt.sig(trial.flops / divisor))


def _result_panel(trial: TrialRecord, metric: str):
    """Status and reason, epochs, the final figures, the files the folder holds, and any damage found."""
    from rich.panel import Panel
    from rich.text import Text

    final = _key_value_grid()
    final.add_row("status", Text(trial.state, style=f"bold {STATE_STYLES.get(trial.state, 'yellow')}"))
    if trial.reason:
        final.add_row("reason", trial.reason)
    final.add_row("epochs run", str(trial.epochs_run))
    _figure_rows(final, trial, metric)
    files = [name for pattern, name in FILES if any(trial.path.glob(pattern))]
    final.add_row("files", ", ".join(files) if files else fmt.NONE)
    for problem in trial.problems:
        final.add_row("problem", Text(problem, style="yellow"))
    return Panel(final, title="result", title_align="left")


def render(trial: TrialRecord, max_epochs: int = 40, metric: str = "val_top1", full: bool = False):
    """A rich renderable: config summary, per-epoch table with a sparkline, final figures and status."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [_config_panel(trial, full)]
    if trial.metrics:
        best_epoch = _best_epoch(trial, metric)
        parts.append(_epoch_table(trial, metric, max_epochs, best_epoch))
        curve = _curve_line(trial, metric, best_epoch)
        if curve is not None:
            parts.append(curve)
    else:
        parts.append(Text(f"no epoch recorded in {trialdir.METRICS} yet", style="yellow"))
    parts.append(_result_panel(trial, metric))
    return Group(*parts)
