"""Datasets from the registry: digits, image folders (with a corrupt file), torchvision classes on local files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from workbench.data import cache_size_for, clear_memory, load_dataset
from workbench.data.augment import StageAugment, train_augment
from workbench.data.draws import EpochDraws
from workbench.data.transforms import Normalizer
from workbench.errors import WorkbenchError
from workbench.schema.dataset import DatasetConfig
from workbench.schema.augment import Augment


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    clear_memory()
    yield
    clear_memory()


# --- digits -------------------------------------------------------------------------------------


def test_digits_are_the_real_1797_images_split_stratified():
    data = load_dataset(DatasetConfig(), in_channels=1, image_size=8)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert len(data.train_images) + len(data.val_images) == 1797 and len(data.val_images) == 360
    assert data.classes == [str(i) for i in range(10)]
    # at 8 px the pixels are sklearn's 0..16 levels stretched to 0..255
    from sklearn.datasets import load_digits

    digits = load_digits()
    levels = set(np.rint(np.arange(17) * 255 / 16).astype(int).tolist())
    assert set(data.train_images.unique().tolist()) <= levels
    val_counts = torch.bincount(data.val_labels, minlength=10)
    assert int(val_counts.min()) >= 35 and int(val_counts.max()) <= 37  # stratified: 20 % of ~180 per class
    first = np.rint(digits.images * 255 / 16).astype(np.uint8)
    matches = [(first == data.val_images[i, 0].numpy()).all(axis=(1, 2)).any() for i in range(5)]
    assert all(matches)


def test_digits_split_is_deterministic_and_follows_split_seed():
    a = load_dataset(DatasetConfig(), 1, 16)
    clear_memory()
    b = load_dataset(DatasetConfig(), 1, 16)
    c = load_dataset(DatasetConfig(split_seed=1), 1, 16)
    assert torch.equal(a.val_images, b.val_images) and torch.equal(a.val_labels, b.val_labels)
    assert not torch.equal(a.val_labels, c.val_labels)


def test_digits_resized_and_in_rgb():
    data = load_dataset(DatasetConfig(), in_channels=3, image_size=32)
    assert data.train_images.shape[1:] == (3, 32, 32)
    assert torch.equal(data.train_images[:, 0], data.train_images[:, 2])  # gray repeated
    assert int(data.train_images.max()) > 200  # strokes survive the upsampling


def test_subsets_are_fixed():
    cfg = DatasetConfig(max_train_images=100, max_val_images=30)
    data = load_dataset(cfg, 1, 8)
    assert len(data.train_images) == 100 and len(data.val_images) == 30
    clear_memory()
    assert torch.equal(load_dataset(cfg, 1, 8).train_labels, data.train_labels)


# --- image folders ------------------------------------------------------------------------------


def write_image(path, color, size=(20, 30)):
    from torchvision.io import write_jpeg, write_png

    path.parent.mkdir(parents=True, exist_ok=True)
    image = torch.zeros(3, *size, dtype=torch.uint8)
    image[:] = torch.tensor(color, dtype=torch.uint8)[:, None, None]
    (write_png if path.suffix == ".png" else write_jpeg)(image, str(path))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "ants and bees"
    for split, count in (("train", 4), ("val", 2)):
        for label, color in (("ants", (200, 20, 20)), ("bees", (20, 20, 200))):
            for i in range(count):
                write_image(root / split / label / f"img ({i}).{'png' if i % 2 else 'jpg'}", color)
    (root / "train" / "bees" / "broken (1).jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_imagefolder_fail_mode_names_the_bad_file(folder):
    with pytest.raises(WorkbenchError) as info:
        load_dataset(DatasetConfig(name="imagefolder", path=str(folder)), 3, 16)
    assert "broken (1).jpg" in info.value.lines[0] and "on_bad_image=skip" in info.value.lines[1]


def test_imagefolder_skip_mode_leaves_the_bad_file_out(folder):
    data = load_dataset(DatasetConfig(name="imagefolder", path=str(folder), on_bad_image="skip"), 3, 16)
    assert data.classes == ["ants", "bees"]
    assert data.train_images.shape == (8, 3, 16, 16) and data.val_images.shape == (4, 3, 16, 16)
    assert data.val_labels.tolist() == [0, 0, 1, 1]
    assert len(data.skipped) == 1 and data.skipped[0].endswith("broken (1).jpg")
    red = data.train_images[data.train_labels == 0].float().mean(dim=(0, 2, 3))
    assert red[0] > 150 and red[2] < 60  # decoded colours, RGB order
    gray = load_dataset(DatasetConfig(name="imagefolder", path=str(folder), on_bad_image="skip"), 1, 16)
    assert gray.train_images.shape == (8, 1, 16, 16)


def test_imagefolder_disk_cache_reloads_identically(folder, tmp_path):
    cfg = DatasetConfig(name="imagefolder", path=str(folder), on_bad_image="skip")
    first = load_dataset(cfg, 3, 16)
    assert len(list((tmp_path / "cache" / "data").glob("*.pt"))) == 1
    clear_memory()
    second = load_dataset(cfg, 3, 16)
    assert torch.equal(first.train_images, second.train_images) and second.skipped == first.skipped


def test_single_folder_is_split_by_val_fraction(folder):
    data = load_dataset(DatasetConfig(name="imagefolder", path=str(folder / "val"), val_fraction=0.5), 3, 16)
    assert len(data.train_images) == 2 and len(data.val_images) == 2
    assert sorted(data.val_labels.tolist()) == [0, 1] and sorted(data.train_labels.tolist()) == [0, 1]  # stratified


def test_real_hymenoptera_folder_loads():
    from pathlib import Path

    # ../shared sits beside the repository (CI clones it there); the skip keeps the suite usable elsewhere.
    root = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "hymenoptera"
    if not root.is_dir():
        pytest.skip(f"shared hymenoptera folder not present at {root}")
    data = load_dataset(DatasetConfig(name="imagefolder", path=str(root)), 3, 32)
    assert data.classes == ["ants", "bees"] and len(data.train_images) + len(data.val_images) == 398


# --- torchvision datasets -----------------------------------------------------------------------


def write_idx(path, array: np.ndarray):
    """MNIST's idx format: zero, type 0x08 (ubyte), dims, big-endian sizes, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_class_loads_local_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 256, (5, 28, 28))
    write_idx(raw / "train-images-idx3-ubyte", train)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(12) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", test)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.array([3, 1, 4, 1, 5]))
    data = load_dataset(DatasetConfig(name="mnist", root=str(tmp_path)), in_channels=1, image_size=28)
    assert data.name == "MNIST" and data.classes[3] == "3 - three"
    assert torch.equal(data.train_images[:, 0], torch.from_numpy(train.astype(np.uint8)))
    assert data.val_labels.tolist() == [3, 1, 4, 1, 5]
    rgb = load_dataset(DatasetConfig(name="MNIST", root=str(tmp_path)), in_channels=3, image_size=32)
    assert rgb.val_images.shape == (5, 3, 32, 32)


