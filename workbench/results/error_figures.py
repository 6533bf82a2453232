"""Figures of the per-example analysis (workbench.results.per_example): the hardest validation images with their
label and most common wrong prediction, and every trial's wrong predictions as a matrix.

The images come from workbench.data.load_dataset with the dataset config of the trials' config.json.
"""

from __future__ import annotations

from typing import Any, Callable

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results.figures import pyplot
from workbench.results.per_example import ErrorAnalysis


def _image_size(config: dict[str, Any]) -> int:
    """The size the trainer cached the dataset at (a cache hit), else the evaluation size."""
    for key in ("cache_size", "eval_size"):
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    arch = config.get("architecture") if isinstance(config.get("architecture"), dict) else {}
    resolution = arch.get("resolution") if isinstance(arch.get("resolution"), dict) else {}
    scale = config.get("scale") if isinstance(config.get("scale"), dict) else {}
    for value in (resolution.get("eval"), resolution.get("train"), scale.get("resolution")):
        if isinstance(value, int) and value > 0:
            return value
    return 224


def load_val_images(config: dict[str, Any]):
    """(val_images uint8 [N,C,S,S], val_labels, classes) of the dataset a trial was trained on."""
    from workbench.schema.common import validate

    try:
        from workbench.data import load_dataset
        from workbench.schema.dataset import DatasetConfig
    except ImportError as exc:
        raise WorkbenchError(f"the image grid needs workbench.data and workbench.schema.dataset ({exc})") from None
    if not isinstance(config.get("dataset"), dict):
        raise WorkbenchError(f"{trialdir.CONFIG} of the trials has no dataset section: cannot load the images")
    dataset = validate(DatasetConfig, config["dataset"], f"{trialdir.CONFIG}: dataset")
    arch = config.get("architecture") if isinstance(config.get("architecture"), dict) else {}
    data = load_dataset(dataset, int(arch.get("in_channels", 3)), _image_size(config))
    return data.val_images, data.val_labels, list(getattr(data, "classes", []) or [])


def _checked_images(hardest, images, labels):
    """The loaded images and labels as arrays, refused when they do not match the predictions' examples."""
    import numpy as np

    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4:
        raise WorkbenchError(f"expected val images shaped [N, C, S, S], got {images.shape}")
    for _, row in hardest.iterrows():
        i = int(row["index"])
        if i >= len(images) or int(labels[i]) != int(row["label"]):
            raise WorkbenchError(f"validation example {i}: the dataset loaded now does not match the predictions "
                                 "(index out of range or a different label); was the dataset or its split changed?")
    return images, labels


def _draw_example(ax, image, row) -> None:
    """One hardest example: the image, its index, wrong-rate and class, and the most common wrong prediction."""
    import numpy as np

    # axes on but bare, so that the x label (the wrong prediction) takes part in the layout
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(np.transpose(image[:3], (1, 2, 0)).astype(np.uint8))
    ax.set_title(f"#{int(row['index'])} · wrong {row['wrong_rate'] * 100:.0f}%\ntrue: {row['class']}",
                 fontsize=7, color="black")
    if row["common_wrong_pred"] is not None:
        ax.set_xlabel(f"pred: {row['common_wrong_pred']} ({row['common_wrong_share'] * 100:.0f}%)",
                      fontsize=7, color="#b00000", labelpad=2)


def image_grid(analysis: ErrorAnalysis, top: int = 16, columns: int = 8,
               loader: Callable[[dict[str, Any]], tuple[Any, Any, list[str]]] | None = None):
    """Figure with the `top` hardest validation images, their label and most common wrong prediction."""
    hardest = analysis.hardest(top)
    images, _ = _checked_images(hardest, *(loader or load_val_images)(analysis.config)[:2])
    plt = pyplot()
    n = len(hardest)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.5 * rows + 0.3), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, hardest.iterrows()):
        _draw_example(ax, images[int(row["index"])], row)
    groups = len(analysis.groups)
    fig.suptitle(f"hardest {n} validation examples ({analysis.wrong.shape[1]} trials, {groups} groups): "
                 "wrong = mean wrong-rate over groups; pred = most common wrong prediction", fontsize=8)
    return fig


def matrix(analysis: ErrorAnalysis, order: str = "hardness"):
    """Seed 002's picture: one column per trial (grouped), one row per example, dark = wrong."""
    import numpy as np

    columns = [c for g in analysis.groups for c in analysis.columns_of[id(g)]]
    rows = list(analysis.ranking()) if order == "hardness" else list(analysis.wrong.index)
    data = analysis.wrong.loc[rows, columns].to_numpy(dtype=float)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.5, 0.25 * len(columns) + 2), 6))
    ax.imshow(data, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    start = 0
    centers, names = [], []
    for g in analysis.groups:
        width = len(analysis.columns_of[id(g)])
        centers.append(start + (width - 1) / 2)
        names.append(analysis.group_name(g))
        start += width
        if start < len(columns):
            ax.axvline(start - 0.5, color="tab:red", lw=1)
    ax.set_xticks(centers)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("validation examples by hardness rank (0 = hardest)" if order == "hardness" else "validation example index")
    ax.set_title("wrong predictions (black) per trial; columns grouped by variant, one per seed", fontsize=9)
    fig.tight_layout()
    return fig
