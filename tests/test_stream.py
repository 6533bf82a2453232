"""dataset.storage stream against memory on a generated image folder (issue 14).

What must be equal: the two paths decode differently (torchvision.io.decode_image per sample in DataLoader workers,
PIL once into memory) but resize alike (`square`) and share the batch order and the augmentation, so for lossless
files (PNG) the uint8 training batches, the validation images and a whole run's metrics are identical; for JPEG
the batches hold the same images with the same labels, the pixels equal where both use the same libjpeg.
The peak-memory figures on 20,000 and 80,000 files are bench/bench_stream.py's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_train_helpers import non_timing, tiny_arch
from workbench.data import open_training_data
from workbench.data.batches import step_batches
from workbench.data.draws import EpochDraws
from workbench.errors import WorkbenchError
from workbench.schema.dataset import DatasetConfig
from workbench.trialdir import read_metrics

SIZE = 16


@pytest.fixture(autouse=True)
def private_cache(private_data_copies):
    return private_data_copies


def image_folder(root, suffix=".png", train=16, val=6, classes=3):
    """train/ and val/ class folders of noisy images, each class tinted, in two aspect ratios."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                shape = (20, 14) if i % 2 else (14, 22)
                pixels = rng.integers(0, 200, (*shape, 3)).astype(np.uint8)
                pixels[..., c] += 55
                Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}", **({"quality": 92} if suffix == ".jpg" else {}))
    return root


def both(root, **options):
    memory, memory_choice = open_training_data(DatasetConfig(name="imagefolder", path=str(root), storage="memory", **options), 3, SIZE)
    stream, stream_choice = open_training_data(DatasetConfig(name="imagefolder", path=str(root), storage="stream", **options), 3, SIZE)
    assert (memory.storage, stream.storage) == ("memory", "stream")
    assert "storage stream (as asked" in stream_choice.describe()
    return memory, stream


def epoch_order(count):
    return step_batches(count, 8, EpochDraws(0, 1)["order"])


def test_png_batches_and_val_images_are_the_memory_paths(tmp_path):
    memory, stream = both(image_folder(tmp_path / "png"))
    assert (stream.train_count, stream.val_count, stream.classes) == (memory.train_count, memory.val_count, memory.classes)
    assert torch.equal(stream.train_labels, memory.train_labels)
    order = epoch_order(memory.train_count)
    size = stream.stored_size(SIZE, random_crop=True)
    assert size == memory.stored_size(SIZE, random_crop=True) == SIZE
    from_memory = list(memory.train_batches(order, size, num_workers=0, pin_memory=False))
    for workers in (0, 2):  # decoded here, and in two DataLoader worker processes
        from_files = list(stream.train_batches(order, size, num_workers=workers, pin_memory=False))
        assert len(from_files) == len(from_memory) == len(order)
        for (a, la), (b, lb) in zip(from_memory, from_files):
            assert torch.equal(a, b) and torch.equal(la, lb)
    for resize, crop in ((SIZE, SIZE), (SIZE, 12)):  # the loop caches at least the eval resize
        (mx, my), (sx, sy) = memory.val_at(resize, crop, slice(0, None)), stream.val_at(resize, crop, slice(0, None))
        assert torch.equal(mx, sx) and torch.equal(my, sy)
    assert torch.equal(stream.val_at(SIZE, SIZE, slice(5, 12))[0], memory.val_at(SIZE, SIZE, slice(0, None))[0][5:12])


def test_a_resize_only_recipe_streams_each_stage_at_its_own_size(tmp_path):
    _, stream = both(image_folder(tmp_path / "png"))
    assert stream.stored_size(12, random_crop=False) == 12 and stream.stored_size(12, random_crop=True) == SIZE
    images, _ = next(iter(stream.train_batches(epoch_order(stream.train_count), 12, num_workers=0, pin_memory=False)))
    assert images.shape == (8, 3, 12, 12) and images.dtype == torch.uint8


def test_jpeg_batches_hold_the_same_images(tmp_path):
    memory, stream = both(image_folder(tmp_path / "jpg", suffix=".jpg"))
    order = epoch_order(memory.train_count)
    for (a, la), (b, lb) in zip(memory.train_batches(order, SIZE, num_workers=0, pin_memory=False),
                                stream.train_batches(order, SIZE, num_workers=0, pin_memory=False)):
        assert torch.equal(la, lb)
        assert (a.float() - b.float()).abs().mean() < 1.0  # the same photos; equal where the two libjpegs agree


def test_a_run_on_streamed_pngs_equals_the_run_in_memory(tmp_path):
    from workbench.schema.recipe import TrainJob
    from workbench.train import fit

    root = image_folder(tmp_path / "png")
    runs = {}
    for storage in ("memory", "stream"):
        job = TrainJob.model_validate({"architecture": tiny_arch(in_channels=3), "recipe": {"epochs": 2, "batch_size": 8, "num_workers": 0},
                                       "dataset": {"name": "imagefolder", "path": str(root), "storage": storage}})
        status = fit(job, tmp_path / storage, progress=False, threads=1)
        assert status["status"] == "completed"
        runs[storage] = non_timing(read_metrics(tmp_path / storage))
    assert runs["stream"] == runs["memory"]


def test_auto_streams_what_exceeds_the_budget_and_says_why(tmp_path):
    root = image_folder(tmp_path / "png")
    data, choice = open_training_data(DatasetConfig(name="imagefolder", path=str(root), memory_budget_gib=1e-6), 3, SIZE)
    assert data.storage == "stream" and "would exceed" in choice.describe() and "dataset.memory_budget_gib" in choice.describe()
    data, choice = open_training_data(DatasetConfig(name="imagefolder", path=str(root)), 3, SIZE)
    assert data.storage == "memory" and "within" in choice.describe()
    data, choice = open_training_data(DatasetConfig(name="imagefolder", path=str(root), memory_budget_gib=1e-6), 3, SIZE)
    assert data.storage == "memory" and "decoded on this machine already" in choice.describe()  # the copy just made is free


def test_an_array_dataset_cannot_stream():
    with pytest.raises(WorkbenchError, match="storage stream needs images stored as files"):
        open_training_data(DatasetConfig(name="digits", storage="stream"), 1, SIZE)
    data, choice = open_training_data(DatasetConfig(name="digits"), 1, SIZE)
    assert data.storage == "memory" and "one array" in choice.describe()


def test_a_file_unreadable_mid_run_stops_it_or_is_replaced(tmp_path):
    root = image_folder(tmp_path / "png")
    bad = root / "train" / "class1" / "003.png"
    original = bad.read_bytes()
    for policy in ("fail", "skip"):
        _, stream = both(root, on_bad_image=policy)
        bad.write_bytes(b"not a png any more")  # readable when listed, broken when read
        order = epoch_order(stream.train_count)
        if policy == "fail":
            with pytest.raises(WorkbenchError, match="cannot read image .*003.png"):
                list(stream.train_batches(order, SIZE, num_workers=0, pin_memory=False))
        else:
            batches = list(stream.train_batches(order, SIZE, num_workers=0, pin_memory=False))
            assert [len(labels) for _, labels in batches] == [len(b) for b in order]  # every batch keeps its size
            assert stream.skipped == [str(bad)]
        bad.write_bytes(original)
