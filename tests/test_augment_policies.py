"""TrivialAugmentWide, AutoAugment's ImageNet policy and RandomErasing in the batched path: their tables are
torchvision's, and the sampled operations, magnitudes and boxes follow torchvision's own transforms (two-sample
tests against draws recorded from torchvision, fixed seeds throughout so that nothing flakes); turning one on leaves
the other augmentations' draws as they were."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from workbench.data import batch_ops
from workbench.data.augment import (BatchAugment, StageAugment, autoaugment_imagenet_table, sample_auto_augment, sample_erasing,
                                    sample_trivial_wide)
from workbench.data.draws import EpochDraws
from workbench.data.policies import (AUTOAUGMENT, AUTOAUGMENT_BINS, AUTOAUGMENT_IMAGENET, IDENTITY, POLICY_OPS, TRIVIAL_AUGMENT_BINS,
                                     TRIVIAL_AUGMENT_WIDE, apply_op, magnitude_table)
from workbench.data.transforms import Normalizer
from workbench.schema.augment import Augment, RandomErasing

N = 20_000


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def torchvision_ops(transform, count: int, size: int, seed: int = 1) -> list[list[tuple[str, float]]]:
    """The (operation, magnitude) pairs torchvision's own forward applies to `count` images, recorded by replacing its
    per-image operation (a private method: the draws are torchvision's, the pixels are not computed)."""
    applied: list[tuple[str, float]] = []

    def record(image, transform_id, magnitude, interpolation, fill):
        applied.append((transform_id, magnitude))
        return image

    transform._apply_image_or_video_transform = record
    image = torch.zeros(3, size, size, dtype=torch.uint8)
    per_image = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(count):
            applied.clear()
            transform(image)
            per_image.append(list(applied))
    return per_image


# --- the tables ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ours, theirs", [(TRIVIAL_AUGMENT_WIDE, v2.TrivialAugmentWide._AUGMENTATION_SPACE),
                                          (AUTOAUGMENT, v2.AutoAugment._AUGMENTATION_SPACE)], ids=["trivial_wide", "autoaugment"])
@pytest.mark.parametrize("height, width", [(16, 16), (96, 64)])
def test_policy_tables_are_torchvisions(ours, theirs, height, width):
    assert tuple(ours) == tuple(theirs)  # private in torchvision: this test notices if they ever change
    for name, (magnitudes_fn, signed) in ours.items():
        their_fn, their_signed = theirs[name]
        for bins in (10, 31):
            mine, expected = magnitudes_fn(bins, height, width), their_fn(bins, height, width)
            assert signed == their_signed and (mine is None) == (expected is None), name
            assert mine is None or torch.equal(mine, expected), name


def test_autoaugment_imagenet_sub_policies_are_torchvisions():
    assert AUTOAUGMENT_IMAGENET == v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)._policies


def test_invert_is_torchvisions():
    images = torch.rand(2, 3, 8, 8)
    reference = v2.AutoAugment()._apply_image_or_video_transform(images, "Invert", 0.0, interpolation=v2.InterpolationMode.NEAREST, fill={})
    assert torch.allclose(apply_op(images, "Invert", 0.0), reference)


# --- TrivialAugmentWide -------------------------------------------------------------------------------


def test_trivial_wide_gives_one_operation_uniform_over_14_at_a_uniform_bin():
    size = 32
    params = sample_trivial_wide(N, size, size, generator())
    assert params.ops.shape == params.magnitudes.shape == params.bins.shape == (N, 1)
    space_ops, table, signed = magnitude_table(TRIVIAL_AUGMENT_WIDE, TRIVIAL_AUGMENT_BINS, size, size)
    assert set(params.ops.flatten().tolist()) <= set(space_ops.tolist())
    op_counts = np.bincount(params.ops.flatten().numpy(), minlength=len(POLICY_OPS))[space_ops.numpy()]
    assert stats.chisquare(op_counts).pvalue > 0.001  # one operation, uniform over the 14
    assert stats.chisquare(np.bincount(params.bins.flatten().numpy(), minlength=TRIVIAL_AUGMENT_BINS)).pvalue > 0.001
    for row, op in enumerate(space_ops.tolist()):
        chosen = params.ops[:, 0] == op
        expected = table[row, params.bins[chosen, 0]]
        drawn = params.magnitudes[chosen, 0]
        assert torch.equal(drawn.abs(), expected.abs()), POLICY_OPS[op]
        if signed[row] and expected.abs().sum() > 0:
            assert abs((drawn < 0).double().mean().item() - 0.5) < 0.05, POLICY_OPS[op]  # ~1,400 draws: 4 standard deviations
        elif not signed[row]:
            assert torch.equal(drawn, expected), POLICY_OPS[op]


