"""The batched training augmentation keeps the distributions torchvision's transforms define: tested on the sampled
parameters (crop scales, ratios and positions, flip rate, jitter factors and order, RandAugment operations and
magnitudes, mixup/cutmix lambdas), each from fixed seeds so that no test flakes; the pixels of each operation are
torchvision's own (checked against torchvision on small batches); paired seeds give identical draws to different
architectures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from workbench.data import batch_ops
from workbench.data.augment import (CROP_RATIO, BatchAugment, StageAugment, jitter_range, sample_crops, sample_flips, sample_jitter,
                                    sample_mix, sample_randaugment, train_augment)
from workbench.data.draws import EpochDraws, stream_seed
from workbench.data.policies import RANDAUGMENT, RANDAUGMENT_BINS, RANDAUGMENT_OPS, apply_op, randaugment_magnitudes
from workbench.data.transforms import Normalizer
from workbench.schema.augment import Augment

N = 20_000  # draws per distribution test: about 20 ms each


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- RandomResizedCrop ----------------------------------------------------------------------------


def test_crops_lie_in_the_image_with_area_and_ratio_in_range_and_log_uniform_ratio():
    size, scale = 1000, (0.08, 0.5)  # no try can fail at these scales, so nothing is rejected
    crops = sample_crops(N, size, size, scale, generator())
    assert (crops.top >= 0).all() and (crops.left >= 0).all()
    assert (crops.top + crops.height <= size).all() and (crops.left + crops.width <= size).all()
    area = (crops.height * crops.width).double() / size**2
    assert area.min() >= scale[0] * 0.99 and area.max() <= scale[1] * 1.01  # 1 % for rounding to whole pixels
    log_ratio = (crops.width.double() / crops.height.double()).log()
    low, high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    assert log_ratio.min() >= low - 0.01 and log_ratio.max() <= high + 0.01
    assert stats.kstest(log_ratio.numpy(), stats.uniform(low, high - low).cdf).pvalue > 0.001
    assert stats.kstest(area.numpy(), stats.uniform(scale[0], scale[1] - scale[0]).cdf).pvalue > 0.001


def torchvision_crops(count: int, size: int, scale: tuple[float, float]) -> np.ndarray:
    crop = v2.RandomResizedCrop(size, scale=scale)
    image = torch.zeros(1, size, size)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        params = [crop.make_params([image]) for _ in range(count)]
    return np.array([[p["top"], p["left"], p["height"], p["width"]] for p in params], dtype=float)


def test_crops_match_torchvision_with_rejected_tries():
    """At the default scale [0.35, 1] on a small image many tries do not fit and are redrawn: the accepted
    distribution is torchvision's (two-sample KS tests on area, ratio and position)."""
    size, scale, count = 32, (0.35, 1.0), 4000
    ours = sample_crops(count, size, size, scale, generator(2))
    ours = np.stack([t.numpy() for t in (ours.top, ours.left, ours.height, ours.width)], 1).astype(float)
    theirs = torchvision_crops(count, size, scale)
    for name, values in (("area", lambda c: c[:, 2] * c[:, 3]), ("ratio", lambda c: c[:, 3] / c[:, 2]),
                         ("top", lambda c: c[:, 0]), ("left", lambda c: c[:, 1])):
        assert stats.ks_2samp(values(ours), values(theirs)).pvalue > 0.001, name


def test_crops_fall_back_to_the_central_crop_when_no_try_fits():
    crops = sample_crops(100, 40, 40, (1.0, 1.0), generator(), ratio=(2.0, 3.0))  # a wide box of the whole area never fits
    assert (crops.width == 40).all() and (crops.height == 20).all()  # the whole width at the ratio's minimum, 2
    assert (crops.top == 10).all() and (crops.left == 0).all()


def test_a_whole_image_box_at_its_own_size_is_the_identity_and_boxes_are_x_then_y():
    images = torch.rand(3, 3, 12, 12)
    whole = torch.tensor([[0.0, 0.0, 12.0, 12.0]] * 3)
    assert torch.allclose(batch_ops.crop_resize(images, whole, 12), images, atol=1e-6)
    ramp = torch.linspace(0, 1, 40).expand(1, 1, 30, 40).contiguous()  # smooth, brighter to the right
    box = torch.tensor([[20.0, 5.0, 40.0, 25.0]])  # x1, y1, x2, y2: the right half, rows 5-24
    ours = batch_ops.crop_resize(ramp, box, 10)
    theirs = F.resized_crop(ramp, top=5, left=20, height=20, width=20, size=[10, 10], antialias=True)
    assert (ours - theirs).abs().max() < 0.02


