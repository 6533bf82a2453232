"""Crash consistency by fault injection: the process dies right after (or in the middle of) each write of a trial
folder or a study ledger, the same job resumes, and the result equals an uninterrupted run (issue 11).

The death is real: WORKBENCH_FAULT makes the subprocess call os._exit at the chosen write (workbench.faults), with
no clean-up, as kill -9 would. No test waits for a moment in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.test_train_helpers import non_timing, quick_fit, tiny_job
from workbench.faults import EXIT_CODE
from workbench.trialdir import STATUS_TIMING_FIELDS, read_metrics

EPOCHS = 3
FIT = ("from tests.test_train_helpers import quick_fit, tiny_job; import sys; "
       f"quick_fit(tiny_job(epochs={EPOCHS}), sys.argv[1])")


def crash(fault: str, folder) -> None:
    env = {**os.environ, "WORKBENCH_FAULT": fault}
    done = subprocess.run([sys.executable, "-c", FIT, str(folder)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_CODE, f"the fault {fault} did not fire: {done.stdout}{done.stderr}"


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard's own view of the event files (it hides events a resumed writer purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
            if tag not in ("epoch_seconds", "train_images_per_s", "elapsed_seconds")}


def outcome(folder) -> dict:
    status = json.loads((folder / "status.json").read_text())
    best = torch.load(folder / "checkpoint_best.pt", weights_only=True)
    last = torch.load(folder / "checkpoint_last.pt", weights_only=True)
    return {
        "metrics": non_timing(read_metrics(folder)),
        "status": {k: v for k, v in status.items() if k not in STATUS_TIMING_FIELDS},
        "best": (best["epoch"], {k: v.tolist() for k, v in best["model"].items()}),
        "last": (last["epoch"], {k: v.tolist() for k, v in last["model"].items()}),
        "predictions": (folder / "val_predictions.csv").read_text(),
        "tensorboard": scalars(folder),
        "leftovers": sorted(p.name for p in folder.glob(".*.tmp")),
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    quick_fit(tiny_job(epochs=EPOCHS), folder)
    return outcome(folder)


# (write point, which hit): the point's hit counts from 1 in the crashed process. status is written at the start,
# after each epoch, and once more at the end; best and predictions only on a new best (always at epoch 1).
CRASH_POINTS = [
    ("after:metrics", 1),  # the reported bug: a metrics line, then death before anything else of epoch 1
    ("after:metrics", 2),
    ("after:tensorboard", 2),
    ("after:best", 1),
    ("after:predictions", 1),
    ("before:last", 2),  # checkpoint written to its temporary file, not yet in place
    ("after:last", 2),
    ("after:status", 3),
    ("after:status", 4),  # the final status is on disk, the run has not returned
    ("after:config", 1),
]


@pytest.mark.parametrize("point, hit", CRASH_POINTS, ids=[f"{p}@{n}" for p, n in CRASH_POINTS])
def test_a_crash_at_any_write_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted, point, hit):
    crash(f"{point}@{hit}=exit", tmp_path)
    status = quick_fit(tiny_job(epochs=EPOCHS), tmp_path)
    assert status["status"] == "completed"
    assert outcome(tmp_path) == uninterrupted
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2, 3]  # no orphan, no duplicate


def test_a_failed_write_leaves_every_file_as_it_was(tmp_path, uninterrupted):
    """A full disk while checkpoint_last.pt of epoch 2 is written: the trial fails with that reason, the files of
    epoch 1 are intact, and once there is space the same job resumes from epoch 1 to the uninterrupted result."""
    from workbench.train.failures import TrialFailed

    os.environ["WORKBENCH_FAULT"] = "before:last@2=ENOSPC"
    try:
        with pytest.raises(TrialFailed, match=r"No space left on device \(ENOSPC\)"):
            quick_fit(tiny_job(epochs=EPOCHS), tmp_path)
    finally:
        del os.environ["WORKBENCH_FAULT"]
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "failed" and "ENOSPC" in status["reason"] and "at epoch 2" in status["reason"]
    assert torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["epoch"] == 1
    assert non_timing(read_metrics(tmp_path)) == uninterrupted["metrics"][:1]
    assert not list(tmp_path.glob(".*.tmp"))
    quick_fit(tiny_job(epochs=EPOCHS), tmp_path)
    assert outcome(tmp_path) == uninterrupted
