"""FLOPs, parameters and activations counted by fvcore on the built model.

Convention (the EfficientNet papers' and torchvision's): FLOPs are multiply-adds of convolutions and linear
layers; batch norm, pooling and element-wise operations are not counted.
"""

from __future__ import annotations

import warnings
from collections import Counter

from workbench.complexity.analytic import CONVENTION, Cost, StageCost, analytic_cost
from workbench.schema.architecture import Architecture

__all__ = ["CONVENTION", "count_flops", "count_model", "module_table"]


def _combined_handles() -> dict:
    """fvcore's own FLOP and activation handles for the counted ops, paired so that one trace yields both.

    FlopCountAnalysis and ActivationCountAnalysis each trace the model (a full forward pass); counting both
    from one trace halves the time of `workbench flops`.
    """
    from fvcore.nn.jit_handles import (
        addmm_flop_jit, bmm_flop_jit, conv_flop_jit, einsum_flop_jit, generic_activation_jit, linear_flop_jit, matmul_flop_jit,
    )

    flop = {"aten::_convolution": conv_flop_jit, "aten::addmm": addmm_flop_jit, "aten::linear": linear_flop_jit,
            "aten::matmul": matmul_flop_jit, "aten::mm": matmul_flop_jit, "aten::bmm": bmm_flop_jit, "aten::einsum": einsum_flop_jit}
    activation = generic_activation_jit()

    def pair(flop_handle):
        def handle(inputs, outputs):
            flops = flop_handle(inputs, outputs)
            flops = sum(flops.values()) if isinstance(flops, Counter) else flops
            return Counter({"flops": int(flops), "activations": int(activation(inputs, outputs))})
        return handle

    return {op: pair(h) for op, h in flop.items()}


def _trace_counts(model, arch: Architecture, size: int) -> dict[str, Counter]:
    import torch
    from fvcore.nn.jit_analysis import JitModelAnalysis

    inputs = torch.zeros(1, arch.in_channels, size, size)
    analysis = JitModelAnalysis(model, (inputs,)).set_op_handle(**_combined_handles())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    was_training = model.training
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = analysis.by_module_and_operator()
    model.train(was_training)
    return {name: Counter(c) for name, c in counts.items()}


def _uninitialised_model(arch: Architecture, num_classes: int):
    # Counting needs shapes, not values: build on the meta device and allocate without running the init.
    import torch

    from workbench.model import build_model

    with torch.device("meta"):
        model = build_model(arch, num_classes)
    return model.to_empty(device="cpu")


def count_model(model, arch: Architecture, resolution: int | None = None, num_classes: int = 1000) -> Cost:
    """Count an already-built workbench model (its stage layout must be the builder's)."""
    from fvcore.nn import parameter_count

    size = resolution or arch.resolution.eval_size
    counts = _trace_counts(model, arch, size)
    params = parameter_count(model)
    # Shapes come from the analytic model: the stage table fixes them, no forward hooks needed.
    shapes = analytic_cost(arch, size, num_classes).stages
    last = len(model.features) - 1
    prefixes = ["features.0"] + [f"features.{i}" for i in range(1, last)] + [f"features.{last}"]
    total = counts[""]
    cost = Cost(arch.name, size, num_classes, params=params[""], flops=total["flops"], activations=total["activations"])
    for prefix, shape in zip(prefixes, shapes):
        stage = StageCost(shape.name, shape.block, shape.blocks, params[prefix], counts[prefix]["flops"],
                          counts[prefix]["activations"], shape.output_shape)
        if shape.name == "head":
            stage.params += params["classifier"]
            stage.flops += counts["classifier"]["flops"]
            stage.activations += counts["classifier"]["activations"]
        cost.stages.append(stage)
    return cost


def count_flops(arch: Architecture, resolution: int | None = None, num_classes: int = 1000) -> Cost:
    """Build `arch` and count it with fvcore at `resolution` (default: its eval resolution)."""
    return count_model(_uninitialised_model(arch, num_classes), arch, resolution, num_classes)


def module_table(arch: Architecture, resolution: int | None = None, num_classes: int = 1000, max_depth: int = 3) -> list[dict]:
    """Per-module rows (name, params, flops, activations) down to `max_depth` dotted levels."""
    from fvcore.nn import parameter_count

    model = _uninitialised_model(arch, num_classes)
    counts = _trace_counts(model, arch, resolution or arch.resolution.eval_size)
    params = parameter_count(model)
    rows = []
    for name, module in model.named_modules():
        if not name or name.count(".") >= max_depth:
            continue
        c = counts.get(name, Counter())
        rows.append({"module": name, "type": type(module).__name__, "params": params.get(name, 0),
                     "flops": c["flops"], "activations": c["activations"]})
    return rows
