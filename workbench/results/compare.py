"""One row per group of trials (a variant, or one value of a hyper-parameter): seeds, cost, accuracy as
mean ± std, and the difference to a baseline with a Welch confidence interval and p-value.

Only finished trials (completed or early-stopped) are averaged. Diverged and failed trials are counted in their
own column, incomplete ones (killed, still running, half-written, missing) in theirs, and listed under the table.
"""

from __future__ import annotations

import datetime
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.results import reader
from workbench.results.reader import StudyRecord, TrialRecord
from workbench.results.stats import Difference, Summary, summarize, welch


@dataclass
class Group:
    study: str
    key: tuple  # one value per `by` field
    label: str  # the values joined by ","
    trials: list[TrialRecord]
    best: Summary = Summary(0, None, None)
    final: Summary = Summary(0, None, None)
    seconds: Summary = Summary(0, None, None)
    images_per_s: Summary = Summary(0, None, None)
    delta: Difference | None = None
    is_baseline: bool = False
    baseline_label: str | None = None
    display: str = ""  # for legends: "v2s_fused · lr=0.01"

    @property
    def used(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.finished]

    @property
    def incomplete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "incomplete"]

    @property
    def stopped(self) -> list[TrialRecord]:
        """Diverged or failed: ran, but not to a result worth averaging."""
        return [t for t in self.trials if t.state in reader.STOPPED]

    def _values(self, name: str) -> list[float]:
        values = [getattr(t, name) for t in self.used]
        return [v for v in values if v is not None]

    @property
    def params(self) -> list[float]:
        return self._values("params") or [v for v in (t.params for t in self.trials) if v is not None]

    @property
    def flops(self) -> list[float]:
        return self._values("flops") or [v for v in (t.flops for t in self.trials) if v is not None]


