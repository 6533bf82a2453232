"""Loading JSON into pydantic models with error messages that name the file and the field path."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from workbench.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# A config file is a few kB (the largest shipped one is under 3 kB) and nests 6 levels at most: these limits only
# stop a hostile file from exhausting memory or Python's recursion limit before the schema can name what is wrong.
MAX_CONFIG_BYTES = 10 * 2**20
MAX_NESTING = 64
MAX_TEXT = 20_000  # characters of any string field (the longest shipped description has under 1,000)
MAX_SEED = 2**31 - 1  # every seed fits a signed 32-bit integer, the narrowest that numpy and scikit-learn take
# Linux's limits (NAME_MAX, PATH_MAX, in bytes); a file system with smaller ones answers ENAMETOOLONG, also caught.
MAX_FILE_NAME, MAX_PATH = 255, 4096


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, so a typo such as `kernal` is named; NaN and infinity
    (JSON's 1e400) are refused in every float field; no string is longer than MAX_TEXT characters."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True, allow_inf_nan=False,
                              str_max_length=MAX_TEXT)


def path_problem(text: str) -> str | None:
    """Why `text` cannot name a file on this system (NUL byte, too long, not encodable), or None."""
    if "\0" in text:
        return "the path contains a NUL character, which no file name can hold"
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        return "the path cannot be encoded as a file name (it holds an unpaired surrogate)"
    if len(encoded) > MAX_PATH:
        return f"path too long ({len(encoded):,} bytes; at most {MAX_PATH:,})"
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > MAX_FILE_NAME:
        return f"file name too long ({longest:,} bytes in one name; at most {MAX_FILE_NAME})"
    return None


def _path_text(text: str) -> str:
    problem = path_problem(text)
    if problem:
        raise ValueError(problem)
    return text


# A string field that names a file or folder: refused at validation when no file could have that name.
PathText = Annotated[str, AfterValidator(_path_text)]


def raise_at(model: str, problems: list[tuple[tuple, str]]) -> None:
    """Raise one validation error per (location, message): pydantic prefixes the enclosing path, so a
    cross-field check still names `search.stages[2].stride` rather than just `search`."""
    if problems:
        raise ValidationError.from_exception_data(model, [
            InitErrorDetails(type=PydanticCustomError("config", message), loc=loc, input=None)
            for loc, message in problems])


def field_path(loc: tuple[Any, ...]) -> str:
    """('stages', 3, 'in_channels') -> 'stages[3].in_channels'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _key(str(part))
    return out


def _key(key: str) -> str:
    if not key:
        return '""'  # an empty key is still a field
    return key if len(key) <= 80 else f"{key[:60]}...({len(key):,} characters)"


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field (not in the schema; check the spelling)"
    if kind == "missing":
        return "required field is missing"
    if kind == "finite_number":
        return "must be a finite number (NaN and infinity are not allowed)"
    msg = err.get("msg", "invalid")
    return msg.removeprefix("Value error, ")


def validation_errors(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[tuple[str, str]]:
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-")))
        errors.append((field_path(prefix + loc), _message(err)))
    return errors


def read_json(path: str | Path) -> Any:
    """Parse a JSON file into plain data. Anything wrong with the path or the text (missing, a folder, a device, too
    big, not UTF-8, a syntax error, NaN, nested too deep, unpaired surrogates) becomes a ConfigError naming the file."""
    source = str(path)
    text = _read_text(source)
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except ConfigError as exc:
        raise ConfigError(source, exc.errors) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(source, [("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]) from None
    except RecursionError:
        raise ConfigError(source, [("", f"invalid JSON: nested deeper than {MAX_NESTING} levels")]) from None
    except ValueError:  # the only other refusal of json.loads: an integer of more than 4,300 digits
        raise ConfigError(source, [("", "invalid JSON: a number too long to read (more than 4,300 digits)")]) from None
    check_plain(data, source)
    return data


def _read_text(source: str) -> str:
    problem = path_problem(source)
    if problem:
        raise ConfigError(source, [("", problem)])
    try:
        info = os.stat(source)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(source, [("", "is a directory, expected a JSON file")])
        if not stat.S_ISREG(info.st_mode):  # a FIFO or /dev/zero would block or never end
            raise ConfigError(source, [("", "not a regular file (a device, pipe or socket), expected a JSON file")])
        with open(source, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(source, [("", "file not found")]) from None
    except NotADirectoryError:
        raise ConfigError(source, [("", "file not found (a folder of the path is a file)")]) from None
    except PermissionError:
        raise ConfigError(source, [("", "permission denied")]) from None
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [("", f"too big for a config file (more than {MAX_CONFIG_BYTES // 2**20} MiB)")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, [("", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} cannot be decoded")]) from None


def _no_constant(name: str) -> Any:
    raise ConfigError("", [("", f"invalid JSON: {name} is not a number in JSON (write a finite number)")])


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ConfigError("", [("", f"invalid JSON: {text} is out of the range of a floating-point number")])
    return value


def check_plain(data: Any, source: str) -> None:
    """Refuse parsed data nested deeper than MAX_NESTING or holding strings that are not Unicode text (JSON's
    "\\ud800" escapes an unpaired surrogate, which no file or terminal can encode). Iterative, so that depth itself
    cannot exhaust the stack."""
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        node, loc = stack.pop()
        if len(loc) > MAX_NESTING:
            raise ConfigError(source, [(field_path(loc[:MAX_NESTING]), f"nested deeper than {MAX_NESTING} levels")])
        if isinstance(node, str):
            _check_text(node, loc, source)
        elif isinstance(node, dict):
            for key, value in node.items():
                _check_text(str(key), loc, source)
                stack.append((value, loc + (str(key),)))
        elif isinstance(node, (list, tuple)):
            stack.extend((value, loc + (index,)) for index, value in enumerate(node))


def _check_text(text: str, loc: tuple, source: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(source, [(field_path(loc), f"text holds an unpaired surrogate ({text[exc.start]!r}), "
                                                     "which is not Unicode")]) from None


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
