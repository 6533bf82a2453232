"""The study schema: what is compared (variants), over which seeds and hyper-parameters, scheduled how.

Pure pydantic, no torch or ray. Paths inside a study (architectures, a recipe file) are relative to the
study file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from workbench.schema.architecture import SCHEMA_REF, Scale
from workbench.schema.common import MAX_SEED, PathText, Strict, path_problem, raise_at
from workbench.schema.dataset import DatasetConfig
from workbench.schema.recipe import MAX_EPOCHS, Recipe
from workbench.schema.search import SearchSpace

# Dotted keys in a variant's override or a search space address these parts of a trial's job; a key with
# any other first part addresses the architecture (e.g. "stages.3.block").
JOB_PARTS = ("recipe", "scale", "dataset", "architecture")
# A study plans at most MAX_TRIALS trials (checked from the counts before anything is expanded): the shipped ones
# plan 9 to 64, and 500 trials of a minute each are already 8 hours of one device. Its searched dimensions (search
# choices with two or more values, plus `space`) number at most MAX_SPACE_KEYS: a full per-stage space around a
# 7-stage network has 47. Both bound the dry run's trial table (one column per dimension) to a few seconds.
MAX_TRIALS = 500
MAX_VARIANTS = 100
MAX_SPACE_KEYS = 64
MAX_KEY = 200  # characters of a dotted key in a space or an override
MAX_VALUE_JSON = 1000  # characters of one hyper-parameter value, written as JSON
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.+-]+$")]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def _folder_name(name: str) -> str:
    if name in (".", ".."):
        raise ValueError(f"{name!r} is not a folder of its own; use letters or digits")
    return name


class Variant(Strict):
    name: Name = Field(description="Short label used in tables and trial folder names (letters, digits, _.+-; at most 100).")
    architecture: PathText = Field(description="Architecture JSON, relative to the study file.")
    override: dict[str, Any] = Field(default_factory=dict, max_length=MAX_SPACE_KEYS, description=(
        'Dotted paths changed for this variant: "stages.3.block": "fused_mbconv" edits the architecture; '
        '"recipe.progressive.enabled": false, "scale.resolution": 64 or "dataset.name" edit the rest of the job.'))

    @field_validator("name")
    @classmethod
    def _own_folder(cls, name: str) -> str:
        return _folder_name(name)

    @field_validator("override")
    @classmethod
    def _short_keys(cls, override: dict[str, Any]) -> dict[str, Any]:
        long = [key for key in override if len(key) > MAX_KEY]
        if long:
            raise ValueError(f"key {long[0][:60]!r}... is longer than {MAX_KEY} characters")
        return override


class Param(Strict):
    """One searched dimension (Ray Tune's sampling functions)."""

    type: Literal["grid", "choice", "uniform", "loguniform", "randint"]
    values: list[Any] | None = Field(default=None, max_length=MAX_TRIALS, description=(
        f"grid and choice: the candidate values (at most {MAX_TRIALS:,})."))
    low: float | None = Field(default=None, description="uniform/loguniform/randint: lower bound (randint: a whole number).")
    high: float | None = Field(default=None, description=(
        "uniform/loguniform: upper bound; randint: exclusive upper bound (a whole number)."))

    @field_validator("values")
    @classmethod
    def _short_values(cls, values: list[Any] | None) -> list[Any] | None:
        # A value is a number, a name or a small list: each becomes a cell of the dry run's trial table.
        long = [i for i, v in enumerate(values or ()) if len(json.dumps(v, default=str)) > MAX_VALUE_JSON]
        if long:
            raise ValueError(f"values{long[:5]} are longer than {MAX_VALUE_JSON} characters of JSON each")
        return values

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
            if not math.isfinite(self.high - self.low):
                raise ValueError(f"low ({self.low:g}) to high ({self.high:g}) is too wide a range to sample")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
            if self.type == "randint" and not (self.low.is_integer() and self.high.is_integer()):
                raise ValueError(f"randint needs whole numbers, got low {self.low:g} and high {self.high:g}")
        return self


class AdaptiveSeeds(Strict):
    """Seeds added only where the answer is still open (workbench.sequential decides, the results table replays it)."""

    initial: int = Field(ge=2, le=MAX_TRIALS, description=(
        "Seeds 0 .. initial-1 every variant runs in the first round (at least 2: an interval needs two)."))
    max: int = Field(ge=2, le=MAX_TRIALS, description=(
        f"The most seeds a variant runs (seeds 0 .. max-1; at most {MAX_TRIALS}). After each round a variant whose "
        "difference to the baseline is decided stops; the undecided ones and the baseline run one more seed."))
    min_effect: float | None = Field(default=None, gt=0, le=1e9, description=(
        "The smallest difference that matters, in the metric's display units (percentage points for accuracies): "
        "a variant whose equivalence interval lies inside ±min_effect stops as equivalent. Without it only a "
        "better or worse verdict stops a variant."))
    alpha: float = Field(default=0.05, gt=0, le=0.5, description=(
        "Family-wise error rate of the better/worse verdicts over every variant and round (sequential: alpha spent "
        "over the planned looks)."))

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveSeeds:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max}) is below initial ({self.initial})")
        return self

    @property
    def seeds(self) -> list[int]:
        return list(range(self.max))


