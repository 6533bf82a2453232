"""Latency in architecture search: a design space's latency table covers every draw, a study refuses a table that is
missing or made elsewhere, the budget is checked by the predictor before training and measured after it, the
multi-objective (NSGA-II) searcher, the hypervolume of a front, and one latency-budgeted Optuna search on Ray Tune.

Measurements use a short protocol and tiny networks; no assertion compares two timings."""

import hashlib
import json

import pytest

from tests.conftest import ROOT
from workbench.complexity.latency import Protocol
from workbench.complexity.latency_table import LatencyTable
from workbench.errors import ConfigError
from workbench.results.search_analysis import Sampled
from workbench.results.search_front import hypervolume
from workbench.study import latency_space
from workbench.study.sampling import SearchContext, architecture_costs, sample_candidates, sample_space, write_report
from workbench.study.trials import load_study

V2S = str(ROOT / "architectures/efficientnetv2_s.json")
QUICK = Protocol(rounds=1, warmup=1, min_run_time=0.002)


def space(**extra):
    return {
        "name": "tiny", "base": V2S,
        "stages": [{"out_channels": [16], "layers": [1]},
                   {"block": ["fused_mbconv", "mbconv"], "layers": {"min": 1, "max": 2}, "out_channels": [24, 32]},
                   {"kernel": [3, 5], "layers": [1], "out_channels": [32, 48]},
                   {"layers": [1], "out_channels": [48], "se": [True, False]},
                   {"layers": [1], "out_channels": [64]}, {"layers": [1], "out_channels": [64, 96]}],
        "global": {"head_channels": [128, 192], "dropout": [0.1, 0.2]},
        "constraints": {"flops": {"max": 2e6}, "num_classes": 10},
        **extra,
    }


def write_study(folder, name="study.json", **fields):
    search = fields.pop("search", space())
    study = {"name": "lat", "description": "test", "dataset": {"name": "digits", "max_train_images": 120, "max_val_images": 60},
             "scale": {"resolution": 16}, "recipe": {"epochs": 1, "batch_size": 40}, "num_samples": 4, "resources": {"cpus": 1},
             "search": search, **fields}
    path = folder / name
    path.write_text(json.dumps(study))
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "latency-cache"))


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    """The tiny space's latency table, measured once with a short protocol."""
    folder = tmp_path_factory.mktemp("table")
    path = write_study(folder)
    table = latency_space.build_space_table(str(path), [], QUICK, fit=3, holdout=2, part_run_time=0.002)
    return table.save(folder / "table.json")


def with_table(tmp_path, table_file, **search_fields):
    return write_study(tmp_path, search=space(latency_table=str(table_file), **search_fields))


# --- the table of a space -------------------------------------------------------------------------------------


def test_the_table_holds_every_part_any_draw_of_its_space_contains(table_file, tmp_path):
    table = LatencyTable.load(table_file)
    assert table.space == "tiny" and table.resolution == 16 and table.num_classes == 10
    assert len(table.fit) == 3 and len(table.holdout) == 2 and table.problems(16, 10) == []
    kinds = {key.split()[0] for key in table.parts}
    assert kinds == {"stem", "block", "head", "classifier"}
    study, _ = load_study(write_study(tmp_path, num_samples=40, search=space(constraints={"num_classes": 10})))
    context = SearchContext(study, tmp_path / "study.json")
    candidates, _ = sample_candidates(context, 40)
    assert len(candidates) == 40
    for candidate in candidates:
        assert table.predict(context.network(candidate), 16, 10).timed_now == 0  # nothing left to time


def test_a_space_too_large_to_list_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(latency_space, "MAX_TABLE_NETWORKS", 10)
    path = write_study(tmp_path)
    with pytest.raises(ConfigError, match="narrow the choices"):
        latency_space.build_space_table(str(path), [], QUICK)


# --- refusals ----------------------------------------------------------------------------------------------------


