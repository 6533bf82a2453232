"""The study schema: what is compared (variants), over which seeds and hyper-parameters, scheduled how.

Pure pydantic, no torch or ray. Paths inside a study (architectures, a recipe file) are relative to the
study file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workbench.schema.architecture import SCHEMA_REF, Scale
from workbench.schema.common import Strict
from workbench.schema.dataset import DatasetConfig
from workbench.schema.recipe import Recipe
from workbench.schema.search import SearchSpace, raise_at

# Dotted keys in a variant's override or a search space address these parts of a trial's job; a key with
# any other first part addresses the architecture (e.g. "stages.3.block").
JOB_PARTS = ("recipe", "scale", "dataset", "architecture")


class Variant(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$", description="Short label used in tables and trial folder names.")
    architecture: str = Field(description="Architecture JSON, relative to the study file.")
    override: dict[str, Any] = Field(default_factory=dict, description=(
        'Dotted paths changed for this variant: "stages.3.block": "fused_mbconv" edits the architecture; '
        '"recipe.progressive.enabled": false, "scale.resolution": 64 or "dataset.name" edit the rest of the job.'))


class Param(Strict):
    """One searched dimension (Ray Tune's sampling functions)."""

    type: Literal["grid", "choice", "uniform", "loguniform", "randint"]
    values: list[Any] | None = Field(default=None, description="grid and choice: the candidate values.")
    low: float | None = None
    high: float | None = Field(default=None, description="uniform/loguniform: upper bound; randint: exclusive upper bound.")

    @model_validator(mode="after")
    def _complete(self) -> Param:
        if self.type in ("grid", "choice"):
            if not self.values:
                raise ValueError(f"{self.type} needs a non-empty values list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"{self.type} needs low and high")
            if self.low >= self.high:
                raise ValueError(f"low ({self.low}) must be below high ({self.high})")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
        return self


class Scheduler(Strict):
    name: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(default=1, ge=1, description="asha: epochs every trial runs before it can be stopped.")
    reduction_factor: float = Field(default=3.0, gt=1, description="asha: keep the top 1/reduction_factor at each rung.")


class Resources(Strict):
    cpus: float = Field(default=1.0, gt=0, description="CPU cores per trial (also its torch thread count).")
    gpus: float = Field(default=0.0, ge=0, description="GPUs per trial; fractions share one GPU between trials (0.25: four at once).")


class Study(Strict):
    schema_: str | None = SCHEMA_REF
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$", description="Also the results folder: results/<name>/.")
    description: str = ""
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    recipe: Recipe | str = Field(default_factory=Recipe, description="Inline recipe, or a recipe JSON path relative to the study file.")
    scale: Scale = Field(default_factory=Scale, description="Compound scaling applied to every variant (a cheap proxy of a big network).")
    variants: list[Variant] = Field(default_factory=list, description="The compared architectures; may be empty when `search` samples them.")
    baseline: str | None = Field(default=None, description="Variant the others are compared against; default: the first.")
    seeds: list[int] = Field(default=[0], min_length=1, description="Each variant x hyper-parameter point runs once per seed.")
    space: dict[str, Param] = Field(default_factory=dict, description='Hyper-parameter search space by dotted path, e.g. "recipe.optimizer.lr".')
    algorithm: Literal["grid", "random", "optuna"] = Field(default="grid", description=(
        "grid: every grid point (choice/uniform/... dimensions are sampled num_samples times); random: the same with "
        "only sampled dimensions; optuna: TPE through Ray Tune's OptunaSearch (one variant and one seed)."))
    num_samples: int = Field(default=1, ge=1, description="Samples of the non-grid dimensions per variant x seed x grid point.")
    sample_seed: int = Field(default=0, ge=0, description="Seed of the hyper-parameter sampler, so a re-run draws the same trials.")
    scheduler: Scheduler = Field(default_factory=Scheduler)
    metric: str = Field(default="val_top1", description="Reported metric that ranks trials and drives asha/optuna.")
    mode: Literal["max", "min"] = "max"
    resources: Resources = Field(default_factory=Resources)
    max_concurrent_trials: int | None = Field(default=None, ge=1, description="Default: as many as the resources allow.")
    max_failures: int = Field(default=0, ge=0, description="Times Ray retries a trial that raised (from its last checkpoint).")
    storage_path: str = Field(default="results", description="Parent folder of results/<name>/; a shared path for multi-node clusters.")
    search: SearchSpace | None = Field(default=None, description=(
        "Architecture search: sample num_samples architectures from this design space (algorithm random: rejection "
        "sampling under the constraints; optuna: TPE) instead of listing variants."))

    @model_validator(mode="before")
    @classmethod
    def _search_defaults_to_random(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("search") is not None and "algorithm" not in data:
            return {**data, "algorithm": "random"}
        return data

    @field_validator("space")
    @classmethod
    def _known_parts(cls, space: dict[str, Param]) -> dict[str, Param]:
        for key in space:
            if not key or key.startswith(".") or key.endswith("."):
                raise ValueError(f"space key {key!r} is not a dotted path")
        return space

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"variants: duplicate names {duplicates}")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not a variant name (variants: {names})")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: duplicates")
        self._search_consistent()
        if self.algorithm == "optuna":
            if not self.space and self.search is None:
                raise ValueError("optuna needs a search space (space)")
            if any(p.type == "grid" for p in self.space.values()):
                raise ValueError("optuna cannot search grid dimensions; use choice")
            if len(self.variants) > 1 or len(self.seeds) > 1:
                raise ValueError("optuna samples adaptively within one variant and one seed; split the study per variant/seed")
        if self.algorithm == "random" and any(p.type == "grid" for p in self.space.values()):
            raise ValueError("random search samples every dimension; use choice instead of grid, or algorithm grid")
        return self

    def _search_consistent(self) -> None:
        problems: list[tuple[tuple, str]] = []
        if self.search is None:
            if not self.variants:
                problems.append((("variants",), "at least one variant is needed (or a design space to sample: search)"))
            if self.metric == "reward":
                problems.append((("metric",), "reward (ACC x (FLOPs/T)^w) is reported by search studies only"))
            raise_at("Study", problems)
            return
        if self.variants:
            problems.append((("variants",), ("a search study samples its architectures: leave variants out "
                                             "(compare with hand-designed ones by analysing both result folders)")))
        if self.algorithm == "grid":
            problems.append((("algorithm",), "a search samples architectures: random (rejection sampling) or optuna (TPE)"))
        searched = {key for key, _ in self.search.dimensions()}
        problems += [(("space", key), "also a search choice; declare it in one place") for key in self.space
                     if key in searched or (key.startswith("architecture.") and key.removeprefix("architecture.") in searched)]
        if self.metric == "reward" and self.search.target_flops is None:
            problems.append((("search", "reward", "target_flops"), "metric reward needs T: set it, or constraints.flops.max"))
        raise_at("Study", problems)

    @property
    def baseline_name(self) -> str | None:
        return self.baseline or (self.variants[0].name if self.variants else None)


def split_key(key: str) -> tuple[str, str]:
    """'recipe.optimizer.lr' -> ('recipe', 'optimizer.lr'); 'stages.3.block' -> ('architecture', 'stages.3.block')."""
    head, _, rest = key.partition(".")
    if head in JOB_PARTS and rest:
        return head, rest
    return "architecture", key


def resolve_path(study_file: str | Path, relative: str) -> Path:
    """Paths in a study are relative to the study file; fall back to the working directory."""
    candidate = Path(study_file).parent / relative
    return candidate if candidate.exists() or not Path(relative).exists() else Path(relative)