# --- flip and ColorJitter -----------------------------------------------------------------------


def test_flip_rate_is_one_half_and_flips_only_the_marked_images():
    flips = sample_flips(N, generator())
    assert abs(flips.double().mean().item() - 0.5) < 0.015  # 4 standard deviations
    images = torch.rand(2, 1, 4, 4)
    flipped = batch_ops.flip(images, torch.tensor([True, False]))
    assert torch.equal(flipped[0], images[0].flip(-1)) and torch.equal(flipped[1], images[1])


def test_jitter_factors_are_uniform_in_range_and_orders_are_uniform_permutations():
    strength = 0.3
    jitter = sample_jitter(N, strength, 3, generator(1))
    low, high = jitter_range(strength)
    assert jitter.factors.min() >= low and jitter.factors.max() <= high
    for column in range(3):
        assert stats.kstest(jitter.factors[:, column].numpy(), stats.uniform(low, high - low).cdf).pvalue > 0.001
    assert (jitter.order.sort(1).values == torch.arange(3)).all()
    counts = np.unique(jitter.order.numpy(), axis=0, return_counts=True)[1]
    assert len(counts) == 6 and stats.chisquare(counts).pvalue > 0.001
    assert (sample_jitter(100, strength, 1, generator()).factors[:, 2] == 1).all()  # grayscale: no saturation
    assert jitter_range(1.0) == (0.0, 2.0)


def test_per_image_jitter_equals_torchvision_image_by_image():
    images = torch.rand(4, 3, 8, 8)
    factors = torch.tensor([[1.2, 0.8, 1.3], [0.7, 1.1, 0.9], [1.0, 1.0, 1.0], [1.3, 0.7, 0.0]])
    order = torch.tensor([[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]])
    ours = batch_ops.color_jitter(images.clone(), factors, order)
    adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)
    for i in range(4):
        image = images[i]
        for op in order[i].tolist():
            image = adjust[op](image, float(factors[i, op]))
        assert torch.allclose(ours[i], image, atol=1e-6), i


# --- RandAugment ----------------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(16, 16), (96, 64)])
def test_randaugment_table_is_torchvisions(height, width):
    theirs = v2.RandAugment._AUGMENTATION_SPACE  # private in torchvision: this test notices if it ever changes
    assert tuple(theirs) == RANDAUGMENT_OPS
    for name, (magnitudes_fn, signed) in RANDAUGMENT.items():
        their_fn, their_signed = theirs[name]
        ours, expected = magnitudes_fn(RANDAUGMENT_BINS, height, width), their_fn(RANDAUGMENT_BINS, height, width)
        assert signed == their_signed and (ours is None) == (expected is None), name
        assert ours is None or torch.equal(ours, expected), name


def test_randaugment_ops_are_uniform_and_magnitudes_are_the_policys():
    magnitude, num_ops, size = 9, 2, 32
    params = sample_randaugment(N, num_ops, magnitude, size, size, generator())
    assert params.ops.shape == (N, num_ops)
    counts = np.bincount(params.ops.flatten().numpy(), minlength=len(RANDAUGMENT_OPS))
    assert stats.chisquare(counts).pvalue > 0.001
    values, signed = randaugment_magnitudes(magnitude, size, size)
    for op, name in enumerate(RANDAUGMENT_OPS):
        drawn = params.magnitudes[params.ops == op]
        assert torch.equal(drawn.abs(), values[op].abs().expand_as(drawn)), name
        if signed[op]:
            assert abs((drawn < 0).double().mean().item() - 0.5) < 0.03, name  # ~2,900 draws each: 3 standard deviations
        else:
            assert (drawn == values[op]).all(), name
    assert values[RANDAUGMENT_OPS.index("Rotate")] == pytest.approx(30.0 * 9 / 30)
    assert values[RANDAUGMENT_OPS.index("Posterize")] == 7  # 8 - round(9 / 7.5)


@pytest.mark.parametrize("name", [n for n in RANDAUGMENT_OPS if n != "Identity"])
def test_each_operation_is_torchvisions(name):
    magnitudes_fn, _ = RANDAUGMENT[name]
    values = magnitudes_fn(RANDAUGMENT_BINS, 12, 12)
    magnitude = 0.0 if values is None else -float(values[13]) if RANDAUGMENT[name][1] else float(values[13])
    images = torch.rand(3, 3, 12, 12)
    reference = v2.RandAugment()._apply_image_or_video_transform(images, name, magnitude, interpolation=v2.InterpolationMode.NEAREST,
                                                                  fill={})  # private: the exact per-image operation
    assert torch.allclose(apply_op(images, name, magnitude), reference)


