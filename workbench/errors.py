"""Errors the user can fix. The CLI prints them one per line and exits 2, with no traceback."""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` with every character a terminal would not show as itself escaped (NUL -> \\x00, newline -> \\n, a lone
    surrogate -> \\ud800): an error line quoting a hostile config stays one readable line that any stream can encode."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class WorkbenchError(Exception):
    """A problem with the user's input or environment, explained in plain lines."""

    def __init__(self, lines: str | list[str]):
        self.lines = [printable(line) for line in ([lines] if isinstance(lines, str) else list(lines))]
        super().__init__("\n".join(self.lines))


class ConfigError(WorkbenchError):
    """One or more invalid fields in a config file: each line names the file and the field path.

    A message of several lines (a validator listing several problems) gives one error line each."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        super().__init__([f"{source}: {path}: {line}" if path else f"{source}: {line}"
                          for path, msg in errors for line in (str(msg).splitlines() or [""])])
