"""The analytic cost model agrees with fvcore on every shipped variant (the presets: tests/test_presets.py)."""

import pytest

from tests.conftest import ARCHITECTURES
from workbench import load_architecture
from workbench.complexity import analytic_cost, count_flops


@pytest.mark.parametrize("name", ["v2s_all_mbconv", "v2s_all_fused", "half_layers", "dropped_two", "v2s_shallow_sd", "v2l_modified"])
def test_analytic_model_matches_fvcore_on_variants(name):
    arch = load_architecture(ARCHITECTURES / f"{name}.json")
    for resolution, classes in ((160, 1000), (37, 10)):
        cost, analytic = count_flops(arch, resolution, classes), analytic_cost(arch, resolution, classes)
        assert (analytic.params, analytic.flops, analytic.activations) == (cost.params, cost.flops, cost.activations)
        assert abs(analytic.flops - cost.flops) <= 0.01 * cost.flops


def test_stage_rows_add_up():
    cost = count_flops(load_architecture(ARCHITECTURES / "half_layers.json"), 128)
    assert sum(s.flops for s in cost.stages) == cost.flops
    assert sum(s.params for s in cost.stages) == cost.params
    assert [s.blocks for s in cost.stages] == [1, 1, 2, 2, 3, 4, 7, 1]
    assert cost.stages[-2].output_shape == (256, 4, 4)
