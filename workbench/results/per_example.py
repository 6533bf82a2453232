"""Per-example error analysis: which validation examples each variant gets wrong, and the hardest ones.

Every finished trial's val_predictions.csv (index,label,pred,confidence,correct; the best checkpoint on the val
split) gives one wrong/right bit per example. Per group (variant, as in `compare`) the wrong-rate of an example is
the fraction of the group's seeds that get it wrong; the hardness of an example is its wrong-rate averaged over
groups, each group weighing the same (ties: more groups wrong by majority, then more confidently wrong, first). The hardest examples are drawn as an image grid, loaded through
workbench.data.load_dataset with the dataset config of a trial's config.json.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.results import reader
from workbench.results.compare import Group, group_trials, parse_by
from workbench.results.reader import StudyRecord, TrialRecord

PREDICTION_COLUMNS = ("index", "label", "pred")


def read_predictions(path: Path):
    """val_predictions.csv -> DataFrame indexed by example index (label, pred, confidence, correct)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:  # pandas' parser errors are ValueErrors
        raise WorkbenchError(f"{path}: cannot read ({exc})") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise WorkbenchError(f"{path}: missing column(s) {', '.join(missing)}; expected index,label,pred,confidence,correct")
    frame = frame.dropna(subset=list(PREDICTION_COLUMNS))
    frame = frame.astype({"index": int, "label": int, "pred": int})
    if frame["index"].duplicated().any():
        raise WorkbenchError(f"{path}: an example index appears twice")
    if "confidence" not in frame.columns:
        frame["confidence"] = float("nan")
    return frame.set_index("index").sort_index()


@dataclass
class ErrorAnalysis:
    groups: list[Group]
    multi_study: bool
    labels: Any  # pandas Series: example index -> true label
    wrong: Any  # DataFrame: example index x trial column -> 1 wrong / 0 right
    preds: Any  # DataFrame: example index x trial column -> predicted class
    confidence: Any  # DataFrame: example index x trial column -> confidence of the prediction
    columns_of: dict[int, list[str]]  # id(group) -> its trial columns
    classes: list[str]
    config: dict[str, Any]  # a trial's config.json: the dataset the predictions index into
    notes: list[str] = field(default_factory=list)

    def group_name(self, g: Group) -> str:
        return f"{g.study} · {g.display}" if self.multi_study else g.display

    def rates(self):
        """DataFrame: example index x group -> fraction of the group's seeds that get it wrong."""
        import pandas as pd

        data = {self.group_name(g): self.wrong[self.columns_of[id(g)]].mean(axis=1) for g in self.groups
                if self.columns_of.get(id(g))}
        return pd.DataFrame(data, index=self.wrong.index)

    def class_name(self, label: int) -> str:
        return self.classes[label] if 0 <= label < len(self.classes) else str(label)

    def ranking(self):
        """Example indices, hardest first: mean wrong-rate over groups, then the number of groups wrong by majority,
        then the mean confidence of the wrong predictions (confidently wrong first), then index."""
        import numpy as np

        rates = self.rates()
        hardness = rates.mean(axis=1).to_numpy()
        majority = (rates > 0.5).sum(axis=1).to_numpy()
        wrong_conf = self.confidence.where(self.wrong.astype(bool)).mean(axis=1).fillna(-1.0).to_numpy()
        index = rates.index.to_numpy()
        order = np.lexsort((index, -wrong_conf, -majority, -hardness))
        return index[order]

    def hardest(self, top: int | None = None):
        """The `top` hardest examples with their class, wrong-rates and most common wrong prediction."""
        import pandas as pd

        rates = self.rates()
        chosen = self.ranking()
        if top is not None:
            chosen = chosen[:top]
        rows = []
        for rank, index in enumerate(chosen, start=1):
            wrong = self.wrong.loc[index].astype(bool)
            counts = Counter(int(p) for p in self.preds.loc[index][wrong])
            common, count = counts.most_common(1)[0] if counts else (None, 0)
            conf = self.confidence.loc[index][wrong].dropna()
            label = int(self.labels.loc[index])
            rows.append({
                "rank": rank, "index": int(index), "label": label, "class": self.class_name(label),
                "wrong_rate": float(rates.loc[index].mean()), "groups_wrong": int((rates.loc[index] > 0.5).sum()),
                "groups": rates.shape[1], "trials_wrong": int(wrong.sum()), "trials": self.wrong.shape[1],
                "common_wrong_pred": None if common is None else self.class_name(common),
                "common_wrong_pred_label": common, "common_wrong_share": count / max(1, sum(counts.values())),
                "wrong_confidence": float(conf.mean()) if len(conf) else None,
                **{f"rate[{name}]": float(rates.loc[index, name]) for name in rates.columns},
            })
        return pd.DataFrame(rows)

    def summary(self):
        """Per group: seeds, mean error over the val set, examples always / never wrong."""
        import pandas as pd

        rates = self.rates()
        rows = []
        for g in self.groups:
            cols = self.columns_of.get(id(g))
            if not cols:
                continue
            r = rates[self.group_name(g)]
            rows.append({"group": self.group_name(g), "seeds": len(cols),
                         "mean_error": float(self.wrong[cols].mean().mean()),
                         "always_wrong": int((r == 1).sum()), "sometimes_wrong": int(((r > 0) & (r < 1)).sum()),
                         "never_wrong": int((r == 0).sum())})
        return pd.DataFrame(rows)

    def overall(self) -> dict[str, int]:
        rates = self.rates()
        return {"examples": len(rates), "wrong_under_every_group": int((rates == 1).all(axis=1).sum()),
                "right_under_every_group": int((rates == 0).all(axis=1).sum())}