@dataclass
class Comparison:
    metric: str
    by: list[str]
    delta_on: str  # "best" or "final"
    confidence: float
    groups: list[Group]
    studies: list[StudyRecord]
    baselines: dict[str, str | None]  # study -> baseline label ("" key: one baseline for all)
    notes: list[str] = field(default_factory=list)
    paired_on: list[str] = field(default_factory=list)  # each row's baseline shares these fields' values

    @property
    def percent(self) -> bool:
        return reader.is_fraction_metric(self.metric)

    @property
    def multi_study(self) -> bool:
        return len({g.study for g in self.groups}) > 1

    def stopped_label(self) -> str:
        """'diverged/failed' style header naming the stopped states present."""
        present = [s for s in reader.STOPPED if any(t.state == s for g in self.groups for t in g.trials)]
        return "/".join(present) or "stopped"

    @property
    def any_stopped(self) -> bool:
        return any(g.stopped for g in self.groups)

    def incomplete_trials(self) -> list[TrialRecord]:
        return [t for g in self.groups for t in g.incomplete]

    # --- raw rows (csv / json) ---------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        m = self.metric
        out = []
        for g in self.groups:
            params, flops = g.params, g.flops
            row: dict[str, Any] = {"study": g.study, **dict(zip(self.by, g.key)), "n": g.best.n, "incomplete": len(g.incomplete),
                                   "diverged": sum(t.state == "diverged" for t in g.trials),
                                   "failed": sum(t.state == "failed" for t in g.trials),
                                   "pruned": sum(t.state == "pruned" for t in g.trials),
                                   "params": _mean(params), "flops": _mean(flops),
                                   f"best_{m}_mean": g.best.mean, f"best_{m}_std": g.best.std,
                                   f"final_{m}_mean": g.final.mean, f"final_{m}_std": g.final.std,
                                   "baseline": g.baseline_label, "is_baseline": g.is_baseline}
            d = g.delta
            row.update({f"delta_{self.delta_on}_{m}": None if d is None else d.diff,
                        "ci_low": None if d is None else d.low, "ci_high": None if d is None else d.high,
                        "p_value": None if d is None else d.p, "welch_dof": None if d is None else d.dof,
                        "seconds_mean": g.seconds.mean, "seconds_std": g.seconds.std,
                        "train_images_per_s_mean": g.images_per_s.mean,
                        "seeds": [t.seed for t in g.used]})
            out.append(row)
        return out

    def to_json(self) -> str:
        payload = {
            "metric": self.metric, "by": self.by, "delta_on": self.delta_on, "confidence": self.confidence,
            "units": "fraction" if self.percent else "raw", "baselines": self.baselines, "rows": self.rows(),
            "incomplete": [{"study": t.study, "trial_id": t.trial_id, "variant": t.variant, "seed": t.seed,
                            "reason": t.reason} for t in self.incomplete_trials()],
            "stopped": [{"study": t.study, "trial_id": t.trial_id, "state": t.state, "reason": t.reason}
                        for g in self.groups for t in g.stopped],
            "notes": self.notes,
        }
        return json.dumps(payload, indent=2, default=_json_default) + "\n"

    def to_csv(self) -> str:
        import pandas as pd

        frame = pd.DataFrame(self.rows())
        frame["seeds"] = frame["seeds"].map(lambda s: " ".join(str(v) for v in s))
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        return buffer.getvalue()

    # --- human tables ------------------------------------------------------------------------------

    def _metric_name(self) -> str:
        return self.metric.replace("_top", " top-").replace("_", " ")

    def headers(self) -> list[str]:
        unit = " (%)" if self.percent else ""
        delta_unit = " (pp)" if self.percent else ""
        cols = (["study"] if self.multi_study else []) + list(self.by) + ["n", "incomplete"]
        if self.any_stopped:
            cols.append(self.stopped_label())
        cols += ["params (M)", self._flops_unit()[1], f"best {self._metric_name()}{unit}", f"final {self._metric_name()}{unit}",
                 f"Δ {self.delta_on}{delta_unit}", f"{self.confidence * 100:g} % CI{delta_unit}", "p",
                 "train time", "img/s"]
        return cols

    def cells(self) -> list[list[str]]:
        out = []
        for g in self.groups:
            row = ([g.study] if self.multi_study else []) + [_label(v) for v in g.key]
            row += [str(g.best.n), str(len(g.incomplete))]
            if self.any_stopped:
                row.append(str(len(g.stopped)))
            row += [_range(g.params, 1e6), _range(g.flops, self._flops_unit()[0]),
                    self._mean_std(g.best), self._mean_std(g.final)]
            row += self._delta_cells(g)
            row += [_duration(g.seconds.mean), _rate(g.images_per_s.mean)]
            out.append(row)
        return out

    def _flops_unit(self) -> tuple[float, str]:
        return flops_unit([v for g in self.groups for v in g.flops])

    def _scale(self) -> float:
        return 100.0 if self.percent else 1.0

    def _decimals(self) -> int:
        return 2 if self.percent else 4

    def _mean_std(self, s: Summary) -> str:
        if s.mean is None:
            return "—"
        k, d = self._scale(), self._decimals()
        if s.std is None:
            return f"{s.mean * k:.{d}f}"
        return f"{s.mean * k:.{d}f} ± {s.std * k:.{d}f}"

    def _delta_cells(self, g: Group) -> list[str]:
        if g.is_baseline:
            return ["baseline", "—", "—"]
        d = g.delta
        if d is None:
            return ["—", "—", "—"]
        k, dec = self._scale(), self._decimals()
        diff = f"{d.diff * k:+.{dec}f}"
        if d.low is None:
            return [diff, "n/a (needs ≥ 2 seeds)", "—"]
        return [diff, f"[{d.low * k:+.{dec}f}, {d.high * k:+.{dec}f}]", _p(d.p)]

    def legend(self) -> str:
        base = sorted({v for v in self.baselines.values() if v})
        base_text = ", ".join(f"`{b}`" for b in base) if base else "none"
        if self.paired_on:
            base_text += f" at the same {', '.join(self.paired_on)}"
        unit = "percentage points" if self.percent else "metric units"
        better = "lower" if reader.lower_is_better(self.metric) else "higher"
        parts = [
            f"n: finished seeds averaged (completed or early-stopped); incomplete: killed, still running or "
            f"half-written trials, counted but not averaged",
        ]
        if self.any_stopped:
            parts.append(f"{self.stopped_label()}: trials that diverged, failed or were pruned by the scheduler, "
                         "counted but not averaged")
        parts += [
            f"values: mean ± sample std over seeds ({better} is better)",
            f"Δ: difference of the mean {self.delta_on} {self._metric_name()} to the baseline ({base_text}), in {unit}",
            f"CI: {self.confidence * 100:g} % Welch t interval of Δ (Welch–Satterthwaite dof), needs ≥ 2 seeds per group",
            "p: two-sided Welch t-test",
        ]
        return "; ".join(parts) + "."

    def header_lines(self, command: str | None = None, machine: str | None = None,
                     notes: list[str] | None = None) -> list[str]:
        studies = sorted({g.study for g in self.groups})
        datasets = sorted({str(t.config.get("dataset", {}).get("name")) for g in self.groups for t in g.trials
                           if isinstance(t.config.get("dataset"), dict) and t.config["dataset"].get("name")})
        machines = [machine] if machine else sorted({m for s in self.studies if (m := s.machine())})
        lines = [f"Study: {', '.join(studies)}" + (f" · dataset: {', '.join(datasets)}" if datasets else "")
                 + f" · metric: {self.metric} · by: {', '.join(self.by)}"]
        if machines:
            lines.append(f"Machine: {'; '.join(machines)}")
        if command:
            lines.append(f"Command: `{command}`")
        lines.append(f"Generated: {datetime.date.today().isoformat()}")
        lines.extend(notes or [])
        return lines

    def incomplete_lines(self) -> list[str]:
        lines = []
        for t in self.incomplete_trials():
            lines.append(f"incomplete: {t.study}/{t.trial_id} ({t.variant}, seed {_seed(t.seed)}): {t.reason}")
        for g in self.groups:
            for t in g.stopped:
                lines.append(f"{t.state}: {t.study}/{t.trial_id} ({t.variant}, seed {_seed(t.seed)})"
                             + (f": {t.reason}" if t.reason else ""))
        return lines + self.notes

    def to_markdown(self, command: str | None = None, machine: str | None = None,
                    notes: list[str] | None = None) -> str:
        headers, cells = self.headers(), self.cells()
        numeric = {i for i, h in enumerate(headers) if h != "study" and h not in self.by}
        out = [f"### {self._metric_name()} by {', '.join(self.by)}", ""]
        out += [line + "  " for line in self.header_lines(command, machine, notes)]
        out.append("")
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "|".join("---:" if i in numeric else ":---" for i in range(len(headers))) + "|")
        for row in cells:
            out.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
        out.append("")
        out.append(f"_{self.legend()}_")
        extra = self.incomplete_lines()
        if extra:
            out.append("")
            out += [f"- {_md_escape(line)}" for line in extra]
        return "\n".join(out) + "\n"

    def rich_width(self) -> int:
        """Characters a table row needs when no cell wraps."""
        headers, cells = self.headers(), self.cells()
        widths = [max([len(w) for w in _two_lines(h).split("\n")] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        return sum(widths) + 3 * len(widths) + 1

    def to_rich(self, command: str | None = None, machine: str | None = None, notes: list[str] | None = None,
                wrap: bool = False):
        """A rich table; `wrap` lets cells fold (a terminal narrower than rich_width()), else no cell wraps."""
        from rich.console import Group as RichGroup
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{self._metric_name()} by {', '.join(self.by)}", caption=self.legend(), caption_justify="left",
                      header_style="bold")
        headers = self.headers()
        for h in headers:
            table.add_column(_two_lines(h), justify="left" if h == "study" or h in self.by else "right",
                             overflow="fold", no_wrap=not wrap)
        delta_col = next(i for i, h in enumerate(headers) if h.startswith("Δ"))
        inc_col, n_col = headers.index("incomplete"), headers.index("n")
        higher_better = not reader.lower_is_better(self.metric)
        for g, row in zip(self.groups, self.cells()):
            styled = [Text(c) for c in row]
            if len(g.incomplete):
                styled[inc_col].stylize("yellow")
            if g.best.n < 2:
                styled[n_col].stylize("red")
            if g.is_baseline:
                styled[delta_col].stylize("dim")
            elif g.delta is not None and g.delta.significant:
                good = (g.delta.diff > 0) == higher_better
                for i in (delta_col, delta_col + 1):
                    styled[i].stylize("green" if good else "red")
            table.add_row(*styled)
        lines = [Text(line, style="dim") for line in self.header_lines(command, machine, notes)]
        extra = [Text(line, style="yellow") for line in self.incomplete_lines()]
        if wrap:  # too narrow for the columns: one two-line record per row instead
            records = [Text.from_markup(line) for line in _records(self)]
            return RichGroup(*lines, Text(""), *records, Text(""), Text(self.legend(), style="dim italic"), *extra)
        return RichGroup(*lines, table, *extra)


def _records(self) -> list[str]:
    """The table as two-line records, for terminals too narrow for its columns (rich markup)."""
    unit = " %" if self.percent else ""
    delta_unit = " pp" if self.percent else ""
    out = []
    for g, row in zip(self.groups, self.cells()):
        name = (f"{g.study} · " if self.multi_study else "") + g.display
        counts = [f"n={g.best.n}"]
        if g.incomplete:
            counts.append(f"[yellow]{len(g.incomplete)} incomplete[/yellow]")
        if g.stopped:
            counts.append(f"[red]{len(g.stopped)} {self.stopped_label()}[/red]")
        divisor, unit = self._flops_unit()
        cost = f"{_range(g.params, 1e6)} M params · {_range(g.flops, divisor)} {unit}"
        out.append(f"[bold]{name}[/bold]  {', '.join(counts)}  {cost}")
        if g.is_baseline:
            delta = "[dim]baseline[/dim]"
        elif g.delta is None:
            delta = "Δ —"
        else:
            d = self._delta_cells(g)
            delta = f"Δ {d[0]}{delta_unit} {d[1]} p{'' if d[2].startswith('<') else '='}{d[2]}"
        out.append(f"    best {self._mean_std(g.best)}{unit} · final {self._mean_std(g.final)}{unit} · {delta}"
                   f" · {_duration(g.seconds.mean)} · {_rate(g.images_per_s.mean)} img/s")
    return out


def _two_lines(header: str) -> str:
    """'best val top-1 (%)' -> 'best val\ntop-1 (%)': long headers on two lines, split at the middle space."""
    if len(header) <= 9 or " " not in header:
        return header
    spaces = [i for i, c in enumerate(header) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - len(header) / 2))
    return header[:cut] + "\n" + header[cut + 1:]


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def flops_unit(values: list[float]) -> tuple[float, str]:
    """GFLOPs for real networks; MFLOPs when every model is below 0.1 GFLOPs (small proxies)."""
    return (1e6, "MFLOPs") if values and max(values) < 1e8 else (1e9, "GFLOPs")


