"""The text of a comparison (workbench.results.compare): a rich table, markdown, csv and json.

Human tables show accuracies in % and differences in percentage points (workbench.results.metrics decides), with
a legend that says what the columns mean; csv and json hold the raw rows in stored units.
"""

from __future__ import annotations

import datetime
import io
import json
from typing import Any

from workbench import trialdir
from workbench.results import format as fmt
from workbench import sequential
from workbench.results import stats
from workbench.results.compare import AdaptiveRun, Comparison
from workbench.results.groups import Group
from workbench.results.metrics import COSTS, flops_unit

NOT_ESTIMATED = "n/a (needs ≥ 2 seeds)"


def title(c: Comparison) -> str:
    return f"{c.info.label} by {', '.join(c.by)}"


def stopped_header(c: Comparison) -> str:
    """'diverged/failed' style header naming the stopped states present."""
    return "/".join(c.stopped_states()) or "stopped"


def _flops_unit(c: Comparison) -> tuple[float, str]:
    return flops_unit([v for g in c.groups for v in g.flops])


VERDICT_STYLE = {"better": "green", "worse": "red", "equivalent": "cyan", "open": "yellow"}


def headers(c: Comparison) -> list[str]:
    info = c.info
    delta_unit = f" ({info.delta_unit})" if info.delta_unit else ""
    cols = (["study"] if c.multi_study else []) + list(c.by) + ["n", trialdir.INCOMPLETE]
    if c.any_stopped:
        cols.append(stopped_header(c))
    cols += [COSTS["params"].header, _flops_unit(c)[1], info.best_header, info.header("final "),
             f"Δ {c.delta_on}{delta_unit}", f"{c.confidence * 100:g} % CI{delta_unit}", "test", "p", "p Holm",
             f"g ({c.confidence * 100:g} % CI)", "seeds needed", "verdict", "train time", "img/s"]
    return cols


DELTA_CELLS = 8  # Δ, CI, test, p, p Holm, g, seeds needed, verdict


def delta_cells(c: Comparison, g: Group) -> list[str]:
    """Δ, its confidence interval, the test, p, Holm's p, Hedges' g, seeds needed and the verdict, in display units."""
    if g.is_baseline:
        return ["baseline"] + [fmt.NONE] * (DELTA_CELLS - 1)
    d = g.delta
    if d is None:
        return [fmt.NONE] * DELTA_CELLS
    diff = fmt.signed(d.diff, c.info)
    interval = NOT_ESTIMATED if d.low is None else f"[{fmt.signed(d.low, c.info)}, {fmt.signed(d.high, c.info)}]"
    v = g.verdict
    return [diff, interval, test_name(g), fmt.p_value(d.p), fmt.p_value(None if v is None else v.p_holm),
            fmt.effect(g.effect), fmt.seeds_needed(g.seeds_needed, stats.MAX_SEEDS), c.verdict_word(g) or fmt.NONE]


def test_name(g: Group) -> str:
    """'paired (5)': the pairs of seeds; 'Welch'; 'seq. paired (5)' for a row judged on an adaptive study's looks."""
    d = g.delta
    if d is None or d.low is None:  # fewer than two seeds (pairs): no test
        return fmt.NONE
    name = f"paired ({d.pairs})" if d.method == "paired" else "Welch"
    return f"seq. {name}" if g.sequential else name


def cells(c: Comparison) -> list[list[str]]:
    divisor = _flops_unit(c)[0]
    out = []
    for g in c.groups:
        row = ([g.study] if c.multi_study else []) + [fmt.group_value(v) for v in g.key]
        row += [str(g.best.n), str(len(g.incomplete))]
        if c.any_stopped:
            row.append(str(len(g.stopped)))
        row += [fmt.value_range(g.params, COSTS["params"].divisor), fmt.value_range(g.flops, divisor),
                fmt.mean_std(g.best, c.info), fmt.mean_std(g.final, c.info)]
        row += delta_cells(c, g)
        row += [fmt.duration(g.seconds.mean), fmt.rate(g.images_per_s.mean)]
        out.append(row)
    return out


