"""results show (one trial) and results tensorboard."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

try:
    from tests.fixtures_results import make_study, write_trial
except ImportError:
    from fixtures_results import make_study, write_trial

from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.results import reader, show, tb


def render_text(trial, **kwargs) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(show.render(trial, **kwargs))
    return console.export_text()


def test_show_completed_trial(tmp_path):
    folder = write_trial(tmp_path / "run", variant="v2s", seed=4, val_top1=[0.31, 0.62, 0.75, 0.74],
                         hparams={"recipe.optimizer.lr": 0.016}, params=5_290_000, flops=390_000_000, study="s")
    text = render_text(show.load_trial(folder))
    assert "per epoch (4 recorded)" in text
    assert "architecture.name" in text and "recipe.optimizer.name" in text and "rmsprop" in text
    assert "hp.recipe.optimizer.lr" in text and "seed 4" in text
    assert "best val_top1   75.00 % (epoch 3)" in text and "final val_top1  74.00 %" in text
    assert "completed" in text and "5.29 M (5,290,000)" in text and "GFLOPs          0.390" in text
    assert show.sparkline([0.31, 0.62, 0.75, 0.74]) in text
    # the epoch rows carry the schedule and the curve
    row = next(line for line in text.splitlines() if line.strip().startswith("3 "))
    assert "75.00" in row and "32" in row  # val top-1 % and the stage-2 image size


def test_show_incomplete_and_train_out_folder(tmp_path):
    study = make_study(tmp_path)
    text = render_text(show.load_trial(study / "trials" / "v2s_shallow-lr0.01-s3"))
    assert "incomplete" in text and "truncated" in text and "per epoch (3 recorded)" in text
    loose = write_trial(tmp_path / "runs" / "b0_cifar", variant="efficientnet_b0", seed=None, val_top1=[0.4, 0.5],
                        with_trial_json=False)
    trial = show.load_trial(loose)
    assert trial.variant == "b0_cifar" and trial.state == "completed"
    assert main(["results", "show", str(loose)]) == 0


def test_show_refuses_what_is_not_a_trial(tmp_path, capsys):
    study = make_study(tmp_path, broken=False)
    with pytest.raises(WorkbenchError, match="is a study folder"):
        show.load_trial(study)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkbenchError, match="not a trial folder"):
        show.load_trial(tmp_path / "empty")
    assert main(["results", "show", str(study / "trials" / "v2s_fused-lr0.01-s0"), "--metric", "val_top9"]) == 2
    assert "unknown metric 'val_top9'" in capsys.readouterr().err


def test_long_runs_are_elided_unless_asked(tmp_path):
    folder = write_trial(tmp_path / "long", variant="v", seed=0, val_top1=[0.5 + i / 400 for i in range(100)])
    trial = show.load_trial(folder)
    short = render_text(trial)
    assert "…" in short and "per epoch (100 recorded)" in short
    full = render_text(trial, max_epochs=10**9)
    assert "…" not in full.split("per epoch")[1].split("val_top1")[0]


def test_sparkline():
    assert show.sparkline([0.0, 1.0]) == "▁█"
    assert show.sparkline([0.5, 0.5, 0.5]) == "▄▄▄"
    assert show.sparkline([]) == ""


def test_tensorboard_command_and_events_from_metrics(tmp_path, capsys):
    a = make_study(tmp_path / "a", name="fused_vs_mb", broken=False)
    with pytest.raises(WorkbenchError, match="no TensorBoard event files"):
        tb.command([a])
    out = tmp_path / "tb"
    assert main(["results", "tensorboard", str(a), "--from-metrics", str(out), "--print"]) == 0
    assert capsys.readouterr().out.strip() == f"tensorboard --logdir {out}"
    # what tensorboard --logdir OUT would show: one run per trial with the val_top1 curve
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer().AddRunsFromDirectory(str(out))
    mux.Reload()
    runs = mux.Runs()
    assert len(runs) == 18 and "fused_vs_mb/trials/v2s_fused-lr0.01-s0" in runs
    events = mux.Scalars("fused_vs_mb/trials/v2s_fused-lr0.01-s0", "val_top1")  # the trainer's tag names
    expected = [json.loads(line)["val_top1"] for line in
                (a / "trials" / "v2s_fused-lr0.01-s0" / "metrics.jsonl").read_text().splitlines()]
    assert [e.step for e in events] == list(range(1, 7))
    assert [e.value for e in events] == pytest.approx(expected, rel=1e-6)
    # several folders: one named run group each
    b = make_study(tmp_path / "b", name="other", broken=False)
    tb.export_events(reader.load([b]), b / "events")
    args = tb.command([out, b / "events"], port=6007)
    assert args[:2] == ["tensorboard", "--logdir_spec"] and args[2] == f"tb:{out},events:{b / 'events'}"
    assert args[-2:] == ["--port", "6007"]


@pytest.mark.parametrize("command", ["compare", "plot", "errors", "show", "tensorboard"])
def test_help_of_every_results_command(command, capsys):
    for argv in (["results", "--help"], ["results", command, "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert f"workbench results {command}" in capsys.readouterr().out
