"""The shipped published recipes: they validate, train at proxy scale, and say what README.md's flag tables say
(every value in the tables is the file's, every field the files set is in the tables); the recipe-ablation study is
the torchvision recipe at proxy scale with one ingredient removed per variant; the new options' validation rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.test_train_helpers import quick_fit
from workbench.errors import ConfigError
from workbench.schema.common import load, validate
from workbench.schema.recipe import Recipe, TrainJob

RECIPES = ROOT / "studies" / "recipes"
TORCHVISION = RECIPES / "torchvision_efficientnet_v2_s.json"
AUTOML = RECIPES / "automl_efficientnetv2_s.json"
ABLATION = ROOT / "studies" / "recipe_ablation.json"
# The recipe-ablation study's proxy-scale changes to the torchvision recipe (its recipe.description says why).
PROXY = {"epochs": 30, "batch_size": 32, "global_batch_size": 32, "optimizer.lr": 0.015625, "schedule.warmup_epochs": 1,
         "ema": {"decay": 0.98, "every_steps": 1, "warmup": 1, "adjust": "none"}, "augment.hflip": None}
# One ingredient per variant: what it sets, against the baseline.
REMOVED = {"no_ta_wide": {"recipe.augment.auto_augment": "none"}, "no_erasing": {"recipe.augment.random_erasing": None},
           "no_repeats": {"recipe.sampler.repeats": 1}, "no_ema": {"recipe.ema": None},
           "no_mix": {"recipe.augment.mixup": 0.0, "recipe.augment.cutmix": 0.0}}


def raw(path: Path) -> dict[str, Any]:
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "$schema"}


def at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


@pytest.mark.parametrize("path", [TORCHVISION, AUTOML], ids=["torchvision", "automl"])
def test_shipped_recipes_validate_and_name_their_sources(path):
    recipe = load(Recipe, path)
    assert isinstance(recipe.description, list) and len(recipe.description) >= 15
    assert json.loads(path.read_text())["$schema"] == "../../schemas/recipe.schema.json"


def proxy_job(path: Path, epochs: int) -> TrainJob:
    architecture = raw(ROOT / "architectures" / "efficientnetv2_s.json")
    recipe = {**raw(path), "epochs": epochs}
    return TrainJob.model_validate({"architecture": architecture, "recipe": recipe,
                                    "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16},
                                    "dataset": {"name": "digits", "max_train_images": 64, "max_val_images": 32}})


@pytest.mark.parametrize("path, epochs", [(TORCHVISION, 1), (AUTOML, 4)], ids=["torchvision", "automl"])
def test_shipped_recipes_train_at_proxy_scale(tmp_path, path, epochs):
    """The global batch accumulates on one CPU (torchvision: 8 micro-batches, automl: 32), every option on."""
    status = quick_fit(proxy_job(path, epochs), tmp_path)
    assert status["status"] == "completed" and status["epochs_run"] == epochs
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["accumulation_steps"] == {TORCHVISION: 8, AUTOML: 32}[path]
    assert config["eval_size"] == config["eval_resize"] == 16  # eval sizes follow scale.resolution


def test_automl_progressive_stages_are_automls():
    from workbench.train.progressive import plan_stages

    architecture = TrainJob.model_validate({"architecture": raw(ROOT / "architectures" / "efficientnetv2_s.json"),
                                            "recipe": raw(AUTOML)}).network
    stages = plan_stages(load(Recipe, AUTOML), architecture)
    assert [(s.image_size, s.randaugment, s.dropout, s.stochastic_depth, s.mixup) for s in stages] == [
        (171, 15, 0.2, 0.2, 0.0), (214, 20, 0.2, 0.2, 0.0), (257, 25, 0.2, 0.2, 0.0), (300, 30, 0.2, 0.2, 0.0)]


# --- README.md's flag tables ------------------------------------------------------------------------------


def readme_tables() -> dict[str, list[dict[str, str]]]:
    """The two tables of README.md's "Published recipes" section, as rows of cells."""
    text = (ROOT / "README.md").read_text()
    section = text.split("#### Published recipes", 1)[1].split("\nDatasets come from", 1)[0]
    tables: dict[str, list[dict[str, str]]] = {}
    for name, start in (("torchvision", "torchvision (`train.py` flags"), ("automl", "automl (`efficientnetv2/`")):
        block = section.split(start, 1)[1].split("\n\n", 2)[1]
        lines = [line for line in block.splitlines() if line.startswith("|")]
        header = [cell.strip() for cell in lines[0].strip("|").split(" | ")]
        rows = []
        for line in lines[2:]:
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            assert len(cells) == len(header), line
            rows.append(dict(zip(header, cells)))
        tables[name] = rows
    return tables