def _sig(value: float, digits: int = 3) -> str:
    """3 significant digits without scientific notation: 5.29, 0.153, 21.5, 118."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"


def _range(values: list[float], unit: float) -> str:
    if not values:
        return "—"
    low, high = min(values) / unit, max(values) / unit
    if math.isclose(low, high, rel_tol=1e-9):
        return _sig(low)
    return f"{_sig(low)}–{_sig(high)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 100:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    if p < 0.001:
        return "<0.001"
    if p < 0.01:
        return f"{p:.3f}"
    return f"{p:.2f}"


def _label(value: Any) -> str:
    if value is None:
        return "(unset)"
    return str(value)


def _sort_key(value: Any) -> tuple:
    return reader.order_key(reader.hashable(value))


def parse_by(by: str | list[str] | None, studies: list[StudyRecord]) -> tuple[list[str], list[str]]:
    """`--by` -> (fields, notes). None: variant plus every hyper-parameter that varies inside a variant of a study,
    so that a row holds one configuration and differs only by seed."""
    notes: list[str] = []
    if by is None:
        fields = ["variant"]
        for study in studies:
            for name in reader.swept_hparams(study.trials):
                per_variant: dict[str, set] = {}
                for t in study.trials:
                    if name in t.hparams:
                        per_variant.setdefault(t.variant, set()).add(reader.hashable(t.hparams[name]))
                if any(len(v) > 1 for v in per_variant.values()) and f"hp.{name}" not in fields:
                    fields.append(f"hp.{name}")
        return fields, notes
    fields = [f.strip() for f in (by.split(",") if isinstance(by, str) else by) if f.strip()]
    if not fields:
        raise WorkbenchError("--by needs at least one field, e.g. variant or hp.recipe.optimizer.lr")
    for study in studies:
        for name in reader.swept_hparams(study.trials):
            if f"hp.{name}" in fields or name in fields:
                continue
            seen: dict[tuple, set] = {}
            for t in study.trials:
                if name in t.hparams:
                    key = tuple(reader.hashable(v) for v in (t.lookup(f) for f in fields))
                    seen.setdefault(key, set()).add(reader.hashable(t.hparams[name]))
            if any(len(v) > 1 for v in seen.values()):
                notes.append(f"{study.name}: rows pool several values of hp.{name} "
                             f"(add it to --by, e.g. --by {','.join(fields)},hp.{name}, to split them)")
    return fields, notes


def _display(by: list[str], key: tuple) -> str:
    """First field's value alone, the others as short=value: 'v2s_fused · lr=0.01'."""
    shorts = [f.split(".")[-1] for f in by]
    parts = []
    for i, (f, v) in enumerate(zip(by, key)):
        if i == 0:
            parts.append(_label(v))
        else:
            parts.append(f"{shorts[i] if shorts.count(shorts[i]) == 1 else f}={_label(v)}")
    return " · ".join(parts)