def legend(c: Comparison) -> str:
    base = sorted({v for v in c.baselines.values() if v})
    base_text = ", ".join(f"`{b}`" for b in base) if base else "none"
    if c.paired_on:
        base_text += f" at the same {', '.join(c.paired_on)}"
    better = "lower" if c.info.lower_is_better else "higher"
    parts = [
        "n: finished seeds averaged (completed or early-stopped); incomplete: killed, still running or "
        "half-written trials, counted but not averaged",
    ]
    if c.any_stopped:
        parts.append(f"{stopped_header(c)}: trials that diverged, failed or were pruned by the scheduler, "
                     "counted but not averaged")
    level = f"{c.confidence * 100:g} %"
    parts += [
        f"values: mean ± sample std over seeds ({better} is better)",
        f"Δ: difference of the mean {c.delta_on} {c.info.label} to the baseline ({base_text}), in {c.info.delta_words}; "
        "for a paired row the mean of the per-seed differences over the seeds both rows ran",
        f"CI: {level} t interval of Δ: paired t (scipy's ttest_rel) where the seeds pair up (one finished trial per "
        "seed in both rows; a seed fixes the data order and every augmentation draw in every variant, so the "
        "per-seed difference removes that shared noise), else the Welch t interval (Welch–Satterthwaite dof); "
        "test names which, with the number of pairs; needs ≥ 2 seeds (pairs)",
        "p: two-sided p of that test, this row alone",
        f"p Holm: p adjusted by Holm's method across the {c.tested} {'row' if c.tested == 1 else 'rows'} compared "
        "(statsmodels' multipletests; a row without a p counts as p = 1), which bounds the chance that any row "
        "looks significant by luck",
        f"g: Hedges' g, Δ over the pooled seed-to-seed std of the two rows (small-sample corrected), with its {level} "
        "noncentral-t interval",
        f"seeds needed: seeds (pairs for a paired row) a fixed-seed study needs for {stats.POWER * 100:g} % power to detect "
        f"{_effect_text(c)}, two-sided at α/m = {c.alpha:g}/{max(1, c.tested)} (Bonferroni, a bound for Holm)",
        f"verdict: better / worse where p Holm ≤ α = {c.alpha:g}; equivalent where the equivalence interval (two "
        f"one-sided tests at α/m) lies inside ±{_min_effect_text(c)}; else open",
    ]
    parts += [sequential_text(run, c) for run in c.adaptive]
    return "; ".join(parts) + "."


def _effect_text(c: Comparison) -> str:
    if c.min_effect is not None:
        return f"a difference of {_min_effect_text(c)}"
    studies = [run for run in c.adaptive if run.design.min_effect is not None]
    if studies:
        return f"the study's min_effect ({fmt.magnitude(studies[0].design.min_effect, c.info)})"
    return "the observed Δ"


def _min_effect_text(c: Comparison) -> str:
    effect = c.min_effect if c.min_effect is not None else next(
        (run.design.min_effect for run in c.adaptive if run.design.min_effect is not None), None)
    return "min_effect (none given: --min-effect)" if effect is None else fmt.magnitude(effect, c.info)


def sequential_text(run: AdaptiveRun, c: Comparison) -> str:
    """The footnote of a study run with adaptive seeds: its design and the sequential method its verdicts use."""
    d = run.design
    effect = "" if d.min_effect is None else f", min_effect {fmt.magnitude(d.min_effect, c.info)}"
    return (f"{run.study}: adaptive seeds ({d.initial} to {d.max} per variant{effect}, α {d.alpha:g}): after each "
            "round a row whose verdict is decided stopped, the undecided ones and the baseline ran one more seed; "
            f"its rows marked 'seq.' are judged on every look (the first {d.initial} seeds, then each added one) by "
            f"{sequential.SPENDING_NAME}: the look of k seeds spends α·((k/{d.max})² − ((k−1)/{d.max})²) "
            f"(α·({d.initial}/{d.max})² at the first), p Holm is Holm's adjustment of each row's min over looks of "
            "p / share, and the equivalence interval intersects the looks' intervals, so the verdicts stay valid "
            "under this optional stopping (p and CI are those of the last look alone, which it does not cover)")


