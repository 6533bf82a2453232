"""The dataset registry: one JSON entry per dataset, so adding a dataset is a config edit, not a code edit.

Entries live in registry.json next to this file; files named in $WORKBENCH_DATASETS (separated by the path
separator, e.g. `:`) are merged over them. A torchvision entry names its class as found in
torchvision.datasets (never an import path), the constructor keywords of its train and val splits, its channels,
and where to fetch its files when they are missing.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

BUILTIN = Path(__file__).with_name("registry.json")
SOURCES = ("sklearn_digits", "imagefolder", "torchvision")


@cache
def _load(extra: str) -> dict[str, dict[str, Any]]:
    entries = json.loads(BUILTIN.read_text(encoding="utf-8"))
    for path in filter(None, extra.split(os.pathsep)):
        try:
            entries.update(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkbenchError(f"$WORKBENCH_DATASETS: cannot read {path}: {exc}") from None
    for name, entry in entries.items():
        if entry.get("source") not in SOURCES:
            raise WorkbenchError(f"dataset registry entry {name!r}: source must be one of {', '.join(SOURCES)}")
        if entry["source"] == "torchvision" and not entry.get("class"):
            raise WorkbenchError(f"dataset registry entry {name!r}: a torchvision entry needs 'class'")
    return entries


def registry() -> dict[str, dict[str, Any]]:
    return _load(os.environ.get("WORKBENCH_DATASETS", ""))


def lookup(name: str) -> tuple[str, dict[str, Any]]:
    """(canonical name, entry) for a registry name, case-insensitively."""
    entries = registry()
    by_lower = {key.lower(): key for key in entries}
    key = by_lower.get(name.lower())
    if key is None:
        raise WorkbenchError([f"dataset {name!r} is not in the registry",
                              f"known datasets: {', '.join(sorted(entries, key=str.lower))}",
                              "add one in a JSON file named by $WORKBENCH_DATASETS (same format as workbench/data/registry.json)"])
    return key, entries[key]
