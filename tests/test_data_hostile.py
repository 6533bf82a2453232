"""Hostile image folders: every odd file decodes correctly, is skipped and listed, or is refused with its path and
the option to change; layouts that cannot be trained on are refused naming the folder; nothing cached is lost.

Every image is generated here (PIL, numpy, and a small PNG writer for 16-bit colour, which PIL cannot write).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data import clear_memory, load_dataset
from workbench.errors import WorkbenchError
from workbench.schema.dataset import DatasetConfig
from tests.conftest import ARCHITECTURES, ROOT

SIZE = 8  # the generated images are 8 x 8, so at this size the cached pixels are the decoded ones, unresized
RED, BLUE = (220, 20, 30), (20, 40, 210)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    clear_memory()
    yield
    clear_memory()


def load(root, on_bad="fail", channels=3, size=SIZE, **options):
    cfg = DatasetConfig(name="imagefolder", path=str(root), disk_cache=False, on_bad_image=on_bad, **options)
    return load_dataset(cfg, channels, size)


def save(path: Path, image: Image.Image, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def flat(color, size=(SIZE, SIZE)) -> Image.Image:
    return Image.new("RGB", size, color)


def two_classes(root: Path) -> Path:
    """train/ and val/ with classes a (red) and b (blue), two PNGs each in train, one in val."""
    for split, count in (("train", 2), ("val", 1)):
        for label, color in (("a", RED), ("b", BLUE)):
            for i in range(count):
                save(root / split / label / f"z{i}.png", flat(color))  # after the added files in name order
    return root


def png(path: Path, width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> Path:
    """A PNG from raw scanlines (each already prefixed by its filter byte): PIL writes no 16-bit colour PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def png16(path: Path, pixels: np.ndarray) -> Path:
    """uint16 [H, W, 3 or 4] as a 16-bit RGB or RGBA PNG."""
    height, width, channels = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    return png(path, width, height, 16, {3: 2, 4: 6}[channels], rows)


# --- modes and bit depths decode to correct uint8 -----------------------------------------------

