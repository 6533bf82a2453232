"""Which images to train on: a name from the dataset registry plus where its files live and how to split them.

Pure pydantic, no torch. The names themselves are checked when the data is loaded (workbench.data), because the
registry is data that users may extend without touching this schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from workbench.schema.common import MAX_SEED, PathText, Strict

# Validation-context key: a list that collects the fields a file may leave to the command line (`--set KEY=...`)
# instead of failing on them. Only `workbench validate` passes it; running a study or a training never does.
GIVEN_AT_RUN_TIME = "given_at_run_time"


class DatasetConfig(Strict):
    name: str = Field(default="digits", min_length=1, max_length=100, description=(
        "Registry name: digits (scikit-learn's bundled 8x8 digits, offline), imagefolder (needs path), or a "
        "torchvision dataset such as CIFAR10, CIFAR100, MNIST, FashionMNIST, Flowers102, StanfordCars, Imagenette."))
    root: PathText | None = Field(default=None, description="Folder holding torchvision dataset files; default ~/.cache/workbench/datasets.")
    download: bool = Field(default=False, description="Let torchvision download missing files (needs internet).")
    path: PathText | None = Field(default=None, validate_default=True,
        description="imagefolder: a folder with train/ and val/ class folders, or one folder of class folders split by val_fraction.")
    val_fraction: float = Field(default=0.2, gt=0, lt=1,
        description="Share held out for validation where the source has no validation split (digits, single-folder imagefolder).")
    split_seed: int = Field(default=0, ge=0, le=MAX_SEED - 1, description=(
        f"Seed of the stratified train/val split (0 to {MAX_SEED - 1:,}); independent of the training seed."))
    on_bad_image: Literal["fail", "skip"] = Field(default="fail",
        description="An unreadable image file: stop with its path, or leave it out and warn.")
    max_train_images: int | None = Field(default=None, ge=1, le=10**9,
        description="Keep a fixed random subset of the training split (seeded by split_seed; at most 10^9 images).")
    max_val_images: int | None = Field(default=None, ge=1, le=10**9,
        description="Keep a fixed random subset of the validation split (seeded by split_seed; at most 10^9 images).")
    disk_cache: bool = Field(default=True,
        description="Keep decoded uint8 tensors under ~/.cache/workbench/data (or $WORKBENCH_CACHE) for the next run.")
    storage: Literal["memory", "stream", "auto"] = Field(default="auto", description=(
        "memory: decode the whole dataset once into uint8 tensors (one copy per machine, shared by its trials); "
        "stream: decode each training image from its file as batches are drawn (DataLoader workers; image folders and "
        "file-based torchvision datasets), for datasets larger than memory; auto: memory while the decoded set fits "
        "memory_budget_gib, else stream."))
    memory_budget_gib: float | None = Field(default=None, gt=0, le=1e6, description=(
        "storage auto: the most GiB the decoded set may take in memory; default half of the memory available when "
        "the trial starts."))

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, data: Any) -> Any:
        # `"dataset": "digits"` in a study and `--set dataset=CIFAR10` on the command line mean {"name": ...}.
        if isinstance(data, str):
            return {"name": data}
        return data

    @field_validator("path")
    @classmethod
    def _imagefolder_needs_path(cls, path: str | None, info: ValidationInfo) -> str | None:
        if str(info.data.get("name", "")).lower() == "imagefolder" and not path:
            given_at_run_time = (info.context or {}).get(GIVEN_AT_RUN_TIME)
            if given_at_run_time is not None:
                # Checking a file on its own (`workbench validate`): the folder may come with --set at run time.
                given_at_run_time.append("dataset.path")
                return path
            raise ValueError("imagefolder needs path: a folder with train/ and val/ class folders, or one folder of "
                             "class folders; put it in the file or give it at run time with --set dataset.path=DIR")
        return path
