"""Hostile config files get an error naming the file and the field, never a traceback or a hang (issue 11).

Hypothesis mutates the shipped architecture, recipe and study files (wrong types, huge, negative and non-finite
numbers, missing and unknown keys, long and odd strings, NUL bytes, paths to nowhere, 300-character names, deep
nesting, corrupted bytes) and runs each mutated file through every command that reads it: `validate`, `show`,
`flops --counter analytic`, `study run --dry-run` and `search run --dry-run`, in-process. Every call must exit 0
or 2 within 10 s, print no traceback, and every error line must start with the file (or `--set`) and go on with a
field of the schema or of the file, or with a problem of the whole file. The examples are derandomized, so every
run draws the same ones.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ARCHITECTURES, ROOT
from workbench.cli.main import main
from workbench.errors import printable
from workbench.schema.architecture import Architecture
from workbench.schema.common import MAX_NESTING, field_path
from workbench.schema.recipe import Recipe, TrainJob
from workbench.schema.study import Study

TIME_LIMIT_S = 10
HYMENOPTERA = ROOT.parent / "shared" / "datasets" / "hymenoptera"
ARCH_FILES = sorted(ARCHITECTURES.glob("*.json"))
RECIPE_FILES = sorted((ROOT / "studies" / "recipes").glob("*.json"))
STUDY_FILES = sorted((ROOT / "studies").glob("*.json"))
SEARCH_FILES = [p for p in STUDY_FILES if "search" in json.loads(p.read_text())]
PLAIN_STUDY_FILES = [p for p in STUDY_FILES if p not in SEARCH_FILES]
# (words before the file, options after it) of every command that reads a file of each kind
COMMANDS = {
    "architecture": [(["validate"], []), (["show"], []), (["flops"], ["--counter", "analytic"])],
    "recipe": [(["validate"], [])],
    "study": [(["validate"], []), (["study", "run"], ["--dry-run"])],
    "search": [(["validate"], []), (["search", "run"], ["--dry-run"]), (["study", "run"], ["--dry-run"])],
}


class Raw(str):
    """A number JSON can write but Python's float cannot hold (1e400): written into the file verbatim."""


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


ODD_PATHS = [
    "x" * 300 + ".json", "dir/" + "y" * 300, "a\x00b.json", "\x00", "../nowhere/x.json", "/nonexistent/dir/arch.json",
    "/dev/zero", "/dev/null", "/dev/stdin", "/tmp", ".", "..", "", " ", "/" + "a/" * 2100 + "x.json", "~nobody/x.json",
    "a\nb.json", "[/x].json", "\u202egnp.json", "\U0001F600.json", "arch\ud800.json", "C:\\arch.json", "%s%n{0}$HOME",
]
HUGE_NUMBERS = [10**9, 10**18, 2**63, 10**400, 1e308]  # drawn half the time a number is replaced: counts that would hang
HOSTILE_NUMBERS = [
    0, -1, -10**9, 10**9, 10**18, 2**63, 10**400, 1e308, -1e308, 0.5, 1e-320, 3.7,
    1, 2, 7, 16, 31, 100, 255, 500, 1000, 2048, 8192, 20_000, 100_000, 0.001, 1e15,  # at or near the schema's bounds
    float("nan"), float("inf"), float("-inf"), Raw("1e400"), Raw("-1e400"), Raw("1" * 5000),
]
HOSTILE_VALUES = [
    None, True, False, "text", [], {}, [1, 2], {"a": 1}, {"name": "x"}, *HOSTILE_NUMBERS,
    "x" * 300, "x" * 20_001, "\x00", "a\x00b", "line\nbreak", "[/x]", "[bold]", "\u202e", "\U0001F600", "\ud800",
    _nested(3), _nested(MAX_NESTING + 5),
    *ODD_PATHS,
]
ODD_KEYS = ["kernal", "", "\x00", "a.b", "$schema", "x" * 300, "stages", "name", "[/x]", "\ud800", "__class__"]
# What an error line may say of the file as a whole instead of naming a field (the fuzzed files' own paths are plain).
WHOLE_FILE = re.compile(
    r"(invalid JSON|not UTF-8 text|expected a JSON object at the top level|text holds an unpaired surrogate|"
    r"the study has no search block|only \d+ of \d+ architectures|widen search\.constraints)")
QUALIFIER = r"(?: \((?:after --set|with --set scale|trial [^()]*|search choices .*|the largest network of the space)\))?"


