"""Per-example error analysis: which validation examples each variant gets wrong, and the hardest ones.

Every finished trial's val_predictions.csv (index,label,pred,confidence,correct; the best checkpoint on the val
split) gives one wrong/right bit per example. Per group (variant, as in `compare`) the wrong-rate of an example is
the fraction of the group's seeds that get it wrong; the hardness of an example is its wrong-rate averaged over
groups, each group weighing the same (ties: more groups wrong by majority, then more confidently wrong, first). The hardest examples are drawn as an image grid, loaded through
workbench.data.load_dataset with the dataset config of a trial's config.json (workbench.results.error_figures);
workbench.results.error_tables writes the tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.errors import WorkbenchError
from workbench.results.groups import Group, group_trials, parse_by
from workbench.results.reader import require_trial_folders
from workbench.results.records import StudyRecord, TrialRecord

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
        return g.name(self.multi_study)

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

    require_trial_folders(studies, f"`results errors` ({trialdir.PREDICTIONS} of every trial)")
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
                notes.append(f"{t.study}/{t.trial_id}: no {trialdir.PREDICTIONS}; left out")
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
            labels_seen = frame["label"] if labels_seen is None else _shared_labels(labels_seen, frame, t, notes)
            column = f"{t.study}/{t.trial_id}"
            wrong[column] = (frame["pred"] != frame["label"]).astype(int)
            preds[column] = frame["pred"]
            conf[column] = frame["confidence"]
            columns_of.setdefault(id(g), []).append(column)
    if not wrong:
        raise WorkbenchError(f"no finished trial has a {trialdir.PREDICTIONS}: nothing to analyse "
                             "(the trainer writes it from the best checkpoint at the end of a run)")
    index = labels_seen.index
    wrong_df = pd.DataFrame(wrong).loc[index]
    classes = [str(c) for c in config.get("classes") or []]
    return ErrorAnalysis(groups=[g for g in groups if id(g) in columns_of], multi_study=multi, labels=labels_seen,
                         wrong=wrong_df, preds=pd.DataFrame(preds).loc[index], confidence=pd.DataFrame(conf).loc[index],
                         columns_of=columns_of, classes=classes, config=config, notes=notes)


def _shared_labels(labels, frame, t: TrialRecord, notes: list[str]):
    """The labels of the examples both `labels` and this trial's predictions cover; they must agree."""
    common = labels.index.intersection(frame.index)
    if not (labels.loc[common] == frame.loc[common, "label"]).all():
        raise WorkbenchError(f"{t.predictions}: labels differ from the other trials' at the same example "
                             "index: the validation split is not the same")
    if len(common) != len(labels) or len(common) != len(frame):
        notes.append(f"{t.study}/{t.trial_id}: predictions cover {len(frame)} examples, others "
                     f"{len(labels)}; only the {len(common)} shared ones are used")
    return labels.loc[common]


def _dataset_key(t: TrialRecord) -> tuple:
    dataset = t.config.get("dataset") if isinstance(t.config.get("dataset"), dict) else {}
    return (str(dataset.get("name", "?")), t.config.get("num_classes") or len(t.config.get("classes") or []))
