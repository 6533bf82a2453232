"""Recipe, dataset and train-job schemas; the progressive-learning plan (no training here)."""

from __future__ import annotations

import pytest

from workbench.errors import ConfigError, WorkbenchError
from workbench.schema.common import validate
from workbench.schema.dataset import DatasetConfig
from workbench.schema.recipe import Recipe, TrainJob
from workbench.train.progressive import plan_stages, stage_of
from tests.conftest import ARCHITECTURES
from tests.test_train_helpers import TINY_ARCH, tiny_arch


def config_error_lines(model, data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(model, data, "r.json")
    return info.value.lines


@pytest.mark.parametrize("data, path", [
    ({"optimizer": {"lr": 0}}, "optimizer.lr"),
    ({"optimizer": {"name": "lamb"}}, "optimizer.name"),
    ({"schedule": {"name": "cosine", "warmup_epochs": -1}}, "schedule.warmup_epochs"),
    ({"progressive": {"dropout": [0.3, 0.1]}}, "progressive.dropout"),
    ({"progressive": {"image_size": [4, 300]}}, "progressive.image_size"),
    ({"progressive": {"randaugment": [5, 40]}}, "progressive.randaugment"),
    ({"augment": {"crop_scale": [0.5, 1.5]}}, "augment.crop_scale"),
    ({"augment": {"flip": True}}, "augment.flip"),
    ({"early_stopping": {"patience": 0}}, "early_stopping.patience"),
    ({"freeze": "head"}, "freeze"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
])
def test_recipe_errors_name_the_field_path(data, path):
    lines = config_error_lines(Recipe, data)
    assert any(line.startswith(f"r.json: {path}: ") for line in lines), lines


def test_progressive_stages_cannot_exceed_epochs():
    lines = config_error_lines(Recipe, {"epochs": 3, "progressive": {"enabled": True, "stages": 4}})
    assert "progressive.stages (4) cannot exceed epochs (3)" in lines[0]


def test_default_recipe_is_a_small_cpu_recipe():
    recipe = Recipe()
    assert recipe.optimizer.name == "adamw" and recipe.batch_size == 64 and recipe.label_smoothing == pytest.approx(0.1)
    assert recipe.progressive.enabled is False and recipe.init == "scratch" and recipe.freeze == "none"
    assert Recipe.model_validate(recipe.model_dump()) == recipe


def test_freeze_accepts_backbone_and_stage_counts():
    assert Recipe(freeze="backbone").freeze == "backbone"
    assert Recipe.model_validate({"freeze": "2"}).freeze == 2
    assert config_error_lines(Recipe, {"freeze": -1})[0].startswith("r.json: freeze: ")


def test_dataset_name_alone_is_a_config():
    assert DatasetConfig.model_validate("CIFAR10") == DatasetConfig(name="CIFAR10")
    job = TrainJob.model_validate({"architecture": TINY_ARCH, "dataset": "digits"})
    assert job.dataset.name == "digits" and job.recipe == Recipe()


def test_dataset_schema_errors():
    lines = config_error_lines(DatasetConfig, {"name": "imagefolder"})
    assert any(line.startswith("r.json: path: imagefolder needs path") for line in lines)
    assert any(line.startswith("r.json: on_bad_image: ") for line in config_error_lines(DatasetConfig, {"on_bad_image": "ignore"}))
    assert any(line.startswith("r.json: val_fraction: ") for line in config_error_lines(DatasetConfig, {"val_fraction": 1.0}))


def test_train_job_errors_name_nested_paths():
    lines = config_error_lines(TrainJob, {"architecture": TINY_ARCH, "recipe": {"optimizer": {"lr": -1}}, "scale": {"width_mult": 0}})
    assert any(line.startswith("r.json: recipe.optimizer.lr: ") for line in lines)
    assert any(line.startswith("r.json: scale.width_mult: ") for line in lines)


def test_network_is_the_scaled_architecture():
    job = TrainJob.model_validate({"architecture": TINY_ARCH, "scale": {"width_mult": 2.0, "resolution": 24}})
    assert job.network.width_mult == 2.0 and job.network.resolution.train == 24 and job.network.resolution.eval_size == 24


# --- progressive plan ---------------------------------------------------------------------------


def v2s():
    from workbench.schema import load_architecture

    return load_architecture(ARCHITECTURES / "efficientnetv2_s.json")


def test_table6_v2s_schedule():
    """EfficientNetV2 paper Table 6, V2-S: size 128 -> 300, dropout 0.1 -> 0.3, RandAugment 5 -> 15, mixup 0."""
    recipe = Recipe.model_validate({"epochs": 348, "progressive": {"enabled": True, "stages": 4, "image_size": [128, 300]}})
    stages = plan_stages(recipe, v2s())
    assert [s.image_size for s in stages] == [128, 185, 243, 300]  # 128 + 172 * i / 3, rounded
    assert [s.dropout for s in stages] == pytest.approx([0.1, 0.1 + 0.2 / 3, 0.1 + 0.4 / 3, 0.3])
    assert [s.randaugment for s in stages] == [5, 8, 12, 15]  # 5 + 10 * i / 3, rounded
    assert [s.mixup for s in stages] == [0.0, 0.0, 0.0, 0.0]
    assert [(s.first_epoch, s.last_epoch) for s in stages] == [(1, 87), (88, 174), (175, 261), (262, 348)]  # 87 epochs each


def test_default_size_range_follows_the_architecture_and_sd_ramps_with_dropout():
    stages = plan_stages(Recipe.model_validate({"epochs": 8, "progressive": {"enabled": True}}), v2s())
    assert stages[0].image_size == 128 and stages[-1].image_size == 300
    # stochastic depth: the architecture's 0.2, scaled by the dropout ramp 0.1/0.3 at the first stage
    assert [s.stochastic_depth for s in stages] == pytest.approx([0.2 / 3, 0.2 * 5 / 9, 0.2 * 7 / 9, 0.2])


def test_uneven_epochs_give_later_stages_the_remainder():
    stages = plan_stages(Recipe.model_validate({"epochs": 10, "progressive": {"enabled": True, "stages": 4}}), v2s())
    assert [s.epochs for s in stages] == [2, 3, 2, 3]
    assert stage_of(stages, 1).stage == 1 and stage_of(stages, 10).stage == 4 and stage_of(stages, 5).stage == 2


def test_ablation_switches_hold_size_or_regularisation_at_max():
    base = {"enabled": True, "stages": 4, "image_size": [64, 128]}
    fixed_size = plan_stages(Recipe.model_validate({"epochs": 4, "progressive": {**base, "constant_image_size": True}}), v2s())
    assert {s.image_size for s in fixed_size} == {128} and fixed_size[0].dropout == pytest.approx(0.1)
    fixed_reg = plan_stages(Recipe.model_validate({"epochs": 4, "progressive": {**base, "constant_regularization": True}}), v2s())
    assert [s.image_size for s in fixed_reg] == [64, 85, 107, 128]
    assert {s.dropout for s in fixed_reg} == {0.3} and {s.randaugment for s in fixed_reg} == {15}


def test_without_progressive_one_stage_uses_architecture_and_recipe():
    recipe = Recipe.model_validate({"epochs": 5, "augment": {"randaugment": 9, "mixup": 0.2}})
    (stage,) = plan_stages(recipe, tiny_arch())
    assert (stage.first_epoch, stage.last_epoch, stage.image_size) == (1, 5, 16)
    assert (stage.dropout, stage.stochastic_depth, stage.randaugment, stage.mixup) == (0.2, 0.2, 9, 0.2)


# --- train command's job assembly ---------------------------------------------------------------


def write_tiny_arch(tmp_path):
    import json

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_ARCH))
    return str(path)


