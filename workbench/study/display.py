"""A rich live view of a running study, fed by Ray Tune's callback hooks in the driver process."""

from __future__ import annotations

import time
from typing import Any

from ray import tune


class LiveDisplay(tune.Callback):
    def __init__(self, study: str, total: int, done_before: int, metric: str, mode: str, enabled: bool = True):
        self.study, self.total, self.done_before = study, total, done_before
        self.metric, self.mode, self.enabled = metric, mode, enabled
        self.running: dict[str, dict[str, Any]] = {}
        self.done: dict[str, float | None] = {}
        self.failed: dict[str, str] = {}
        self.started = time.time()
        self._live = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the run config with its callbacks; the live terminal view stays in this process.
        return {**self.__dict__, "_live": None}

    def setup(self, **info: Any) -> None:
        if self.enabled and self._live is None:
            import shutil
            import sys

            from rich.console import Console
            from rich.live import Live

            # In a log (no terminal) Live draws once, at the end: keep it one wide block.
            width = None if sys.stdout.isatty() else max(120, shutil.get_terminal_size((120, 24)).columns)
            self._live = Live(self._render(), console=Console(width=width), refresh_per_second=2, transient=False)
            self._live.start()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running[_name(trial)] = {"epoch": 0, "value": None, "since": time.time()}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        row = self.running.setdefault(_name(trial), {"since": time.time()})
        row.update(epoch=result.get("epoch"), value=result.get(self.metric), stage=result.get("stage"))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        row = self.running.pop(_name(trial), {})
        self.done[_name(trial)] = (trial.last_result or {}).get(self.metric, row.get("value"))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.pop(_name(trial), None)
        self.failed[_name(trial)] = "error"

    def on_step_end(self, iteration, trials, **info) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def on_experiment_end(self, trials, **info) -> None:
        self.stop()

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            if not self._live.console.is_terminal:
                self._live.console.line()  # without a terminal, Live leaves its last drawing without a newline
            self._live = None

    def _best(self) -> tuple[str, float] | None:
        scored = [(name, v) for name, v in self.done.items() if isinstance(v, (int, float))]
        scored += [(name, r["value"]) for name, r in self.running.items() if isinstance(r.get("value"), (int, float))]
        if not scored:
            return None
        return (max if self.mode == "max" else min)(scored, key=lambda item: item[1])

    def _render(self):
        from rich.table import Table

        finished = self.done_before + len(self.done)
        pending = max(0, self.total - finished - len(self.running) - len(self.failed))
        best = self._best()
        best_text = f" · best so far: {best[0]} {self.metric} {_fmt(best[1], self.metric)}" if best else ""
        table = Table(title=f"{self.study}: {self.total} trials — pending {pending} · running {len(self.running)} · "
                            f"done {finished} ({self.done_before} before this run) · failed {len(self.failed)}{best_text} · "
                            f"{time.time() - self.started:,.0f} s", title_justify="left")
        if not self.running:
            from rich.text import Text

            return Text(str(table.title))
        for col in ("running trial", "epoch", self.metric, "seconds"):
            table.add_column(col, justify="left" if col == "running trial" else "right")
        for name, row in sorted(self.running.items()):
            table.add_row(name, str(row.get("epoch") or "–"), _fmt(row.get("value"), self.metric), f"{time.time() - row['since']:,.0f}")
        return table


def _name(trial) -> str:
    return str(trial.config.get("trial_id") or trial.trial_id)


def _fmt(value, metric: str) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value * 100:.1f} %" if "top" in metric else f"{value:.4g}"