def adaptive_lines(c: Comparison) -> list[str]:
    """How many trials adaptive seeding ran, and how many max seeds everywhere would have run."""
    lines = []
    for run in c.adaptive:
        share = f" ({run.saved / run.at_max * 100:.0f} %)" if run.at_max else ""
        lines.append(f"{run.study}: adaptive seeds ran {run.trials} trials; {run.design.max} seeds for each of its "
                     f"{run.configurations} variants would be {run.at_max}: {run.saved} saved{share}")
    return lines


def header_lines(c: Comparison, command: str | None = None, machine: str | None = None,
                 notes: list[str] | None = None) -> list[str]:
    """Study, dataset, metric and grouping; the machine; the command that reproduces the table; the date."""
    studies = sorted({g.study for g in c.groups})
    datasets = sorted({str(t.config.get("dataset", {}).get("name")) for g in c.groups for t in g.trials
                       if isinstance(t.config.get("dataset"), dict) and t.config["dataset"].get("name")})
    machines = [machine] if machine else sorted({m for s in c.studies if (m := s.machine())})
    lines = [f"Study: {', '.join(studies)}" + (f" · dataset: {', '.join(datasets)}" if datasets else "")
             + f" · metric: {c.metric} · by: {', '.join(c.by)}"]
    if machines:
        lines.append(f"Machine: {'; '.join(machines)}")
    if command:
        lines.append(f"Command: `{command}`")
    lines.append(f"Generated: {datetime.date.today().isoformat()}")
    lines.extend(notes or [])
    return lines


def incomplete_lines(c: Comparison) -> list[str]:
    """One line per trial counted but not averaged, and the comparison's notes."""
    lines = [f"{trialdir.INCOMPLETE}: {t.study}/{t.trial_id} ({t.variant}, seed {fmt.seed(t.seed)}): {t.reason}"
             for t in c.incomplete_trials()]
    lines += [f"{t.state}: {t.study}/{t.trial_id} ({t.variant}, seed {fmt.seed(t.seed)})"
              + (f": {t.reason}" if t.reason else "") for t in c.stopped_trials()]
    return lines + c.notes


def markdown(c: Comparison, command: str | None = None, machine: str | None = None,
             notes: list[str] | None = None) -> str:
    cols = headers(c)
    left = {i for i, h in enumerate(cols) if h == "study" or h in c.by}
    out = [f"### {title(c)}", ""]
    out += [line + "  " for line in header_lines(c, command, machine, notes)]
    out.append("")
    out += fmt.md_table(cols, cells(c), left)
    out.append("")
    out.append(f"_{legend(c)}_")
    if c.adaptive:
        out.append("")
        out += [line + "  " for line in adaptive_lines(c)]
    extra = incomplete_lines(c)
    if extra:
        out.append("")
        out += [f"- {fmt.md_escape(line)}" for line in extra]
    return "\n".join(out) + "\n"


def rich_width(c: Comparison) -> int:
    """Characters a table row needs when no cell wraps."""
    cols, body = headers(c), cells(c)
    widths = [max([len(w) for w in fmt.two_lines(h).split("\n")] + [len(r[i]) for r in body]) for i, h in enumerate(cols)]
    return sum(widths) + 3 * len(widths) + 1


def _rich_table(c: Comparison, wrap: bool):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title(c), caption=legend(c), caption_justify="left", header_style="bold")
    cols = headers(c)
    for h in cols:
        table.add_column(fmt.two_lines(h), justify="left" if h == "study" or h in c.by else "right",
                         overflow="fold", no_wrap=not wrap)
    delta_col = next(i for i, h in enumerate(cols) if h.startswith("Δ"))
    inc_col, n_col, verdict_col = cols.index(trialdir.INCOMPLETE), cols.index("n"), cols.index("verdict")
    for g, row in zip(c.groups, cells(c)):
        styled = [Text(cell) for cell in row]
        if len(g.incomplete):
            styled[inc_col].stylize("yellow")
        if g.best.n < 2:
            styled[n_col].stylize("red")
        word = c.verdict_word(g)
        if g.is_baseline:
            styled[delta_col].stylize("dim")
        elif word in ("better", "worse"):  # the family-wise verdict, not a row's own interval
            for i in (delta_col, delta_col + 1):
                styled[i].stylize(VERDICT_STYLE[word])
        if word:
            styled[verdict_col].stylize(VERDICT_STYLE[word])
        table.add_row(*styled)
    return table


