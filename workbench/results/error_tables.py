"""The tables of the per-example analysis (workbench.results.per_example): the hardest validation examples and the
errors of each group, as markdown, csv or rich renderables."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.results import format as fmt
from workbench.results.per_example import ErrorAnalysis

MAX_RATE_COLUMNS = 6  # one wrong-rate column per group, when there are no more groups than this
LEFT = ("group", "class", "most common wrong pred")  # left-aligned columns


@dataclass
class ErrorTables:
    title: str
    headers: list[str]
    rows: list[list[str]]
    legend: str
    summary_headers: list[str]
    summary_rows: list[list[str]]
    notes: list[str]


def _hardest_row(r, rate_columns: list[str]) -> list[str]:
    pred = fmt.NONE if r["common_wrong_pred"] is None else f"{r['common_wrong_pred']} ({r['common_wrong_share'] * 100:.0f}%)"
    confidence = r["wrong_confidence"]
    conf = fmt.NONE if confidence is None or confidence != confidence else f"{confidence:.2f}"  # None or NaN
    return ([str(int(r["rank"])), str(int(r["index"])), str(r["class"]), f"{r['wrong_rate'] * 100:.0f}",
             f"{int(r['groups_wrong'])}/{int(r['groups'])}", pred, conf] + [f"{r[c] * 100:.0f}" for c in rate_columns])


def _legend(analysis: ErrorAnalysis) -> str:
    overall = analysis.overall()
    return (f"{overall['examples']} validation examples, {analysis.wrong.shape[1]} trials; wrong-rate: share of "
            "a group's seeds that get the example wrong, averaged over groups; groups wrong: groups where most "
            "seeds get it wrong; most common wrong pred: the class most wrong predictions name, with its share "
            "of them; wrong conf.: mean confidence of the wrong predictions; "
            f"{overall['wrong_under_every_group']} examples are wrong under every seed of "
            f"every group, {overall['right_under_every_group']} right under all.")


def error_tables(analysis: ErrorAnalysis, top: int) -> ErrorTables:
    """The `top` hardest examples (with a wrong-rate column per group when there are few) and the per-group errors."""
    hardest = analysis.hardest(top)
    rate_columns = [c for c in hardest.columns if c.startswith("rate[")]
    shown = rate_columns if len(rate_columns) <= MAX_RATE_COLUMNS else []
    headers = ["rank", "index", "class", "wrong-rate %", "groups wrong", "most common wrong pred",
               "wrong conf."] + [c[5:-1] for c in shown]
    rows = [_hardest_row(r, shown) for _, r in hardest.iterrows()]
    summary_rows = [[str(s["group"]), str(s["seeds"]), f"{s['mean_error'] * 100:.2f}", str(s["always_wrong"]),
                     str(s["sometimes_wrong"]), str(s["never_wrong"])] for _, s in analysis.summary().iterrows()]
    return ErrorTables(title=f"hardest {len(rows)} validation examples", headers=headers, rows=rows,
                       legend=_legend(analysis),
                       summary_headers=["group", "seeds", "mean error %", "always wrong", "sometimes wrong", "never wrong"],
                       summary_rows=summary_rows, notes=list(analysis.notes))


def hardest_csv(analysis: ErrorAnalysis, top: int) -> str:
    """Every figure of the `top` hardest examples, unformatted."""
    return analysis.hardest(top).to_csv(index=False)


def _left(headers: list[str]) -> set[int]:
    return {i for i, h in enumerate(headers) if h in LEFT}


def markdown(tables: ErrorTables) -> str:
    lines = [f"### {tables.title}", ""]
    lines += fmt.md_table(tables.headers, tables.rows, _left(tables.headers)) + ["", f"_{tables.legend}_", ""]
    lines += fmt.md_table(tables.summary_headers, tables.summary_rows, _left(tables.summary_headers))
    lines += [f"- {n}" for n in tables.notes]
    return "\n".join(lines) + "\n"


def rich(tables: ErrorTables) -> list:
    """What to print: the hardest examples, the per-group table, the notes (as rich markup)."""
    from rich.table import Table

    table = Table(title=tables.title, caption=tables.legend, caption_justify="left")
    for h in tables.headers:
        table.add_column(h, justify="left" if h in ("class", "most common wrong pred") else "right")
    for row in tables.rows:
        table.add_row(*row)
    per_group = Table(title="per group")
    for h in tables.summary_headers:
        per_group.add_column(h, justify="left" if h == "group" else "right")
    for row in tables.summary_rows:
        per_group.add_row(*row)
    return [table, per_group] + [f"[yellow]{note}[/yellow]" for note in tables.notes]
