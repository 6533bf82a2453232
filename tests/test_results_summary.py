"""Study folders as a clone holds them: summary.csv (committed) without the git-ignored trial folders.

The figures summary.csv holds must give the same table as the trial folders they were written from; what needs the
epochs, predictions, event files or architecture files must say so, naming the folder, with exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from tests.fixtures_results import make_study
except ImportError:  # tests/ itself on sys.path
    from fixtures_results import make_study

from workbench.errors import WorkbenchError
from workbench.results import compare, plots, reader, records, summary, tables
from workbench.study.ledger import write_summary
from workbench.trialdir import SUMMARY_HEAD, SUMMARY_TAIL, summary_row

ROOT = Path(__file__).resolve().parents[1]
NEEDS = "needs the trial folders (trials/<id>/), and this folder holds only summary.csv"
COMPARED = ("n", "incomplete", "diverged", "failed", "params", "flops", "best_val_top1_mean", "best_val_top1_std",
            "final_val_top1_mean", "final_val_top1_std", "delta_best_val_top1", "ci_low", "ci_high", "p_value",
            "seconds_mean", "train_images_per_s_mean", "seeds", "baseline")


def clone_of(study: Path, where: Path) -> Path:
    """The study folder as git keeps it: summary.csv (written by the study runner's ledger) and nothing ignored."""
    write_summary(study, study.name)
    clone = where / study.name
    clone.mkdir(parents=True)
    shutil.copy(study / "summary.csv", clone / "summary.csv")
    return clone


def first_table(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_summary_gives_the_table_of_the_trial_folders(tmp_path):
    study = make_study(tmp_path / "run")  # with a diverged, a killed and a never-started trial
    clone = clone_of(study, tmp_path / "clone" / "results")
    (tmp_path / "clone" / "studies").mkdir()
    spec = json.loads((study / "study.json").read_text())
    (tmp_path / "clone" / "studies" / f"{study.name}.json").write_text(json.dumps(spec))
    full = compare.compare(reader.load([study]))
    [record] = reader.load([clone])
    assert record.from_summary and all(t.from_summary for t in record.trials)
    from_summary = compare.compare([record])
    assert [{k: r[k] for k in COMPARED} for r in from_summary.rows()] == [{k: r[k] for k in COMPARED} for r in full.rows()]
    assert first_table(tables.markdown(from_summary)) == first_table(tables.markdown(full))
    assert any(f"read from {clone / 'summary.csv'}" in n for n in from_summary.notes)
    assert any("variant order and baseline from" in n and n.endswith(f"{study.name}.json") for n in from_summary.notes)
    killed = next(t for t in record.trials if t.trial_id == "v2s_shallow-lr0.01-s3")
    assert killed.state == "incomplete" and "running" in killed.reason  # never averaged, as with its folder


def test_without_a_study_file_the_first_variant_is_the_baseline_and_the_note_says_so(tmp_path):
    clone = clone_of(make_study(tmp_path / "run", broken=False), tmp_path / "clone" / "results")
    result = compare.compare(reader.load([clone]), by="variant")
    assert [g.label for g in result.groups if g.is_baseline] == ["v2s_fused"]  # first in summary.csv's order
    assert any("no declared baseline" in n and "--baseline NAME" in n for n in result.notes)
    other = compare.compare(reader.load([clone]), by="variant", baseline="v2s_shallow")
    assert [g.label for g in other.groups if g.is_baseline] == ["v2s_shallow"]


def test_summary_values_are_typed_like_trial_json(tmp_path):
    row = {"trial_id": "a-s0", "variant": "a", "seed": "0", "hp.lr": "0.01", "hp.sizes": "[8, 24]", "hp.se": "False",
           "hp.block": "mbconv", "hp.unset": "", "status": "completed", "best_val_top1": "0.5", "params": "10"}
    trial = summary.summary_trial(row, "s", tmp_path)
    assert trial.hparams == {"lr": 0.01, "sizes": [8, 24], "se": False, "block": "mbconv"}
    assert trial.finished and trial.best("val_top1") == 0.5 and trial.params == 10 and trial.final("val_top1") is None
    assert summary.summary_trial({**row, "status": "interrupted"}, "s", tmp_path).state == "incomplete"
    assert summary.summary_trial({**row, "status": ""}, "s", tmp_path).state == "incomplete"


def test_pareto_sensitivity_and_edf_draw_from_summary(tmp_path):
    clone = clone_of(make_study(tmp_path / "run", broken=False), tmp_path / "clone")
    studies = reader.load([clone])
    for kind in ("pareto", "sensitivity", "edf"):
        plots.save(plots.plot(kind, studies), tmp_path / f"{kind}.png")
        assert (tmp_path / f"{kind}.png").stat().st_size > 0
    errors = sorted((1 - t.best("val_top1")) * 100 for t in studies[0].trials if t.variant == "v2s_fused")
    fig = plots.edf(studies)
    drawn = next(line for line in fig.axes[0].lines if line.get_label().startswith("v2s_fused"))
    assert list(drawn.get_xdata())[1:-1] == pytest.approx(errors)  # the EDF's steps are summary.csv's errors


def test_what_needs_trial_folders_says_so_with_exit_2(tmp_path, workbench_cli):
    clone = clone_of(make_study(tmp_path / "run", broken=False), tmp_path / "clone")
    for argv in (["results", "plot", clone, "--kind", "curves", "-o", tmp_path / "c.png"],
                 ["results", "errors", clone],
                 ["results", "show", clone / "trials" / "v2s_fused-lr0.01-s0"],
                 ["results", "tensorboard", clone, "--print"],
                 ["results", "tensorboard", clone, "--from-metrics", tmp_path / "tb", "--print"]):
        code, out, err = workbench_cli(*argv)
        assert code == 2 and f"{clone}: " in err and NEEDS in err and "Traceback" not in err, (argv, err)
    code, _, err = workbench_cli("results", "compare", clone, "--metric", "val_top5")
    assert code == 2 and "summary.csv holds only val_top1; --metric val_top5 needs the trial folders" in err
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "tb").exists()


def test_csv_output_says_on_stderr_where_its_rows_came_from(tmp_path, workbench_cli):
    clone = clone_of(make_study(tmp_path / "run", broken=False), tmp_path / "clone")
    code, out, err = workbench_cli("results", "compare", clone, "--format", "csv")
    assert code == 0 and out.startswith("study,variant,") and "note:" not in out
    assert f"note: {clone.name}: read from {clone / 'summary.csv'}" in err


def test_trial_folders_win_over_summary(tmp_path):
    """A folder with trial folders is read from them, as before; summary.csv only flags trials it lists that are gone."""
    study = make_study(tmp_path)
    [record] = reader.load([study])
    assert not record.from_summary and not any(t.from_summary for t in record.trials)


COMMITTED = sorted(p.parent for p in (ROOT / "results").glob("*/summary.csv"))


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_tables_are_reproduced_from_summary(folder, workbench_cli):
    """Each committed results/<study>/README.md table, recomputed from its summary.csv alone (as on a clone)."""
    if (folder / "trials").is_dir():
        pytest.skip(f"{folder} holds trial folders of a local run")
    committed = (folder / "README.md").read_text()
    command = next(line for line in committed.splitlines() if line.startswith("Command: "))
    argv = command.split("`")[1].split()[1:]  # workbench results compare results/<study> --format markdown
    assert argv[:3] == ["results", "compare", f"results/{folder.name}"]
    code, out, err = workbench_cli(*argv[:2], folder, *argv[3:])
    assert code == 0, err
    assert first_table(out) == first_table(committed)


def test_search_analyze_from_summary_matches_the_committed_ranges(tmp_path, workbench_cli):
    folder = ROOT / "results" / "search_v2s_space"
    if (folder / "trials").is_dir():
        pytest.skip(f"{folder} holds trial folders of a local run")
    code, _, err = workbench_cli("search", "analyze", folder, "-o", tmp_path)
    assert code == 2 and "measured latency" in err and "--latency train" in err and not (tmp_path / "edf.png").exists()
    code, out, err = workbench_cli("search", "analyze", folder, "-o", tmp_path, "--latency", "train")
    assert code == 0, err
    import pandas as pd

    def ranges(path: Path):  # summary.csv lists the choices alphabetically, trial.json in stage order
        return pd.read_csv(path).sort_values("choice").reset_index(drop=True)

    assert ranges(tmp_path / "ranges.csv").equals(ranges(folder / "figures" / "ranges.csv"))
    assert "Pareto front, val_top1 vs FLOPs: a020 (0.85 MFLOPs, 92.50 %), a000 (0.87 MFLOPs, 95.56 %), a010" in out
    with pytest.raises(WorkbenchError, match="--metric reward"):
        from workbench.results import search_analysis

        search_analysis.architectures(reader.load([folder]), "reward")


def test_regenerate_refuses_a_clone_and_rebuilds_from_trial_folders(tmp_path):
    script = ROOT / "results" / "regenerate.sh"
    env = {**os.environ, "WORKBENCH": str(Path(sys.executable).parent / "workbench")}
    run = make_study(tmp_path / "run" / "results", broken=False)
    clone = clone_of(run, tmp_path / "clone" / "results")
    (clone / "README.md").write_text("committed table\n")
    refused = subprocess.run(["bash", str(script), clone.name, "box", "curves", "note"], cwd=tmp_path / "clone",
                             env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "has no trial folders" in refused.stderr
    assert (clone / "README.md").read_text() == "committed table\n"  # nothing overwritten
    rebuilt = subprocess.run(["bash", str(script), "fused_vs_mb", "fixture box", "curves pareto edf", "Produced by: fixture"],
                             cwd=tmp_path / "run", env=env, capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    table = (run / "README.md").read_text()
    assert "Machine: fixture box" in table and "Produced by: fixture" in table and "| v2s_fused |" in table
    assert "| test | p | p Holm | g (95 % CI) | seeds needed | verdict |" in table and "| paired (3) |" in table
    assert all((run / "figures" / f"{kind}.png").stat().st_size for kind in ("curves", "pareto", "edf"))


def test_trials_frame_holds_the_summary_rows(tmp_path):
    """One row per trial with summary.csv's columns: for a trial that ended, the row the study ledger writes."""
    import pandas as pd

    study = make_study(tmp_path / "run")
    [record] = reader.load([study])
    frame = records.trials_frame(record.trials)
    assert list(frame.columns) == [*SUMMARY_HEAD, "hp.recipe.optimizer.lr", *SUMMARY_TAIL, "state", "path"]
    rows = frame.set_index("trial_id")
    for trial_id in ("v2s_fused-lr0.01-s0", "v2s_mbconv-lr0.05-s3"):  # completed, diverged
        folder = study / "trials" / trial_id
        expected = summary_row(study.name, json.loads((folder / "trial.json").read_text()),
                               json.loads((folder / "status.json").read_text()), trial_id)
        row = {k: rows.loc[trial_id, k] for k in expected if k != "trial_id"}
        assert {k: None if pd.isna(v) else v for k, v in row.items()} == {k: v for k, v in expected.items() if k != "trial_id"}
    assert rows.loc["v2s_shallow-lr0.01-s3", "state"] == "incomplete"
    assert "best_val_loss" in records.trials_frame(record.trials, "val_loss").columns


def test_one_study_run_twice_is_labelled_by_folder_in_a_run_and_in_a_clone(tmp_path, workbench_cli):
    """Two --out folders of the same study: rows named by folder, the same from trial folders and from summary.csv."""
    runs, clones = [], []
    for folder in ("w1", "w2"):
        run = shutil.move(make_study(tmp_path / "make" / folder, name="data_parallel", broken=False), tmp_path / "run" / folder)
        write_summary(Path(run), "data_parallel")
        (tmp_path / "clone" / folder).mkdir(parents=True)
        shutil.copy(Path(run) / "summary.csv", tmp_path / "clone" / folder / "summary.csv")
        runs.append(run)
        clones.append(tmp_path / "clone" / folder)
    tables = []
    for a, b in (runs, clones):
        code, out, err = workbench_cli("results", "compare", a, b, "--by", "variant", "--baseline", "w1:v2s_fused", "--format", "markdown")
        assert code == 0, err
        tables.append(first_table(out))
    assert tables[0] == tables[1]
    assert [row.split(" | ")[0].strip("| ") for row in tables[0][2:]] == ["w1"] * 3 + ["w2"] * 3
