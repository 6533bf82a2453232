"""Pretrained torchvision weights from the hub cache (a local file written here, never downloaded) and freezing."""

from __future__ import annotations

import pytest
import torch

from workbench.model import build_model
from workbench.errors import WorkbenchError
from workbench.schema import load_architecture
from workbench.train.transfer import freeze, load_pretrained, pretrained_file, torchvision_name
from tests.conftest import ARCHITECTURES
from tests.test_train_helpers import tiny_arch


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A private torch hub cache holding torchvision's efficientnet_b0 weights file (randomly initialised)."""
    import torchvision

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    arch = load_architecture(ARCHITECTURES / "efficientnet_b0.json")
    path, _, _ = pretrained_file(arch)
    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    reference = torchvision.models.efficientnet_b0()
    torch.save(reference.state_dict(), path)
    return arch, reference.state_dict(), path


def test_names_map_to_torchvision_builders():
    assert torchvision_name("efficientnetv2_s") == "efficientnet_v2_s" and torchvision_name("efficientnet_b3") == "efficientnet_b3"


def test_pretrained_weights_load_with_a_new_head(hub):
    arch, reference, _ = hub
    torch.manual_seed(0)
    model = build_model(arch, num_classes=7)
    head_before = model.classifier[1].weight.clone()
    load_pretrained(model, arch)
    state = model.state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference if not k.startswith("classifier.1."))
    assert state["classifier.1.weight"].shape == (7, 1280) and torch.equal(model.classifier[1].weight, head_before)
    full = build_model(arch, num_classes=1000)
    load_pretrained(full, arch)
    assert torch.equal(full.state_dict()["classifier.1.weight"], reference["classifier.1.weight"])


def test_grayscale_network_folds_the_rgb_stem(hub):
    arch, reference, _ = hub
    gray = arch.model_copy(update={"in_channels": 1})
    model = build_model(gray, num_classes=10)
    load_pretrained(model, gray)
    assert torch.allclose(model.features[0][0].weight, reference["features.0.0.weight"].sum(1, keepdim=True))


def test_scaled_network_does_not_fit_the_weights(hub):
    arch, _, _ = hub
    narrow = arch.model_copy(update={"width_mult": 0.5})
    with pytest.raises(WorkbenchError, match="do not fit this architecture"):
        load_pretrained(build_model(narrow, 10), narrow)


def test_missing_weights_name_the_file_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "empty"))
    arch = load_architecture(ARCHITECTURES / "efficientnetv2_s.json")
    with pytest.raises(WorkbenchError) as info:
        load_pretrained(build_model(arch.model_copy(update={"depth_mult": 0.1, "width_mult": 0.1}), 10), arch)
    text = "\n".join(info.value.lines)
    assert str(tmp_path / "empty" / "checkpoints" / "efficientnet_v2_s-dd5fe13b.pth") in text
    assert "torchvision.models.efficientnet_v2_s(weights='DEFAULT')" in text


def test_architectures_without_torchvision_weights_are_refused():
    with pytest.raises(WorkbenchError, match="no torchvision weights for architecture 'tiny'"):
        pretrained_file(tiny_arch())


def test_freeze_backbone_and_first_stages():
    model = build_model(tiny_arch(), 10)
    frozen = freeze(model, "backbone")
    assert frozen == [model.features]
    assert not any(p.requires_grad for p in model.features.parameters()) and all(p.requires_grad for p in model.classifier.parameters())
    model = build_model(tiny_arch(), 10)
    freeze(model, 2)
    assert [any(p.requires_grad for p in m.parameters()) for m in model.features] == [False, False, False, True, True]
    with pytest.raises(WorkbenchError, match="4 stages requested but the network has 3"):
        freeze(build_model(tiny_arch(), 10), 4)
    assert freeze(build_model(tiny_arch(), 10), "none") == []