def test_trivial_wide_draws_what_torchvisions_transform_draws():
    size, count = 32, 3000
    theirs = torchvision_ops(v2.TrivialAugmentWide(), count, size)
    ours = sample_trivial_wide(count, size, size, generator(3))
    their_ops = [POLICY_OPS.index(applied[0][0]) for applied in theirs]
    our_ops = ours.ops[:, 0].tolist()
    table = np.array([[np.sum(np.array(their_ops) == op), np.sum(np.array(our_ops) == op)] for op in sorted(set(their_ops))])
    assert stats.chi2_contingency(table).pvalue > 0.001
    rotate = POLICY_OPS.index("Rotate")  # a signed, linear operation: the magnitude identifies the bin
    their_rotations = [m for applied in theirs for name, m in applied if name == "Rotate"]
    our_rotations = ours.magnitudes[ours.ops[:, 0] == rotate, 0].numpy()
    assert stats.ks_2samp(their_rotations, our_rotations).pvalue > 0.001


# --- AutoAugment (ImageNet policy) --------------------------------------------------------------------


def expected_op_shares() -> np.ndarray:
    """P(slot s applies operation k) under the policy: sub-policies uniform, each operation with its probability."""
    shares = np.zeros((2, len(POLICY_OPS)))
    for pair in AUTOAUGMENT_IMAGENET:
        for slot, (name, probability, _) in enumerate(pair):
            shares[slot, POLICY_OPS.index(name)] += probability / len(AUTOAUGMENT_IMAGENET)
            shares[slot, IDENTITY] += (1 - probability) / len(AUTOAUGMENT_IMAGENET)
    return shares


def test_autoaugment_applies_each_sub_policys_operations_with_their_probabilities():
    size = 32
    params = sample_auto_augment(N, size, size, generator())
    assert params.ops.shape == (N, 2)
    for slot in range(2):
        counts = np.bincount(params.ops[:, slot].numpy(), minlength=len(POLICY_OPS))
        expected = expected_op_shares()[slot] * N
        used = expected > 0
        assert counts[~used].sum() == 0
        assert stats.chisquare(counts[used], expected[used]).pvalue > 0.001, slot
    # every applied operation carries one of the magnitudes its sub-policies name, at AutoAugment's 10 bins
    space_ops, table, signed = magnitude_table(AUTOAUGMENT, AUTOAUGMENT_BINS, size, size)
    row = {op: r for r, op in enumerate(space_ops.tolist())}
    allowed = {(POLICY_OPS.index(name), round(float(table[row[POLICY_OPS.index(name)], b or 0]), 6))
               for pair in AUTOAUGMENT_IMAGENET for name, _, b in pair}
    applied = params.ops != IDENTITY
    pairs = {(int(op), round(abs(float(m)), 6)) for op, m in zip(params.ops[applied], params.magnitudes[applied])}
    assert pairs <= allowed
    rotations = params.magnitudes[params.ops == POLICY_OPS.index("Rotate")]
    assert abs((rotations < 0).double().mean().item() - 0.5) < 0.03  # signed: negated half the time


def test_autoaugment_draws_what_torchvisions_transform_draws():
    size, count = 32, 4000
    theirs = torchvision_ops(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET), count, size)
    ours = sample_auto_augment(count, size, size, generator(5))
    their_counts = np.bincount([POLICY_OPS.index(name) for applied in theirs for name, _ in applied], minlength=len(POLICY_OPS))
    our_counts = np.bincount(ours.ops[ours.ops != IDENTITY].numpy(), minlength=len(POLICY_OPS))
    used = (their_counts + our_counts) > 0
    assert stats.chi2_contingency(np.stack([their_counts[used], our_counts[used]])).pvalue > 0.001
    their_applied = np.array([len(applied) for applied in theirs])
    our_applied = (ours.ops != IDENTITY).sum(1).numpy()
    assert stats.chi2_contingency(np.stack([np.bincount(their_applied, minlength=3), np.bincount(our_applied, minlength=3)])).pvalue > 0.001


