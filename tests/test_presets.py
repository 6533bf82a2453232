"""The 11 presets are torchvision's networks: same state dict, same logits, same published params and FLOPs.

Both models are allocated without their (slow, irrelevant here) initialisation; torchvision's gets seeded
random weights, which ours must load strictly and reproduce to the last bit.
"""

import pytest
import torch
import torchvision

from tests.conftest import ARCHITECTURES, PRESETS
from workbench import build_model, load_architecture
from workbench.complexity import analytic_cost, count_model


def _weights_enum(tv_name):
    enum_name = "EfficientNet_" + tv_name.removeprefix("efficientnet_").upper() + "_Weights"
    return getattr(torchvision.models, enum_name).IMAGENET1K_V1


def _randomised_torchvision(tv_name):
    with torch.device("meta"):
        model = getattr(torchvision.models, tv_name)()
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("num_batches_tracked"):
                tensor.zero_()
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.05)
    return model.eval()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_equals_torchvision(preset):
    arch = load_architecture(ARCHITECTURES / f"{preset}.json")
    weights = _weights_enum(PRESETS[preset])
    theirs = _randomised_torchvision(PRESETS[preset])
    with torch.device("meta"):
        ours = build_model(arch)
    ours = ours.to_empty(device="cpu").eval()

    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in theirs.state_dict().items()]
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))

    ours_p = [m.p for m in ours.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    theirs_p = [m.p for m in theirs.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    assert ours_p == theirs_p
    assert ours.classifier[0].p == theirs.classifier[0].p

    # Published figures: parameters to the unit, FLOPs within 0.5 % at the weights' eval crop.
    resolution = weights.transforms().crop_size[0]
    assert arch.resolution.eval_size == resolution
    cost = count_model(ours, arch, resolution)
    assert cost.params == weights.meta["num_params"] == sum(p.numel() for p in theirs.parameters())
    assert cost.flops / 1e9 == pytest.approx(weights.meta["_ops"], rel=0.005)
    # ...and the analytic cost model agrees with fvcore exactly, stage by stage.
    analytic = analytic_cost(arch, resolution)
    assert (analytic.params, analytic.flops, analytic.activations) == (cost.params, cost.flops, cost.activations)
    assert [s.flops for s in analytic.stages] == [s.flops for s in cost.stages]