RAMP16 = (np.arange(SIZE * SIZE, dtype=np.uint32).reshape(SIZE, SIZE) * 65535 // (SIZE * SIZE - 1)).astype(np.uint16)
PATTERN = np.stack([np.full((SIZE, SIZE), c, np.uint8) for c in RED], axis=-1)
PATTERN[:, SIZE // 2:] = BLUE
ALPHA = np.tile(np.array([0, 90, 255, 10], np.uint8), SIZE * SIZE // 4).reshape(SIZE, SIZE)


def palette_image(transparency: bool, path: Path) -> tuple[Path, np.ndarray]:
    image = Image.new("P", (SIZE, SIZE))
    image.putpalette([*RED, *BLUE, 0, 200, 0])
    indices = np.zeros((SIZE, SIZE), np.uint8)
    indices[:, SIZE // 2:] = 1
    indices[0, 0] = 2
    image.putdata(indices.flatten().tolist())
    expected = PATTERN.copy()
    expected[0, 0] = (0, 200, 0)
    return save(path, image, **({"transparency": 2} if transparency else {})), expected


def rgb_of_16bit(path: Path) -> tuple[Path, np.ndarray]:
    pixels = np.stack([RAMP16, RAMP16[::-1], np.full_like(RAMP16, 40000)], axis=-1)
    return png16(path, pixels), (pixels >> 8).astype(np.uint8)


def rgba_of_16bit(path: Path) -> tuple[Path, np.ndarray]:
    pixels = np.stack([RAMP16, RAMP16[::-1], np.full_like(RAMP16, 40000), RAMP16 // 3], axis=-1)
    return png16(path, pixels), (pixels[..., :3] >> 8).astype(np.uint8)


def gray(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1)


def pgm_12bit(path: Path) -> tuple[Path, np.ndarray]:
    levels = (RAMP16 >> 4).astype(">u2")  # 0..4095
    path.write_bytes(b"P5\n%d %d\n4095\n" % (SIZE, SIZE) + levels.tobytes())
    return path, gray(np.rint(levels.astype(float) * 255 / 4095).astype(np.uint8))


MODE_CASES = {
    "palette": lambda p: palette_image(False, p / "palette.png"),
    "palette with transparency": lambda p: palette_image(True, p / "palette tRNS.png"),
    "RGBA, alpha dropped": lambda p: (save(p / "rgba.png", Image.fromarray(np.dstack([PATTERN, ALPHA]))), PATTERN),
    "LA, alpha dropped": lambda p: (save(p / "la.png", Image.fromarray(np.dstack([PATTERN[..., 0], ALPHA]))), gray(PATTERN[..., 0])),
    "grayscale L": lambda p: (save(p / "l.png", Image.fromarray(PATTERN[..., 2])), gray(PATTERN[..., 2])),
    "1-bit": lambda p: (save(p / "bits.png", Image.fromarray(PATTERN[..., 0] > 128)), gray((PATTERN[..., 0] > 128).astype(np.uint8) * 255)),
    "16-bit gray PNG (I;16)": lambda p: (save(p / "gray16.png", Image.fromarray(RAMP16)), gray((RAMP16 >> 8).astype(np.uint8))),
    "16-bit gray TIFF": lambda p: (save(p / "gray16.tif", Image.fromarray(RAMP16)), gray((RAMP16 >> 8).astype(np.uint8))),
    "16-bit RGB PNG": lambda p: rgb_of_16bit(p / "rgb16.png"),
    "16-bit RGBA PNG": lambda p: rgba_of_16bit(p / "rgba16.png"),
    "12-bit PGM": lambda p: pgm_12bit(p / "gray12.pgm"),
    "CMYK TIFF": lambda p: (save(p / "cmyk.tif", Image.fromarray(PATTERN).convert("CMYK")), PATTERN),
    "a JPEG named .png": lambda p: (save(p / "really a jpeg.png", flat(RED, (16, 16)), format="JPEG", quality=100), None),
}


@pytest.mark.parametrize("case", MODE_CASES)
def test_every_mode_and_bit_depth_decodes_to_the_right_uint8_pixels(tmp_path, case):
    root = two_classes(tmp_path / "data")
    path, expected = MODE_CASES[case](root / "train" / "a")
    data = load(root)
    assert data.skipped == [] and data.train_images.shape == (5, 3, SIZE, SIZE) and data.train_images.dtype == torch.uint8
    first = data.train_images[0].permute(1, 2, 0).numpy().astype(int)  # the files of train/a in name order: ours first
    assert sorted(os.listdir(path.parent))[0] == path.name
    if expected is None:  # lossy: the colour survives
        assert np.abs(first - np.array(RED)).max() <= 6
    else:
        # 16-bit: the high byte (PIL's own 16-to-8 for colour); exact against round(v * 255 / 65535) within 1
        assert np.abs(first - expected.astype(int)).max() <= 1, case
    grey = load(root, channels=1).train_images
    assert grey.shape == (5, 1, SIZE, SIZE)
    if expected is not None and (expected == expected[..., :1]).all():  # a gray source keeps its levels in one channel
        assert np.abs(grey[0, 0].numpy().astype(int) - expected[..., 0]).max() <= 1, case


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    root = two_classes(tmp_path / "data")
    save(root / "train" / "a" / "0.png", Image.fromarray(np.full((SIZE, SIZE), 32896, np.uint16)))  # mid-gray
    assert load(root, channels=1).train_images[0].unique().tolist() == [128]  # PIL's convert("L") gives 255


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    root = two_classes(tmp_path / "data")
    save(root / "train" / "a" / "0 cmyk.jpg", flat(RED, (16, 16)).convert("CMYK"), quality=95)
    image = load(root).train_images[0].float().mean(dim=(1, 2))
    assert torch.allclose(image, torch.tensor(RED, dtype=torch.float), atol=10)


def test_a_one_pixel_image_and_a_one_pixel_strip_fill_the_square(tmp_path):
    root = two_classes(tmp_path / "data")
    save(root / "train" / "a" / "0 dot.png", flat((10, 200, 30), (1, 1)))
    save(root / "train" / "a" / "1 strip.png", flat((90, 90, 250), (1, 5000)))
    data = load(root, size=16)
    assert data.train_images[0].flatten(1).unique(dim=1).tolist() == [[10], [200], [30]]
    assert data.train_images[1].flatten(1).unique(dim=1).tolist() == [[90], [90], [250]]


# --- a very large image -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """8000 x 8000 (64 Mpx, 192 MB decoded), red on the left half and blue on the right."""
    image = flat(RED, (8000, 8000))
    image.paste(BLUE, (4000, 0, 8000, 8000))
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    image.save(path, quality=70)
    return path


def test_a_huge_jpeg_is_decoded_at_reduced_scale(tmp_path, huge_jpeg):
    root = two_classes(tmp_path / "data")
    os.symlink(huge_jpeg, root / "train" / "a" / "0 huge.jpg")
    image = load(root, size=16).train_images[0].int()
    assert (image[:, :, :7] - torch.tensor(RED)[:, None, None]).abs().max() <= 8
    assert (image[:, :, 9:] - torch.tensor(BLUE)[:, None, None]).abs().max() <= 8


def test_decoding_a_huge_jpeg_keeps_memory_bounded(huge_jpeg):
    # A fresh process, so its peak resident memory measures this decode alone: in full the image takes 256 MB in
    # PIL (4 bytes a pixel) plus a 192 MB tensor; at 1/8 scale, 4 MB.
    script = ("import resource, sys\n"
              "from PIL import Image, JpegImagePlugin\n"
              "from workbench.data.images import decode_file\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "image = decode_file(sys.argv[1], 3, 16)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, *image.shape)\n")
    done = subprocess.run([sys.executable, "-c", script, str(huge_jpeg)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    grown_kib, channels, height, width = map(int, done.stdout.split())
    assert channels == 3 and 16 <= min(height, width) < 32
    assert grown_kib < 64 * 1024


def test_a_large_png_is_reduced_after_decoding(tmp_path):
    root = two_classes(tmp_path / "data")
    save(root / "train" / "a" / "0 large.png", flat(BLUE, (4200, 4200)), compress_level=1)  # above 16 Mpx
    assert load(root, size=16).train_images[0].flatten(1).unique(dim=1).tolist() == [[c] for c in BLUE]


def decompression_bomb(path: Path) -> Path:
    """A PNG whose header claims 40000 x 40000 pixels (1.6 GB decoded): PIL refuses it before reading the data."""
    return png(path, 40000, 40000, 8, 0, b"\x00" * 16)


# --- unreadable files: skipped and listed, or refused naming the file and the option -------------


def truncated(path: Path, fmt: str) -> Path:
    save(path, Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def dangling_link(path: Path) -> Path:
    os.symlink(path.parent / "gone.jpg", path)
    return path


PIPES: list[tuple[Path, threading.Thread]] = []


@pytest.fixture(autouse=True)
def release_pipes():
    yield
    while PIPES:
        path, feeder = PIPES.pop()
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets a feeder that no decoder opened finish
        feeder.join()
        os.close(reader)


def fifo(path: Path) -> Path:
    """A named pipe named like an image. Opening it waits for a writer; a thread here writes junk to the first
    reader, so a decoder that opened the pipe would fail this test rather than hang it."""
    os.mkfifo(path)

    def feed() -> None:
        with open(path, "wb") as pipe:  # returns once a reader opens the pipe
            pipe.write(b"junk" * 1024)

    PIPES.append((path, threading.Thread(target=feed, daemon=True)))
    PIPES[-1][1].start()
    return path


BAD_FILES = {
    "truncated JPEG": (lambda p: truncated(p / "cut.jpg", "JPEG"), "truncated"),
    "truncated PNG": (lambda p: truncated(p / "cut.png", "PNG"), "truncated"),
    "zero bytes": (lambda p: written(p / "empty.jpg", b""), "cannot identify image file"),
    "a text file named .jpg": (lambda p: written(p / "notes.jpg", b"hello"), "cannot identify image file"),
    "a dangling link": (lambda p: dangling_link(p / "link.jpg"), "No such file"),
    "a named pipe": (lambda p: fifo(p / "pipe.jpg"), "not a regular file"),
    "a decompression bomb": (lambda p: decompression_bomb(p / "bomb.png"), "decompression bomb"),
    "floating-point pixels": (lambda p: save(p / "float.tif", Image.fromarray(np.full((SIZE, SIZE), 0.5, np.float32))), "floating-point"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_an_unreadable_file_is_refused_with_its_path_or_skipped_and_listed(tmp_path, case):
    make, reason = BAD_FILES[case]
    root = two_classes(tmp_path / "data")
    (root / "train" / "b" / "sub dir").mkdir()
    bad = make(root / "train" / "b" / "sub dir")
    with pytest.raises(WorkbenchError) as info:
        load(root)
    assert info.value.lines[0].startswith(f"cannot read image {bad}: ") and reason in info.value.lines[0]
    assert "dataset.on_bad_image=skip" in info.value.lines[1]
    data = load(root, on_bad="skip")
    assert data.skipped == [str(bad)]
    assert data.train_labels.tolist() == [0, 0, 1, 1] and data.val_labels.tolist() == [0, 1]
    json.dumps(data.skipped)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission_is_skipped(tmp_path):
    root = two_classes(tmp_path / "data")
    locked = save(root / "train" / "a" / "locked.png", flat(RED))
    locked.chmod(0)
    with pytest.raises(WorkbenchError, match="cannot read image .*locked.png: .*Permission denied"):
        load(root)
    assert load(root, on_bad="skip").skipped == [str(locked)]


def test_an_unreadable_folder_is_refused_or_skipped(tmp_path, monkeypatch):
    root = two_classes(tmp_path / "data")
    locked = root / "train" / "a" / "locked"
    save(locked / "x.png", flat(RED))
    if os.geteuid() == 0:  # root lists any folder: inject the error a chmod 000 folder gives
        listing = os.scandir

        def scandir(path="."):
            if str(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return listing(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        with pytest.raises(WorkbenchError) as info:
            load(root)
        assert info.value.lines[0] == f"cannot read folder {locked}: Permission denied"
        assert "dataset.on_bad_image=skip" in info.value.lines[1]
        data = load(root, on_bad="skip")
        assert data.skipped == [f"{locked}{os.sep}"] and len(data.train_images) == 4
    finally:
        locked.chmod(0o755)


# --- names --------------------------------------------------------------------------------------


def test_unicode_space_and_undecodable_names_load_and_print(tmp_path):
    root = tmp_path / "données d'été"
    save(root / "train" / "café au lait" / "ß ü 1.png", flat(RED))
    save(root / "train" / "日本 語" / "写真 (1).JPG", flat(BLUE), quality=95)  # extensions match in any case
    save(root / "val" / "café au lait" / "x.png", flat(RED))
    latin1 = os.fsdecode(b"caf\xe9")  # a Latin-1 folder name from an old zip: not UTF-8
    save(root / "train" / latin1 / os.fsdecode(b"\xe9t\xe9.png"), flat((0, 200, 0)))
    data = load(root)
    assert data.classes == ["café au lait", "caf\\udce9", "日本 語"]  # sorted by code point: é < \\udce9
    assert data.train_labels.tolist() == [0, 1, 2] and data.val_labels.tolist() == [0]
    json.dumps({"classes": data.classes}, ensure_ascii=False).encode("utf-8")  # printable and storable
    (root / "train" / latin1 / os.fsdecode(b"\xe9t\xe9.png")).write_bytes(b"broken")
    data = load(root, on_bad="skip")
    assert data.skipped == [f"{root}/train/caf\\udce9/\\udce9t\\udce9.png"]
    data.skipped[0].encode("utf-8")


# --- layouts ------------------------------------------------------------------------------------


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    root = two_classes(tmp_path / "data")
    (root / "train" / "c").mkdir()
    (root / "train" / "d" / "nested").mkdir(parents=True)
    (root / "train" / "d" / "readme.txt").write_text("to do")
    for on_bad in ("fail", "skip"):
        with pytest.raises(WorkbenchError) as info:
            load(root, on_bad=on_bad)
        assert info.value.lines[0] == f"class folders without any image file: {root}/train/c, {root}/train/d"
        assert ".jpg" in info.value.lines[1] and "move the empty folder out" in info.value.lines[1]


def test_a_class_only_in_train_has_no_val_images(tmp_path):
    root = two_classes(tmp_path / "data")
    save(root / "train" / "c" / "0.png", flat((0, 200, 0)))
    data = load(root)
    assert data.classes == ["a", "b", "c"] and data.train_labels.tolist() == [0, 0, 1, 1, 2]
    assert data.val_labels.tolist() == [0, 1]


def test_a_class_only_in_val_is_refused_naming_both_folders(tmp_path):
    root = two_classes(tmp_path / "data")
    save(root / "val" / "c" / "0.png", flat((0, 200, 0)))
    with pytest.raises(WorkbenchError) as info:
        load(root)
    assert info.value.lines[0] == f"{root}/val: class folder c has no counterpart in {root}/train"
    assert f"{root}/train/<class>" in info.value.lines[1]


def test_an_empty_val_only_folder_is_ignored_and_listed(tmp_path):
    root = two_classes(tmp_path / "data")
    (root / "val" / "c").mkdir()
    data = load(root)
    assert data.classes == ["a", "b"] and f"{root}/val/c" in data.ignored


def test_stray_files_hidden_entries_and_a_class_that_is_a_file_are_ignored_and_listed(tmp_path):
    root = two_classes(tmp_path / "data")
    strays = [root / "labels.txt", root / "train" / "labels.csv", root / "train" / "c", root / "train" / "loose.jpg",
              root / "train" / "a" / ".DS_Store", root / "train" / "a" / "Thumbs.db", root / "val" / "b" / "desktop.ini",
              root / "train" / "a" / "._0.png"]  # macOS AppleDouble: named like an image, not one
    for path in strays:
        path.write_bytes(b"\x00\x05\x16\x07 junk")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "__MACOSX" / "train").mkdir(parents=True)
    data = load(root)
    assert data.classes == ["a", "b"] and len(data.train_images) == 4 and len(data.val_images) == 2 and data.skipped == []
    expected = {str(p) for p in strays} | {f"{root}/train/.ipynb_checkpoints", f"{root}/__MACOSX"}
    assert set(data.ignored) == expected


def test_a_link_loop_lists_each_image_once(tmp_path):
    root = two_classes(tmp_path / "data")
    folder = root / "train" / "a"
    os.symlink(".", folder / "loop")
    os.symlink("..", folder / "up")
    data = load(root)
    assert data.train_labels.tolist() == [0, 0, 1, 1]
    assert {f"{folder}/loop", f"{folder}/up"} <= set(data.ignored)


@pytest.mark.parametrize("layout, message", [
    ("missing", "dataset.path {root} does not exist"),
    ("a file", "dataset.path {root} is a file, not a folder"),
    ("no images at all", "class folders without any image file: {root}/a, {root}/b"),
    ("images but no class folders", "{root}: no class folders (it holds 2 images directly)"),
    ("train/ and test/", "dataset.path {root} holds test/, train/ but not both train/ and val/"),
    ("Train/ and Val/", "dataset.path {root} holds Train/, Val/ but not both train/ and val/"),
    ("one image", "{root}: 1 image cannot be split into train and val by dataset.val_fraction=0.2: none would be left to train on"),
    ("empty train/", "{root}/train: no class folders"),
    ("no val images", "{root}/val: none of its class folders holds an image"),
])
def test_a_folder_that_is_no_image_folder_is_refused_naming_it(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout == "a file":
        root.write_text("image,label\n")
    elif layout == "no images at all":
        for name in ("a", "b"):
            save(root / name / "notes.txt", flat(RED), format="PNG")
    elif layout == "images but no class folders":
        for name in ("0.png", "1.png"):
            save(root / name, flat(RED))
    elif layout in ("train/ and test/", "Train/ and Val/"):
        for split in layout.replace(" and", "").split():
            save(root / split.strip("/") / "a" / "0.png", flat(RED))
    elif layout == "one image":
        save(root / "a" / "0.png", flat(RED))
    elif layout == "empty train/":
        (root / "train").mkdir(parents=True)
        save(root / "val" / "a" / "0.png", flat(RED))
    elif layout == "no val images":
        save(root / "train" / "a" / "0.png", flat(RED))
        (root / "val" / "a").mkdir(parents=True)
    with pytest.raises(WorkbenchError) as info:
        load(root)
    assert info.value.lines[0] == message.format(root=root)
    assert len(info.value.lines) == (1 if layout == "missing" else 2)  # the second says what to change


# --- nothing already computed is lost -----------------------------------------------------------


def cache_files(tmp_path) -> dict[str, bytes]:
    folder = tmp_path / "cache" / "data"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_a_bad_image_leaves_the_disk_cache_as_it_was(tmp_path):
    root = two_classes(tmp_path / "data")
    cfg = {"name": "imagefolder", "path": str(root), "on_bad_image": "fail"}
    first = load_dataset(DatasetConfig(**cfg), 3, SIZE)
    before = cache_files(tmp_path)
    assert len(before) == 1
    truncated(root / "train" / "b" / "late.jpg", "JPEG")
    clear_memory()
    with pytest.raises(WorkbenchError, match="late.jpg"):
        load_dataset(DatasetConfig(**cfg), 3, SIZE)
    assert cache_files(tmp_path) == before  # no half file, and the earlier cache untouched
    skipped = load_dataset(DatasetConfig(**{**cfg, "on_bad_image": "skip"}), 3, SIZE)
    after = cache_files(tmp_path)
    assert len(after) == 2 and {k: after[k] for k in before} == before
    assert torch.equal(skipped.train_images, first.train_images) and skipped.skipped == [str(root / "train" / "b" / "late.jpg")]


def test_a_cache_write_that_fails_midway_keeps_the_data_and_leaves_no_file(tmp_path, monkeypatch):
    import workbench.data.cache as cache

    def full_disk(obj, path):
        Path(path).write_bytes(b"PK half a file")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(cache.torch, "save", full_disk)
    root = two_classes(tmp_path / "data")
    data = load_dataset(DatasetConfig(name="imagefolder", path=str(root)), 3, SIZE)
    assert len(data.train_images) == 4 and cache_files(tmp_path) == {}


def test_the_stray_file_list_is_today_s_even_from_the_cache(tmp_path):
    root = two_classes(tmp_path / "data")
    cfg = DatasetConfig(name="imagefolder", path=str(root))
    assert load_dataset(cfg, 3, SIZE).ignored == []
    (root / "train" / "a" / "notes.txt").write_text("new")
    clear_memory()
    assert load_dataset(cfg, 3, SIZE).ignored == [str(root / "train" / "a" / "notes.txt")]


# --- the command line ---------------------------------------------------------------------------


def hostile_folder(root: Path) -> tuple[Path, list[Path]]:
    """Small and odd but trainable: palette, CMYK, 16-bit, RGBA, grayscale and 1-pixel images, strays, and two
    unreadable files."""
    two_classes(root)
    save(root / "train" / "a" / "palette.png", flat(RED).convert("P"))
    save(root / "train" / "a" / "cmyk.jpg", flat(RED).convert("CMYK"))
    save(root / "train" / "b" / "gray16.png", Image.fromarray(np.full((SIZE, SIZE), 30000, np.uint16)))
    save(root / "train" / "b" / "rgba.png", flat(BLUE).convert("RGBA"))
    save(root / "val" / "a" / "dot.png", flat(RED, (1, 1)))
    save(root / "val" / "b" / "gray.png", flat(BLUE).convert("L"))
    (root / "train" / "a" / "Thumbs.db").write_bytes(b"junk")
    bad = [truncated(root / "train" / "a" / "cut off.jpg", "JPEG"), root / "val" / "b" / "empty.png"]
    bad[1].write_bytes(b"")
    return root, bad


TINY_RUN = ["--set", "recipe.epochs=1", "--set", "scale.width_mult=0.25", "--set", "scale.depth_mult=0.25",
            "--set", "scale.resolution=16", "--threads", "1"]


def test_cli_train_skips_and_lists_unreadable_images(tmp_path, workbench_cli):
    root, bad = hostile_folder(tmp_path / "hostile data")
    out = tmp_path / "run"
    code, stdout, stderr = workbench_cli("train", ARCHITECTURES / "v2s_all_fused.json", "--dataset", "imagefolder",
                                         "--set", f"dataset.path={root}", "--set", "dataset.on_bad_image=skip",
                                         *TINY_RUN, "--out", out)
    assert code == 0, stdout + stderr
    for path in bad:
        assert f"skipped unreadable image {path}" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["train_images"] == 8 and config["val_images"] == 4 and config["classes"] == ["a", "b"]


def test_cli_train_refuses_an_unreadable_image_naming_it_and_the_option(tmp_path, workbench_cli):
    root, bad = hostile_folder(tmp_path / "hostile data")
    code, stdout, stderr = workbench_cli("train", ARCHITECTURES / "v2s_all_fused.json", "--dataset", "imagefolder",
                                         "--set", f"dataset.path={root}", *TINY_RUN, "--out", tmp_path / "run")
    assert code == 2, stdout + stderr
    assert f"error: cannot read image {bad[0]}: image file is truncated" in stderr
    assert "dataset.on_bad_image=skip" in stderr and "Traceback" not in stdout + stderr
