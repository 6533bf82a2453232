"""Predictions of a trained checkpoint on image files, preprocessed like the validation split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.model import build_model
from workbench.data.images import decode_file, square
from workbench.data.transforms import Normalizer, eval_images
from workbench.errors import WorkbenchError
from workbench.schema.architecture import Architecture
from workbench.train.trial_files import load_checkpoint


def load_trained(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode with the weights that were evaluated — the EMA when the run kept one, config dict)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise WorkbenchError(f"checkpoint {path} not found")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError("device cuda requested but torch finds no CUDA device")
    try:
        state = load_checkpoint(path, device)
        config = state["config"]
        arch = Architecture.model_validate(config["architecture"])
    except Exception as exc:  # not a workbench checkpoint, truncated file, foreign pickle
        raise WorkbenchError(f"{path}: not a readable workbench checkpoint ({type(exc).__name__}: {exc})") from None
    model = build_model(arch, config["num_classes"])
    model.load_state_dict(evaluated_weights(state))
    return model.to(device).eval(), config


def evaluated_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    if state.get("eval_weights") == "ema" and state.get("ema") is not None:
        # AveragedModel's state: the averaged network under "module." plus its n_averaged counter.
        return {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    return state["model"]


def predict_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 5,
                  device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """For each image: {"image": path, "top": [(class name, probability), ...]} best first."""
    model, config = load_trained(checkpoint, device)
    arch = Architecture.model_validate(config["architecture"])
    size = int(config.get("eval_size") or arch.resolution.eval_size)
    resize = int(config.get("eval_resize") or size)  # evaluation resizes, then centre-crops (recipe.eval)
    batch = eval_images(torch.stack([_read(path, arch.in_channels, resize) for path in images]), resize, size)
    normalize = Normalizer(arch.in_channels, torch.device(device))
    with torch.no_grad():
        probs = model(normalize(batch)).float().softmax(1).cpu()
    classes = config.get("classes") or [str(i) for i in range(config["num_classes"])]
    values, indices = probs.topk(min(top_k, len(classes)), dim=1)
    return [{"image": str(path), "top": [(classes[i], float(p)) for p, i in zip(v.tolist(), ix.tolist())]}
            for path, v, ix in zip(images, values, indices)]


def _read(path: str | Path, channels: int, size: int) -> torch.Tensor:
    if not Path(path).is_file():
        raise WorkbenchError(f"image {path} not found")
    try:
        image = decode_file(path, channels)
    except (OSError, RuntimeError, ValueError) as exc:
        raise WorkbenchError(f"cannot read image {path}: {exc}") from None
    return square(image, size)
