"""Architecture search without Ray: the search-space schema, rejection sampling under the budget (recounted with
fvcore), determinism, the architecture files, the NAS reward, the budgeted Optuna searcher and good ranges."""

import json
import random

import pytest

from tests.conftest import ROOT
from workbench.complexity import count_flops
from workbench.errors import ConfigError, WorkbenchError
from workbench.results.search_analysis import Sampled, good_ranges
from workbench.schema import load_architecture
from workbench.schema.architecture import Architecture, Scale
from workbench.study.runner import planned_trials
from workbench.study.sampling import SearchContext, sample_candidates, sample_space, with_reward, write_sampled
from workbench.study.trials import load_study
from workbench.trialdir import nas_reward

V2S = str(ROOT / "architectures/efficientnetv2_s.json")
SHIPPED = [ROOT / "studies/search_v2s_space.json", ROOT / "studies/search_v2s_space_gpu.json"]


def small_space(**constraints):
    return {
        "base": V2S,
        "stages": [
            {"out_channels": [16]},
            {"block": ["fused_mbconv", "mbconv"], "layers": {"min": 1, "max": 2}, "out_channels": [24, 32]},
            {"kernel": [3, 5], "layers": [1], "out_channels": {"min": 32, "max": 48, "divisor": 16}},
            {"expand": [2, 4], "layers": {"min": 1, "max": 2}, "out_channels": [48, 64], "se": [True, False]},
            {"layers": [1], "out_channels": [64, 80]},
            {"layers": [1], "out_channels": [96, 128]},
        ],
        "global": {"head_channels": [128, 256], "stochastic_depth_schedule": ["linear", "none"]},
        "constraints": {"num_classes": 10, **constraints},
    }


def write_study(tmp_path, **fields):
    study = {"name": "s", "dataset": {"name": "digits", "max_train_images": 120, "max_val_images": 60},
             "scale": {"resolution": 16}, "recipe": {"epochs": 1, "batch_size": 40}, "num_samples": 6,
             "search": small_space(flops={"min": 1.1e6, "max": 1.8e6}, max_params=400_000)}
    study.update(fields)
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    return path


def network(trial):
    job = trial.job
    return Architecture.model_validate(job["architecture"]).scaled(Scale.model_validate(job["scale"]))


# --- schema ------------------------------------------------------------------------------------------------


def test_shipped_search_studies_validate_and_sample_within_budget():
    for path in SHIPPED:
        raw = json.loads(path.read_text())
        assert raw["$schema"] == "../schemas/study.schema.json" and (ROOT / "schemas/study.schema.json").exists()
        study, _ = load_study(path)
        assert study.search is not None and not study.variants and "--set" in study.description
        trials = planned_trials(study, path)
        assert len(trials) >= 24 and len({t.variant for t in trials}) == study.num_samples
        bounds = study.search.constraints
        for t in trials:
            assert bounds.flops.min <= t.record()["search"]["flops"] <= bounds.flops.max
            assert t.record()["search"]["params"] <= bounds.max_params


@pytest.mark.parametrize("change, message", [
    (lambda s: s["stages"][2].update(kernel=[3, 4]), "search.stages[2].kernel: kernels must be odd and positive, got [4]"),
    (lambda s: s["stages"][1].update(out_channels={"min": 17, "max": 23}), "search.stages[1].out_channels: no multiple of 8 lies between 17 and 23"),
    (lambda s: s["stages"][1].update(layers={"min": 3, "max": 1}), "search.stages[1].layers: min (3) must not exceed max (1)"),
    (lambda s: s["stages"][3].update(out_channels="wide"), "search.stages[3].out_channels: expected a list of values or an object"),
    (lambda s: s["stages"][3].update(se=[True, True]), "search.stages[3].se: duplicate values True"),
    (lambda s: s["stages"][3].update(expand=[0.5, 2]), "search.stages[3].expand: expansion ratios must be >= 1, got [0.5]"),
    (lambda s: s["global"].update(dropout=[1.5]), "search.global.dropout: rates must lie in [0, 1), got [1.5]"),
    (lambda s: s["global"].update(head_chanels=[64]), "search.global.head_chanels: unknown field"),
    (lambda s: s["constraints"].update(flops={"min": 3e6, "max": 1e6}), "search.constraints.flops: min (3e+06) must not exceed max (1e+06)"),
    (lambda s: s.update(base=3), "search.stages: 6 entries but base declares 3 stages"),
    (lambda s: s.update(base=6), "search.stages[0].stride: required when search.base is a stage count"),
    (lambda s: s.update(stages=[{"layers": [1]}] * 6, **{"global": {}}), "search.stages: nothing to search"),
])
def test_search_space_errors_name_the_path(tmp_path, change, message):
    space = small_space()
    change(space)
    path = write_study(tmp_path, search=space)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert any(line.startswith(f"{path}: ") and message in line for line in info.value.lines), info.value.lines