def group_trials(studies: list[StudyRecord], by: list[str]) -> list[Group]:
    trials = reader.all_trials(studies)
    columns = [reader.field_values(trials, f) for f in by]
    key_of = {id(t): tuple(col[i] for col in columns) for i, t in enumerate(trials)}
    groups: list[Group] = []
    for study in studies:
        keys: list[tuple] = []
        for t in study.trials:
            if key_of[id(t)] not in keys:
                keys.append(key_of[id(t)])
        order = study.variant_order()

        def sort_key(key: tuple) -> tuple:
            parts = []
            for f, v in zip(by, key):
                parts.append((order.index(v) if v in order else len(order), 0, "") if f == "variant" else _sort_key(v))
            return tuple(parts)

        keys.sort(key=sort_key)
        for k in keys:
            members = [t for t in study.trials if key_of[id(t)] == k]
            groups.append(Group(study=study.name, key=k, label=",".join(_label(v) for v in k), trials=members,
                                display=_display(by, k)))
    return groups


def _resolve_baselines(groups: list[Group], studies: list[StudyRecord], by: list[str],
                       baseline: str | None) -> tuple[dict[int, Group | None], list[str]]:
    """id(group) -> its baseline group.

    NAME matches a group's full label (values joined by ","), or just its first field: then every group is compared
    with the NAME group that shares its other fields (e.g. each learning rate with the baseline variant at that rate).
    STUDY:NAME makes one group the baseline of every study's rows.
    """
    by_study: dict[str, list[Group]] = {}
    for g in groups:
        by_study.setdefault(g.study, []).append(g)
    notes: list[str] = []

    def pick(members: list[Group], name: str) -> dict[int, Group | None] | None:
        full = [g for g in members if g.label == name]
        if full:
            return {id(g): full[0] for g in members}
        first = [g for g in members if _label(g.key[0]) == name]
        if not first:
            return None
        return {id(g): next((b for b in first if b.key[1:] == g.key[1:]), None) for g in members}

    chosen: dict[int, Group | None] = {}
    if baseline is not None:
        if ":" in baseline and not any(g.label == baseline or _label(g.key[0]) == baseline for g in groups):
            study_name, _, label = baseline.partition(":")
            single = [g for g in by_study.get(study_name, []) if g.label == label or _label(g.key[0]) == label]
            if len(single) == 1:
                return {id(g): single[0] for g in groups}, notes
        found = False
        for name, members in by_study.items():
            mapping = pick(members, baseline)
            if mapping is None:
                notes.append(f"study {name} has no group {baseline!r}: its rows have no Δ")
                mapping = {id(g): None for g in members}
            else:
                found = True
            chosen.update(mapping)
        if not found:
            labels = sorted({g.label for g in groups})
            raise WorkbenchError([f"baseline {baseline!r} is not one of the groups: {', '.join(labels)}",
                                  "  name a group (values of --by joined by ','), or the value of its first field; "
                                  "STUDY:NAME picks one group as the baseline of every study"])
        return chosen, notes
    spec_of = {s.name: s for s in studies}
    for name, members in by_study.items():
        declared = spec_of[name].baseline if by[0] == "variant" else None
        mapping = pick(members, declared) if declared else None
        if mapping is None:
            first = next((g for g in members if g.best.n), members[0])
            mapping = pick(members, _label(first.key[0])) if len(by) > 1 else {id(g): first for g in members}
        chosen.update(mapping)
    return chosen, notes


