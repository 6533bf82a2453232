"""Pydantic models for every config file. Imports no torch."""

from workbench.schema.architecture import Architecture, Scale, Stage
from workbench.schema.common import load

__all__ = ["Architecture", "Scale", "Stage", "load", "load_architecture"]


def load_architecture(path) -> Architecture:
    return load(Architecture, path)
