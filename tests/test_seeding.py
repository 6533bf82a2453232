"""Adaptive seeds without training: the rounds planned from trial folders (re-planning after a kill gives the same
round), the results table replaying the same rule, schema refusals, and paired seeds across a study's variants."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tests.fixtures_results import write_trial
from workbench import sequential
from workbench.errors import ConfigError
from workbench.results import compare, reader, tables
from workbench.study import seeding
from workbench.study.runner import prepare
from workbench.study.trials import load_study
from workbench.trialdir import write_json

ARCH = str(ROOT / "architectures" / "v2s_all_fused.json")
ADAPTIVE = {"initial": 2, "max": 4, "min_effect": 1.0}


def write_study(tmp_path, seeds=ADAPTIVE, **fields) -> str:
    study = {"name": "adaptive", "description": "test", "dataset": {"name": "digits"},
             "scale": {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16}, "recipe": {"epochs": 1},
             "variants": [{"name": "base", "architecture": ARCH},
                          {"name": "same", "architecture": ARCH},
                          {"name": "other", "architecture": ARCH, "override": {"recipe.optimizer.lr": 0.02}}],
             "baseline": "base", "seeds": seeds}
    study.update(fields)
    path = tmp_path / "adaptive.json"
    path.write_text(json.dumps(study))
    return str(path)


def finish(folder, trial, value: float, status: str = "completed") -> None:
    """A trial folder as the trainer leaves it: one epoch, best val top-1 `value` (`running`: killed mid-run)."""
    write_trial(folder / "trials" / trial.trial_id, variant=trial.variant, seed=trial.seed, val_top1=[value],
                hparams=trial.hparams, study="adaptive", status=status)


def ids(trials) -> list[str]:
    return [t.trial_id for t in trials]


# per-seed best val top-1: `same` equals the baseline at every seed (an identical configuration, deterministic
# training); `other` differs by a noisy amount that two to four seeds cannot decide at this alpha
RESULTS = {"base": [0.80, 0.84, 0.82, 0.86], "same": [0.80, 0.84, 0.82, 0.86], "other": [0.70, 0.79, 0.81, 0.77]}


def test_rounds_follow_the_finished_trials_and_replanning_continues_the_same_round(tmp_path):
    prepared = prepare(write_study(tmp_path), out=str(tmp_path / "res"))
    folder, trials = prepared.folder, prepared.trials
    assert len(trials) == 3 * 4  # every trial up to max seeds, validated before anything runs
    write_json(folder / "study.json", prepared.resolved)
    by_id = {t.trial_id: t for t in trials}

    first = seeding.next_round(prepared.study, trials, folder)
    assert ids(first.trials) == ["base-s0", "base-s1", "same-s0", "same-s1", "other-s0", "other-s1"]
    for trial in first.trials:
        finish(folder, trial, RESULTS[trial.variant][trial.seed])

    second = seeding.next_round(prepared.study, trials, folder)
    assert second.verdicts() == {"same": "equivalent", "other": "open"}
    assert ids(second.trials) == ["base-s2", "other-s2"]  # `same` stopped at its first look
    # the planner is a function of the folders: asked again (a re-run after kill -9), it proposes the same round
    assert ids(seeding.next_round(prepared.study, trials, folder).trials) == ids(second.trials)

    # killed mid-round: other-s2 finished, base-s2 still says running; the round continues with base-s2 alone
    finish(folder, by_id["other-s2"], RESULTS["other"][2])
    finish(folder, by_id["base-s2"], 0.5, status="running")
    assert ids(seeding.next_round(prepared.study, trials, folder).trials) == ["base-s2"]
    finish(folder, by_id["base-s2"], RESULTS["base"][2])

    third = seeding.next_round(prepared.study, trials, folder)
    assert ids(third.trials) == ["base-s3", "other-s3"]
    for trial in third.trials:
        finish(folder, trial, RESULTS[trial.variant][trial.seed])
    last = seeding.next_round(prepared.study, trials, folder)
    assert last.done and last.verdicts() == {"same": "equivalent", "other": "open"}  # `other` reached max seeds

    # the table replays the rule on the same folders: the same verdicts, each row between initial and max seeds
    result = compare.compare(reader.load([folder]))
    rows = {r["variant"]: r for r in result.rows()}
    assert (rows["base"]["n"], rows["same"]["n"], rows["other"]["n"]) == (4, 2, 4)
    assert (rows["same"]["verdict"], rows["other"]["verdict"]) == ("equivalent", "open")
    assert rows["other"]["test"] == "paired" and rows["other"]["pairs"] == 4
    text = tables.markdown(result)
    assert "adaptive seeds ran 10 trials; 4 seeds for each of its 3 variants would be 12: 2 saved (17 %)" in text
    assert sequential.SPENDING_NAME in text and "seq. paired (4)" in text


def test_a_failed_trial_completes_its_round_without_a_value(tmp_path):
    prepared = prepare(write_study(tmp_path), out=str(tmp_path / "res"))
    folder, trials = prepared.folder, prepared.trials
    first = seeding.next_round(prepared.study, trials, folder)
    for trial in first.trials:
        failed = trial.trial_id == "other-s1"
        finish(folder, trial, RESULTS[trial.variant][trial.seed], status="failed" if failed else "completed")
    # other has one pair at its first look: no test, still open; the next round asks for seed 2, not seed 1 again
    assert ids(seeding.next_round(prepared.study, trials, folder).trials) == ["base-s2", "other-s2"]


def test_sequential_p_values_only_fall_as_looks_are_added():
    """A decided row stays decided: each look adds a term to the min of p / share."""
    design = sequential.Design(alpha=0.05, min_effect=0.01, initial=3, max=8)
    assert sum(design.share(k) for k in design.looks) == pytest.approx(1.0)
    base = {s: 0.80 + 0.01 * (s % 3) for s in range(8)}
    row = {s: base[s] + 0.03 + 0.002 * ((s * 7) % 5) for s in range(8)}
    previous = 1.0
    for seeds in range(3, 9):
        looks = sequential.looks_of({s: row[s] for s in range(seeds)}, base, design)
        assert looks.complete == seeds and len(looks.looks) == seeds - 2
        assert looks.p <= previous
        previous = looks.p


@pytest.mark.parametrize("fields, where, message", [
    ({"algorithm": "optuna", "variants": [{"name": "base", "architecture": ARCH}],
      "space": {"recipe.optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}}, "seeds", "optuna proposes"),
    ({"scheduler": {"name": "asha"}}, "scheduler.name", "use fifo"),
    ({"variants": [{"name": "base", "architecture": ARCH}]}, "seeds", "at least one other variant"),
    ({"seeds": {"initial": 4, "max": 3}}, "seeds", "max (3) is below initial (4)"),
    ({"seeds": {"initial": 1, "max": 3}}, "seeds.adaptive.initial", "greater than or equal to 2"),
])
def test_adaptive_seeds_are_refused_where_they_cannot_work(tmp_path, fields, where, message):
    with pytest.raises(ConfigError) as info:
        load_study(write_study(tmp_path, **fields))
    assert any(field.startswith(where) and message in text for field, text in info.value.errors), info.value.errors


def test_adaptive_seeds_with_a_search_are_refused(tmp_path):
    search = json.loads((ROOT / "studies" / "search_v2s_space.json").read_text())
    search["seeds"] = ADAPTIVE
    path = tmp_path / "search.json"
    path.write_text(json.dumps(search).replace('"../', f'"{ROOT}/'))
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert any(field == "seeds" and "a search samples" in text for field, text in info.value.errors)


def test_the_variants_of_a_study_train_on_the_same_data_draws_at_each_seed(tmp_path):
    """Paired seeds from the study's side: a trial's data split (dataset.split_seed), its data order and every
    augmentation draw (from recipe.seed, tests/test_train.py checks the batches) are the same in every variant."""
    prepared = prepare(write_study(tmp_path, seeds=[0, 1]), out=str(tmp_path / "res"))
    for seed in (0, 1):
        jobs = [t.job for t in prepared.trials if t.seed == seed]
        assert len(jobs) == 3
        assert {j["recipe"]["seed"] for j in jobs} == {seed}
        assert all(j["dataset"] == jobs[0]["dataset"] for j in jobs)
        assert all(j["recipe"]["augment"] == jobs[0]["recipe"]["augment"] for j in jobs)


def test_a_row_without_a_complete_look_is_open_and_says_why(tmp_path):
    prepared = prepare(write_study(tmp_path), out=str(tmp_path / "res"))
    folder = prepared.folder
    write_json(folder / "study.json", prepared.resolved)
    by_id = {t.trial_id: t for t in prepared.trials}
    for trial_id in ("base-s0", "base-s1", "same-s0", "other-s0", "other-s1"):
        finish(folder, by_id[trial_id], RESULTS[by_id[trial_id].variant][by_id[trial_id].seed])
    result = compare.compare(reader.load([folder]))
    rows = {r["variant"]: r for r in result.rows()}
    assert rows["same"]["verdict"] == "open" and rows["other"]["test"] == "paired"
    assert "adaptive: same has no complete look yet (seeds 0-1 of it and of its baseline have not all ended): " \
           "open until they have" in result.notes
    # `same` finishes its first round; `other`, whose first look is complete and open, goes on with the baseline
    assert ids(seeding.next_round(prepared.study, prepared.trials, folder).trials) == ["base-s2", "same-s1", "other-s2"]
