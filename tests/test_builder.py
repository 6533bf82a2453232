"""The generic builder reproduces torchvision's EfficientNets exactly, and builds every shipped variant."""

import pytest
import torch
import torchvision

from tests.conftest import ARCHITECTURES
from workbench import build_model, load_architecture
from workbench.model import set_dropout, set_stochastic_depth
from workbench.complexity import analytic_cost


def test_published_parameter_counts():
    expected = {"efficientnet_b0": 5_288_548, "efficientnetv2_s": 21_458_488, "efficientnetv2_m": 54_139_356,
                "efficientnetv2_l": 118_515_272}
    for name, params in expected.items():
        assert analytic_cost(load_architecture(ARCHITECTURES / f"{name}.json")).params == params


@pytest.mark.parametrize("name", ["v2s_all_mbconv", "v2s_all_fused", "half_layers", "dropped_two", "v2s_shallow_sd"])
def test_variants_build_and_run(name):
    arch = load_architecture(ARCHITECTURES / f"{name}.json")
    model = build_model(arch, num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == analytic_cost(arch, 64, 10).params


def test_grayscale_input_fused_se_and_other_activation():
    arch = load_architecture(ARCHITECTURES / "half_layers.json").model_copy(update={"in_channels": 1, "activation": "hardswish"})
    stages = [s.model_copy(update={"se_ratio": 0.25}) for s in arch.stages]
    arch = arch.model_copy(update={"stages": stages, "width_mult": 0.25, "depth_mult": 0.5})
    model = build_model(arch, num_classes=3)
    assert model.features[0][0].in_channels == 1
    assert any(isinstance(m, torchvision.ops.SqueezeExcitation) for m in model.features[1].modules())
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert sum(p.numel() for p in model.parameters()) == analytic_cost(arch, 32, 3).params


def test_regularisation_changes_in_place():
    arch = load_architecture(ARCHITECTURES / "v2s_shallow_sd.json")
    model = build_model(arch, num_classes=10)
    modules_before = [id(m) for m in model.modules()]
    set_dropout(model, 0.35)
    set_stochastic_depth(model, 0.1)
    assert model.classifier[0].p == 0.35
    rates = [m.p for m in model.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    n = len(rates)
    assert rates == pytest.approx([0.1 * (i / n) ** 2 for i in range(n)])
    assert [id(m) for m in model.modules()] == modules_before
