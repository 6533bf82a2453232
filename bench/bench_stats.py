"""Synthetic studies through the comparison and adaptive-seeding code: family-wise false positives, power, seeds used.

No training: each study has a baseline and --variants variants whose best val top-1 at seed s is
    0.80 + effect + seed_s + noise
with seed_s shared by every variant of the study (what paired seeds remove) and the noise independent, drawn from a
normal or a skewed distribution (an exponential, mirrored: now and then a seed ends far below the others). A
variant's seed-to-seed standard deviation is sigma = 1 pp, half of its variance shared by all variants at a seed. Fixed seeds: every variant runs --seeds seeds. Adaptive seeds: the rounds of
workbench.sequential.plan, the rule the study runner applies, reveal seeds --initial .. --max as it asks for them.
Every study then goes through workbench.results.compare (what `workbench results compare` computes) and its
verdicts are counted:

  FWER      under the null (no variant differs), the share of studies in which any row is marked better or worse:
            the goal is at most alpha = 0.05 plus Monte-Carlo error (raw p: the same for rows read alone, p <= alpha)
  power     every variant 1 sigma (and 3 sigmas) better: the share of rows marked better
  seeds     mean seeds per variant (baseline included); adaptive seeds save trials where this is below --max

    .venv/bin/python bench/bench_stats.py                       # 2,000 studies per line, 4 variants
    .venv/bin/python bench/bench_stats.py --studies 500 --variants 6 --initial 2 --max 8 --min-effect 1.0
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from workbench import sequential  # noqa: E402
from workbench.results import compare  # noqa: E402
from workbench.results.records import StudyRecord, TrialRecord  # noqa: E402

MEAN, SIGMA = 0.80, 0.01  # an accuracy of 80 % with 1 pp of seed-to-seed noise
SHARED = 0.5  # the share of that variance every variant has in common at a seed (the data order, the augmentation)
BASELINE = "base"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=2000, help="synthetic studies per line (default 2000)")
    p.add_argument("--variants", type=int, default=4, help="variants compared with the baseline (default 4)")
    p.add_argument("--seeds", type=int, default=3, help="fixed seeds per variant (default 3)")
    p.add_argument("--initial", type=int, default=3, help="adaptive seeds: first round (default 3)")
    p.add_argument("--max", type=int, default=10, help="adaptive seeds: the most per variant (default 10)")
    p.add_argument("--min-effect", type=float, default=0.5, help="adaptive seeds: min_effect in pp (default 0.5)")
    p.add_argument("--effects", default="1,3", help="non-null effects in sigmas, joined by ',' (default 1,3: a close "
                                                    "call and a clear one)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0, help="of the random generator (default 0)")
    return p.parse_args(argv)


# --- one synthetic study -------------------------------------------------------------------------------------


def draw(rng: np.random.Generator, variants: int, seeds: int, effect: float, skewed: bool) -> np.ndarray:
    """values[unit, seed]: unit 0 is the baseline; every other unit has `effect` (stored units) added."""
    shared = rng.normal(0.0, SIGMA * math.sqrt(SHARED), seeds)
    if skewed:  # mirrored exponential: mean 0, sd 1, skewness -2
        noise = 1.0 - rng.exponential(1.0, (variants + 1, seeds))
    else:
        noise = rng.normal(0.0, 1.0, (variants + 1, seeds))
    values = MEAN + shared + SIGMA * math.sqrt(1 - SHARED) * noise
    values[1:] += effect
    return values


def names(variants: int) -> list[str]:
    return [BASELINE] + [f"v{i}" for i in range(1, variants + 1)]


def record(values: dict[str, dict[int, float]], seeds_spec) -> StudyRecord:
    """The study as the results room reads it from trial folders: one finished trial per variant and seed."""
    trials = [TrialRecord(path=Path(f"sim/trials/{v}-s{s}"), study="sim", trial_id=f"{v}-s{s}", variant=v, seed=s,
                          hparams={}, space=None, config={},
                          status={"status": "completed", "best_val_top1": x, "final_val_top1": x}, metrics=[],
                          state="completed", reason=None)
              for v, by_seed in values.items() for s, x in sorted(by_seed.items())]
    spec = {"baseline": BASELINE, "variants": list(values), "seeds": seeds_spec}
    return StudyRecord(path=Path("sim"), name="sim", spec=spec, trials=trials)


def fixed(values: np.ndarray) -> dict[str, dict[int, float]]:
    return {name: {s: float(x) for s, x in enumerate(row)} for name, row in zip(names(len(values) - 1), values)}


def adaptive(values: np.ndarray, design: sequential.Design) -> dict[str, dict[int, float]]:
    """Run the rounds: reveal the seeds workbench.sequential.plan asks for until it asks for none."""
    units: list[dict[int, float | None]] = [{} for _ in values]
    baseline_of = [None] + [0] * (len(values) - 1)
    while True:
        wanted = sequential.plan(units, baseline_of, design).seeds
        new = [(u, s) for u, count in enumerate(wanted) for s in range(count) if s not in units[u]]
        if not new:
            break
        for u, s in new:
            units[u][s] = float(values[u, s])
    return {name: dict(seen) for name, seen in zip(names(len(values) - 1), units)}


@dataclass
class Tally:
    studies: int = 0
    any_false: int = 0  # studies with some row marked better or worse (under the null)
    any_raw: int = 0  # studies with some row's own p at most alpha: what reading each row alone would claim
    rows: int = 0
    better: int = 0
    equivalent: int = 0
    seeds: int = 0  # trials run
    units: int = 0

    def add(self, verdicts: list[str], raw: list[float | None], alpha: float, trials: int, units: int, null: bool) -> None:
        self.studies += 1
        self.any_false += null and any(v in ("better", "worse") for v in verdicts)
        self.any_raw += null and any(p is not None and p <= alpha for p in raw)
        self.rows += len(verdicts)
        self.better += sum(v == "better" for v in verdicts)
        self.equivalent += sum(v == "equivalent" for v in verdicts)
        self.seeds += trials
        self.units += units

    @property
    def fwer(self) -> float:
        return self.any_false / self.studies

    @property
    def raw_fwer(self) -> float:
        return self.any_raw / self.studies

    @property
    def power(self) -> float:
        return self.better / self.rows

    @property
    def mean_seeds(self) -> float:
        return self.seeds / self.units


def verdicts_of(values: dict[str, dict[int, float]], seeds_spec, alpha: float) -> tuple[list[str], list[float | None]]:
    """Each compared row's verdict, and its own p-value (the last look's alone)."""
    result = compare.compare([record(values, seeds_spec)], metric="val_top1", by="variant", confidence=1 - alpha,
                             effect_sizes=False)
    rows = [g for g in result.groups if not g.is_baseline]
    return [result.verdict_word(g) for g in rows], [g.delta.p if g.delta else None for g in rows]


def simulate(studies: int, variants: int, effect: float, skewed: bool, rng: np.random.Generator, *,
             seeds: int | None = None, design: sequential.Design | None = None, seeds_spec=None,
             alpha: float = 0.05) -> Tally:
    """`studies` synthetic studies with fixed `seeds`, or adaptive seeds by `design` (study.json's `seeds_spec`)."""
    tally = Tally()
    for _ in range(studies):
        values = draw(rng, variants, design.max if design else seeds, effect, skewed)
        run = adaptive(values, design) if design else fixed(values)
        trials = sum(len(v) for v in run.values())
        verdicts, raw = verdicts_of(run, seeds_spec if design else list(range(seeds)), alpha)
        tally.add(verdicts, raw, alpha, trials, len(run), null=effect == 0)
    return tally


def standard_error(rate: float, n: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-12) / n)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import scipy.stats  # noqa: F401  (imported before the freeze below)
    import statsmodels.stats.multitest  # noqa: F401

    gc.freeze()  # statsmodels' Holm calls gc.collect() each time: let it skip the objects of the imports
    rng = np.random.default_rng(args.seed)
    spec = {"initial": args.initial, "max": args.max, "min_effect": args.min_effect, "alpha": args.alpha}
    design = sequential.Design.of(spec, "val_top1")
    settings = [(f"fixed, {args.seeds} seeds", {"seeds": args.seeds}),
                (f"fixed, {args.max} seeds", {"seeds": args.max}),
                (f"adaptive, {args.initial} to {args.max} seeds", {"design": design, "seeds_spec": spec})]
    effects = [float(e) for e in args.effects.split(",") if e.strip()]
    print(f"{args.studies:,} synthetic studies per line: a baseline and {args.variants} variants, sigma 1 pp "
          f"(half its variance shared by all variants at a seed), alpha {args.alpha}, min_effect {args.min_effect} pp; "
          "under an effect every variant is that many sigmas better. ± is one Monte-Carlo standard error.")
    head = f"{'setting':<26} {'noise':<7} {'FWER (null)':>15} {'raw p':>6} {'seeds':>6}"
    for e in effects:
        head += f" {f'power at {e:g} sigma':>19} {'seeds':>6}"
    print(head)
    for name, options in settings:
        for skewed in (False, True):
            null = simulate(args.studies, args.variants, 0.0, skewed, rng, alpha=args.alpha, **options)
            line = (f"{name:<26} {'skewed' if skewed else 'normal':<7} "
                    f"{null.fwer:>7.3f} ± {standard_error(null.fwer, null.studies):.3f} {null.raw_fwer:>6.3f} "
                    f"{null.mean_seeds:>6.2f}")
            for e in effects:
                hit = simulate(args.studies, args.variants, e * SIGMA, skewed, rng, alpha=args.alpha, **options)
                line += f" {hit.power:>11.3f} ± {standard_error(hit.power, hit.rows):.3f} {hit.mean_seeds:>6.2f}"
            print(line, flush=True)
    print("raw p: the share of null studies in which some row's own p (its last look alone) is at most alpha, "
          "what reading each row by itself would claim; seeds: mean seeds per variant, baseline included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