def compare(studies: list[StudyRecord], metric: str = "val_top1", by: str | list[str] | None = None,
            baseline: str | None = None, delta_on: str = "best", confidence: float = 0.95) -> Comparison:
    """Group the trials (default: by variant and every hyper-parameter swept inside a variant) and compare."""
    if delta_on not in ("best", "final"):
        raise WorkbenchError(f"delta must be computed on 'best' or 'final', not {delta_on!r}")
    if not 0 < confidence < 1:
        raise WorkbenchError(f"confidence must be between 0 and 1, got {confidence}")
    trials = reader.all_trials(studies)
    reader.check_metric(trials, metric)
    fields, notes = parse_by(by, studies)
    groups = group_trials(studies, fields)
    for g in groups:
        g.best = summarize([v for v in (t.best(metric) for t in g.used) if v is not None])
        g.final = summarize([v for v in (t.final(metric) for t in g.used) if v is not None])
        g.seconds = summarize([v for v in (t.seconds for t in g.used) if v is not None])
        g.images_per_s = summarize([v for v in (t.images_per_s for t in g.used) if v is not None])
    chosen, baseline_notes = _resolve_baselines(groups, studies, fields, baseline)
    notes.extend(baseline_notes)

    def values(group: Group) -> list[float]:
        pick = (lambda t: t.best(metric)) if delta_on == "best" else (lambda t: t.final(metric))
        return [v for v in (pick(t) for t in group.used) if v is not None]

    per_study: dict[str, list[Group]] = {}
    for g in groups:
        base = chosen.get(id(g))
        if base is None:
            continue
        g.baseline_label = base.label if base.study == g.study else f"{base.study}:{base.label}"
        if base not in per_study.setdefault(g.study, []):
            per_study[g.study].append(base)
        if g is base:
            g.is_baseline = True
            continue
        g.delta = welch(values(g), values(base), confidence)
    for s in studies:
        notes.extend(f"{s.name}: {p}" for p in s.problems)
        notes.extend(s.source_notes())
    baselines: dict[str, str | None] = {}
    paired = False
    for name, bases in per_study.items():
        if len(bases) > 1:  # one baseline per value of the other fields
            paired = True
            baselines[name] = _label(bases[0].key[0])
        else:
            multi = len(studies) > 1
            baselines[name] = f"{bases[0].study}:{bases[0].label}" if multi else bases[0].label
    return Comparison(metric=metric, by=fields, delta_on=delta_on, confidence=confidence, groups=groups,
                      studies=studies, baselines=baselines, notes=notes, paired_on=fields[1:] if paired else [])


def _seed(seed: int | None) -> str:
    return "?" if seed is None else str(seed)