def test_missing_torchvision_files_say_what_to_fetch_and_where(tmp_path):
    with pytest.raises(WorkbenchError) as info:
        load_dataset(DatasetConfig(name="CIFAR10", root=str(tmp_path)), 3, 32)
    text = "\n".join(info.value.lines)
    assert f"cannot open its files under {tmp_path}" in text
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in text
    assert f"{tmp_path}/cifar-10-batches-py" in text and "dataset.download=true" in text


@pytest.mark.parametrize("name", ["CIFAR100", "FashionMNIST", "Flowers102", "StanfordCars", "Imagenette"])
def test_every_required_dataset_is_registered_and_fails_clearly_offline(tmp_path, name):
    with pytest.raises(WorkbenchError) as info:
        load_dataset(DatasetConfig(name=name, root=str(tmp_path)), 3, 32)
    assert info.value.lines[0].startswith(f"dataset {name}: cannot open its files under {tmp_path}")
    assert any(line.startswith("fetch: ") for line in info.value.lines)


def test_unknown_name_lists_the_registry():
    with pytest.raises(WorkbenchError, match="known datasets: .*CIFAR10.*digits"):
        load_dataset(DatasetConfig(name="cifar11"), 3, 32)


def test_registry_extends_from_a_json_file(tmp_path, monkeypatch):
    from workbench.data.registry import lookup

    extra = tmp_path / "more.json"
    extra.write_text(json.dumps({"KMNIST": {"source": "torchvision", "class": "KMNIST", "train": {"train": True},
                                            "val": {"train": False}, "channels": 1, "native_size": 28}}))
    monkeypatch.setenv("WORKBENCH_DATASETS", str(extra))
    assert lookup("kmnist")[0] == "KMNIST"
    with pytest.raises(WorkbenchError, match="dataset KMNIST: cannot open its files"):
        load_dataset(DatasetConfig(name="KMNIST", root=str(tmp_path)), 1, 28)


def test_low_resolution_datasets_cache_at_native_size_when_big():
    assert cache_size_for(DatasetConfig(name="CIFAR10"), 3, 300) == 32  # 50k x 3 x 300^2 would be 13 GB
    assert cache_size_for(DatasetConfig(name="CIFAR10"), 3, 64) == 64
    assert cache_size_for(DatasetConfig(name="digits"), 3, 300) == 300


# --- transforms ---------------------------------------------------------------------------------


def test_train_augmentation_produces_the_stage_size_and_mixup_soft_labels():
    data = load_dataset(DatasetConfig(max_train_images=64), 3, 32)
    augment = train_augment(Augment(color_jitter=0.3, cutmix=1.0), StageAugment(image_size=20, randaugment=9, mixup=0.2), cache_size=32,
                            hflip=True, channels=3, num_classes=10, normalize=Normalizer(3, torch.device("cpu")))
    inputs, targets = augment(data.train_images[:8], data.train_labels[:8], EpochDraws(0, 1))
    assert inputs.shape == (8, 3, 20, 20) and inputs.dtype == torch.float32
    assert targets.shape == (8, 10) and torch.allclose(targets.sum(1), torch.ones(8))
    plain = train_augment(Augment(), StageAugment(20, None, 0.0), cache_size=32, hflip=True, channels=3, num_classes=10,
                          normalize=Normalizer(3, torch.device("cpu")))
    _, labels = plain(data.train_images[:8], data.train_labels[:8], EpochDraws(0, 1))
    assert torch.equal(labels, data.train_labels[:8])  # no mix: the labels stay class indices


def test_a_cache_too_big_for_memory_is_refused_before_decoding(folder, monkeypatch):
    import workbench.data.images as images

    monkeypatch.setattr(images, "available_memory", lambda: 10_000)
    with pytest.raises(WorkbenchError, match=r"dataset imagefolder: 13 images at 16x16x3 need .* more than is free"):
        load_dataset(DatasetConfig(name="imagefolder", path=str(folder)), 3, 16)