@pytest.mark.parametrize("name, path", [("torchvision", TORCHVISION), ("automl", AUTOML)])
def test_readme_flag_table_matches_the_recipe_file(name, path):
    rows = readme_tables()[name]
    resolved = load(Recipe, path).model_dump(mode="json")
    listed = set()
    for row in rows:
        field = row["recipe field"]
        if field == "—":
            assert row["note"], f"{row} has no field and says not why"
            continue
        dotted = field.strip("`").removeprefix("recipe.")
        listed.add(dotted)
        at(resolved, dotted)  # a real field of the schema
        if row["value here"]:
            assert json.loads(row["value here"].strip("`")) == at(resolved, dotted), row
    explicit = {path for path in leaves(raw(path)) if path != "description"}
    unlisted = [p for p in explicit if not any(p == f or p.startswith(f + ".") for f in listed)]
    assert not unlisted, f"{path.name} sets fields README.md's table does not list: {unlisted}"


def test_readme_lists_every_torchvision_flag():
    """Every option of torchvision's train.py argument parser (references/classification/train.py) has a row."""
    flags = ["--data-path", "--model", "--device", "--batch-size", "--epochs", "--workers", "--opt", "--lr", "--momentum",
             "--weight-decay", "--norm-weight-decay", "--bias-weight-decay", "--transformer-embedding-decay",
             "--label-smoothing", "--mixup-alpha", "--cutmix-alpha", "--lr-scheduler", "--lr-warmup-epochs",
             "--lr-warmup-method", "--lr-warmup-decay", "--lr-step-size", "--lr-gamma", "--lr-min", "--print-freq",
             "--output-dir", "--resume", "--start-epoch", "--cache-dataset", "--sync-bn", "--test-only", "--auto-augment",
             "--ra-magnitude", "--augmix-severity", "--random-erase", "--amp", "--world-size", "--dist-url", "--model-ema",
             "--model-ema-steps", "--model-ema-decay", "--use-deterministic-algorithms", "--interpolation",
             "--val-resize-size", "--val-crop-size", "--train-crop-size", "--clip-grad-norm", "--ra-sampler", "--ra-reps",
             "--weights", "--backend", "--use-v2"]
    cells = " ".join(row["flag"] for row in readme_tables()["torchvision"])
    assert [flag for flag in flags if f"`{flag}`" not in cells] == []


# --- the recipe-ablation study -------------------------------------------------------------------------------


def test_recipe_ablation_is_the_torchvision_recipe_at_proxy_scale_minus_one_ingredient_per_variant():
    study = raw(ABLATION)
    expected = raw(TORCHVISION)
    for dotted, value in PROXY.items():
        parent = expected
        *head, last = dotted.split(".")
        for part in head:
            parent = parent[part]
        parent[last] = value
    assert {k: v for k, v in study["recipe"].items() if k != "description"} == {k: v for k, v in expected.items() if k != "description"}
    assert study["dataset"] == {"name": "digits"} and study["seeds"] == [0, 1, 2] and study["baseline"] == "torchvision"
    variants = {v["name"]: v for v in study["variants"]}
    assert variants.keys() == {"torchvision", *REMOVED} and "override" not in variants["torchvision"]
    assert {name: variants[name]["override"] for name in REMOVED} == REMOVED
    assert len({v["architecture"] for v in variants.values()}) == 1