def test_a_latency_budget_needs_a_table_that_describes_this_machine(tmp_path, table_file):
    with pytest.raises(ConfigError, match=r"search\.latency_table: constraints\.latency_ms needs a latency table"):
        load_study(write_study(tmp_path, search=space(constraints={"num_classes": 10, "latency_ms": {"max": 1}})))
    with pytest.raises(ConfigError, match=r"search\.latency_table: the latency_ms objective needs a latency table"):
        load_study(write_study(tmp_path, search=space(objectives=["val_top1", "latency_ms"])))

    def refusal(path):
        study, _ = load_study(path)
        with pytest.raises(ConfigError) as info:
            SearchContext(study, path)
        return info.value.lines

    lines = refusal(with_table(tmp_path, tmp_path / "nowhere.json"))
    assert any("search.latency_table: " in line and "latency table not found" in line and "workbench latency table" in line
               for line in lines), lines
    moved = json.loads(table_file.read_text())
    moved["identity"]["device_name"] = "cpu: a faster processor (96 logical cores)"
    (tmp_path / "other.json").write_text(json.dumps(moved))
    lines = refusal(with_table(tmp_path, tmp_path / "other.json"))
    assert any("search.latency_table" in line and "a faster processor" in line for line in lines), lines
    path = write_study(tmp_path, scale={"resolution": 24}, search=space(latency_table=str(table_file)))
    assert any("16 px inputs, and the study counts at 24 px" in line for line in refusal(path))
    path = write_study(tmp_path, algorithm="optuna", scheduler={"name": "asha"},
                       search=space(latency_table=str(table_file), objectives=["val_top1", "latency_ms"]))
    assert any("scheduler.name: asha" in line for line in refusal(path))


# --- the budget before training -----------------------------------------------------------------------------------


def test_rejection_sampling_keeps_the_predicted_latency_within_the_budget(tmp_path, table_file):
    # The measured parts replaced by fixed figures, so that which draws the budget rejects is the same every run.
    data = json.loads(table_file.read_text())
    data["parts"] = {key: 0.01 + int(hashlib.sha256(key.encode()).hexdigest(), 16) % 1000 / 1e5 for key in data["parts"]}
    table_file = tmp_path / "fixed.json"
    table_file.write_text(json.dumps(data))
    table = LatencyTable.load(table_file)
    free, _ = load_study(with_table(tmp_path, table_file))
    context = SearchContext(free, tmp_path / "study.json")
    predicted = sorted(c.latency_ms for c in sample_candidates(context, 12)[0])
    budget = predicted[3]  # four of the first twelve draws within it
    path = with_table(tmp_path, table_file, constraints={"flops": {"max": 2e6}, "num_classes": 10, "latency_ms": {"max": budget}})
    study, _ = load_study(path)
    sampling = sample_space(study, path)
    assert sampling.report.rejected["latency_above_max"] > 0
    for trial in sampling.trials():
        search = trial.record()["search"]
        assert search["latency_ms"] <= budget and search["latency_table"] == str(table_file)
        assert search["latency_ms"] == pytest.approx(table.predict(context.network(
            next(c for c in sampling.candidates if c.key == json.dumps(trial.hparams, sort_keys=True))), 16, 10).ms)
        assert "Predicted latency" in trial.job["architecture"]["description"]
    write_report(tmp_path, sampling.context, sampling.report)
    record = json.loads((tmp_path / "search.json").read_text())["latency"]
    assert record["budget"] == {"min": None, "max": budget} and record["protocol"]["rounds"] == 1


def test_reports_carry_the_architectures_costs():
    record = {"search": {"params": 1000, "flops": 2000, "latency_ms": 0.5, "choices": {}}}
    assert architecture_costs(record) == {"params": 1000, "flops": 2000, "latency_ms": 0.5}
    assert architecture_costs({"search": {"params": 5}}) == {"params": 5} and architecture_costs({}) == {}


# --- several objectives ----------------------------------------------------------------------------------------


def test_the_multi_objective_searcher_is_nsga2_within_the_budget(tmp_path, table_file):
    from optuna.samplers import NSGAIISampler
    from optuna.trial import TrialState

    from workbench.study.optuna import OptunaContext, make_searcher, objectives, tell_finished

    path = write_study(tmp_path, algorithm="optuna", num_samples=6, search=space(
        latency_table=str(table_file), objectives=["val_top1", "latency_ms"],
        constraints={"flops": {"max": 1.6e6}, "num_classes": 10}))
    study, _ = load_study(path)
    metric, mode = objectives(study)
    assert metric == ["val_top1", "latency_ms"] and mode == ["max", "min"]
    optuna = OptunaContext.of(study, path)
    searcher = make_searcher(study, optuna, tmp_path, metric=metric, mode=mode, seed=0)
    assert isinstance(searcher._ot_study.sampler, NSGAIISampler) and searcher._ot_study.directions[1].name == "MINIMIZE"
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        candidate = optuna.search.candidate(*optuna.search.split(config))
        assert candidate.within_budget and candidate.latency_ms is not None
        searcher.on_trial_complete(f"t{i}", {"val_top1": 0.5 + i / 100, "latency_ms": candidate.latency_ms, "finished": 1.0})
        assert searcher.known[candidate.key] == [0.5 + i / 100, candidate.latency_ms]
    complete = [t for t in searcher._ot_study.trials if t.state == TrialState.COMPLETE and not any(v > 0 for v in t.constraints.values())]
    assert len(complete) == 6 and all(len(t.values) == 2 for t in complete)
    infeasible = [t for t in searcher._ot_study.trials if any(v > 0 for v in t.constraints.values())]
    assert all(t.values == [-1e9, 1e9] for t in infeasible)  # the worst of each direction
    trial_folder = tmp_path / "trials" / "x"
    trial_folder.mkdir(parents=True)
    assert tell_finished(searcher, trial_folder, config, "val_top1", [0.9, 0.4])  # a resumed study's earlier trial
    assert searcher._ot_study.trials[-1].values == [0.9, 0.4]


