"""Data-parallel trials (issue 14): N ranks of one loop, rank 0 alone writing, metrics agreed by all ranks, the global
batch and its augmentation dealt as on one worker, resume after a rank dies; the resource answers that come at once.

The ranks here are gloo processes without Ray (tests/ddp_ranks.py), so the test sees each rank's writes; one study
on Ray Train (tests/test_distributed_study.py) runs the same loop through TorchTrainer inside Ray Tune.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.ddp_ranks import run_ranks
from tests.test_train_helpers import non_timing, tiny_job
from workbench.errors import WorkbenchError
from workbench.faults import EXIT_CODE
from workbench.trialdir import read_metrics


def job_json(epochs: int = 3, **recipe) -> dict:
    return tiny_job(epochs=epochs, train_images=256, val_images=120, batch_size=32, **recipe).model_dump(mode="json")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """An uninterrupted run of the tiny job on 2 ranks, shared by the tests below."""
    base = tmp_path_factory.mktemp("ddp")
    records = run_ranks(2, base / "trial", job_json(), base / "records")
    return base / "trial", records


def test_two_ranks_agree_and_only_rank_0_writes(two_ranks):
    folder, (lead, other) = two_ranks
    config = json.loads((folder / "config.json").read_text())
    assert config["world_size"] == 2 and config["batch_size_per_worker"] == 16 and config["recipe"]["batch_size"] == 32
    assert lead["status"]["status"] == other["status"]["status"] == "completed"
    assert "2 workers (DDP, gloo)" in lead["status"]["device"]
    # every rank computed the same reduced row (without the reduction each would report its own half of val)
    assert non_timing(lead["rows"]) == non_timing(other["rows"])
    assert [r["epoch"] for r in lead["rows"]] == [1, 2, 3]
    assert non_timing(read_metrics(folder)) == non_timing([{k: v for k, v in r.items() if k != "finished"} for r in lead["rows"]])
    assert len((folder / "val_predictions.csv").read_text().splitlines()) == 1 + 120  # gathered from both ranks
    assert lead["writes"], "the audit hook saw rank 0 write"
    assert other["writes"] == []


def test_a_rank_killed_mid_run_resumes_to_the_uninterrupted_result(two_ranks, tmp_path):
    import torch.multiprocessing as mp

    uninterrupted, _ = two_ranks
    folder = tmp_path / "trial"
    with pytest.raises(mp.ProcessExitedException) as killed:  # rank 0 dies right after committing epoch 2
        run_ranks(2, folder, job_json(), tmp_path / "records1", fault="after:last@2=exit")
    assert killed.value.exit_code == EXIT_CODE
    assert json.loads((folder / "status.json").read_text())["status"] == "running"
    resumed = run_ranks(2, folder, job_json(), tmp_path / "records2")
    assert [r["epoch"] for r in resumed[0]["rows"]] == [3]  # epochs 1 and 2 came from checkpoint_last.pt
    assert non_timing(read_metrics(folder)) == non_timing(read_metrics(uninterrupted))
    assert resumed[1]["writes"] == []


def test_sync_batchnorm_on_cpu_workers_is_refused_naming_the_option():
    from workbench.train.ranks import World

    with pytest.raises(WorkbenchError, match="recipe.sync_batchnorm needs GPU workers"):
        World(0, 2, "gloo").convert_norms(torch.nn.BatchNorm2d(4), sync=True, cuda=False)
    assert isinstance(World().convert_norms(torch.nn.BatchNorm2d(4), sync=True, cuda=False), torch.nn.BatchNorm2d)


def test_a_batch_that_does_not_split_over_the_workers_is_refused():
    from workbench.schema.recipe import Recipe
    from workbench.train.ranks import data_parallel_recipe

    split = data_parallel_recipe(Recipe(batch_size=64), 4)
    assert (split.batch_size, split.global_batch_size, split.global_batch(4), split.accumulation_steps(4)) == (16, 64, 64, 1)
    assert data_parallel_recipe(Recipe(batch_size=64, global_batch_size=256), 2).batch_size == 64  # per worker, as given
    with pytest.raises(WorkbenchError, match=r"recipe.batch_size \(30\) is not a multiple of the 4 data-parallel workers"):
        data_parallel_recipe(Recipe(batch_size=30), 4)


@pytest.mark.parametrize("workers,accumulation", [(2, 1), (2, 2), (3, 1)])
def test_each_rank_trains_the_images_and_draws_of_one_worker_training_the_global_batch(workers, accumulation):
    """Rank r's micro-batch j holds the images at positions j x workers + r (mod replicas) of the one-worker step and
    gets the augmentation those images get there (MixUp off: it pairs neighbours within a share)."""
    from workbench.data.augment import StageAugment, train_augment
    from workbench.data.batches import step_batches
    from workbench.data.draws import EpochDraws
    from workbench.data.transforms import Normalizer
    from workbench.schema.augment import Augment
    from workbench.train.ranks import StepAugment, World

    count, per_pass = 120, 4
    global_batch = per_pass * workers * accumulation
    images = torch.randint(0, 256, (count, 3, 12, 12), dtype=torch.uint8)
    labels = torch.arange(count)
    augment = train_augment(Augment(color_jitter=0.4, auto_augment="randaugment", randaugment=9), StageAugment(10, 9, 0.0),
                            cache_size=12, hflip=True, channels=3, num_classes=count, normalize=Normalizer(3, torch.device("cpu")))
    one = step_batches(count, global_batch, EpochDraws(5, 1)["order"])
    one_draws = EpochDraws(5, 1)
    expected = [augment(images[batch], labels[batch], one_draws)[0] for batch in one]
    for rank in range(workers):
        world = World(rank, workers, "gloo")
        draws = EpochDraws(5, 1)
        mine = step_batches(count, per_pass, draws["order"], accumulation=accumulation, workers=workers, rank=rank)
        sharded = StepAugment(augment, world, accumulation)
        for index, batch in enumerate(mine):
            step, micro = divmod(index, accumulation)
            rows = slice(micro * workers + rank, None, workers * accumulation)
            assert torch.equal(batch, one[step][rows])
            inputs, _ = sharded(images[batch], labels[batch], draws, micro)
            assert torch.allclose(inputs, expected[step][rows], atol=1e-5)


def test_val_shares_cover_the_split_in_order():
    from workbench.train.ranks import World

    for size in (1, 2, 3, 7):
        shares = [World(rank, size, "gloo").rows(10) for rank in range(size)]
        assert [i for rows in shares for i in range(10)[rows]] == list(range(10))
        assert max(len(range(10)[r]) for r in shares) - min(len(range(10)[r]) for r in shares) <= 1


# --- resources -------------------------------------------------------------------------------------


def study(**resources):
    from workbench.schema.study import Study

    return Study.model_validate({"name": "s", "variants": [{"name": "v", "architecture": "a.json"}], "resources": resources})


def test_a_data_parallel_trial_asks_tune_for_a_driver_and_ray_train_for_its_workers():
    from workbench.study.cluster import DRIVER_CPUS, trial_resources, trial_workers

    assert trial_resources(study().resources) == {"cpu": 1.0, "gpu": 0.0} and trial_workers(study().resources) is None
    resources = study(workers=2, cpus=1, gpus=0.5).resources
    assert trial_resources(resources) == {"cpu": DRIVER_CPUS, "gpu": 0.0}
    workers = trial_workers(resources)
    assert (workers.count, workers.backend, workers.threads) == (2, "nccl", 1)
    # the driver's share comes out of its workers': 2 workers of 1 CPU fit on 2 cores with their driver
    assert workers.resources() == {"CPU": 1 - DRIVER_CPUS / 2, "GPU": 0.5}
    assert 2 * workers.resources()["CPU"] + DRIVER_CPUS == pytest.approx(2.0)


def test_trials_at_once_count_every_worker():
    from workbench.study.cluster import concurrent_trials, trials_at_once

    assert trials_at_once(study(workers=2, cpus=1).resources, cpus=8, gpus=0) == 4
    assert trials_at_once(study(workers=2, cpus=2, gpus=0.5).resources, cpus=64, gpus=8) == 8
    assert trials_at_once(study(workers=4, cpus=1, gpus=1).resources, cpus=64, gpus=8) == 2
    assert trials_at_once(study(cpus=1, gpus=0.25).resources, cpus=16, gpus=1) == 4
    assert concurrent_trials(study(workers=2, cpus=1), {"CPU": 8}) == 4  # Tune would start a driver per trial
    assert concurrent_trials(study(cpus=1), {"CPU": 8}) is None  # one worker: Tune counts the trials' own resources
    assert concurrent_trials(study(workers=2).model_copy(update={"max_concurrent_trials": 1}), {"CPU": 8}) == 1


@pytest.mark.parametrize("resources,message", [
    ({"workers": 3, "cpus": 1}, "asks for 3 workers x 1 CPU per trial (resources.workers, resources.cpus) but this machine has 2"),
    ({"cpus": 3}, "asks for 3 CPU per trial (resources.cpus) but this machine has 2"),
    ({"workers": 2, "gpus": 1}, "asks for 2 workers x 1 GPU per trial (resources.workers, resources.gpus) but this machine has 1"),
])
def test_more_workers_cpus_or_gpus_than_the_machine_has_are_refused(resources, message):
    from workbench.study.cluster import check_resources

    with pytest.raises(WorkbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_resources(study(**resources), cpus=2, gpus=1, where="this machine")
    check_resources(study(workers=2, cpus=1), cpus=2, gpus=0, where="this machine")  # fits: 2 workers on 2 cores


def test_the_dry_run_shows_workers_cpus_gpus_and_the_trials_at_once(workbench_cli, tmp_path):
    import os

    from tests.conftest import ROOT

    code, out, _ = workbench_cli("study", "run", ROOT / "studies/fused_vs_mb.json", "--dry-run", "--set", "resources.workers=2",
                                 "--out", tmp_path / "res")
    assert code == 0
    assert "2 workers x (1 CPU + 0 GPU) per trial" in out
    assert "workers" in out and "CPUs" in out and "GPUs" in out
    fits = (os.cpu_count() or 1) // 2
    assert f"{fits} trial{'s' if fits != 1 else ''} at once on this machine ({os.cpu_count()} CPUs" in out


def test_one_worker_trains_in_process_without_ray_and_workers_are_checked(tmp_path, workbench_cli):
    import subprocess
    import sys

    from tests.conftest import ROOT

    train = ["train", str(ROOT / "architectures/v2s_all_fused.json"), "--set", "scale.width_mult=0.25", "--set", "scale.depth_mult=0.25",
             "--set", "scale.resolution=16", "--set", "recipe.epochs=1", "--set", "dataset.max_train_images=64",
             "--set", "dataset.max_val_images=32", "--quiet", "--threads", "1"]
    code = (f"import sys; from workbench.cli.main import main; code = main({train + ['--out', str(tmp_path / 'one')]!r}); "
            "assert code == 0, code; assert 'ray' not in sys.modules, 'ray imported'")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((tmp_path / "one" / "config.json").read_text())["world_size"] == 1
    code, _, err = workbench_cli(*train, "--address", "127.0.0.1:6379", "--out", tmp_path / "two")
    assert code == 2 and "--address joins a Ray cluster for data-parallel workers" in err
    code, _, err = workbench_cli(*train, "--workers", "2", "--set", "recipe.batch_size=33", "--out", tmp_path / "three")
    assert code == 2 and "is not a multiple of the 2 data-parallel workers" in err
    assert not (tmp_path / "three").exists()  # refused before anything ran
