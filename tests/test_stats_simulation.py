"""The verdicts' error rates on synthetic studies: bench/bench_stats.py's simulation with fewer studies and a fixed
generator seed (so the numbers are the same every run), through workbench.sequential's rounds and
workbench.results.compare. The family-wise false-positive rate under the null stays at alpha = 0.05 within three
Monte-Carlo standard errors, where reading each row's own p would not; the adaptive rounds stop clear cases early."""

from __future__ import annotations

import gc
import importlib.util
import math
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from workbench import sequential

SPEC = importlib.util.spec_from_file_location("bench_stats", ROOT / "bench" / "bench_stats.py")
bench = importlib.util.module_from_spec(SPEC)
sys.modules.setdefault("bench_stats", bench)  # its dataclasses look their module up
SPEC.loader.exec_module(bench)
ADAPTIVE = {"initial": 3, "max": 8, "min_effect": 0.5, "alpha": 0.05}


@pytest.fixture(scope="module", autouse=True)
def frozen_heap():
    """statsmodels' Holm calls gc.collect() per table: freeze what the imports made, as the benchmark does."""
    import scipy.stats  # noqa: F401
    import statsmodels.stats.multitest  # noqa: F401

    gc.freeze()
    yield
    gc.unfreeze()


def bound(n: int, alpha: float = 0.05) -> float:
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / n)


def test_family_wise_false_positives_stay_at_alpha_with_fixed_seeds():
    rng = np.random.default_rng(15)
    for skewed, seeds, studies in ((False, 3, 600), (True, 5, 300)):
        null = bench.simulate(studies, 4, 0.0, skewed, rng, seeds=seeds)
        assert null.fwer <= bound(studies), (skewed, null.fwer)
        assert null.raw_fwer > bound(studies)  # four rows read alone: a false positive in about one study in six
    hit = bench.simulate(100, 4, 1.0 * bench.SIGMA, False, rng, seeds=10)
    assert hit.power > 0.5  # the bound is not met by never deciding


def test_family_wise_false_positives_stay_at_alpha_with_adaptive_seeds():
    rng = np.random.default_rng(16)
    design = sequential.Design.of(ADAPTIVE, "val_top1")
    null = bench.simulate(250, 4, 0.0, False, rng, design=design, seeds_spec=ADAPTIVE)
    assert null.fwer <= bound(250) < null.raw_fwer  # optional stopping would inflate the last look's own p
    assert null.mean_seeds > ADAPTIVE["initial"]  # undecided rows did get more seeds
    clear = bench.simulate(40, 4, 3.0 * bench.SIGMA, False, rng, design=design, seeds_spec=ADAPTIVE)
    assert clear.power == 1.0 and clear.mean_seeds < ADAPTIVE["max"] - 2  # clear cases stop well before max


def test_the_benchmark_prints_its_table(capsys):
    assert bench.main(["--studies", "3", "--variants", "2", "--max", "5", "--effects", "1"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("fixed", "adaptive"))]
    assert "FWER (null)" in out and "adaptive, 3 to 5 seeds" in lines[-1]
    assert len(lines) == 6 and all(line.count(" ± ") == 2 for line in lines)  # 3 settings x 2 noises: FWER, power


def test_the_simulation_reads_like_trial_folders_through_the_cli(tmp_path, workbench_cli):
    """The benchmark builds its studies in memory; written as trial folders and read by `workbench results compare`,
    the same values give the same verdicts, fixed and adaptive."""
    import json

    from tests.fixtures_results import write_trial

    rng = np.random.default_rng(17)
    design = sequential.Design.of(ADAPTIVE, "val_top1")
    seen = set()
    cases = [(list(range(4)), 0.0), (ADAPTIVE, 0.0), (ADAPTIVE, 4.0 * bench.SIGMA), (list(range(4)), 4.0 * bench.SIGMA)]
    for index, (spec, effect) in enumerate(cases):
        values = bench.draw(rng, 3, 4 if isinstance(spec, list) else ADAPTIVE["max"], effect, False)
        run = bench.fixed(values) if isinstance(spec, list) else bench.adaptive(values, design)
        folder = tmp_path / f"sim{index}"
        (folder / "trials").mkdir(parents=True)
        (folder / "study.json").write_text(json.dumps({"name": "sim", "baseline": bench.BASELINE, "seeds": spec,
                                                       "variants": [{"name": v} for v in run]}))
        for variant, by_seed in run.items():
            for seed, value in by_seed.items():
                write_trial(folder / "trials" / f"{variant}-s{seed}", variant=variant, seed=seed, val_top1=[value],
                            study="sim")
        code, out, err = workbench_cli("results", "compare", folder, "--format", "json")
        assert code == 0, err
        shown = [r["verdict"] for r in json.loads(out)["rows"] if not r["is_baseline"]]
        assert shown == bench.verdicts_of(run, spec, 0.05)[0]
        seen.update(shown)
    assert seen == {"open", "better"}