def test_recipe_ablation_plans_its_eighteen_trials():
    from workbench.study.trials import grid_trials, load_study

    study, _ = load_study(ABLATION)
    trials = grid_trials(study, ABLATION)
    assert len(trials) == 18
    by_variant = {t.variant: TrainJob.model_validate(t.job).recipe for t in trials if t.seed == 0}
    base = by_variant["torchvision"]
    assert base.augment.auto_augment == "trivial_wide" and base.sampler.repeats == 4 and base.ema_settings.decay == 0.98
    assert by_variant["no_ema"].ema_settings is None and by_variant["no_repeats"].sampler.repeats == 1
    assert by_variant["no_erasing"].augment.random_erasing is None and by_variant["no_mix"].augment.cutmix == 0


# --- validation of the new options -------------------------------------------------------------------------------


def lines(model, data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(model, data, "r.json")
    return info.value.lines


@pytest.mark.parametrize("data, path", [
    ({"augment": {"auto_augment": "trivial_wide", "randaugment": 9}}, "augment.randaugment"),
    ({"epochs": 8, "augment": {"auto_augment": "imagenet"}, "progressive": {"enabled": True, "randaugment": [5, 15]}},
     "progressive.randaugment"),
    ({"epochs": 8, "augment": {"auto_augment": "randaugment"}, "progressive": {"enabled": True, "randaugment": None}},
     "progressive.randaugment"),
    ({"augment": {"auto_augment": "ta_wide"}}, "augment.auto_augment"),
    ({"augment": {"random_erasing": {"p": 1.5}}}, "augment.random_erasing.p"),
    ({"augment": {"random_erasing": {"scale": [0.5, 0.2]}}}, "augment.random_erasing.scale"),
    ({"augment": {"random_erasing": {"value": "noise"}}}, "augment.random_erasing.value"),
    ({"augment": {"random_erasing": {"value": [0, 0]}}}, "augment.random_erasing.value"),
    ({"sampler": {"repeats": 0}}, "sampler.repeats"),
    ({"ema": {"decay": 1.0}}, "ema.decay"),
    ({"ema": {"decay": 0.9, "every_steps": 0}}, "ema.every_steps"),
    ({"ema": {"decay": 0.9, "adjust": "pycls"}}, "ema.adjust"),
    ({"optimizer": {"name": "rmsprop_tf", "norm_weight_decay": -1}}, "optimizer.norm_weight_decay"),
    ({"eval": {"crop_fraction": 1.5}}, "eval.crop_fraction"),
    ({"progressive": {"image_size_ramp": "linear"}}, "progressive.image_size_ramp"),
])
def test_new_recipe_fields_are_validated_with_their_paths(data, path):
    found = lines(Recipe, data)
    assert any(line.startswith(f"r.json: {path}") for line in found), found


def test_a_policy_without_magnitude_drops_the_default_progressive_ramp():
    recipe = Recipe.model_validate({"epochs": 8, "augment": {"auto_augment": "trivial_wide"}, "progressive": {"enabled": True}})
    assert recipe.progressive.randaugment is None and Recipe.model_validate(recipe.model_dump()) == recipe
    assert Recipe.model_validate({"augment": {"auto_augment": "randaugment"}}).augment.randaugment == 9  # torchvision's default
    assert Recipe.model_validate({"augment": {"randaugment": 5}}).augment.auto_augment is None  # as before: RandAugment at 5


def test_erasing_values_must_fit_the_channels():
    from tests.test_train_helpers import TINY_ARCH

    found = lines(TrainJob, {"architecture": TINY_ARCH, "recipe": {"augment": {"random_erasing": {"value": [0.1, 0.2, 0.3]}}}})
    assert any("recipe.augment.random_erasing.value: 3 values for 1-channel images" in line for line in found), found
