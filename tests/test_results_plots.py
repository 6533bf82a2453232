"""results plot: every kind writes a PNG, and what is drawn matches a recomputation from the fixture files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

try:
    from tests.fixtures_results import curve, make_study, write_trial
except ImportError:
    from fixtures_results import curve, make_study, write_trial

from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.results import analysis, plots, reader

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("plots"))


def finished(study: Path) -> list[dict]:
    """Every trial that stopped (completed, early-stopped, diverged), its files read with plain json."""
    out = []
    for folder in sorted((study / "trials").iterdir()):
        if not (folder / "status.json").exists():
            continue
        status = json.loads((folder / "status.json").read_text())
        if status["status"] == "running":
            continue
        trial = json.loads((folder / "trial.json").read_text())
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
        out.append({"status": status, "trial": trial, "metrics": metrics})
    return out


@pytest.mark.parametrize("kind", plots.KINDS)
def test_every_kind_writes_a_png(study, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    assert main(["results", "plot", str(study), "--kind", kind, "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000


def test_default_output_goes_under_the_study(tmp_path):
    study = make_study(tmp_path, broken=False)
    assert main(["results", "plot", str(study), "--kind", "pareto", "--x", "latency"]) == 0
    assert (study / "plots" / "pareto_latency.png").read_bytes()[:8] == PNG_MAGIC


def test_curves_mean_lines_and_incomplete_trials(study):
    fig = plots.curves(reader.load([study]))
    epoch_ax, seconds_ax = fig.axes
    for ax in (epoch_ax, seconds_ax):
        means = [line for line in ax.lines if "(n=" in str(line.get_label())]
        assert len(means) == 6  # 3 variants x 2 learning rates
        dotted = [line for line in ax.lines if line.get_linestyle() == ":"]
        assert len(dotted) == 2  # the killed trial and the one without status.json, drawn but not averaged
        assert len(ax.collections) == 6  # one band per group
    trials = [t for t in finished(study) if t["status"]["status"] == "completed"
              and t["trial"]["variant"] == "v2s_mbconv" and t["trial"]["hparams"]["recipe.optimizer.lr"] == 0.05]
    assert len(trials) == 3
    expected = np.mean([[m["val_top1"] for m in t["metrics"]] for t in trials], axis=0) * 100
    seconds = np.mean([[m["elapsed_seconds"] for m in t["metrics"]] for t in trials], axis=0)
    line = next(l for l in epoch_ax.lines if l.get_label() == "v2s_mbconv · lr=0.05 (n=3)")
    assert np.allclose(line.get_ydata(), expected) and list(line.get_xdata()) == [1, 2, 3, 4, 5, 6]
    line = next(l for l in seconds_ax.lines if l.get_label() == "v2s_mbconv · lr=0.05 (n=3)")
    assert np.allclose(line.get_xdata(), seconds)  # under 3 minutes: plotted in seconds
    # the progressive-learning stage boundary is marked on the epoch axis
    assert any("stage 2" in t.get_text() for t in epoch_ax.texts)


def test_curves_single_axis_and_std_band(study):
    fig = plots.curves(reader.load([study]), x="seconds", band="std", by="variant")
    assert len(fig.axes) == 1 and "wall-clock" in fig.axes[0].get_xlabel()
    with pytest.raises(WorkbenchError, match="--x for curves"):
        plots.curves(reader.load([study]), x="flops")


def test_pareto_front_function():
    points = [(1, 0.5), (2, 0.7), (2, 0.6), (3, 0.65), (4, 0.9), (4, 0.9)]
    assert analysis.pareto_front(points) == [0, 1, 4, 5]
    assert analysis.pareto_front([(1, 0.3), (2, 0.2), (3, 0.4)], higher_is_better=False) == [0, 1]


def test_pareto_points_and_front_match_recomputation(study):
    fig = plots.pareto(reader.load([study]))
    ax = fig.axes[0]
    trials = [t for t in finished(study) if t["status"]["status"] == "completed"]
    groups: dict[tuple, list] = {}
    for t in trials:
        groups.setdefault((t["trial"]["variant"], t["trial"]["hparams"]["recipe.optimizer.lr"]), []).append(t["status"])
    means = {k: (np.mean([s["flops"] for s in v]) / 1e9, np.mean([s["best_val_top1"] for s in v]) * 100)
             for k, v in groups.items()}
    # brute-force front: no other group is at most as costly and more accurate
    front = sorted(p for k, p in means.items()
                   if not any(q[0] <= p[0] and q[1] > p[1] for j, q in means.items() if j != k))
    line = next(l for l in ax.lines if l.get_label() == "Pareto front (group means)")
    assert np.allclose(line.get_xdata(), [p[0] for p in front]) and np.allclose(line.get_ydata(), [p[1] for p in front])
    assert len(ax.containers) == len(means) == 6  # one mean ± std marker per group
    trial_points = sum(len(c.get_offsets()) for c in ax.collections if c.get_alpha() == 0.5)
    assert trial_points == len(trials) == 18


def test_pareto_latency_axis(study):
    fig = plots.pareto(reader.load([study]), x="latency", by="variant")
    ax = fig.axes[0]
    assert "ms" in ax.get_xlabel()
    fused = [t["status"] for t in finished(study) if t["status"]["status"] == "completed" and t["trial"]["variant"] == "v2s_fused"]
    expected = np.mean([1000.0 / s["train_images_per_s"] for s in fused])
    marker = next(c for c in ax.containers if c.get_label() == "v2s_fused (n=6)")
    assert marker.lines[0].get_xdata()[0] == pytest.approx(expected)


def make_sweep(root: Path) -> Path:
    """One variant, learning rate x dropout x 3 seeds: seed 000's sensitivity study."""
    study = root / "dropout_sweep"
    (study / "trials").mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"name": "dropout_sweep"}))
    rng = np.random.default_rng(3)
    for lr in (0.001, 0.01, 0.1):
        for dropout in ([0.1, 0.3], [0.2, 0.5]):
            for seed in range(3):
                q = 0.8 - abs(np.log10(lr) + 2) * 0.05 - (0.02 if dropout[0] == 0.2 else 0)
                write_trial(study / "trials" / f"lr{lr}-d{dropout[0]}-s{seed}", variant="v2s", seed=seed,
                            val_top1=curve(rng, q), hparams={"recipe.optimizer.lr": lr, "recipe.progressive.dropout": dropout},
                            study="dropout_sweep")
    return study


