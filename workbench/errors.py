"""Errors the user can fix. The CLI prints them one per line and exits 2, with no traceback."""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem with the user's input or environment, explained in plain lines."""

    def __init__(self, lines: str | list[str]):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


class ConfigError(WorkbenchError):
    """One or more invalid fields in a config file: each line names the file and the field path."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        super().__init__([f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in errors])
