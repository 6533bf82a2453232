"""One decoded copy of a dataset per machine (issue 14): a second process maps the first one's copy instead of
decoding, its tensors are views of that mapping, a write stays private to the process that made it, and a copy is
deleted only once no process holds it. The four-trial memory figures are bench/bench_shared.py's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from workbench import shm
from workbench.data import clear_memory, load_dataset, shared
from workbench.schema.dataset import DatasetConfig

CFG = DatasetConfig(name="digits", max_train_images=300, max_val_images=60)

# A second process: loads the same dataset with decoding made impossible, says whether its images are views of the
# shared file (their address inside the file's mapping in /proc/self/maps), then writes into them.
OTHER = """
import hashlib, sys
import workbench.data.sources as sources
def no_decoding(*args, **kwargs):
    raise AssertionError("decoded again")
sources.load_digits = no_decoding
from workbench.data import load_dataset
from workbench.schema.dataset import DatasetConfig
data = load_dataset(DatasetConfig(name="digits", max_train_images=300, max_val_images=60), 1, 16)
address = data.train_images.data_ptr()
mapped = [line for line in open("/proc/self/maps") if line.rstrip().endswith(".u8")]
inside = any(int(start, 16) <= address < int(end, 16) for line in mapped for start, end in [line.split()[0].split("-")])
print("mapped", inside, hashlib.sha256(data.train_images.numpy().tobytes()).hexdigest())
data.train_images[:10] = 7  # copy-on-write: this process's pages only
print("written", int(data.train_images[0, 0, 0, 0]))
"""


@pytest.fixture(autouse=True)
def private_copies(private_data_copies):
    return private_data_copies


def other_process() -> list[list[str]]:
    run = subprocess.run([sys.executable, "-c", OTHER], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return [line.split() for line in run.stdout.splitlines()]


def test_a_second_process_maps_the_first_ones_copy_and_cannot_change_it(private_copies):
    import hashlib

    data = load_dataset(CFG, 1, 16)
    copies = list(private_copies.glob("workbench-digits-16px-1ch-*.u8"))
    assert len(copies) == 1
    before = hashlib.sha256(data.train_images.numpy().tobytes()).hexdigest()
    (mapped, inside, digest), (written, value) = other_process()
    assert (mapped, inside, digest) == ("mapped", "True", before)  # not decoded: views of the one copy
    assert value == "7"
    assert hashlib.sha256(data.train_images.numpy().tobytes()).hexdigest() == before  # its write stayed its own
    clear_memory()
    again = load_dataset(CFG, 1, 16)
    assert hashlib.sha256(again.train_images.numpy().tobytes()).hexdigest() == before  # the file too


def test_a_copy_in_use_survives_a_sweep_and_goes_once_unused(private_copies):
    load_dataset(CFG, 1, 16)
    (copy,) = private_copies.glob("*.u8")
    os.utime(copy, (1, 1))  # older than a fresh copy
    assert shm.sweep() == [] and copy.exists()  # this process holds it
    clear_memory()  # lets go
    assert shm.sweep() == [copy] and not copy.exists()


def test_without_room_each_process_keeps_its_own_copy(private_copies, monkeypatch):
    real = os.statvfs

    class Full:
        def __init__(self, path):
            self.f_frsize, self.f_bavail = real(path).f_frsize, 0

    monkeypatch.setattr(shared.os, "statvfs", Full)
    data = load_dataset(CFG, 1, 16)
    assert list(private_copies.glob("*.u8")) == [] and data.train_images.shape == (300, 1, 16, 16)


def test_sharing_off_keeps_each_process_its_own_copy(private_copies, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SHM", "off")
    assert shm.shared_dir() is None
    data = load_dataset(CFG, 1, 16)
    assert list(private_copies.glob("*")) == [] and torch.is_tensor(data.train_images)


def test_the_loser_of_a_race_to_build_maps_the_winners_copy_instead_of_waiting(private_copies, monkeypatch):
    """Two processes found no copy and both asked for the exclusive lock. The loser's failed conversion left it with
    no lock; the winner built the copy and holds the shared lock for as long as it uses it. The loser maps that copy
    (before, it waited for the exclusive lock until BUILD_WAIT_S ran out: two ranks of one trial deadlocked so)."""
    winner = load_dataset(CFG, 1, 16)  # this process's held lock plays the winner
    (copy,) = private_copies.glob("*.u8")
    monkeypatch.setattr(shared, "BUILD_WAIT_S", 2.0)
    fd = os.open(copy.with_suffix(".lock"), os.O_RDWR)  # a second open file: its flock conflicts with the first's
    try:
        decoded = []
        loser = shared._build(fd, copy, lambda: decoded.append("decoded"))
        assert loser.shared and decoded == []
        assert torch.equal(loser.images.train_images, winner.train_images)
    finally:
        os.close(fd)