def test_autoaugment_table_lists_every_sub_policy():
    ops, probabilities, bins = autoaugment_imagenet_table()
    assert ops.shape == probabilities.shape == bins.shape == (25, 2)
    assert [[POLICY_OPS[o] for o in pair] for pair in ops.tolist()] == [[name for name, _, _ in pair] for pair in AUTOAUGMENT_IMAGENET]


# --- RandomErasing ------------------------------------------------------------------------------


def test_random_erasing_hits_its_probability_and_area_and_ratio_ranges():
    height = width = 64
    erasing = RandomErasing(p=0.3, scale=(0.02, 0.33), ratio=(0.3, 3.3))
    params = sample_erasing(N, height, width, erasing, generator())
    share = params.erased.double().mean().item()
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / N)  # every box fits at these scales: the share is p
    h, w = params.height[params.erased].double(), params.width[params.erased].double()
    area = h * w / (height * width)
    assert area.min() >= 0.02 * 0.8 and area.max() <= 0.33 * 1.1  # whole pixels: rounding moves small boxes most
    assert (h < height).all() and (w < width).all()
    top, left = params.top[params.erased], params.left[params.erased]
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= height).all() and (left + w <= width).all()
    log_ratio = (h / w).log()  # torchvision draws height / width log-uniformly
    assert log_ratio.min() >= math.log(0.3) - 0.2 and log_ratio.max() <= math.log(3.3) + 0.2
    assert abs(area.mean().item() - (0.02 + 0.33) / 2) < 0.005  # uniform in [0.02, 0.33]; its shape: the two-sample test below


def torchvision_boxes(count: int, size: int, erasing: RandomErasing) -> np.ndarray:
    transform = v2.RandomErasing(p=1.0, scale=erasing.scale, ratio=erasing.ratio, value=0)
    image = torch.zeros(3, size, size)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        params = [transform.make_params([image]) for _ in range(count)]
    return np.array([[p["i"], p["j"], p["h"], p["w"], p["v"] is not None] for p in params], dtype=float)


@pytest.mark.parametrize("scale", [(0.02, 0.33), (0.3, 0.9)], ids=["default", "large"])
def test_random_erasing_boxes_match_torchvision_with_rejected_tries(scale):
    """At large areas many tries do not fit and are redrawn, and some images keep no box: both follow torchvision."""
    size, count = 24, 4000
    erasing = RandomErasing(p=1.0, scale=scale)
    ours = sample_erasing(count, size, size, erasing, generator(4))
    theirs = torchvision_boxes(count, size, erasing)
    assert abs(ours.erased.double().mean().item() - theirs[:, 4].mean()) < 0.04
    kept = theirs[theirs[:, 4] == 1]
    mine = np.stack([t[ours.erased].numpy() for t in (ours.top, ours.left, ours.height, ours.width)], 1).astype(float)
    for name, column in (("top", 0), ("left", 1), ("height", 2), ("width", 3)):
        assert stats.ks_2samp(mine[:, column], kept[:, column]).pvalue > 0.001, name
    assert stats.ks_2samp(mine[:, 2] * mine[:, 3], kept[:, 2] * kept[:, 3]).pvalue > 0.001


def test_erase_sets_each_images_own_box_as_torchvision_does():
    images = torch.rand(3, 3, 10, 12)
    boxes = torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0], [5, 6, 4, 5]])
    fill = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1)
    ours = batch_ops.erase(images, boxes, fill)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        expected = F.erase(images[i], top, left, h, w, fill[0]) if h else images[i]
        assert torch.equal(ours[i], expected), i


def test_random_value_erasing_fills_standard_normal_noise_and_leaves_the_rest():
    augment = BatchAugment(Augment(random_resized_crop=False, random_erasing={"p": 1.0, "scale": [0.3, 0.3], "ratio": [1, 1], "value": "random"}),
                           StageAugment(40, None, 0.0), cache_size=40, hflip=False, channels=3, num_classes=10,
                           normalize=Normalizer(3, torch.device("cpu")))
    images = torch.full((16, 3, 40, 40), 128, dtype=torch.uint8)
    params = augment.sample(16, EpochDraws(0, 1))
    out, _ = augment.apply(images, torch.zeros(16, dtype=torch.long), params)
    plain, _ = augment.apply(images, torch.zeros(16, dtype=torch.long), params.__class__(**{**params.__dict__, "erasing": None}))
    changed = out != plain
    noise = out[changed]
    boxes = params.erasing
    assert boxes.erased.all() and abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1) < 0.05
    per_image = changed.float().mean((1, 2, 3))
    assert torch.allclose(per_image, (boxes.height * boxes.width).float() / 1600, atol=0.01)


