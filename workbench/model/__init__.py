"""Blocks and the builder (imports torch)."""

from workbench.model.builder import EfficientNet, build_model, set_dropout, set_stochastic_depth

__all__ = ["EfficientNet", "build_model", "set_dropout", "set_stochastic_depth"]