@pytest.mark.parametrize("fields, message", [
    ({"variants": [{"name": "v", "architecture": V2S}]}, "variants: a search study samples its architectures"),
    ({"algorithm": "grid"}, "algorithm: a search samples architectures"),
    ({"space": {"stages.1.block": {"type": "choice", "values": ["mbconv"]}}}, "space.stages.1.block: also a search choice"),
    ({"metric": "reward", "search": small_space()}, "search.reward.target_flops: metric reward needs T"),
    ({"search": None, "variants": []}, "variants: at least one variant is needed"),
])
def test_study_level_search_errors(tmp_path, fields, message):
    path = write_study(tmp_path, **fields)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert any(message in line for line in info.value.lines), info.value.lines


def test_base_stage_count_must_match_the_base_file(tmp_path):
    space = small_space()
    space["stages"] = space["stages"][:5]
    path = write_study(tmp_path, search=space)
    study, _ = load_study(path)
    with pytest.raises(ConfigError) as info:
        planned_trials(study, path)
    assert "search.stages: 5 entries but the base" in info.value.lines[0] and "has 6 stages" in info.value.lines[0]


def test_a_stage_count_base_builds_complete_chained_architectures(tmp_path):
    stage = {"block": ["mbconv", "fused_mbconv"], "expand": [1, 4], "kernel": [3], "layers": {"min": 1, "max": 2},
             "out_channels": {"min": 16, "max": 32, "divisor": 8}}
    space = {"base": 3, "stages": [{**stage, "stride": 1}, {**stage, "stride": 2}, {**stage, "stride": 2}],
             "global": {"stem_channels": [8, 16]}, "constraints": {"num_classes": 10}}
    path = write_study(tmp_path, search=space, num_samples=5)
    study, _ = load_study(path)
    for trial in planned_trials(study, path):
        net = network(trial)
        assert [s.stride for s in net.stages] == [1, 2, 2]
        assert net.stages[0].in_channels == net.stem_width
        assert all(b.in_channels == a.out_channels for a, b in zip(net.stages, net.stages[1:]))
        assert {s.block for s in net.stages} <= {"mbconv", "fused_mbconv"}


# --- sampling ----------------------------------------------------------------------------------------------


def test_rejection_sampling_obeys_the_budget_recounted_with_fvcore(tmp_path):
    path = write_study(tmp_path)
    study, _ = load_study(path)
    context = SearchContext(study, path)
    accepted, report = sample_candidates(context, study.num_samples)
    assert len(accepted) == study.num_samples == report.accepted
    assert report.draws > report.accepted, "this budget must reject some draws"
    assert report.acceptance_rate == pytest.approx(report.within_budget / report.draws)
    assert sum(report.rejected.values()) >= report.draws - report.within_budget
    for trial in planned_trials(study, path):
        fv = count_flops(network(trial), 16, num_classes=10)
        assert 1.1e6 <= fv.flops <= 1.8e6 and fv.params <= 400_000
        assert (fv.flops, fv.params) == (trial.record()["search"]["flops"], trial.record()["search"]["params"])


def test_every_draw_is_judged_by_its_true_cost(tmp_path):
    """Replay the sampler's draws: each one it rejected really violates the budget (fvcore), none it kept does."""
    path = write_study(tmp_path, num_samples=3)
    study, _ = load_study(path)
    context = SearchContext(study, path)
    accepted, report = sample_candidates(context, 3)
    rng = random.Random(study.sample_seed)
    replay = [context.candidate(*context.draw(rng)) for _ in range(report.draws)]
    for candidate in replay:
        net = Architecture.model_validate(candidate.job["architecture"]).scaled(Scale.model_validate(candidate.job["scale"]))
        fv = count_flops(net, 16, num_classes=10)
        assert (1.1e6 <= fv.flops <= 1.8e6 and fv.params <= 400_000) == candidate.within_budget
    assert [c.key for c in replay if c.within_budget][:3] == [c.key for c in accepted]


