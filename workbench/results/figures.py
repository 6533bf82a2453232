"""matplotlib, headless (Agg), for every figure of the results room: the pyplot module, colours, saving."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError

SUFFIXES = (".png", ".svg", ".pdf")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def colors(n: int) -> list:
    """n distinguishable colours: tab10, or tab20 beyond ten."""
    cmap = pyplot().get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def save(fig, path: str | Path) -> Path:
    """Write a figure (.png, .svg or .pdf, creating the folder) and close it."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise WorkbenchError(f"{path}: the plot file must end in .png, .svg or .pdf")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path
