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
from workbench.results.compare import Comparison
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


def headers(c: Comparison) -> list[str]:
    info = c.info
    delta_unit = f" ({info.delta_unit})" if info.delta_unit else ""
    cols = (["study"] if c.multi_study else []) + list(c.by) + ["n", trialdir.INCOMPLETE]
    if c.any_stopped:
        cols.append(stopped_header(c))
    cols += [COSTS["params"].header, _flops_unit(c)[1], info.best_header, info.header("final "),
             f"Δ {c.delta_on}{delta_unit}", f"{c.confidence * 100:g} % CI{delta_unit}", "p", "train time", "img/s"]
    return cols


def delta_cells(c: Comparison, g: Group) -> list[str]:
    """Δ, its confidence interval and p, in display units."""
    if g.is_baseline:
        return ["baseline", fmt.NONE, fmt.NONE]
    d = g.delta
    if d is None:
        return [fmt.NONE] * 3
    diff = fmt.signed(d.diff, c.info)
    if d.low is None:
        return [diff, NOT_ESTIMATED, fmt.NONE]
    return [diff, f"[{fmt.signed(d.low, c.info)}, {fmt.signed(d.high, c.info)}]", fmt.p_value(d.p)]


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
    parts += [
        f"values: mean ± sample std over seeds ({better} is better)",
        f"Δ: difference of the mean {c.delta_on} {c.info.label} to the baseline ({base_text}), in {c.info.delta_words}",
        f"CI: {c.confidence * 100:g} % Welch t interval of Δ (Welch–Satterthwaite dof), needs ≥ 2 seeds per group",
        "p: two-sided Welch t-test",
    ]
    return "; ".join(parts) + "."


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
    inc_col, n_col = cols.index(trialdir.INCOMPLETE), cols.index("n")
    for g, row in zip(c.groups, cells(c)):
        styled = [Text(cell) for cell in row]
        if len(g.incomplete):
            styled[inc_col].stylize("yellow")
        if g.best.n < 2:
            styled[n_col].stylize("red")
        if g.is_baseline:
            styled[delta_col].stylize("dim")
        elif g.delta is not None and g.delta.significant:
            good = (g.delta.diff > 0) == c.info.higher_is_better
            for i in (delta_col, delta_col + 1):
                styled[i].stylize("green" if good else "red")
        table.add_row(*styled)
    return table


def rich(c: Comparison, command: str | None = None, machine: str | None = None, notes: list[str] | None = None,
         wrap: bool = False):
    """A rich renderable; `wrap` (a terminal narrower than rich_width()) prints two-line records instead of
    columns, else no cell wraps."""
    from rich.console import Group as RichGroup
    from rich.text import Text

    lines = [Text(line, style="dim") for line in header_lines(c, command, machine, notes)]
    extra = [Text(line, style="yellow") for line in incomplete_lines(c)]
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
            d = delta_cells(c, g)
            delta = f"Δ {d[0]}{delta_unit} {d[1]} p{'' if d[2].startswith('<') else '='}{d[2]}"
        out.append(f"    best {fmt.mean_std(g.best, c.info)}{unit} · final {fmt.mean_std(g.final, c.info)}{unit} · "
                   f"{delta} · {fmt.duration(g.seconds.mean)} · {fmt.rate(g.images_per_s.mean)} img/s")
    return out


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def json_text(c: Comparison) -> str:
    payload = {
        "metric": c.metric, "by": c.by, "delta_on": c.delta_on, "confidence": c.confidence,
        "units": "fraction" if c.info.percent else "raw", "baselines": c.baselines, "rows": c.rows(),
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