def _seeds_kind(value: Any) -> str:
    return "adaptive" if isinstance(value, (dict, AdaptiveSeeds)) else "list"


SeedList = Annotated[list[Seed], Field(min_length=1, max_length=MAX_TRIALS)]
Seeds = Annotated[Union[Annotated[SeedList, Tag("list")], Annotated[AdaptiveSeeds, Tag("adaptive")]],
                  Discriminator(_seeds_kind)]


class Scheduler(Strict):
    name: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(default=1, ge=1, le=MAX_EPOCHS, description=(
        f"asha: epochs every trial runs before it can be stopped (at most {MAX_EPOCHS:,})."))
    reduction_factor: float = Field(default=3.0, gt=1, le=100, description="asha: keep the top 1/reduction_factor at each rung (at most 100).")


MAX_TRIAL_WORKERS = 256


class Resources(Strict):
    cpus: float = Field(default=1.0, gt=0, le=1024, description=(
        "CPU cores per worker of a trial (also its torch thread count; at most 1024)."))
    gpus: float = Field(default=0.0, ge=0, le=64, description=(
        "GPUs per worker of a trial (at most 64); fractions share one GPU between trials (0.25: four at once)."))
    workers: int = Field(default=1, ge=1, le=MAX_TRIAL_WORKERS, description=(
        "Data-parallel workers per trial (PyTorch DDP through Ray Train's TorchTrainer: gloo on CPU, nccl on GPU; "
        f"at most {MAX_TRIAL_WORKERS}). Each worker gets cpus and gpus and trains batch_size / workers images of every "
        "step; 1 trains in the trial's own process."))