def _model_fields(model, names: set[str]) -> set[str]:
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        names.update({name, info.alias or name})
        for arg in _type_args(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg.__name__ not in names:
                names.add(arg.__name__)
                _model_fields(arg, names)
    return names


def _type_args(annotation) -> list:
    import typing

    args = [annotation]
    for arg in typing.get_args(annotation):
        args += _type_args(arg)
    return args


SCHEMA_FIELDS = set().union(*(_model_fields(m, set()) for m in (Architecture, Recipe, Study, TrainJob)))


# --- building mutated files -------------------------------------------------------------------------


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _keys(node) -> set[str]:
    keys: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys.update(str(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return keys


def absolute_references(data: dict, source: Path) -> dict:
    """A shipped study with its architecture, recipe and base paths made absolute, so a copy elsewhere still finds them
    (and the imagefolder study's photos folder filled in)."""
    data = copy.deepcopy(data)
    for variant in data.get("variants", []):
        variant["architecture"] = str((source.parent / variant["architecture"]).resolve())
    if isinstance(data.get("recipe"), str):
        data["recipe"] = str((source.parent / data["recipe"]).resolve())
    if isinstance((data.get("search") or {}).get("base"), str):
        data["search"]["base"] = str((source.parent / data["search"]["base"]).resolve())
    if isinstance(data.get("dataset"), dict) and data["dataset"].get("name") == "imagefolder":
        data["dataset"]["path"] = str(HYMENOPTERA)
    return data


def _reference_paths(data: dict) -> list[tuple]:
    variants = data.get("variants")
    paths = [("variants", i, "architecture") for i in range(len(variants) if isinstance(variants, list) else 0)]
    paths += [("recipe",), ("search", "base"), ("dataset", "path"), ("dataset", "root"), ("storage_path",)]
    return paths


@st.composite
def mutated(draw, data: dict) -> dict:
    """1 to 3 mutations anywhere in `data`: replace (a number by a hostile number most often), delete, add an unknown
    key, grow or empty a list, point a path field somewhere odd."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):  # mostly one, so the rest of the file stays valid
        action = draw(st.sampled_from(["number", "number", "number", "replace", "delete", "add", "duplicate", "empty", "path"]))
        numbers = [p for p in _paths(data) if p and _is_number(_get(data, p))]
        if action == "number" and numbers:
            path, value = draw(st.sampled_from(numbers)), draw(st.sampled_from(HUGE_NUMBERS if draw(st.booleans()) else HOSTILE_NUMBERS))
        elif action == "path":  # a path field, present or not
            path, value = draw(st.sampled_from(_reference_paths(data))), draw(st.sampled_from(ODD_PATHS))
        else:
            path, value = draw(st.sampled_from([p for p in _paths(data) if p])), draw(st.sampled_from(HOSTILE_VALUES))
        parent = _parent(data, path)
        if parent is not None and (isinstance(parent, dict) or (isinstance(path[-1], int) and path[-1] < len(parent))):
            _apply(parent, path[-1], action, value, draw)
    return data


def _get(data, path: tuple):
    for part in path:
        data = data[part]
    return data


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parent(data: dict, path: tuple):
    node = data
    for part in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(part, {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node if isinstance(node, (dict, list)) else None


def _apply(parent, key, action: str, value, draw) -> None:
    current = parent.get(key) if isinstance(parent, dict) else parent[key]
    if action in ("number", "replace", "path"):
        parent[key] = copy.deepcopy(value)  # the pool's nested lists are shared by every example
    elif action == "delete":
        parent.pop(key, None) if isinstance(parent, dict) else parent.pop(key)
    elif action == "add":
        target = current if isinstance(current, dict) else parent if isinstance(parent, dict) else None
        if target is not None:
            target[draw(st.sampled_from(ODD_KEYS))] = copy.deepcopy(value)
    elif action == "duplicate" and isinstance(current, list) and current:
        parent[key] = current + current[:1] * draw(st.sampled_from([1, 50]))
    elif action == "empty":
        parent[key] = [] if isinstance(current, list) else {} if isinstance(current, dict) else ""


def to_json(data) -> str:
    """JSON text, NaN and Infinity as Python writes them, Raw numbers verbatim, lone surrogates as \\ud800 escapes."""
    raws: list[str] = []

    def mark(node):
        if isinstance(node, Raw):
            raws.append(str(node))
            return f"__raw_{len(raws) - 1}__"
        if isinstance(node, dict):
            return {k: mark(v) for k, v in node.items()}
        if isinstance(node, list):
            return [mark(v) for v in node]
        return node

    text = json.dumps(mark(data), indent=1)
    for index, raw in enumerate(raws):
        text = text.replace(f'"__raw_{index}__"', raw)
    return text


@st.composite
def corrupted_bytes(draw, text: str) -> bytes:
    raw = text.encode("utf-8")
    kind = draw(st.sampled_from(["truncate", "insert", "bom", "empty", "deep", "not_utf8", "doubled"]))
    at = draw(st.integers(0, len(raw)))
    if kind == "truncate":
        return raw[:at]
    if kind == "insert":
        return raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    if kind == "bom":
        return b"\xef\xbb\xbf" + raw
    if kind == "empty":
        return b""
    if kind == "deep":
        depth = draw(st.sampled_from([MAX_NESTING + 1, 5000, 200_000]))
        return b'{"stages": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "not_utf8":
        return raw[:at] + b"\xff\xfe" + raw[at:]
    return raw + raw


# --- running the commands ---------------------------------------------------------------------------


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {TIME_LIMIT_S} s")


def run_cli(argv: list[str]) -> tuple[int, str, str, float]:
    """`workbench ARGV` in-process, stopped by SIGALRM after TIME_LIMIT_S."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - started


def check_commands(kind: str, path: Path, data, sets: list[str] = ()) -> None:
    keys = set(_keys(data)) if isinstance(data, (dict, list)) else set()
    keys |= {assignment.partition("=")[0] for assignment in sets}
    shown = {printable(field_path((k,))) for k in keys}  # as error lines write them: escaped, long ones shortened
    roots = SCHEMA_FIELDS | shown | {re.split(r"[.\[ ]", k)[0] for k in shown}
    for words, options in COMMANDS[kind]:
        argv = [*words, str(path), *options]
        if words != ["validate"]:  # the only command without --set
            argv += [arg for assignment in sets for arg in ("--set", assignment)]
        code, out, err, seconds = run_cli(argv)
        where = f"{argv}\n{err[-2000:]}"
        assert code in (0, 2), where
        assert "Traceback" not in out + err, where
        try:
            (out + err).encode("utf-8")  # what a terminal's strict stdout needs
        except UnicodeEncodeError as exc:
            raise AssertionError(f"output no terminal can encode: {exc}\n{where}") from None
        for line in err.splitlines():
            assert line.startswith("error: "), f"stderr line is no error line: {line!r}\n{where}"
            _check_error_line(line.removeprefix("error: "), str(path), roots, where)


def _check_error_line(line: str, source: str, roots: set[str], where: str) -> None:
    if line.startswith("--set"):
        return
    match = re.match(re.escape(printable(source)) + QUALIFIER + r": (.*)$", line)
    assert match, f"error line does not start with the file: {line!r}\n{where}"
    rest = match.group(1)
    if WHOLE_FILE.match(rest) or rest.startswith("["):  # "[0][3]: ..." names a place in a top-level list
        return
    root = re.split(r"[.\[: ]", rest, maxsplit=1)[0]
    assert root in roots, f"error line names no field: {line!r}\n{where}"


def write(tmp: str, name: str, content: str | bytes) -> Path:
    path = Path(tmp) / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


@contextlib.contextmanager
def fresh_folder():
    """A new working folder per example (hypothesis reuses a test's fixtures across its examples)."""
    before = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield tmp
        finally:
            os.chdir(before)


def shipped(paths: list[Path]) -> st.SearchStrategy:
    return st.sampled_from([(p, absolute_references(json.loads(p.read_text()), p)) for p in paths])


FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SET_KEYS = ["recipe.epochs", "seeds", "scale.depth_mult", "scale.resolution", "num_samples", "search.max_tries",
            "dataset.path", "stages.0.layers", "variants.0.architecture", "search.base", "recipe", "storage_path", "nokey.x"]


# --- the fuzz tests (1,200 mutated files in all) --------------------------------------------------------


@settings(FUZZ, max_examples=500)
@given(st.data())
def test_mutated_architectures(data):
    source, document = data.draw(shipped(ARCH_FILES))
    document = data.draw(mutated(document))
    sets = data.draw(st.sampled_from([[]] * 6 + [["scale.depth_mult=16"], ["scale.width_mult=16"], ["scale.resolution=1e400"],
                                      ["scale.depth_mult=NaN"], ["stages.0.layers=3"], ["scale=[1]"], ["scale.x.y=1"]]))
    with fresh_folder() as tmp:
        check_commands("architecture", write(tmp, source.name, to_json(document)), document, sets)


@settings(FUZZ, max_examples=150)
@given(st.data())
def test_mutated_recipes(data):
    source, document = data.draw(shipped(RECIPE_FILES))
    document = data.draw(mutated(document))
    with fresh_folder() as tmp:
        check_commands("recipe", write(tmp, source.name, to_json(document)), document)


def _sets(data) -> list[str]:
    """A hostile `--set KEY=VALUE` for one example in four."""
    if data.draw(st.integers(0, 3)) != 0:
        return []
    value = data.draw(st.sampled_from(HOSTILE_VALUES))
    text = str(value) if isinstance(value, Raw) else value if isinstance(value, str) else to_json(value)
    return [f"{data.draw(st.sampled_from(SET_KEYS))}={text}"]


@settings(FUZZ, max_examples=350)
@given(st.data())
def test_mutated_studies(data):
    source, document = data.draw(shipped(PLAIN_STUDY_FILES))
    document = data.draw(mutated(document))
    with fresh_folder() as tmp:
        check_commands("study", write(tmp, source.name, to_json(document)), document, _sets(data))


@settings(FUZZ, max_examples=150)
@given(st.data())
def test_mutated_search_studies(data):
    source, document = data.draw(shipped(SEARCH_FILES))
    document = data.draw(mutated(document))
    with fresh_folder() as tmp:
        check_commands("search", write(tmp, source.name, to_json(document)), document, _sets(data))


@settings(FUZZ, max_examples=50)
@given(st.data())
def test_corrupted_files(data):
    kind, paths = data.draw(st.sampled_from([("architecture", ARCH_FILES), ("recipe", RECIPE_FILES),
                                             ("study", PLAIN_STUDY_FILES), ("search", SEARCH_FILES)]))
    source, document = data.draw(shipped(paths))
    content = data.draw(corrupted_bytes(to_json(document)))
    with fresh_folder() as tmp:
        check_commands(kind, write(tmp, source.name, content), document)


# --- the reported cases, and the bounds' margin for real networks ------------------------------------------


def _only_errors(argv: list[str]) -> list[str]:
    code, out, err, seconds = run_cli([str(a) for a in argv])
    assert code == 2 and "Traceback" not in out + err, err
    assert seconds < TIME_LIMIT_S
    return [line.removeprefix("error: ") for line in err.splitlines()]


V2S = json.loads((ARCHITECTURES / "efficientnetv2_s.json").read_text())
STUDY = absolute_references(json.loads((ROOT / "studies/fused_vs_mb.json").read_text()), ROOT / "studies/fused_vs_mb.json")
SEARCH = absolute_references(json.loads((ROOT / "studies/search_v2s_space.json").read_text()), ROOT / "studies/search_v2s_space.json")


@pytest.mark.parametrize("command", [["validate"], ["show"], ["flops", "--counter", "analytic"], ["flops"]])
def test_a_billion_layers_is_refused_at_once(tmp_path, command):
    arch = copy.deepcopy(V2S)
    arch["stages"][0]["layers"] = 1_000_000_000
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    lines = _only_errors([command[0], path, *command[1:]])
    assert lines == [f"{path}: stages[0].layers: Input should be less than or equal to 100"]


def test_depth_scaling_is_bounded_after_compounding(tmp_path):
    arch = copy.deepcopy(V2S)
    arch["depth_mult"] = 4.0  # 160 blocks: fine on its own
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    assert run_cli(["show", str(path)])[0] == 0
    lines = _only_errors(["show", path, "--set", "scale.depth_mult=16"])
    assert len(lines) == 1 and lines[0].startswith(f"{path} (with --set scale): scale.depth_mult: the scaled network: 2,560 blocks")
    study = {**copy.deepcopy(STUDY), "scale": {"depth_mult": 16, "resolution": 16}}
    study["variants"][0]["architecture"] = str(path)
    study_path = tmp_path / "study.json"
    study_path.write_text(json.dumps(study))
    lines = _only_errors(["study", "run", study_path, "--dry-run"])
    assert lines[0].startswith(f"{study_path} (trial v2s-s0): scale.depth_mult: the scaled network: 2,560 blocks after depth scaling")


@pytest.mark.parametrize("field", ["variants[0].architecture", "recipe", "search.base"])
@pytest.mark.parametrize("name, message", [
    ("x" * 300 + ".json", "file name too long (305 bytes in one name; at most 255)"),
    ("arch\x00.json", "the path contains a NUL character, which no file name can hold"),
])
def test_path_fields_with_a_long_name_or_a_nul_byte(tmp_path, field, name, message):
    study = copy.deepcopy(SEARCH if field == "search.base" else STUDY)
    if field == "search.base":
        study["search"]["base"] = name
    elif field == "recipe":
        study["recipe"] = name
    else:
        study["variants"][0]["architecture"] = name
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    for command in (["validate", path], ["study", "run", path, "--dry-run"], ["search", "run", path, "--dry-run"]):
        lines = _only_errors(command)
        assert len(lines) == 1 and lines[0].startswith(f"{path}: {field}: ") and lines[0].endswith(message), (command, lines)


@pytest.mark.parametrize("target, expected", [
    ("/dev/zero", "not a regular file (a device, pipe or socket), expected a JSON file"),
    ("/", "is a directory, expected a JSON file"),
    ("nowhere/arch.json", "file not found"),
    ("not_utf8.json", "not UTF-8 text: byte 0xff on line 1 cannot be decoded"),
    ("deep.json", f"invalid JSON: nested deeper than {MAX_NESTING} levels"),
    ("digits.json", "invalid JSON: a number too long to read (more than 4,300 digits)"),
    ("nan.json", "invalid JSON: NaN is not a number in JSON (write a finite number)"),
    ("inf.json", "invalid JSON: 1e400 is out of the range of a floating-point number"),
])
def test_a_variant_architecture_that_is_no_json_file(tmp_path, target, expected):
    (tmp_path / "not_utf8.json").write_bytes(b"\xff{}")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "digits.json").write_text('{"layers": ' + "1" * 5000 + "}")
    (tmp_path / "nan.json").write_text('{"dropout": NaN}')
    (tmp_path / "inf.json").write_text('{"dropout": 1e400}')
    study = copy.deepcopy(STUDY)
    study["variants"][2]["architecture"] = target
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    lines = _only_errors(["study", "run", path, "--dry-run"])
    assert len(lines) == 1 and lines[0].startswith(f"{path}: variants[2].architecture: ") and lines[0].endswith(expected), lines


def test_trials_are_counted_before_they_are_expanded(tmp_path):
    grid = {f"recipe.optimizer.{k}": {"type": "grid", "values": list(range(1, 101))} for k in ("lr", "weight_decay", "eps")}
    path = tmp_path / "study.json"
    path.write_text(json.dumps({**STUDY, "space": grid}))
    lines = _only_errors(["study", "run", path, "--dry-run"])
    assert lines == [f"{path}: space: the study would plan 15,000,000 trials, more than the limit of 500 "
                     "(variants x grid points x num_samples x seeds): split it or sample fewer"]


def test_non_finite_numbers_are_named(tmp_path):
    arch = {**V2S, "dropout": float("nan")}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    assert _only_errors(["show", path]) == [f"{path}: invalid JSON: NaN is not a number in JSON (write a finite number)"]
    lines = _only_errors(["show", ROOT / "architectures/efficientnetv2_s.json", "--set", "scale.width_mult=NaN"])
    assert lines == ["--set scale: width_mult: must be a finite number (NaN and infinity are not allowed)"]


def test_an_unsatisfiable_search_ends_within_its_sampling_budget(tmp_path):
    search = copy.deepcopy(SEARCH)
    search["search"]["constraints"]["flops"] = {"max": 1}
    search["search"]["max_tries"] = 100_000
    path = tmp_path / "study.json"
    path.write_text(json.dumps(search))
    code, out, err, seconds = run_cli(["search", "run", str(path), "--dry-run"])
    out = " ".join(out.split())  # rich wraps long lines
    assert code == 0 and "sampling budget of 600,000 blocks costed spent" in out, out
    assert re.search(r"only 0 of 24 architectures within the constraints after \d+ draws", out)
    lines = _only_errors(["study", "run", path, "--dry-run"])
    assert lines[0].startswith(f"{path}: only 0 of 24 architectures") and lines[1].endswith("or narrow the layers choices")


def _largest_valid_configs(tmp_path: Path) -> list[list[str]]:
    """The slowest files the bounds allow: 500 trials of 500-block networks; an unsatisfiable search of 500-block
    networks with 100,000 tries; 500 sampled architectures with 64 searched dimensions (a 64-column trial table)."""
    deep = {**json.loads((ARCHITECTURES / "efficientnetv2_l.json").read_text()), "depth_mult": 6.25}  # 500 blocks
    (tmp_path / "deep.json").write_text(json.dumps(deep))
    (tmp_path / "l.json").write_text((ARCHITECTURES / "efficientnetv2_l.json").read_text())
    study = {**STUDY, "scale": {"resolution": 16}, "seeds": list(range(50)), "baseline": None,
             "variants": [{"name": f"v{i}", "architecture": str(tmp_path / "deep.json")} for i in range(10)]}
    unsatisfiable = copy.deepcopy(SEARCH)
    unsatisfiable["search"].update(base=str(tmp_path / "deep.json"), max_tries=100_000, constraints={"flops": {"max": 1}},
                                   stages=[{"layers": [1, s["layers"]]} for s in deep["stages"]], **{"global": {}})
    wide = copy.deepcopy(SEARCH)
    choices = {"block": ["fused_mbconv", "mbconv"], "expand": [2, 4], "kernel": [3, 5], "layers": [1, 2], "out_channels": [16, 24],
               "se": [True, False]}
    wide["search"].update(base=str(tmp_path / "l.json"), constraints={"num_classes": 10}, stages=[choices] * 7, **{"global": {
        "head_channels": [64, 128], "stem_channels": [16, 24], "dropout": [0.1, 0.2], "stochastic_depth_rate": [0.1, 0.2],
        "stochastic_depth_schedule": ["linear", "none"]}})
    keys = [f"recipe.{key}" for key in (
        "optimizer.lr", "optimizer.weight_decay", "optimizer.momentum", "schedule.warmup_epochs", "schedule.min_lr",
        "schedule.decay_rate", "schedule.decay_epochs", "schedule.plateau_factor", "schedule.warmup_start_factor",
        "augment.color_jitter", "augment.mixup", "augment.cutmix", "label_smoothing", "ema_decay", "grad_clip")]
    keys += ["dataset.val_fraction", "architecture.norm.momentum"]  # 47 search choices + 17 = 64 dimensions
    wide.update(num_samples=500, space={key: {"type": "choice", "values": [0.1, 0.2]} for key in keys})
    commands = []
    for name, document, words in (("study", study, ["study", "run"]), ("unsatisfiable", unsatisfiable, ["search", "run"]),
                                  ("unsatisfiable", unsatisfiable, ["study", "run"]), ("wide", wide, ["search", "run"]),
                                  ("wide", wide, ["study", "run"])):
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
        commands.append([*words, str(tmp_path / f"{name}.json"), "--dry-run"])
    return commands


def test_the_largest_valid_configs_answer_in_time(tmp_path):
    for argv in _largest_valid_configs(tmp_path):
        code, out, err, seconds = run_cli(argv)  # stopped, and failed, after TIME_LIMIT_S
        assert "Traceback" not in out + err and code in (0, 2), (argv, err[-2000:])
        assert code == 0 or "only 0 of 24 architectures" in err, (argv, err[-2000:])


def test_markup_in_names_is_printed_as_text(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({**V2S, "name": "[/x] v2s [bold]"}))
    code, out, err, _ = run_cli(["show", str(path)])
    assert code == 0 and "[/x] v2s [bold]" in out, err
    code, out, err, _ = run_cli(["flops", "--counter", "analytic", str(path), str(ROOT / "architectures/efficientnet_b0.json")])
    assert code == 0 and "[/x] v2s [bold]" in out, err


def test_the_bounds_leave_real_networks_a_wide_margin():
    from workbench.schema import Scale, load

    for path in ARCH_FILES:
        arch = load(Architecture, path)
        for scale in (Scale(depth_mult=4), Scale(width_mult=4)):  # four times the deepest and the widest shipped network
            assert TrainJob(architecture=arch, scale=scale).network.size_problems() == [], (path, scale)


def test_every_committed_json_schema_is_current():
    from workbench.cli.arch import SCHEMAS, schema_dict

    for kind in SCHEMAS:
        committed = json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text())
        assert committed == schema_dict(kind), f"regenerate: workbench schema {kind} -o schemas/{kind}.schema.json"


def test_dry_runs_import_no_torch():
    """The fuzz examples stay cheap because no command they run imports torch (the full `flops` does)."""
    import subprocess

    code = ("from workbench.cli.main import main; import sys;"
            f"main(['show', {str(ARCHITECTURES / 'efficientnetv2_s.json')!r}]);"
            f"main(['study', 'run', {str(ROOT / 'studies/search_v2s_space.json')!r}, '--dry-run']);"
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