def test_sampling_is_deterministic_and_extends_by_trial_id(tmp_path):
    path = write_study(tmp_path, seeds=[0, 1])
    first = planned_trials(*load_study(path)[:1], path)
    again = planned_trials(*load_study(path)[:1], path)
    assert [(t.trial_id, t.hparams, t.job) for t in first] == [(t.trial_id, t.hparams, t.job) for t in again]
    assert [t.trial_id for t in first[:4]] == ["a000-s0", "a000-s1", "a001-s0", "a001-s1"]
    assert first[0].job["architecture"] == first[1].job["architecture"] and first[0].job["recipe"]["seed"] == 0
    more = planned_trials(*load_study(path, ["num_samples=9"])[:1], path)
    assert [(t.trial_id, t.job) for t in more[:len(first)]] == [(t.trial_id, t.job) for t in first]
    other = planned_trials(*load_study(path, ["sample_seed=7"])[:1], path)
    assert [t.hparams for t in other] != [t.hparams for t in first]


def test_hyperparameters_are_drawn_with_each_architecture(tmp_path):
    path = write_study(tmp_path, space={"recipe.optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}})
    study, _ = load_study(path)
    trials = planned_trials(study, path)
    lrs = [t.hparams["recipe.optimizer.lr"] for t in trials]
    assert len(set(lrs)) == len(trials) and all(1e-3 <= v <= 1e-2 for v in lrs)
    assert all(t.job["recipe"]["optimizer"]["lr"] == t.hparams["recipe.optimizer.lr"] for t in trials)


def test_an_unreachable_budget_says_so(tmp_path):
    path = write_study(tmp_path, search={**small_space(flops={"max": 1000}), "max_tries": 50})
    study, _ = load_study(path)
    with pytest.raises(WorkbenchError) as info:
        planned_trials(study, path)
    assert "only 0 of 6 architectures" in info.value.lines[0] and "50 draws" in info.value.lines[0]


# --- files ---------------------------------------------------------------------------------------------------


def test_written_architectures_round_trip_through_flops_and_show(tmp_path, workbench_cli):
    path = write_study(tmp_path, num_samples=2)
    study, _ = load_study(path)
    trials = planned_trials(study, path)
    folder = tmp_path / "res"
    write_sampled(folder, sample_space(study, path), trials)
    report = json.loads((folder / "search.json").read_text())
    assert report["sampling"]["accepted"] == 2 and 0 < report["sampling"]["acceptance_rate"] <= 1
    for trial in trials:
        file = folder / "architectures" / f"{trial.variant}.json"
        document = json.loads(file.read_text())
        assert document["$schema"].endswith("schemas/architecture.schema.json")
        assert (file.parent / document["$schema"]).resolve() == (ROOT / "schemas/architecture.schema.json").resolve()
        assert document["name"] == f"s-{trial.variant}" and "design space 's'" in document["description"]
        assert all(f"{k}={v}" in document["description"] for k, v in trial.hparams.items())
        arch = load_architecture(file)
        assert arch.model_dump(exclude={"description"}) == network(trial).model_dump(exclude={"description"})
        code, out, err = workbench_cli("flops", file, "--num-classes", "10", "--json")
        assert code == 0, err
        counted = json.loads(out)["architectures"][0]
        assert (counted["flops"], counted["params"]) == (trial.record()["search"]["flops"], trial.record()["search"]["params"])
        assert workbench_cli("show", file)[0] == 0


# --- objective -----------------------------------------------------------------------------------------------


def test_nas_reward_is_efficientnets_objective():
    assert nas_reward(0.8, 400e6, 400e6) == pytest.approx(0.8)
    assert nas_reward(0.8, 800e6, 400e6) == pytest.approx(0.8 * 2 ** -0.07)
    assert nas_reward(0.8, 200e6, 400e6, weight=-0.15) == pytest.approx(0.8 * 0.5 ** -0.15)
    assert nas_reward(0.8, 800e6, 400e6) < 0.8 < nas_reward(0.8, 200e6, 400e6)
    record = {"search": {"reward_factor": 0.9}}
    assert with_reward({"val_top1": 0.5, "epoch": 3}, record) == {"val_top1": 0.5, "epoch": 3, "reward": pytest.approx(0.45)}
    assert with_reward({"val_top1": 0.5}, {}) == {"val_top1": 0.5}


def test_each_trial_carries_its_reward_factor(tmp_path):
    path = write_study(tmp_path, metric="reward", search={**small_space(flops={"max": 1.8e6}), "reward": {"target_flops": 1.5e6, "weight": -0.1}})
    study, _ = load_study(path)
    for trial in planned_trials(study, path):
        search = trial.record()["search"]
        assert search["reward_factor"] == pytest.approx((search["flops"] / 1.5e6) ** -0.1)


# --- optuna ----------------------------------------------------------------------------------------------------


def test_budgeted_optuna_never_proposes_an_architecture_over_budget(tmp_path):
    from workbench.study.optuna import OptunaContext, make_searcher

    path = write_study(tmp_path, algorithm="optuna", num_samples=8)
    study, _ = load_study(path)
    optuna = OptunaContext.of(study, path)
    context = optuna.search
    searcher = make_searcher(study, optuna, tmp_path, metric="val_top1", mode="max", seed=0)
    configs = [searcher.suggest(f"t{i}") for i in range(8)]
    for i, config in enumerate(configs):
        candidate = context.candidate(*context.split(config))
        assert candidate.within_budget and set(config) == set(context.searched)
        searcher.on_trial_complete(f"t{i}", {"val_top1": 0.5 + i / 100, "finished": 1.0})
    report = searcher.report
    assert report.accepted == 8 and report.draws > 8 and report.rejected
    infeasible = [t for t in searcher._ot_study.trials if any(v > 0 for v in t.constraints.values())]
    assert len(infeasible) == report.draws - report.within_budget  # told to TPE as infeasible, never trained
    saved = json.loads((tmp_path / "search.json").read_text())["sampling"]
    assert saved["sampler"] == "optuna" and saved["draws"] == report.draws


# --- good ranges -------------------------------------------------------------------------------------------


def test_good_ranges_recover_a_planted_answer():
    """Accuracy rises with layers 3-4 and with mbconv; the kernel is noise. The bootstrap must say exactly that."""
    rng = random.Random(0)
    archs = []
    for i in range(80):
        choices = {"layers": rng.randint(1, 6), "block": rng.choice(["mbconv", "fused_mbconv"]), "kernel": rng.choice([3, 5])}
        value = 0.6 + 0.2 * (choices["layers"] in (3, 4)) + 0.1 * (choices["block"] == "mbconv") + rng.uniform(0, 0.02)
        archs.append(Sampled(study="s", space="toy", arch_id=f"a{i:03d}", choices=choices, params=1, flops=1, accuracy=value,
                             value=value, reward=None, seeds=1, train_ms_per_image=None, file=None))
    ranges = {r.choice: r for r in good_ranges(archs, top=0.1, rounds=500, seed=0)}
    assert (ranges["layers"].low, ranges["layers"].high) == (3, 4) and ranges["layers"].numeric
    assert ranges["layers"].low_ci >= 3 and ranges["layers"].high_ci <= 4
    assert ranges["block"].best == "mbconv" and ranges["block"].confidence > 0.95
    assert ranges["block"].top_share > 0.9 and ranges["block"].base_share < 0.6
    assert ranges["kernel"].confidence < 0.9 and ranges["kernel"].low_ci == 3 and ranges["kernel"].high_ci == 5


# --- command line ----------------------------------------------------------------------------------------------


def test_dry_run_prints_the_sampled_architectures_and_acceptance_without_training(tmp_path, workbench_cli):
    path = write_study(tmp_path)
    code, out, err = workbench_cli("search", "run", path, "--dry-run", "--out", tmp_path / "res")
    assert code == 0, err
    assert all(f"a00{i}" in out for i in range(6)) and "a006" not in out
    assert "acceptance rate" in out and "MFLOPs" in out and "1.10–1.80 MFLOPs" in out
    assert not (tmp_path / "res").exists()


def test_search_commands_answer_bad_input_with_the_field(tmp_path, workbench_cli):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"name": "p", "variants": [{"name": "v", "architecture": V2S}]}))
    code, _, err = workbench_cli("search", "run", plain, "--dry-run")
    assert code == 2 and "has no search block" in err and "Traceback" not in err
    space = small_space()
    space["stages"][2]["kernel"] = [4]
    bad = write_study(tmp_path, search=space)
    code, _, err = workbench_cli("search", "run", bad)
    assert code == 2 and f"error: {bad}: search.stages[2].kernel: kernels must be odd" in err
    code, _, err = workbench_cli("search", "analyze", tmp_path)
    assert code == 2 and "error:" in err


def test_the_study_schema_file_is_up_to_date():
    from workbench.cli.arch import schema_dict

    schema = json.loads((ROOT / "schemas/study.schema.json").read_text())
    assert schema == schema_dict("study"), "regenerate: workbench schema study -o schemas/study.schema.json"
    assert "SearchSpace" in schema["$defs"] and "search" in schema["properties"]