def test_grouped_randaugment_applies_each_images_own_operation():
    augment = train_augment(Augment(random_resized_crop=False), StageAugment(12, 15, 0.0), cache_size=12, hflip=False, channels=3,
                            num_classes=10, normalize=Normalizer(3, torch.device("cpu")))
    images = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)
    params = augment.sample(16, EpochDraws(0, 1))
    ours, _ = augment.apply(images, torch.zeros(16, dtype=torch.long), params)
    for i in range(16):
        image = images[i:i + 1].float() / 255
        for op, magnitude in zip(params.randaugment.ops[i].tolist(), params.randaugment.magnitudes[i].tolist()):
            image = apply_op(image, RANDAUGMENT_OPS[op], magnitude)
        assert torch.allclose(ours[i:i + 1], Normalizer(3, torch.device("cpu")).normalize(image), atol=1e-5), i


# --- MixUp and CutMix -----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_lambda_has_the_beta_moments(alpha):
    lams = np.array([sample_mix(alpha, 0.0, 16, 16, g).lam for g in [generator()] for _ in range(N // 4)])
    assert abs(lams.mean() - 0.5) < 0.015
    assert abs(lams.var() - 1 / (4 * (2 * alpha + 1))) < 0.01
    assert stats.kstest(lams, stats.beta(alpha, alpha).cdf).pvalue > 0.001


def test_cutmix_boxes_and_the_choice_between_mixup_and_cutmix():
    g = generator()
    mixes = [sample_mix(0.2, 1.0, 20, 24, g) for _ in range(4000)]
    share = sum(m.kind == "mixup" for m in mixes) / len(mixes)
    assert abs(share - 0.5) < 0.03
    for m in mixes:
        if m.kind == "cutmix":
            x1, y1, x2, y2 = m.box
            assert 0 <= x1 <= x2 <= 24 and 0 <= y1 <= y2 <= 20
            assert m.target_lam == pytest.approx(1 - (x2 - x1) * (y2 - y1) / (20 * 24))
        else:
            assert m.box is None and m.target_lam == m.lam
    assert sample_mix(0.0, 0.0, 8, 8, g) is None


def test_mixing_makes_soft_targets_that_sum_to_one():
    images, targets = torch.rand(4, 1, 6, 6), torch.nn.functional.one_hot(torch.arange(4), 4).float()
    mixed, soft = batch_ops.mixup(images.clone(), targets.clone(), 0.3)
    assert torch.allclose(mixed[1], 0.3 * images[1] + 0.7 * images[0]) and torch.allclose(soft.sum(1), torch.ones(4))
    cut, soft = batch_ops.cutmix(images, targets, (1, 2, 4, 5), 0.75)
    assert torch.equal(cut[1, :, 2:5, 1:4], images[0, :, 2:5, 1:4]) and torch.equal(cut[1, :, 0, :], images[1, :, 0, :])
    assert soft[1].tolist() == [0.25, 0.75, 0.0, 0.0]


# --- the generators -------------------------------------------------------------------------------


def test_draw_streams_are_distinct_and_leave_the_global_rng_alone():
    seeds = {stream_seed(seed, epoch, kind) for seed in (0, 1) for epoch in (1, 2) for kind in ("order", "crop", "mix")}
    assert len(seeds) == 12
    augment = train_augment(Augment(color_jitter=0.2, randaugment=5, mixup=0.2, cutmix=1.0), StageAugment(16, 5, 0.2), cache_size=20,
                            hflip=True, channels=3, num_classes=10, normalize=Normalizer(3, torch.device("cpu")))
    torch.manual_seed(7)
    before = torch.get_rng_state()
    augment(torch.zeros(8, 3, 20, 20, dtype=torch.uint8), torch.zeros(8, dtype=torch.long), EpochDraws(3, 1))
    assert torch.equal(torch.get_rng_state(), before)


def test_turning_one_augmentation_on_leaves_the_other_draws_unchanged():
    def sample(augment: Augment, stage: StageAugment):
        return BatchAugment(augment, stage, cache_size=32, hflip=True, channels=3, num_classes=10,
                            normalize=Normalizer(3, torch.device("cpu"))).sample(16, EpochDraws(0, 1))

    plain = sample(Augment(), StageAugment(24, None, 0.0))
    rich = sample(Augment(color_jitter=0.4, cutmix=1.0), StageAugment(24, 9, 0.2))
    assert torch.equal(plain.crop.boxes(), rich.crop.boxes()) and torch.equal(plain.flip, rich.flip)
    assert rich.jitter is not None and rich.randaugment is not None and rich.mix is not None
