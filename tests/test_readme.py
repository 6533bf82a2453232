"""README.md runs as written, on what a fresh clone holds.

Every command of README.md's ```bash blocks runs here, in README order, in a temporary copy of the repository (the
tracked files and those git would add, never the git-ignored trial folders; ../shared and .venv reachable at the
same relative paths through symlinks), so nothing a command writes lands in the checkout — results/<study>/
summary.csv is committed. The ```python block runs too (test_readme_python_block_runs).

Conventions (also stated in README.md's Development section):
- `<!-- readme-test: not run (REASON) -->` on the line above a fence marks a block that cannot run on one offline
  CPU machine (make demo / make test themselves, Ray cluster daemons, Imagenette on GPUs). Fences without a
  language show output, not commands.
- Quick commands (validate, show, flops, schema, dry runs, predict, results ...) run exactly as written.
- Long ones run with the same arguments plus the overrides of `shrink()` appended, each documented in README.md
  or the command's --help, and they are reported as SHRUNK: trainings 1 epoch of 100 images at 16 px, studies
  one seed, benchmarks one step of a small batch. Studies run into a scratch --out, so the results commands that follow read the
  committed folders, as on a fresh clone; the search is the exception (see KEEP_DEFAULT_OUT).
- A results command that needs trial folders (`--kind curves`, `results errors`, `results show`,
  `results tensorboard`) on a folder that has none must stop with exit 2 and NEEDS_TRIAL_FOLDERS, the message
  README.md documents. After the README pass, the output of the README's (shrunk) fused_vs_mb study run is moved
  into results/fused_vs_mb, where the command writes it without --out (as `make demo` does), and those commands
  run again and must exit 0 (`results tensorboard` with --print appended, as it would otherwise start the server).
- Inputs the README assumes are created here and said so: my_digit.png (a digit of scikit-learn's set) for
  `workbench predict`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent  # .venv/bin: workbench, python
SHARED = ROOT.parent / "shared"
NOT_RUN = re.compile(r"<!-- readme-test: not run \((?P<reason>[^)]+)\)")
NEEDS_TRIAL_FOLDERS = "needs the trial folders (trials/<id>/), and this folder holds only summary.csv"
# The search writes results/search_v2s_space/architectures/, which the README's next commands train and count
# (`workbench train results/search_v2s_space/architectures/a010.json`): it runs into its default folder, and draws
# 11 of its 24 architectures (rejection sampling from a fixed seed: a000 ... a010 are the full run's first 11).
KEEP_DEFAULT_OUT = ("studies/search_v2s_space.json",)
SEARCH_SHRINK = ["--set", "num_samples=11"]
TIMEOUT = 600

# `workbench latency table`: one short round per part and network, two networks to fit on and two to check (its --help).
LATENCY_TABLE_SHRINK = ["--rounds", "1", "--min-run-time", "0.005", "--part-run-time", "0.002", "--fit", "2", "--holdout", "2"]
# A search under a latency budget (search.latency_table given): 4 architectures, and a budget that a loaded machine's
# shrunk table cannot push every draw over (the README's 1.1 ms is for a quiet 2-core VM and a full table).
LATENCY_SEARCH_SHRINK = ["--set", "num_samples=4", "--set", "search.constraints.latency_ms.max=1000"]
TRAIN_SHRINK = ["--set", "recipe.epochs=1", "--set", "dataset.max_train_images=100",
                "--set", "dataset.max_val_images=100", "--set", "scale.resolution=16"]
BENCH_SCRIPT_SHRINK = {  # their --help options
    "bench/bench_latency.py": ["--count", "2", "--rounds", "1", "--min-run-time", "0.005", "--part-run-time", "0.002"],
    "bench/bench_progressive.py": ["--epochs", "4", "--min-size", "16", "--max-size", "24", "--width", "0.25",
                                   "--max-train-images", "64", "--max-val-images", "32", "--batch", "32"],
    "bench/bench_study_overhead.py": ["--trials", "2", "--trial-seconds", "1"],
    "bench/bench_loop.py": ["--cases", "proxy", "--repetitions", "1"],
    "bench/bench_stream.py": ["--images", "200", "400", "--val", "50", "--loader-workers", "1"],
    "bench/bench_shared.py": ["--trials", "2", "--size", "32", "--images", "160"],
}


@dataclass
class Block:
    language: str
    line: int  # of the opening fence, 1-based
    body: list[str]
    not_run: str | None  # the marker's reason


@dataclass
class Step:
    command: str  # as README.md has it, continuation lines joined
    line: int
    argv: list[str]
    run: str = ""  # the shell command actually run
    shrunk: list[str] = field(default_factory=list)


def fenced_blocks(text: str) -> list[Block]:
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = NOT_RUN.search(lines[i - 1]) if i else None
        blocks.append(Block(opening.group(1), i + 1, lines[i + 1:end], marker.group("reason") if marker else None))
        i = end + 1
    return blocks


def strip_comment(line: str) -> str:
    """`cmd --x  # why` -> `cmd --x`: a # that starts a shell word, outside quotes. (shlex drops comments but
    returns tokens, and the command must run through the shell as written, redirections included.)"""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands(block: Block) -> list[tuple[int, str]]:
    """(line, command) per shell command: continuation lines joined, comments and blank lines dropped."""
    out, pending, start = [], "", 0
    for offset, raw in enumerate(block.body):
        line = strip_comment(raw) if not pending else raw.strip()
        if not pending:
            start = block.line + 1 + offset
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = strip_comment(pending + line.strip()) if pending else line.strip()
        pending = ""
        if line:
            out.append((start, line))
    return out


def readme_steps() -> list[Step]:
    steps = []
    for block in fenced_blocks(README.read_text(encoding="utf-8")):
        if block.language == "bash" and block.not_run is None:
            steps += [Step(cmd, line, shlex.split(cmd, comments=True)) for line, cmd in commands(block)]
    return steps


def is_long(argv: list[str]) -> bool:
    if argv[0] == ".venv/bin/python" and argv[1] in BENCH_SCRIPT_SHRINK:
        return True
    if argv[0] != "workbench":
        return False
    sub = argv[1:3]
    return (argv[1] in ("train", "bench") or sub == ["latency", "table"]
            or (sub in (["study", "run"], ["search", "run"]) and "--dry-run" not in argv))


def shrink(argv: list[str], scratch: Path, index: int) -> list[str]:
    """What a long command gets appended (later --set assignments win)."""
    if argv[0] == ".venv/bin/python":
        return BENCH_SCRIPT_SHRINK[argv[1]]
    if argv[1] == "bench":
        return ["--steps", "1", "--warmup", "1", "--resolution", "32", "--batch", "4"]  # the later flag wins
    if argv[1] == "latency":
        return LATENCY_TABLE_SHRINK
    extra = list(TRAIN_SHRINK)
    if "recipe.progressive.enabled=true" in argv or "studies/recipes/automl_efficientnetv2_s.json" in argv:
        extra[1] = "recipe.epochs=4"  # progressive learning needs an epoch per stage (4 by default, and automl's recipe)
    if argv[1] == "train":
        return extra
    extra = ["--set", "seeds=[0]"] + extra + (SEARCH_SHRINK if argv[1] == "search" else [])
    if any(arg.startswith("search.latency_table=") for arg in argv):
        extra += LATENCY_SEARCH_SHRINK
    if argv[3] not in KEEP_DEFAULT_OUT and "--out" not in argv:
        extra += ["--out", str(scratch_out(scratch, index))]
    return extra


def scratch_out(scratch: Path, index: int) -> Path:
    return scratch / f"study-{index}"


def needs_trial_folders(argv: list[str], repo: Path) -> bool:
    """A results command that reads epochs, predictions or event files, on a study folder without trial folders."""
    if argv[:2] != ["workbench", "results"]:
        return False
    if not (argv[2] in ("errors", "show", "tensorboard") or (argv[2] == "plot" and "curves" in argv)):
        return False
    target = Path(argv[3])
    study = target.parent.parent if target.parent.name == "trials" else target
    return not (repo / study / "trials").is_dir()


def clone(tmp: Path) -> Path:
    """The files a fresh clone has (tracked, plus new files git would add), beside ../shared and with .venv."""
    repo = tmp / "repo"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    (repo / ".venv").symlink_to(BIN.parent)
    if SHARED.is_dir():
        (tmp / "shared").symlink_to(SHARED)
    return repo


def environment(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo)  # the copy's workbench package, not the editable install's checkout
    env.pop("RAY_ADDRESS", None)  # a README reader has none: each study starts its own local Ray
    env["COLUMNS"] = "200"
    return env


def make_inputs(repo: Path) -> None:
    """my_digit.png for `workbench predict ... my_digit.png`: the first of scikit-learn's 8x8 digits, at 32 px."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    image = (load_digits().images[0] * 255 / 16).astype(np.uint8)
    Image.fromarray(image).resize((32, 32)).save(repo / "my_digit.png")


