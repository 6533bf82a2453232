"""Transfer learning: torchvision ImageNet weights for preset architectures, and freezing parts of the network.

Weights are read from the torch hub cache (torch.hub.get_dir()/checkpoints/<file>), never downloaded while
training: a study of many trials must not race to download, and compute nodes are often offline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.schema.architecture import Architecture

HEAD_KEYS = ("classifier.1.weight", "classifier.1.bias")
STEM_KEY = "features.0.0.weight"


def torchvision_name(arch_name: str) -> str:
    """efficientnetv2_s -> efficientnet_v2_s; efficientnet_b0 stays."""
    name = arch_name.lower().replace("-", "_")
    return name.replace("efficientnetv2_", "efficientnet_v2_")


def pretrained_file(arch: Architecture) -> tuple[Path, str, str]:
    """(expected path in the hub cache, download URL, torchvision builder name) for a preset architecture."""
    import torchvision.models

    name = torchvision_name(arch.name)
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        presets = sorted(n for n in torchvision.models.list_models() if n.startswith("efficientnet"))
        raise WorkbenchError([f"recipe.init=pretrained: no torchvision weights for architecture {arch.name!r}",
                              f"pretrained weights exist for: {', '.join(presets)} "
                              "(architecture names like efficientnet_b0, efficientnetv2_s)"]) from None
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name, weights.url, name


def load_pretrained(model: nn.Module, arch: Architecture) -> None:
    """Copy ImageNet weights into `model`; the classifier is kept fresh when its class count differs."""
    path, url, name = pretrained_file(arch)
    if not path.is_file():
        raise WorkbenchError([f"recipe.init=pretrained: weights for {name} not found at {path}",
                              f"fetch them once (online): python -c \"import torchvision; torchvision.models.{name}(weights='DEFAULT')\"",
                              f"or download {url} into {path.parent}/"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    load_matching(model, adapt_state(state, model.state_dict()), f"{name} weights ({path.name})")


def adapt_state(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop an ImageNet head of the wrong size; fold the RGB stem into one channel for grayscale networks."""
    state = dict(state)
    if any(k in state and k in target and state[k].shape != target[k].shape for k in HEAD_KEYS):
        for key in HEAD_KEYS:
            state.pop(key, None)
    stem = state.get(STEM_KEY)
    if stem is not None and STEM_KEY in target and target[STEM_KEY].shape[1] == 1 and stem.shape[1] == 3:
        state[STEM_KEY] = stem.sum(dim=1, keepdim=True)  # a gray pixel g is the RGB pixel (g, g, g)
    return state


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Strict loading, except that a missing classifier head is allowed (it stays freshly initialised)."""
    target = model.state_dict()
    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(target[k].shape)}"
                  for k, v in state.items() if k in target and v.shape != target[k].shape]
    missing = [k for k in target if k not in state and k not in HEAD_KEYS]
    unexpected = [k for k in state if k not in target]
    if mismatched or missing or unexpected:
        lines = [f"{what} do not fit this architecture (was it width/depth scaled, or changed?)"]
        lines += [f"shape {m}" for m in mismatched[:5]]
        lines += [f"missing in file: {k}" for k in missing[:5]] + [f"not in model: {k}" for k in unexpected[:5]]
        raise WorkbenchError(lines)
    model.load_state_dict(state, strict=False)


def freeze(model: nn.Module, spec: str | int) -> list[nn.Module]:
    """Stop gradients to the backbone or to the stem and first k stages; returns the frozen modules
    (kept in eval mode during training, so their batch-norm statistics stay those of the pretrained network)."""
    if spec == "none" or spec == 0:
        return []
    if spec == "backbone":
        frozen = [model.features]
    else:
        stages = model.stages
        if spec > len(stages):
            raise WorkbenchError(f"recipe.freeze: {spec} stages requested but the network has {len(stages)}")
        frozen = [model.features[0], *stages[:spec]]
    for module in frozen:
        module.requires_grad_(False)
    return frozen