def rich(c: Comparison, command: str | None = None, machine: str | None = None, notes: list[str] | None = None,
         wrap: bool = False):
    """A rich renderable; `wrap` (a terminal narrower than rich_width()) prints two-line records instead of
    columns, else no cell wraps."""
    from rich.console import Group as RichGroup
    from rich.text import Text

    lines = [Text(line, style="dim") for line in header_lines(c, command, machine, notes)]
    extra = [Text(line, style="bold") for line in adaptive_lines(c)]
    extra += [Text(line, style="yellow") for line in incomplete_lines(c)]
    if wrap:
        body = [Text.from_markup(line) for line in records(c)]
        return RichGroup(*lines, Text(""), *body, Text(""), Text(legend(c), style="dim italic"), *extra)
    return RichGroup(*lines, _rich_table(c, wrap), *extra)


def records(c: Comparison) -> list[str]:
    """The table as two-line records, for terminals too narrow for its columns (rich markup)."""
    unit = f" {c.info.unit}" if c.info.unit else ""
    delta_unit = f" {c.info.delta_unit}" if c.info.delta_unit else ""
    divisor, flops_name = _flops_unit(c)
    out = []
    for g in c.groups:
        counts = [f"n={g.best.n}"]
        if g.incomplete:
            counts.append(f"[yellow]{len(g.incomplete)} {trialdir.INCOMPLETE}[/yellow]")
        if g.stopped:
            counts.append(f"[red]{len(g.stopped)} {stopped_header(c)}[/red]")
        cost = (f"{fmt.value_range(g.params, COSTS['params'].divisor)} M params · "
                f"{fmt.value_range(g.flops, divisor)} {flops_name}")
        out.append(f"[bold]{g.name(c.multi_study)}[/bold]  {', '.join(counts)}  {cost}")
        if g.is_baseline:
            delta = "[dim]baseline[/dim]"
        elif g.delta is None:
            delta = "Δ —"
        else:
            diff, interval, test, p, holm, effect, needed, word = delta_cells(c, g)
            style = VERDICT_STYLE.get(word)
            delta = (f"Δ {diff}{delta_unit} {interval} {test} p{_eq(p)}{p} Holm{_eq(holm)}{holm} · g {effect} · "
                     f"{needed} seeds needed · " + (f"[{style}]{word}[/{style}]" if style else word))
        out.append(f"    best {fmt.mean_std(g.best, c.info)}{unit} · final {fmt.mean_std(g.final, c.info)}{unit} · "
                   f"{delta} · {fmt.duration(g.seconds.mean)} · {fmt.rate(g.images_per_s.mean)} img/s")
    return out


def _eq(cell: str) -> str:
    return "" if cell.startswith("<") else "="


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def json_text(c: Comparison) -> str:
    payload = {
        "metric": c.metric, "by": c.by, "delta_on": c.delta_on, "confidence": c.confidence,
        "units": "fraction" if c.info.percent else "raw", "baselines": c.baselines,
        "alpha": c.alpha, "rows_tested": c.tested, "min_effect": c.min_effect,
        "adaptive": [{"study": run.study, "initial": run.design.initial, "max": run.design.max,
                      "min_effect": run.design.min_effect, "alpha": run.design.alpha, "trials": run.trials,
                      "trials_at_max": run.at_max, "saved": run.saved, "method": sequential.SPENDING_NAME}
                     for run in c.adaptive],
        "rows": c.rows(),
        trialdir.INCOMPLETE: [{"study": t.study, "trial_id": t.trial_id, "variant": t.variant, "seed": t.seed,
                        "reason": t.reason} for t in c.incomplete_trials()],
        "stopped": [{"study": t.study, "trial_id": t.trial_id, "state": t.state, "reason": t.reason}
                    for t in c.stopped_trials()],
        "notes": c.notes,
    }
    return json.dumps(payload, indent=2, default=_json_default) + "\n"


def csv_text(c: Comparison) -> str:
    import pandas as pd

    frame = pd.DataFrame(c.rows())
    frame["seeds"] = frame["seeds"].map(lambda s: " ".join(str(v) for v in s))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()