class Study(Strict):
    schema_: str | None = SCHEMA_REF
    name: Name = Field(description="Also the results folder: results/<name>/ (letters, digits, _.+-; at most 100).")
    description: str = ""
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    recipe: Recipe | str = Field(default_factory=Recipe, description="Inline recipe, or a recipe JSON path relative to the study file.")
    scale: Scale = Field(default_factory=Scale, description="Compound scaling applied to every variant (a cheap proxy of a big network).")
    variants: list[Variant] = Field(default_factory=list, max_length=MAX_VARIANTS, description=(
        f"The compared architectures (at most {MAX_VARIANTS}); may be empty when `search` samples them."))
    baseline: str | None = Field(default=None, description="Variant the others are compared against; default: the first.")
    seeds: Seeds = Field(default=[0], description=(
        f"Each variant x hyper-parameter point runs once per seed (0 to {MAX_SEED:,}). The study plans at most "
        f"{MAX_TRIALS:,} trials: variants x grid points x num_samples (when a dimension is sampled) x seeds. Or "
        '{"initial": 3, "max": 10, "min_effect": 0.5}: adaptive seeds, added round by round only to the variants '
        "whose difference to the baseline is still open (grid and random studies; fifo scheduler)."))
    space: dict[str, Param] = Field(default_factory=dict, max_length=MAX_SPACE_KEYS, description=(
        f'Hyper-parameter search space by dotted path, e.g. "recipe.optimizer.lr" (at most {MAX_SPACE_KEYS} dimensions).'))
    algorithm: Literal["grid", "random", "optuna"] = Field(default="grid", description=(
        "grid: every grid point (choice/uniform/... dimensions are sampled num_samples times); random: the same with "
        "only sampled dimensions; optuna: TPE through Ray Tune's OptunaSearch (one variant and one seed)."))
    num_samples: int = Field(default=1, ge=1, le=MAX_TRIALS, description=(
        f"Samples of the non-grid dimensions per variant x seed x grid point; a search: architectures (at most {MAX_TRIALS:,})."))
    sample_seed: int = Field(default=0, ge=0, le=MAX_SEED, description=(
        f"Seed of the hyper-parameter sampler, so a re-run draws the same trials (0 to {MAX_SEED:,})."))
    scheduler: Scheduler = Field(default_factory=Scheduler)
    metric: str = Field(default="val_top1", min_length=1, max_length=100, description="Reported metric that ranks trials and drives asha/optuna.")
    mode: Literal["max", "min"] = "max"
    resources: Resources = Field(default_factory=Resources)
    max_concurrent_trials: int | None = Field(default=None, ge=1, le=MAX_TRIALS, description="Default: as many as the resources allow.")
    max_failures: int = Field(default=0, ge=0, le=100, description="Times Ray retries a trial that raised (from its last checkpoint; at most 100).")
    storage_path: PathText = Field(default="results", min_length=1, description=(
        "Parent folder of results/<name>/; a shared path for multi-node clusters."))
    search: SearchSpace | None = Field(default=None, description=(
        "Architecture search: sample num_samples architectures from this design space (algorithm random: rejection "
        "sampling under the constraints; optuna: TPE) instead of listing variants."))

    @model_validator(mode="before")
    @classmethod
    def _search_defaults_to_random(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("search") is not None and "algorithm" not in data:
            return {**data, "algorithm": "random"}
        return data

    @field_validator("name")
    @classmethod
    def _own_folder(cls, name: str) -> str:
        return _folder_name(name)

    @field_validator("recipe")
    @classmethod
    def _recipe_path(cls, recipe: Recipe | str) -> Recipe | str:
        if isinstance(recipe, str) and path_problem(recipe):  # checked here: a PathText member would double every union error
            raise ValueError(path_problem(recipe))
        return recipe

    @field_validator("space")
    @classmethod
    def _known_parts(cls, space: dict[str, Param]) -> dict[str, Param]:
        for key in space:
            if not key or key.startswith(".") or key.endswith("."):
                raise ValueError(f"space key {key[:MAX_KEY]!r} is not a dotted path")
            if len(key) > MAX_KEY:
                raise ValueError(f"space key {key[:60]!r}... is longer than {MAX_KEY} characters")
        return space

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        problems: list[tuple[tuple, str]] = []
        if duplicates:
            problems.append((("variants",), f"duplicate names {duplicates}"))
        if self.baseline is not None and self.baseline not in names:
            problems.append((("baseline",), f"baseline {self.baseline!r} is not a variant name (variants: {names})"))
        if isinstance(self.seeds, list) and len(set(self.seeds)) != len(self.seeds):
            problems.append((("seeds",), "duplicates"))
        raise_at("Study", problems)
        self._search_consistent()
        self._trials_bounded()
        self._adaptive_consistent()
        problems = []
        if self.algorithm == "optuna":
            if not self.space and self.search is None:
                problems.append((("space",), "optuna needs a search space (space)"))
            if any(p.type == "grid" for p in self.space.values()):
                problems.append((("space",), "optuna cannot search grid dimensions; use choice"))
            if len(self.variants) > 1 or len(self.seed_values) > 1:
                problems.append((("algorithm",), "optuna samples adaptively within one variant and one seed; split the study per variant/seed"))
        if self.algorithm == "random" and any(p.type == "grid" for p in self.space.values()):
            problems.append((("space",), "random search samples every dimension; use choice instead of grid, or algorithm grid"))
        raise_at("Study", problems)
        return self

    @property
    def adaptive_seeds(self) -> AdaptiveSeeds | None:
        return self.seeds if isinstance(self.seeds, AdaptiveSeeds) else None

    @property
    def seed_values(self) -> list[int]:
        """Every seed a trial may run with: the list, or 0 .. max-1 of adaptive seeds."""
        return self.seeds.seeds if isinstance(self.seeds, AdaptiveSeeds) else list(self.seeds)

    def planned_trials(self) -> int:
        """How many trials expanding this study makes, counted without expanding it (optuna: num_samples; adaptive
        seeds: at max seeds everywhere)."""
        if self.algorithm == "optuna":
            return self.num_samples
        if self.search is not None:
            return self.num_samples * len(self.seed_values)
        grid = math.prod(len(p.values or ()) for p in self.space.values() if p.type == "grid")
        sampled = any(p.type != "grid" for p in self.space.values())
        return len(self.variants) * grid * (self.num_samples if sampled else 1) * len(self.seed_values)

    def _adaptive_consistent(self) -> None:
        """Adaptive seeds compare listed variants with the baseline round by round, on Ray Tune's plain FIFO queue."""
        if self.adaptive_seeds is None:
            return
        problems: list[tuple[tuple, str]] = []
        if self.search is not None:
            problems.append((("seeds",), "adaptive seeds compare listed variants with a baseline; a search samples its "
                                         "architectures: give a list of seeds"))
        elif self.algorithm == "optuna":
            problems.append((("seeds",), "adaptive seeds need a fixed set of trials per round; optuna proposes its own "
                                         "(one variant, one seed): give a list of seeds, or algorithm grid"))
        elif len(self.variants) < 2:
            problems.append((("seeds",), "adaptive seeds need a baseline and at least one other variant to compare with it"))
        if self.scheduler.name != "fifo":
            problems.append((("scheduler", "name"), f"{self.scheduler.name} stops trials by their rank within a run; "
                                                     "adaptive seeds need every trial's own result: use fifo"))
        raise_at("Study", problems)

    def _trials_bounded(self) -> None:
        planned = self.planned_trials()
        if planned > MAX_TRIALS:
            where = "num_samples" if self.search is not None or self.algorithm == "optuna" else "space" if self.space else "seeds"
            raise_at("Study", [((where,), f"the study would plan {planned:,} trials, more than the limit of {MAX_TRIALS:,} "
                                          "(variants x grid points x num_samples x seeds): split it or sample fewer")])

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
        dimensions = len(self.search.searched()) + len(self.space)
        if dimensions > MAX_SPACE_KEYS:
            problems.append((("search", "stages"), f"{dimensions} searched dimensions (choices of two or more values, and space), "
                                                   f"more than the limit of {MAX_SPACE_KEYS}"))
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
    try:
        return candidate if candidate.exists() or not Path(relative).exists() else Path(relative)
    except (OSError, ValueError):  # too long, a NUL byte: read_json says which, naming the file
        return candidate