def test_erasing_comes_after_normalisation_value_zero_is_the_mean():
    augment = BatchAugment(Augment(random_resized_crop=False, random_erasing={"p": 1.0}), StageAugment(20, None, 0.0), cache_size=20,
                           hflip=False, channels=3, num_classes=10, normalize=Normalizer(3, torch.device("cpu")))
    out, _ = augment(torch.full((8, 3, 20, 20), 255, dtype=torch.uint8), torch.zeros(8, dtype=torch.long), EpochDraws(1, 1))
    assert (out == 0).any() and (out > 2).any()  # the box is 0 in normalised units, the white rest is above 2


# --- the policies in the batched path, and the paired draws -------------------------------------------


@pytest.mark.parametrize("policy", ["trivial_wide", "imagenet"])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_grouped_policy_applies_each_images_own_operations(policy, interpolation):
    augment = BatchAugment(Augment(random_resized_crop=False, auto_augment=policy, policy_interpolation=interpolation),
                           StageAugment(12, None, 0.0), cache_size=12, hflip=False, channels=3, num_classes=10,
                           normalize=Normalizer(3, torch.device("cpu")))
    images = torch.randint(0, 256, (24, 3, 12, 12), dtype=torch.uint8)
    params = augment.sample(24, EpochDraws(0, 1))
    ours, _ = augment.apply(images, torch.zeros(24, dtype=torch.long), params)
    mode = v2.InterpolationMode(interpolation)
    for i in range(24):
        image = images[i:i + 1].float() / 255
        for op, magnitude in zip(params.policy.ops[i].tolist(), params.policy.magnitudes[i].tolist()):
            image = apply_op(image, POLICY_OPS[op], magnitude, mode)
        assert torch.allclose(ours[i:i + 1], Normalizer(3, torch.device("cpu")).normalize(image), atol=1e-5), i


def sample(augment: Augment, stage: StageAugment):
    return BatchAugment(augment, stage, cache_size=32, hflip=True, channels=3, num_classes=10,
                        normalize=Normalizer(3, torch.device("cpu"))).sample(16, EpochDraws(0, 1))


def test_turning_the_new_augmentations_on_leaves_the_other_draws_unchanged():
    plain = sample(Augment(color_jitter=0.4, cutmix=1.0), StageAugment(24, None, 0.2))
    for extra in ({"auto_augment": "trivial_wide"}, {"auto_augment": "imagenet"}, {"random_erasing": {"p": 0.5}},
                  {"auto_augment": "trivial_wide", "random_erasing": {"value": "random"}}):
        rich = sample(Augment(color_jitter=0.4, cutmix=1.0, **extra), StageAugment(24, None, 0.2))
        assert torch.equal(plain.crop.boxes(), rich.crop.boxes()) and torch.equal(plain.flip, rich.flip), extra
        assert torch.equal(plain.jitter.factors, rich.jitter.factors) and (plain.mix.lam, plain.mix.box) == (rich.mix.lam, rich.mix.box)
    with_ra = sample(Augment(random_erasing={"p": 0.5}), StageAugment(24, 9, 0.0))
    with_ta = sample(Augment(auto_augment="trivial_wide", random_erasing={"p": 0.5}), StageAugment(24, None, 0.0))
    assert torch.equal(with_ra.erasing.top, with_ta.erasing.top)  # the erasing draws do not depend on the policy
    assert with_ra.trivial_wide is None and with_ta.randaugment is None


def test_null_auto_augment_keeps_randaugment_exactly_as_before():
    """auto_augment null with a magnitude is RandAugment from its own stream: the same draws as auto_augment randaugment."""
    implicit = sample(Augment(randaugment=9), StageAugment(24, 9, 0.0))
    explicit = sample(Augment(auto_augment="randaugment", randaugment=9), StageAugment(24, 9, 0.0))
    assert torch.equal(implicit.randaugment.ops, explicit.randaugment.ops)
    assert torch.equal(implicit.randaugment.magnitudes, explicit.randaugment.magnitudes)
    assert sample(Augment(), StageAugment(24, None, 0.0)).policy is None