def test_sensitivity_one_panel_per_swept_hyperparameter(tmp_path):
    study = make_sweep(tmp_path)
    fig = plots.sensitivity(reader.load([study]))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["hp.recipe.optimizer.lr", "hp.recipe.progressive.dropout"]
    lr_ax, drop_ax = visible
    assert lr_ax.get_xscale() == "log"
    assert [t.get_text() for t in drop_ax.get_xticklabels()] == ["[0.1,0.3]", "[0.2,0.5]"]
    bests: dict[float, list[float]] = {}
    for folder in (study / "trials").iterdir():
        trial = json.loads((folder / "trial.json").read_text())
        bests.setdefault(trial["hparams"]["recipe.optimizer.lr"], []).append(
            json.loads((folder / "status.json").read_text())["best_val_top1"] * 100)
    line = lr_ax.containers[0].lines[0]
    assert list(line.get_xdata()) == [0.001, 0.01, 0.1]
    assert np.allclose(line.get_ydata(), [np.mean(bests[v]) for v in (0.001, 0.01, 0.1)])
    only = plots.sensitivity(reader.load([study]), params=["hp.recipe.optimizer.lr"])
    assert len([ax for ax in only.axes if ax.get_visible()]) == 1


def test_sensitivity_without_a_sweep_is_an_error(tmp_path):
    study = tmp_path / "s"
    write_trial(study / "trials" / "a", variant="a", seed=0, val_top1=[0.5, 0.6], hparams={"x": 1}, study="s")
    write_trial(study / "trials" / "b", variant="a", seed=1, val_top1=[0.5, 0.7], hparams={"x": 1}, study="s")
    with pytest.raises(WorkbenchError, match="no hyper-parameter takes more than one value"):
        plots.sensitivity(reader.load([study]))
    assert main(["results", "plot", str(study), "--kind", "sensitivity", "-o", str(tmp_path / "s.png")]) == 2


def test_edf_steps_are_the_sorted_errors(study):
    fig = plots.edf(reader.load([study]))
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # one per variant (the learning rates are pooled into the variant's design space)
    per_variant: dict[str, list[float]] = {}
    for t in finished(study):
        if t["status"]["status"] in ("completed", "early_stopped", "diverged"):
            per_variant.setdefault(t["trial"]["variant"], []).append(100 * (1 - t["status"]["best_val_top1"]))
    for line in ax.lines:
        variant = line.get_label().split(" (")[0]
        errors = sorted(per_variant[variant])
        xs, ys = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert np.allclose(xs[1:-1], errors)
        assert np.allclose(ys[1:-1], np.arange(1, len(errors) + 1) / len(errors))
        assert ys[0] == 0 and ys[-1] == 1
    assert "1 diverged" in next(l.get_label() for l in ax.lines if l.get_label().startswith("v2s_mbconv"))


def test_edf_by_design_space(tmp_path):
    study = tmp_path / "search"
    rng = np.random.default_rng(5)
    for i in range(8):
        space = "fused_early" if i % 2 else "all_mbconv"
        write_trial(study / "trials" / f"t{i}", variant=f"sample{i}", seed=0, val_top1=curve(rng, 0.6 + 0.02 * i),
                    hparams={"space": space}, study="search")
    ax = plots.edf(reader.load([study])).axes[0]
    assert sorted(l.get_label().split(" (")[0] for l in ax.lines) == ["all_mbconv", "fused_early"]
    assert "space" in ax.get_title()