def run_shell(command: str, repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command through bash, as a reader pastes it; one that hangs fails its own test (exit 124), not the rest."""
    try:
        return subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        def text(data) -> str:
            return data.decode(errors="replace") if isinstance(data, bytes) else data or ""

        return subprocess.CompletedProcess(exc.cmd, 124, text(exc.stdout), text(exc.stderr) + f"\n(killed after {TIMEOUT} s)")


def report(step: Step, result: subprocess.CompletedProcess) -> str:
    shrunk = f"\n  SHRUNK: + {shlex.join(step.shrunk)}" if step.shrunk else ""
    return (f"README.md line {step.line}: {step.command}{shrunk}\n  ran: {step.run}\n  exit {result.returncode}\n"
            f"--- stdout (tail)\n{result.stdout[-3000:]}\n--- stderr (tail)\n{result.stderr[-3000:]}")


@dataclass
class Outcome:
    step: Step
    result: subprocess.CompletedProcess
    expected_message: bool  # a fresh clone has no trial folders for it: NEEDS_TRIAL_FOLDERS, exit 2


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Run every README command in order, then the trial-folder commands again after the study ran."""
    tmp = tmp_path_factory.mktemp("readme")
    repo, scratch = clone(tmp), tmp / "scratch"
    env = environment(repo)
    make_inputs(repo)
    outcomes: list[Outcome] = []
    for index, step in enumerate(readme_steps()):
        if "../shared" in step.command and not SHARED.is_dir():
            pytest.skip(f"{SHARED} (the shared datasets beside the repository) is not here")
        step.shrunk = shrink(step.argv, scratch, index) if is_long(step.argv) else []
        assert not step.shrunk or not re.search(r"[<>|]", step.command), "appending to a redirected command"
        step.run = step.command + (" " + shlex.join(step.shrunk) if step.shrunk else "")
        expected = needs_trial_folders(step.argv, repo)
        outcomes.append(Outcome(step, run_shell(step.run, repo, env), expected))

    # After the study ran into its own folder (what `make demo` does), the commands that needed its trial folders work.
    demo = next(i for i, o in enumerate(outcomes) if o.step.command == "workbench study run studies/fused_vs_mb.json")
    assert outcomes[demo].result.returncode == 0, report(outcomes[demo].step, outcomes[demo].result)
    shutil.copytree(scratch_out(scratch, demo), repo / "results" / "fused_vs_mb", dirs_exist_ok=True)
    after = []
    for outcome in outcomes:
        if outcome.expected_message:
            step = Step(outcome.step.command, outcome.step.line, outcome.step.argv)
            step.shrunk = ["--print"] if step.argv[2] == "tensorboard" else []  # not the server
            step.run = step.command + (" " + shlex.join(step.shrunk) if step.shrunk else "")
            after.append(Outcome(step, run_shell(step.run, repo, env), False))
    return {"repo": repo, "env": env, "outcomes": outcomes, "after": after}


STEPS = readme_steps()


@pytest.mark.parametrize("index", range(len(STEPS)), ids=[f"line{s.line}:{' '.join(s.argv[:3])}" for s in STEPS])
def test_readme_command_exits_0_or_with_the_documented_message(readme_run, index):
    outcome = readme_run["outcomes"][index]
    result = outcome.result
    if outcome.expected_message:
        assert result.returncode == 2 and NEEDS_TRIAL_FOLDERS in result.stderr, report(outcome.step, result)
        assert "Traceback" not in result.stderr, report(outcome.step, result)
    else:
        assert result.returncode == 0, report(outcome.step, result)


def test_commands_that_need_trial_folders_work_after_the_study_ran(readme_run):
    after = readme_run["after"]
    assert len(after) >= 5, "curves, errors, show and the two tensorboard commands expected"
    assert (readme_run["repo"] / "results" / "fused_vs_mb" / "trials" / "v2s-s0" / "metrics.jsonl").is_file()
    for outcome in after:
        assert outcome.result.returncode == 0, report(outcome.step, outcome.result)
    repo = readme_run["repo"]
    assert (repo / "hardest.png").stat().st_size > 0 and (repo / "wrong.png").stat().st_size > 0
    assert any((repo / "runs" / "tb").rglob("events.out.tfevents*"))


def test_readme_outputs_are_what_it_says(readme_run):
    """A few promises of the text beside the commands, checked on what the commands wrote."""
    by_command = {o.step.command: o.result for o in readme_run["outcomes"]}
    validate = by_command["workbench validate architectures/*.json studies/*.json"]
    assert ("ok  studies/hymenoptera.json (study) — note: dataset.path is given at run time (--set dataset.path=...)"
            in validate.stdout)
    compare = by_command["workbench results compare results/fused_vs_mb"]
    assert "read from results/fused_vs_mb/summary.csv" in compare.stdout
    committed = first_table((ROOT / "results" / "fused_vs_mb" / "README.md").read_text())
    assert committed and first_table((readme_run["repo"] / "results" / "fused_vs_mb" / "table.md").read_text()) == committed
    csv = by_command["workbench results compare results/sensitivity --by hp.recipe.progressive.dropout --format csv"]
    assert csv.stdout.startswith("study,hp.recipe.progressive.dropout,n,") and "note: sensitivity: read from" in csv.stderr
    assert json.loads((readme_run["repo"] / "b0_modules.json").read_text())["architectures"][0]["modules"]


def first_table(markdown: str) -> list[str]:
    """The rows of the first markdown table."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_readme_python_block_runs(readme_run):
    blocks = [b for b in fenced_blocks(README.read_text(encoding="utf-8")) if b.language == "python" and not b.not_run]
    assert blocks
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", "\n".join(block.body)], cwd=readme_run["repo"], env=readme_run["env"],
                                capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, f"README.md line {block.line}:\n{result.stderr[-3000:]}"


def test_study_run_without_the_path_refuses_up_front(readme_run):
    result = run_shell("workbench study run studies/hymenoptera.json", readme_run["repo"], readme_run["env"])
    assert result.returncode == 2 and not (readme_run["repo"] / "results" / "hymenoptera" / "trials").exists()
    assert ("error: studies/hymenoptera.json: dataset.path: imagefolder needs path" in result.stderr
            and "--set dataset.path=DIR" in result.stderr and "Traceback" not in result.stderr)


def test_not_run_blocks_say_why_and_make_demo_runs_the_documented_study(readme_run):
    text = README.read_text(encoding="utf-8")
    skipped = [b for b in fenced_blocks(text) if b.not_run]
    # make demo/test, Ray cluster and offline-download examples, and the GPU batch's dry run (tests/test_gpu_batch.py)
    assert {tuple(c for _, c in commands(b))[0].split()[0] for b in skipped} == {"make", "workbench", "ray", "bash"}
    assert any(b.not_run and "test_gpu_batch.py" in b.not_run for b in skipped)
    assert NEEDS_TRIAL_FOLDERS in text  # the message the fresh-clone commands are held to is the documented one
    dry = subprocess.run(["make", "-n", "demo"], cwd=readme_run["repo"], capture_output=True, text=True, check=True)
    assert ".venv/bin/workbench study run studies/fused_vs_mb.json" in dry.stdout


def test_command_parsing():
    block = Block("bash", 1, ["# a comment", "workbench a \\", "  --b 'x # y'  # why", "", "echo '#' # z"], None)
    assert commands(block) == [(3, "workbench a --b 'x # y'"), (6, "echo '#'")]
    steps = readme_steps()
    assert all(s.argv and s.argv[0] in ("workbench", ".venv/bin/python") for s in steps), [s.command for s in steps]
    assert not [s.command for s in steps if re.search(r"HEAD_IP|=/data\b", s.command)]  # the not-run blocks


def test_validate_notes_a_path_given_at_run_time_and_still_rejects_errors(tmp_path, workbench_cli):
    code, out, err = workbench_cli("validate", ROOT / "studies" / "hymenoptera.json")
    assert code == 0 and "note: dataset.path is given at run time (--set dataset.path=...)" in out and not err
    broken = json.loads((ROOT / "studies" / "hymenoptera.json").read_text())
    broken["dataset"]["val_fraction"] = 2
    (tmp_path / "broken.json").write_text(json.dumps({**broken, "$schema": "study"}))
    code, out, err = workbench_cli("validate", tmp_path / "broken.json")
    assert code == 2 and "dataset.val_fraction" in err and "dataset.path" not in err
    code, out, err = workbench_cli("study", "run", ROOT / "studies" / "hymenoptera.json", "--dry-run")
    assert code == 2 and "dataset.path: imagefolder needs path" in err and "--set dataset.path=DIR" in err
