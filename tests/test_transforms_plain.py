"""A recipe that turns every augmentation off still trains: the train transform is then the identity."""

import torch

from workbench.data.transforms import StageAugment, train_transform
from workbench.schema.recipe import Augment


def test_no_augmentation_at_the_cache_size_is_the_identity():
    transform = train_transform(Augment(random_resized_crop=False), StageAugment(16, None, 0.0), cache_size=16, hflip=False, channels=1)
    image = torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8)
    assert torch.equal(transform(image), image)


def test_no_crop_resizes_to_the_stage_size():
    transform = train_transform(Augment(random_resized_crop=False), StageAugment(8, None, 0.0), cache_size=16, hflip=False, channels=1)
    assert transform(torch.zeros(1, 16, 16, dtype=torch.uint8)).shape == (1, 8, 8)