# --- after training -------------------------------------------------------------------------------------------


def test_budget_verdicts_allow_five_percent():
    verdict = latency_space.budget_verdict
    assert verdict(0.9, {"max": 1.0}) == "within" and verdict(1.04, {"max": 1.0}) == "tolerance"
    assert verdict(1.06, {"max": 1.0}) == "over" and verdict(0.5, {"min": 0.6, "max": 1}) == "over"
    assert verdict(0.58, {"min": 0.6}) == "tolerance" and verdict(2.0, None) is None


def test_hypervolume_of_a_planted_front():
    def arch(i, cost, accuracy):
        return Sampled(study="s", space="t", arch_id=f"a{i}", choices={}, params=1, flops=cost * 1e6, accuracy=accuracy, value=accuracy,
                       reward=None, seeds=1, train_ms_per_image=None, file=None, latency_ms=cost)

    archs = [arch(0, 1.0, 0.5), arch(1, 2.0, 0.8), arch(2, 3.0, 0.7), arch(3, 4.0, 0.9)]
    area, reference = hypervolume(archs, "latency", higher=True, max_cost=3.0)
    assert reference == (3.0, 0.0) and area == pytest.approx(0.5 * 1 + 0.8 * 1)  # a3 lies beyond the budget
    area, reference = hypervolume(archs, "latency", higher=True)
    assert reference == (4.0, 0.0) and area == pytest.approx(0.5 + 0.8 + 0.8)
    area, _ = hypervolume(archs, "flops", higher=True, divisor=1e6)
    assert area == pytest.approx(0.5 + 0.8 + 0.8)


# --- one search on Ray Tune ------------------------------------------------------------------------------------


@pytest.fixture
def private_ray(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "local")


def test_a_latency_budgeted_multi_objective_search_measures_what_it_trained(tmp_path, workbench_cli, private_ray):
    study = write_study(tmp_path, algorithm="optuna", num_samples=3,
                        search=space(latency_table="table.json", objectives=["val_top1", "latency_ms"]))
    quick = ["--rounds", "1", "--warmup", "1", "--min-run-time", "0.005", "--part-run-time", "0.002", "--fit", "3", "--holdout", "2"]
    code, out, err = workbench_cli("latency", "table", study, *quick)
    assert code == 0 and (tmp_path / "table.json").is_file() and "wrote" in out, err
    table = LatencyTable.load(tmp_path / "table.json")
    context = SearchContext(load_study(study)[0], study)
    predicted = sorted(c.latency_ms for c in sample_candidates(context, 10)[0])
    budget = predicted[len(predicted) // 2]
    data = json.loads(study.read_text())
    data["search"]["constraints"]["latency_ms"] = {"max": budget}
    study.write_text(json.dumps(data))

    code, out, err = workbench_cli("search", "run", study, "--out", tmp_path / "res", "--no-live")
    assert code == 0, out + err
    trials = [json.loads(p.read_text()) for p in sorted((tmp_path / "res/trials").glob("*/trial.json"))]
    assert len(trials) == 3 and all(t["search"]["latency_ms"] <= budget for t in trials)
    measured = json.loads((tmp_path / "res/latency.json").read_text())
    rows = measured["architectures"]
    assert set(rows) == {t["search"]["architecture_id"] for t in trials} and measured["budget"]["max"] == budget
    for trial in trials:
        row = rows[trial["search"]["architecture_id"]]
        assert row["predicted_ms"] == trial["search"]["latency_ms"] and row["median_ms"] > 0
        assert row["budget"] in ("within", "tolerance", "over") and row["resolution"] == 16
    assert measured["identity"] == table.identity and "latency measured after training" in out and "budget ≤" in out

    code, out, err = workbench_cli("search", "analyze", tmp_path / "res", "--bootstrap", "50")
    assert code == 0, err
    assert "predicted vs measured on 3 architectures" in out and "hypervolume" in out
    assert (tmp_path / "res/analysis/pareto_latency.png").stat().st_size > 0
