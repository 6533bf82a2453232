"""The rich progress display of a training run: a transient bar per epoch and one summary line per epoch."""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator
from typing import Any


class Display:
    """Prints nothing when disabled (the study runner trains many trials in parallel without output)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.console = None
        if enabled:
            from rich.console import Console

            self.console = Console(highlight=False)

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, soft_wrap=True, markup=False)

    @contextmanager
    def epoch(self, title: str, steps: int) -> Iterator[Any]:
        """A progress bar over the epoch's steps; yields advance(loss, steps=1) to call after `steps` more steps."""
        if self.console is None or not self.console.is_terminal:  # a log file gets the epoch lines only
            yield lambda loss, steps=1: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(title, total=steps, loss="-")
            yield lambda loss, steps=1: progress.update(task, advance=steps, loss=f"{loss:.3f}")

    def epoch_summary(self, row: dict[str, Any], epochs: int) -> None:
        top5 = f" top-5 {row['val_top5']:.1%}" if row.get("val_top5") is not None else ""
        self.line(f"epoch {row['epoch']:>3}/{epochs} · stage {row['stage']} · {row['image_size']} px · "
                  f"loss {row['train_loss']:.3f} · train {row['train_top1']:.1%} · val {row['val_top1']:.1%}{top5} · "
                  f"lr {row['lr']:.2e} · {row['epoch_seconds']:.1f} s · {row['train_images_per_s']:.0f} img/s")
