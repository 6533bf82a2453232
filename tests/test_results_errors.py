"""results errors: per-example wrong-rates, the hardest-examples ranking, the image grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

try:
    from tests.fixtures_results import write_trial
except ImportError:
    from fixtures_results import write_trial

from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.results import error_figures, per_example, reader

LABELS = [0, 1, 2, 0, 1, 2, 0, 1]
CLASSES = ["ant", "bee", "cat"]
# trial -> {example index: wrong prediction}; every other example is predicted right
WRONG = {
    ("A", 0): {7: 2, 2: 0, 5: 0},
    ("A", 1): {7: 2, 2: 1},
    ("B", 0): {7: 0, 2: 0},
    ("B", 1): {7: 2, 2: 0, 4: 0},
    ("C", 0): {7: 2, 2: 1},
    ("C", 1): {7: 0},
}


def make_constructed(root: Path, wrong=WRONG, labels=LABELS, name="errs") -> Path:
    study = root / name
    (study / "trials").mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"name": name, "baseline": "A"}))
    for (variant, seed), mistakes in wrong.items():
        preds = [mistakes.get(i, label) for i, label in enumerate(labels)]
        folder = write_trial(study / "trials" / f"{variant}-s{seed}", variant=variant, seed=seed,
                             val_top1=[0.5, 1 - len(mistakes) / len(labels)], study=name, predictions=(labels, preds))
        config = json.loads((folder / "config.json").read_text())
        config["classes"], config["num_classes"] = CLASSES, len(CLASSES)
        (folder / "config.json").write_text(json.dumps(config))
    return study


def test_hardest_ranking_on_a_constructed_case(tmp_path):
    analysis = per_example.analyse(reader.load([make_constructed(tmp_path)]))
    rates = analysis.rates()
    assert list(rates.columns) == ["A", "B", "C"]
    assert rates.loc[2].tolist() == [1.0, 1.0, 0.5] and rates.loc[5].tolist() == [0.5, 0.0, 0.0]
    hardest = analysis.hardest()
    # 7: wrong everywhere; 2: wrong in A and B, half of C; 4 and 5 tie at 1/6 and the more confidently wrong
    # comes first (fixture confidence: 0.82 for example 4, 0.70 for 5); then the never-wrong ones by index
    assert hardest["index"].tolist() == [7, 2, 4, 5, 0, 1, 3, 6]
    for i, conf in ((4, "0.700"), (5, "0.820")):  # swap the two confidences: the tie flips
        path = analysis.groups[1 if i == 4 else 0].trials[1 if i == 4 else 0].predictions
        lines = path.read_text().splitlines()
        cells = lines[i + 1].split(",")
        cells[3] = conf
        lines[i + 1] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
    swapped = per_example.analyse(reader.load([analysis.groups[0].trials[0].path.parent.parent]))
    assert swapped.ranking().tolist()[:4] == [7, 2, 5, 4]
    top = hardest.iloc[0]
    assert top["wrong_rate"] == 1.0 and top["groups_wrong"] == 3 and top["trials_wrong"] == 6
    assert top["class"] == "bee" and top["common_wrong_pred"] == "cat"  # 4 of the 6 wrong predictions
    assert top["common_wrong_share"] == pytest.approx(4 / 6)
    second = hardest.iloc[1]
    assert second["wrong_rate"] == pytest.approx(2.5 / 3) and second["groups_wrong"] == 2
    assert second["common_wrong_pred"] == "ant"  # label cat (2), predicted ant 3 times, bee 2 times
    summary = analysis.summary().set_index("group")
    assert summary.loc["A", "always_wrong"] == 2 and summary.loc["C", "always_wrong"] == 1
    assert summary.loc["B", "mean_error"] == pytest.approx((2 + 3) / (2 * 8))
    assert analysis.overall() == {"examples": 8, "wrong_under_every_group": 1, "right_under_every_group": 4}


def test_image_grid_shows_the_hardest_images(tmp_path):
    analysis = per_example.analyse(reader.load([make_constructed(tmp_path)]))
    images = np.stack([np.full((3, 16, 16), 20 * i, dtype=np.uint8) for i in range(len(LABELS))])
    fig = error_figures.image_grid(analysis, top=3, loader=lambda config: (images, np.array(LABELS), CLASSES))
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3
    for ax, index in zip(shown, [7, 2, 4]):
        assert ax.get_title().startswith(f"#{index} ")
        assert f"true: {CLASSES[LABELS[index]]}" in ax.get_title()
        assert np.array_equal(np.asarray(ax.images[0].get_array()), np.transpose(images[index], (1, 2, 0)))
    assert shown[0].get_xlabel() == "pred: cat (67%)"
    bad = np.array(LABELS)
    bad[7] = 0
    with pytest.raises(WorkbenchError, match="does not match the predictions"):
        error_figures.image_grid(analysis, top=3, loader=lambda config: (images, bad, CLASSES))


def test_cli_errors_table_and_matrix(tmp_path, capsys):
    study = make_constructed(tmp_path)
    matrix = tmp_path / "matrix.png"
    assert main(["results", "errors", str(study), "--top", "3", "--format", "markdown", "--matrix", str(matrix)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" | ")[1] for r in rows[:3]] == ["7", "2", "4"]
    assert "| 1 | 7 | bee | 100 | 3/3 | cat (67%)" in out
    assert matrix.read_bytes()[:4] == b"\x89PNG"


def test_different_validation_sets_are_refused(tmp_path):
    study = make_constructed(tmp_path)
    folder = study / "trials" / "C-s1"
    lines = (folder / "val_predictions.csv").read_text().splitlines()
    lines[1] = "0,2,2,0.9,1"  # example 0 has label 0 elsewhere
    (folder / "val_predictions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(WorkbenchError, match="labels differ"):
        per_example.analyse(reader.load([study]))


def test_no_predictions_is_a_clear_error(tmp_path):
    study = tmp_path / "s"
    write_trial(study / "trials" / "a", variant="a", seed=0, val_top1=[0.5], study="s")
    assert main(["results", "errors", str(study)]) == 2


def test_grid_through_workbench_data(tmp_path):
    """The production path: images come from workbench.data.load_dataset with the trials' dataset config."""
    data_module = pytest.importorskip("workbench.data")
    from workbench.schema.dataset import DatasetConfig

    dataset = {"name": "digits", "disk_cache": False}
    data = data_module.load_dataset(DatasetConfig(**dataset), 1, 32)
    labels = [int(v) for v in data.val_labels[:30]]
    study = tmp_path / "digits_study"
    for variant in ("a", "b"):
        for seed in (0, 1):
            # examples 3 and 11 are always wrong, example 5 only for variant a
            wrong = {3, 11} | ({5} if variant == "a" else set())
            preds = [(label + 1) % 10 if i in wrong else label for i, label in enumerate(labels)]
            folder = write_trial(study / "trials" / f"{variant}{seed}", variant=variant, seed=seed,
                                 val_top1=[0.5, 0.9], study="digits_study", predictions=(labels, preds))
            config = json.loads((folder / "config.json").read_text())
            config["dataset"] = dataset
            config["architecture"]["in_channels"] = 1
            config["classes"] = [str(c) for c in range(10)]
            (folder / "config.json").write_text(json.dumps(config))
    grid = tmp_path / "grid.png"
    assert main(["results", "errors", str(study), "--top", "3", "-o", str(grid)]) == 0
    assert grid.read_bytes()[:4] == b"\x89PNG"
    fig = error_figures.image_grid(per_example.analyse(reader.load([study])), top=3)
    shown = [ax for ax in fig.axes if ax.images]
    # 3 and 11 are wrong everywhere, 11 more confidently (fixture confidence 0.78 vs 0.54); 5 only under variant a
    assert [int(ax.get_title().split(" ")[0][1:]) for ax in shown] == [11, 3, 5]
    for ax, index in zip(shown, [11, 3, 5]):
        assert np.array_equal(np.asarray(ax.images[0].get_array()), data.val_images[index, 0].numpy())
