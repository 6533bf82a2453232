"""Helpers shared by command modules: loading architectures with --set scale overrides, number formatting."""

from __future__ import annotations

from workbench.errors import WorkbenchError


def add_scale_option(parser) -> None:
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="scale.KEY=VALUE",
                        help="compound scaling on top of the file: scale.width_mult, scale.depth_mult, scale.resolution")


def load_scaled(path: str, sets: list[str]):
    """Load an architecture and apply `scale.*` assignments from --set."""
    from workbench.errors import ConfigError
    from workbench.schema import Architecture, Scale, load
    from workbench.schema.common import field_path, validate
    from workbench.schema.overrides import apply_overrides, parse_assignment

    arch = load(Architecture, path)
    overrides = dict(parse_assignment(s) for s in sets)
    for key in overrides:
        if not key.startswith("scale."):
            raise WorkbenchError(f"--set {key}: only scale.width_mult, scale.depth_mult and scale.resolution apply here")
    scale = validate(Scale, apply_overrides({}, {k.removeprefix("scale."): v for k, v in overrides.items()}), "--set scale")
    network = arch.scaled(scale)
    problems = network.size_problems()  # the scale compounds onto the file's own multipliers
    if problems:
        raise ConfigError(f"{path} (with --set scale)", [(field_path(("scale",) + loc), f"the scaled network: {message}")
                                                          for loc, message in problems])
    return network


def bounded_int(low: int, high: int):
    """An argparse type: an integer from low to high, else a usage error (exit 2) naming the range."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in [{low}, {high}], got {value}")
        return value

    return parse


def millions(n: int) -> str:
    return f"{n / 1e6:,.3f} M"


def giga(n: int) -> str:
    return f"{n / 1e9:,.3f} G"


def signed_percent(new: float, base: float) -> str:
    return "—" if base == 0 else f"{(new - base) / base * 100:+.1f} %"


def console(stderr: bool = False):
    import shutil
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (CI logs, `| less`) gets a wide table rather than rich's 80-column fallback.
    width = None if stream.isatty() else max(160, shutil.get_terminal_size((160, 24)).columns)
    return Console(stderr=stderr, highlight=False, width=width)
