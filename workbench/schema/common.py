"""Loading JSON into pydantic models with error messages that name the file and the field path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from workbench.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, so a typo such as `kernal` is named."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True)


def field_path(loc: tuple[Any, ...]) -> str:
    """('stages', 3, 'in_channels') -> 'stages[3].in_channels'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field (not in the schema; check the spelling)"
    if kind == "missing":
        return "required field is missing"
    msg = err.get("msg", "invalid")
    return msg.removeprefix("Value error, ")


def validation_errors(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[tuple[str, str]]:
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
        errors.append((field_path(prefix + loc), _message(err)))
    return errors


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file or a syntax error becomes a ConfigError naming line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [("", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError(str(path), [("", "is a directory, expected a JSON file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [("", f"cannot read: {exc}")]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), [("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]) from None


def validate(model: type[M], data: Any, source: str, context: dict[str, Any] | None = None) -> M:
    """Validate plain data into `model`; any failure becomes a ConfigError (never another exception).
    `context` is pydantic's validation context, handed to every validator."""
    if not isinstance(data, dict):
        raise ConfigError(source, [("", f"expected a JSON object at the top level, got {type(data).__name__}")])
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(source, validation_errors(exc)) from None
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise ConfigError(source, [("", str(exc))]) from None


def load(model: type[M], path: str | Path) -> M:
    data = read_json(path)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "$schema"}
    return validate(model, data, str(path))