def analyse(studies: list[StudyRecord], by: str | list[str] | None = None) -> ErrorAnalysis:
    import pandas as pd

    reader.require_trial_folders(studies, "`results errors` (val_predictions.csv of every trial)")
    fields, notes = parse_by(by, studies)
    groups = group_trials(studies, fields)
    multi = len({g.study for g in groups}) > 1
    wrong, preds, conf, labels_seen = {}, {}, {}, None
    columns_of: dict[int, list[str]] = {}
    config: dict[str, Any] = {}
    dataset_key = None
    for g in groups:
        for t in g.used:
            if t.predictions is None:
                notes.append(f"{t.study}/{t.trial_id}: no val_predictions.csv; left out")
                continue
            frame = read_predictions(t.predictions)
            key = _dataset_key(t)
            if dataset_key is None:
                dataset_key, config = key, t.config
            elif key != dataset_key:
                raise WorkbenchError([
                    "these trials were evaluated on different validation sets; compare one dataset at a time",
                    f"  {dataset_key[0]} ({dataset_key[1]} classes) vs {key[0]} ({key[1]} classes) in {t.study}/{t.trial_id}",
                ])
            if labels_seen is None:
                labels_seen = frame["label"]
            else:
                common = labels_seen.index.intersection(frame.index)
                if not (labels_seen.loc[common] == frame.loc[common, "label"]).all():
                    raise WorkbenchError(f"{t.predictions}: labels differ from the other trials' at the same example "
                                         "index: the validation split is not the same")
                if len(common) != len(labels_seen) or len(common) != len(frame):
                    notes.append(f"{t.study}/{t.trial_id}: predictions cover {len(frame)} examples, others "
                                 f"{len(labels_seen)}; only the {len(common)} shared ones are used")
                labels_seen = labels_seen.loc[common]
            column = f"{t.study}/{t.trial_id}"
            wrong[column] = (frame["pred"] != frame["label"]).astype(int)
            preds[column] = frame["pred"]
            conf[column] = frame["confidence"]
            columns_of.setdefault(id(g), []).append(column)
    if not wrong:
        raise WorkbenchError("no finished trial has a val_predictions.csv: nothing to analyse "
                             "(the trainer writes it from the best checkpoint at the end of a run)")
    index = labels_seen.index
    wrong_df = pd.DataFrame(wrong).loc[index]
    classes = [str(c) for c in config.get("classes") or []]
    return ErrorAnalysis(groups=[g for g in groups if id(g) in columns_of], multi_study=multi, labels=labels_seen,
                         wrong=wrong_df, preds=pd.DataFrame(preds).loc[index], confidence=pd.DataFrame(conf).loc[index],
                         columns_of=columns_of, classes=classes, config=config, notes=notes)


