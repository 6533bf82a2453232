"""One table of block kinds and activations (workbench.schema.architecture): the schema, the builder and the cost
model agree on them, so adding a block is a checklist this file enforces."""

import itertools

import pytest

from workbench.complexity import analytic_cost, count_flops
from workbench.complexity.analytic import BLOCK_COSTS
from workbench.model.blocks import ACTIVATION_LAYERS, BLOCKS
from workbench.schema.architecture import ACTIVATIONS, BLOCK_KINDS, Architecture, Stage


def test_schema_builder_and_cost_model_know_the_same_block_kinds_and_activations():
    assert set(BLOCK_KINDS) == set(BLOCKS) == set(BLOCK_COSTS)
    assert set(Stage.model_json_schema()["properties"]["block"]["enum"]) == set(BLOCK_KINDS)
    assert set(ACTIVATIONS) == set(ACTIVATION_LAYERS)
    assert len({info.short for info in BLOCK_KINDS.values()}) == len(BLOCK_KINDS)  # stage tables tell them apart


def one_block_network(kind: str, expand: float, se_ratio: float | None, stride: int, activation: str) -> Architecture:
    return Architecture.model_validate({
        "name": f"{kind}-x{expand}", "activation": activation, "resolution": {"train": 32},
        "stages": [{"block": kind, "expand": expand, "kernel": 3, "stride": stride, "in_channels": 16, "out_channels": 16,
                    "layers": 2, "se_ratio": se_ratio}],
    })


@pytest.mark.parametrize("kind", sorted(BLOCK_KINDS))
def test_every_block_kind_builds_and_costs_as_fvcore_counts_it(kind):
    """Each kind with and without expansion, squeeze-excitation and stride: the analytic cost equals fvcore's count."""
    for expand, se_ratio, stride in itertools.product((1, 4), (None, 0.0, 0.25), (1, 2)):
        arch = one_block_network(kind, expand, se_ratio, stride, "silu")
        traced, analytic = count_flops(arch, 32, 10), analytic_cost(arch, 32, 10)
        assert (analytic.params, analytic.flops, analytic.activations) == (traced.params, traced.flops, traced.activations), (expand, se_ratio, stride)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_builds_the_named_module(activation):
    from workbench.model import build_model

    import torch

    model = build_model(one_block_network("mbconv", 4, None, 1, activation), 10)
    assert ACTIVATION_LAYERS[activation] in {type(m) for m in model.modules()}
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
