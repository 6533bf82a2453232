"""A recipe that turns every augmentation off still trains: the batch transform is then normalisation alone."""

import torch

from workbench.data.augment import StageAugment, train_augment
from workbench.data.draws import EpochDraws
from workbench.data.transforms import Normalizer
from workbench.schema.augment import Augment


def plain(size: int, cache_size: int):
    return train_augment(Augment(random_resized_crop=False), StageAugment(size, None, 0.0), cache_size=cache_size, hflip=False,
                         channels=1, num_classes=10, normalize=Normalizer(1, torch.device("cpu")))


def test_no_augmentation_at_the_cache_size_is_normalisation_alone():
    images = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    labels = torch.arange(4)
    inputs, targets = plain(16, 16)(images, labels, EpochDraws(0, 1))
    normalize = Normalizer(1, torch.device("cpu"))
    assert torch.equal(inputs, normalize(images)) and torch.equal(targets, labels)
    params = plain(16, 16).sample(4, EpochDraws(0, 1))
    assert (params.crop, params.flip, params.jitter, params.randaugment, params.mix) == (None,) * 5


def test_no_crop_resizes_to_the_stage_size():
    inputs, _ = plain(8, 16)(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), torch.arange(2), EpochDraws(0, 1))
    assert inputs.shape == (2, 1, 8, 8)
