"""`workbench` command line. Each command module registers its sub-commands and imports its room lazily."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines register(subparsers); its handlers take the parsed args and return an exit code.
COMMAND_MODULES = (
    "workbench.cli.arch",
    "workbench.cli.study",
    "workbench.cli.search",
    "workbench.cli.latency",
    "workbench.cli.results",
    "workbench.cli.train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Declare EfficientNet-family networks as JSON, count their cost, train them, run studies and compare results.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    from workbench.errors import WorkbenchError

    # fvcore calls torch.jit.script at import time, which newer torch flags as deprecated on every run.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