def test_build_job_applies_sets_in_order(tmp_path):
    from workbench.cli.train import build_job

    recipe = tmp_path / "r.json"
    recipe.write_text('{"$schema": "x", "epochs": 3, "optimizer": {"lr": 0.01}}')
    job = build_job(write_tiny_arch(tmp_path), str(recipe), "digits",
                    ["recipe.epochs=7", "dataset=CIFAR10", "dataset.root=/data", "scale.width_mult=0.5", "recipe.freeze=backbone"])
    assert job.recipe.epochs == 7 and job.recipe.optimizer.lr == 0.01 and job.recipe.freeze == "backbone"
    assert job.dataset.name == "CIFAR10" and job.dataset.root == "/data" and job.scale.width_mult == 0.5


def test_build_job_rejects_unknown_roots_and_names_bad_fields(tmp_path):
    from workbench.cli.train import build_job

    arch = write_tiny_arch(tmp_path)
    with pytest.raises(WorkbenchError, match="keys start with recipe., dataset. or scale."):
        build_job(arch, None, None, ["epochs=2"])
    with pytest.raises(ConfigError) as info:
        build_job(arch, None, None, ["recipe.optimizer.lr=-1", "recipe.optimzer.lr=1"])
    assert any("recipe.optimizer.lr: " in line for line in info.value.lines)
    assert any("recipe.optimzer: unknown field" in line for line in info.value.lines)
