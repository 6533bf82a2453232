"""Study files: validation, trial expansion, dry run, and the GPU check that must answer at once."""

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from workbench.errors import ConfigError
from workbench.study.runner import planned_trials
from workbench.study.trials import load_study

STUDIES = sorted((ROOT / "studies").glob("*.json"))


def write_study(tmp_path, **fields):
    study = {"name": "t", "dataset": "digits", "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16},
             "recipe": {"epochs": 1}, "variants": [{"name": "v2s", "architecture": str(ROOT / "architectures/efficientnetv2_s.json")}]}
    study.update(fields)
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    return path


def test_every_shipped_study_validates_and_expands():
    assert {p.stem for p in STUDIES} >= {"fused_vs_mb", "shallow_sd", "progressive", "sensitivity", "compound_scaling", "transfer", "hymenoptera"}
    for path in STUDIES:
        study, _ = load_study(path, ["dataset.path=/tmp"] if path.stem == "hymenoptera" else [])
        assert study.description and "--set" in study.description, path
        trials = planned_trials(study, path) if study.algorithm != "optuna" else []
        assert len({t.trial_id for t in trials}) == len(trials)


def test_fused_vs_mb_has_five_variants_and_three_seeds():
    study, _ = load_study(ROOT / "studies/fused_vs_mb.json")
    trials = planned_trials(study, ROOT / "studies/fused_vs_mb.json")
    assert [v.name for v in study.variants][0] == study.baseline_name
    assert len(study.variants) == 5 and len(study.seeds) >= 3 and len(trials) == 5 * len(study.seeds)


def test_grid_and_sampled_dimensions_expand_deterministically(tmp_path):
    path = write_study(
        tmp_path, seeds=[0, 1], num_samples=2,
        variants=[{"name": "base", "architecture": str(ROOT / "architectures/efficientnetv2_s.json")},
                  {"name": "fused3", "architecture": str(ROOT / "architectures/efficientnetv2_s.json"),
                   "override": {"stages.3.block": "fused_mbconv", "stages.3.se_ratio": 0, "recipe.label_smoothing": 0.0}}],
        space={"recipe.optimizer.lr": {"type": "grid", "values": [0.001, 0.002]},
               "architecture.dropout": {"type": "uniform", "low": 0.1, "high": 0.4}})
    study, _ = load_study(path)
    trials = planned_trials(study, path)
    assert len(trials) == 2 * (2 * 2) * 2
    assert trials == planned_trials(*load_study(path)[:1], path)  # same ids, same sampled values
    fused = [t for t in trials if t.variant == "fused3"]
    assert all(t.job["architecture"]["stages"][3]["block"] == "fused_mbconv" for t in fused)
    assert all(t.job["recipe"]["label_smoothing"] == 0.0 for t in fused)
    for t in trials:
        assert t.job["recipe"]["optimizer"]["lr"] == t.hparams["recipe.optimizer.lr"]
        assert t.job["architecture"]["dropout"] == t.hparams["architecture.dropout"]
        assert 0.1 <= t.hparams["architecture.dropout"] <= 0.4
        assert t.job["recipe"]["seed"] == t.seed
    dropouts = {t.hparams["architecture.dropout"] for t in trials}
    assert len(dropouts) == 2  # two samples shared by every variant, grid point and seed (paired comparison)


@pytest.mark.parametrize("fields, message", [
    ({"baseline": "nope"}, "baseline 'nope' is not a variant name"),
    ({"variants": [{"name": "a", "architecture": "x.json"}, {"name": "a", "architecture": "x.json"}]}, "duplicate names"),
    ({"algorithm": "optuna", "seeds": [0, 1], "space": {"recipe.optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}},
     "optuna samples adaptively"),
    ({"space": {"recipe.optimizer.lr": {"type": "loguniform", "low": 0, "high": 1e-2}}}, "space.recipe.optimizer.lr: loguniform needs low > 0"),
    ({"resources": {"gpus": -1}}, "resources.gpus: Input should be greater than or equal to 0"),
    ({"variantz": []}, "variantz: unknown field"),
])
def test_study_errors_name_the_field(tmp_path, fields, message):
    path = write_study(tmp_path, **fields)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert any(message in line for line in info.value.lines), info.value.lines
    assert all(line.startswith(str(path)) for line in info.value.lines)


def test_bad_override_names_the_trial_and_field(tmp_path):
    path = write_study(tmp_path, variants=[{"name": "v", "architecture": str(ROOT / "architectures/efficientnetv2_s.json"),
                                            "override": {"stages.3.kernel": 4}}])
    study, _ = load_study(path)
    with pytest.raises(ConfigError) as info:
        planned_trials(study, path)
    assert "(trial v-s0): architecture.stages[3].kernel: kernel must be odd, got 4" in info.value.lines[0]


def test_set_overrides_reach_the_recipe_file(tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"epochs": 3, "batch_size": 32}))
    path = write_study(tmp_path, recipe="recipe.json")
    study, _ = load_study(path, ["recipe.epochs=5", "seeds=[3,4]", "dataset=FashionMNIST"])
    assert (study.recipe.epochs, study.recipe.batch_size, study.seeds, study.dataset.name) == (5, 32, [3, 4], "FashionMNIST")


def test_dry_run_prints_trials_without_training(tmp_path, workbench_cli):
    path = write_study(tmp_path, seeds=[0, 1])
    code, out, _ = workbench_cli("study", "run", path, "--dry-run", "--out", tmp_path / "res")
    assert code == 0
    assert "v2s-s0" in out and "v2s-s1" in out and "params" in out
    assert not (tmp_path / "res").exists()


def test_gpu_study_on_a_cpu_machine_answers_at_once(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = write_study(tmp_path, resources={"cpus": 1, "gpus": 0.5})
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "workbench.cli.main", "study", "run", str(path), "--out", str(tmp_path / "res")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "asks for 0.5 GPU per trial" in run.stderr and "--allow-cpu" in run.stderr
    assert "Traceback" not in run.stderr
    assert time.perf_counter() - start < 30


def test_the_live_view_ends_its_line_in_a_log(capsys):
    """Without a terminal (make demo | tee log) the live view draws once at the end; the table printed next starts on
    a line of its own."""
    from workbench.study.display import LiveDisplay

    live = LiveDisplay("demo", total=2, done_before=0, metric="val_top1", mode="max")
    live.setup()
    live.done["a-s0"] = 0.9
    live.stop()
    print("next table")
    out = capsys.readouterr().out
    assert "demo: 2 trials" in out and "best so far: a-s0 val_top1 90.0 %" in out
    assert out.endswith("\nnext table\n") and not out.startswith("next table")
