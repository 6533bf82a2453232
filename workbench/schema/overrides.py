"""Dotted-path overrides: `--set recipe.epochs=2` and a study variant's `"stages.3.block": "fused_mbconv"`."""

from __future__ import annotations

import copy
import json
from typing import Any

from workbench.errors import WorkbenchError
from workbench.schema.common import MAX_NESTING, check_plain


def parse_assignment(text: str) -> tuple[str, Any]:
    """'recipe.optimizer.lr=0.1' -> ('recipe.optimizer.lr', 0.1). Values are JSON when they parse, else strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise WorkbenchError(f"--set {text!r}: expected key=value, for example recipe.epochs=2")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON (a plain string), or JSON nested or numbered beyond reading
        value = raw
    check_plain({key.strip(): value}, f"--set {key.strip()}")
    return key.strip(), value


def set_path(data: dict[str, Any], dotted: str, value: Any, source: str = "--set") -> None:
    """Set `value` at `dotted` inside nested dicts/lists, creating dicts for missing keys."""
    parts = dotted.split(".")
    if len(parts) > MAX_NESTING:
        raise WorkbenchError(f"{source}: {dotted[:60]}...: {len(parts)} parts, more than a config nests ({MAX_NESTING})")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not (part.isascii() and part.isdigit()) or int(part) >= len(node):
                where = ".".join(parts[: i + 1])
                raise WorkbenchError(f"{source}: {dotted}: index {part!r} out of range at {where} (length {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
        else:
            where = ".".join(parts[: i + 1])
            raise WorkbenchError(f"{source}: {dotted}: {where} is a {type(node).__name__}, not an object or list")


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], source: str = "--set") -> dict[str, Any]:
    """Return a deep copy of `data` with each dotted override applied."""
    out = copy.deepcopy(data)
    for dotted, value in overrides.items():
        set_path(out, dotted, value, source)
    return out