def _dataset_key(t: TrialRecord) -> tuple:
    dataset = t.config.get("dataset") if isinstance(t.config.get("dataset"), dict) else {}
    return (str(dataset.get("name", "?")), t.config.get("num_classes") or len(t.config.get("classes") or []))


# --- images ---------------------------------------------------------------------------------------------------


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
        raise WorkbenchError("config.json of the trials has no dataset section: cannot load the images")
    dataset = validate(DatasetConfig, config["dataset"], "config.json: dataset")
    arch = config.get("architecture") if isinstance(config.get("architecture"), dict) else {}
    data = load_dataset(dataset, int(arch.get("in_channels", 3)), _image_size(config))
    return data.val_images, data.val_labels, list(getattr(data, "classes", []) or [])


def image_grid(analysis: ErrorAnalysis, top: int = 16, columns: int = 8,
               loader: Callable[[dict[str, Any]], tuple[Any, Any, list[str]]] | None = None):
    """Figure with the `top` hardest validation images, their label and most common wrong prediction."""
    import numpy as np

    from workbench.results.plots import _pyplot

    hardest = analysis.hardest(top)
    images, labels, _ = (loader or load_val_images)(analysis.config)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4:
        raise WorkbenchError(f"expected val images shaped [N, C, S, S], got {images.shape}")
    for _, row in hardest.iterrows():
        i = int(row["index"])
        if i >= len(images) or int(labels[i]) != int(row["label"]):
            raise WorkbenchError(f"validation example {i}: the dataset loaded now does not match the predictions "
                                 "(index out of range or a different label); was the dataset or its split changed?")
    plt = _pyplot()
    n = len(hardest)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.5 * rows + 0.3), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, hardest.iterrows()):
        # axes on but bare, so that the x label (the wrong prediction) takes part in the layout
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        image = images[int(row["index"])]
        channels = image.shape[0]
        if channels == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(np.transpose(image[:3], (1, 2, 0)).astype(np.uint8))
        ax.set_title(f"#{int(row['index'])} · wrong {row['wrong_rate'] * 100:.0f}%\ntrue: {row['class']}",
                     fontsize=7, color="black")
        if row["common_wrong_pred"] is not None:
            ax.set_xlabel(f"pred: {row['common_wrong_pred']} ({row['common_wrong_share'] * 100:.0f}%)",
                          fontsize=7, color="#b00000", labelpad=2)
    groups = len(analysis.groups)
    fig.suptitle(f"hardest {n} validation examples ({analysis.wrong.shape[1]} trials, {groups} groups): "
                 "wrong = mean wrong-rate over groups; pred = most common wrong prediction", fontsize=8)
    return fig


def matrix(analysis: ErrorAnalysis, order: str = "hardness"):
    """Seed 002's picture: one column per trial (grouped), one row per example, dark = wrong."""
    import numpy as np

    from workbench.results.plots import _pyplot

    columns = [c for g in analysis.groups for c in analysis.columns_of[id(g)]]
    rows = list(analysis.ranking()) if order == "hardness" else list(analysis.wrong.index)
    data = analysis.wrong.loc[rows, columns].to_numpy(dtype=float)
    plt = _pyplot()
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
