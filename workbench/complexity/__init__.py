"""Cost of an architecture: fvcore counts on the built model, and an analytic model that needs no torch."""

from workbench.complexity.analytic import CONVENTION, Cost, StageCost, analytic_cost

__all__ = ["Cost", "StageCost", "analytic_cost", "count_flops", "count_model", "CONVENTION"]


def count_flops(arch, resolution=None, num_classes=1000):
    from workbench.complexity.fvcore_count import count_flops as _count

    return _count(arch, resolution, num_classes)


def count_model(model, arch, resolution=None, num_classes=1000):
    from workbench.complexity.fvcore_count import count_model as _count

    return _count(model, arch, resolution, num_classes)
