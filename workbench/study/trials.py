"""From a study file to its trials, each a full, validated TrainJob with its id, variant, seed and hyper-parameters.

`build_trial` is the one way a trial is made: grid and random expansion (here), sampled architectures
(workbench.study.sampling) and Optuna's proposals (workbench.study.optuna) all assign their hyper-parameters to a
base job with it, set the seed, validate, and get a TrialSpec. Non-grid dimensions are drawn from the study's
sample_seed, so re-running the same command draws the same trials and a resumed study finds its trials by id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, WorkbenchError
from workbench.schema.common import read_json, validate, validation_errors
from workbench.schema.overrides import apply_overrides, parse_assignment, set_path
from workbench.schema.recipe import Recipe, TrainJob
from workbench.schema.study import Param, Study, resolve_path, split_key


@dataclass
class TrialSpec:
    trial_id: str
    variant: str
    seed: int
    hparams: dict[str, Any]
    architecture: str
    job: dict[str, Any] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # search trials: space label, choices, cost

    def record(self) -> dict[str, Any]:
        """What trial.json holds."""
        return {"trial_id": self.trial_id, "variant": self.variant, "seed": self.seed, "hparams": self.hparams,
                "architecture": self.architecture, "job": self.job, **self.extra}


def load_study(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> tuple[Study, dict[str, Any]]:
    """Validate a study file after --set overrides; a recipe given as a path is read in so --set can reach it."""
    source = str(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(source, [("", "expected a JSON object at the top level")])
    data = _read_recipe({k: v for k, v in data.items() if k != "$schema"}, path, source)
    if sets:
        data = apply_overrides(data, dict(parse_assignment(s) for s in sets))
        source += " (after --set)"
        data = _read_recipe(data, path, source)  # `--set recipe=other.json` names another file
    study = validate(Study, data, source)
    return study, study.model_dump(mode="json", exclude={"schema_"})


def _read_recipe(data: dict[str, Any], study_file: str | Path, source: str) -> dict[str, Any]:
    """The study with a recipe given as a path read in, so that --set can reach its fields; its errors name the field."""
    if not isinstance(data.get("recipe"), str):
        return data
    try:
        recipe = read_json(resolve_path(study_file, data["recipe"]))
    except ConfigError as exc:
        raise ConfigError(source, [("recipe", line) for line in exc.lines]) from None
    return {**data, "recipe": {k: v for k, v in recipe.items() if k != "$schema"} if isinstance(recipe, dict) else recipe}


def grid_trials(study: Study, study_file: str | Path) -> list[TrialSpec]:
    """Every trial of a grid or random study, in a stable order: variants x hyper-parameter points x seeds."""
    points = hyperparameter_points(study)
    trials = []
    for index, variant in enumerate(study.variants):
        base = variant_job(study, study_file, variant.name)
        architecture = str(resolve_path(study_file, variant.architecture))
        for point, hparams in enumerate(points):
            suffix = f"-p{point:03d}" if len(points) > 1 else ""
            trials += [build_trial(base, hparams, seed, trial_id=f"{variant.name}{suffix}-s{seed}", variant=variant.name,
                                   architecture=architecture, source=str(study_file)) for seed in study.seed_values]
    return trials


def hyperparameter_points(study: Study) -> list[dict[str, Any]]:
    grid = {k: p.values for k, p in sorted(study.space.items()) if p.type == "grid"}
    sampled = {k: p for k, p in sorted(study.space.items()) if p.type != "grid"}
    grid_points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] or [{}]
    if not sampled:
        return grid_points
    rng = random.Random(study.sample_seed)
    samples = [{k: sample(p, rng) for k, p in sampled.items()} for _ in range(study.num_samples)]
    return [{**g, **s} for g in grid_points for s in samples]


def sample(param: Param, rng: random.Random) -> Any:
    if param.type == "choice":
        return rng.choice(param.values)
    if param.type == "uniform":
        return rng.uniform(param.low, param.high)
    if param.type == "loguniform":
        return math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
    return rng.randrange(int(param.low), int(param.high))


def variant_job(study: Study, study_file: str | Path, variant_name: str) -> dict[str, Any]:
    """The job dict of one variant before hyper-parameters and seed: architecture file + study defaults + override."""
    variant = next(v for v in study.variants if v.name == variant_name)
    index = study.variants.index(variant)
    arch_path = resolve_path(study_file, variant.architecture)
    try:
        arch = read_json(arch_path)
    except ConfigError as exc:
        raise ConfigError(str(study_file), [(f"variants[{index}].architecture", line) for line in exc.lines]) from None
    return assign(study_job(study, arch), variant.override, f"{study_file}: variants[{index}].override")


def study_job(study: Study, architecture: Any) -> dict[str, Any]:
    """A job dict of `architecture` with the study's scale, recipe and dataset."""
    recipe = study.recipe if isinstance(study.recipe, Recipe) else Recipe()
    return {
        "architecture": {k: v for k, v in architecture.items() if k != "$schema"} if isinstance(architecture, dict) else architecture,
        "scale": study.scale.model_dump(mode="json"),
        "recipe": recipe.model_dump(mode="json", exclude={"schema_"}),
        "dataset": study.dataset.model_dump(mode="json"),
    }


def build_trial(base: dict[str, Any], hparams: dict[str, Any], seed: int, *, trial_id: str, variant: str, architecture: str,
                source: str, recorded: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> TrialSpec:
    """`base` with `hparams` assigned (dotted keys into architecture, recipe, scale, dataset) and the seed set, validated.
    `recorded`: what trial.json lists as hyper-parameters (default `hparams`; a search adds its architecture choices)."""
    job = assign(base, hparams, f"{source}: space")
    job["recipe"]["seed"] = seed
    job = validated_job(job, f"{source} (trial {trial_id})")
    return TrialSpec(trial_id, variant, seed, hparams if recorded is None else recorded, architecture, job, extra or {})


def optuna_trial_id(variant: str, seed: int, hparams: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(hparams, sort_keys=True).encode()).hexdigest()[:8]
    return f"{variant}-h{digest}-s{seed}"


def assign(job: dict[str, Any], assignments: dict[str, Any], source: str) -> dict[str, Any]:
    """A copy of `job` with each dotted assignment set (a key without a job part addresses the architecture)."""
    job = json.loads(json.dumps(job))
    for key, value in assignments.items():
        part, rest = split_key(key)
        set_path(job[part], rest, value, source)
    return job


def validated_job(job: dict[str, Any], source: str) -> dict[str, Any]:
    """The job as TrainJob validates and dumps it; errors name `source` and the field."""
    from pydantic import ValidationError

    try:
        return TrainJob.model_validate(job).model_dump(mode="json", exclude={"architecture": {"schema_"}, "recipe": {"schema_"}})
    except ValidationError as exc:
        raise ConfigError(source, validation_errors(exc)) from None
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(f"{source}: {exc}") from None
