"""`workbench predict` on a saved checkpoint, and the train / predict / bench commands end to end."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from workbench.data import clear_memory, load_dataset
from workbench.train.predict import load_trained, predict_files
from tests.conftest import ARCHITECTURES
from tests.test_train_helpers import TINY_ARCH, quick_fit, tiny_job


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    job = tiny_job(epochs=2, train_images=256, val_images=20)
    quick_fit(job, folder)
    return job, folder


def write_val_images(job, folder, count: int) -> list[str]:
    from torchvision.io import write_png

    data = load_dataset(job.dataset, 1, 16)
    paths = []
    for i in range(count):
        path = folder / f"digit ({i}).png"
        write_png(data.val_images[i], str(path))
        paths.append(str(path))
    return paths


def test_predictions_match_the_validation_pass(trained, tmp_path):
    job, folder = trained
    images = write_val_images(job, tmp_path, 6)
    results = predict_files(folder / "checkpoint_best.pt", images, top_k=3)
    with open(folder / "val_predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    for result, row in zip(results, rows):
        (best, p_best), *others = result["top"]
        assert best == row["pred"]  # the digits' class names are their indices
        assert p_best == pytest.approx(float(row["confidence"]), abs=1e-5)
        assert len(others) == 2 and p_best >= others[0][1] >= others[1][1]


def test_loaded_model_is_in_eval_mode_with_the_config(trained):
    _, folder = trained
    model, config = load_trained(folder / "checkpoint_last.pt")
    assert not model.training and config["classes"] == [str(i) for i in range(10)]
    assert sum(p.numel() for p in model.parameters()) == config["params"]


def test_cli_predict_prints_a_table(trained, tmp_path, workbench_cli):
    job, folder = trained
    images = write_val_images(job, tmp_path, 2)
    code, out, err = workbench_cli("predict", folder / "checkpoint_best.pt", *images, "--top-k", "2")
    assert code == 0, err
    assert "digit (0).png" in out and "digit (1).png" in out and out.count("%") == 4
    code, out, _ = workbench_cli("predict", folder / "checkpoint_best.pt", images[0], "--json", "--top-k", "20")
    top = json.loads(out)[0]["top"]
    assert len(top) == 10 and sum(p for _, p in top) == pytest.approx(1.0, abs=1e-4)


def test_cli_predict_reports_bad_inputs(trained, tmp_path, workbench_cli):
    _, folder = trained
    code, _, err = workbench_cli("predict", folder / "checkpoint_best.pt", tmp_path / "nothing.png")
    assert code == 2 and f"error: image {tmp_path / 'nothing.png'} not found" in err
    (tmp_path / "junk.png").write_bytes(b"junk")
    code, _, err = workbench_cli("predict", folder / "checkpoint_best.pt", tmp_path / "junk.png")
    assert code == 2 and "error: cannot read image" in err and "junk.png" in err
    code, _, err = workbench_cli("predict", tmp_path / "junk.png", tmp_path / "junk.png")
    assert code == 2 and "not a readable workbench checkpoint" in err


def test_cli_train_writes_a_trial_and_summarises_it(tmp_path, workbench_cli):
    clear_memory()
    arch = tmp_path / "tiny.json"
    arch.write_text(json.dumps(TINY_ARCH))
    out = tmp_path / "run"
    code, stdout, err = workbench_cli("train", arch, "--dataset", "digits", "--set", "recipe.epochs=2",
                                      "--set", "dataset.max_train_images=128", "--set", "dataset.max_val_images=40",
                                      "--set", "recipe.progressive.enabled=true",
                                      "--set", "recipe.progressive.stages=2", "--set", "recipe.progressive.image_size=[12,16]",
                                      "--out", out, "--threads", "1")
    assert code == 0, err
    assert "stages" in stdout and "completed" in stdout and str(out) in stdout
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    assert [json.loads(line)["image_size"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [12, 16]


def test_cli_train_names_bad_fields(tmp_path, workbench_cli):
    arch = tmp_path / "tiny.json"
    arch.write_text(json.dumps(TINY_ARCH))
    code, _, err = workbench_cli("train", arch, "--set", "recipe.optimizer.lr=-1", "--out", tmp_path / "x")
    assert code == 2 and "error: train: recipe.optimizer.lr: Input should be greater than 0" in err
    code, _, err = workbench_cli("train", arch, "--set", "dataset=CIFAR10", "--set", f"dataset.root={tmp_path}", "--out", tmp_path / "y")
    assert code == 2 and "error: dataset CIFAR10: cannot open its files" in err and "error: fetch: https://" in err


def test_cli_bench_measures_both_models(workbench_cli):
    code, out, err = workbench_cli("bench", ARCHITECTURES / "efficientnet_b0.json", "--resolution", "32", "--batch", "2", "--steps", "1",
                                   "--warmup", "1", "--num-classes", "10", "--torchvision", "--json", "--threads", "1")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["model"] for r in rows] == ["workbench", "torchvision"] and rows[0]["params"] == rows[1]["params"]
    assert all(r["eval_images_per_s"] > 0 and r["train_images_per_s"] > 0 and r["resolution"] == 32 for r in rows)


def test_cli_bench_table_with_scale(tmp_path, workbench_cli):
    arch = tmp_path / "tiny.json"
    arch.write_text(json.dumps(TINY_ARCH))
    code, out, err = workbench_cli("bench", arch, "--set", "scale.resolution=24", "--batch", "2", "--steps", "1", "--warmup", "0",
                                   "--threads", "1")
    assert code == 0, err
    assert "tiny at 24 px, batch 2" in out and "train img/s" in out
    code, _, err = workbench_cli("bench", arch, "--torchvision", "--steps", "1", "--warmup", "0", "--batch", "2")
    assert code == 2 and "torchvision has no model named tiny" in err
