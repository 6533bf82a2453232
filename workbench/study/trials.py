"""From a study file to its list of trials: variants x hyper-parameter points x seeds, each a full TrainJob.

Sampling of the non-grid dimensions happens here, from the study's sample_seed, so re-running the same
command draws the same trials and a resumed study finds its finished trials by id.
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


def expand(study: Study, study_file: str | Path) -> list[TrialSpec]:
    """Every trial of a grid or random study, in a stable order. (optuna trials come from the searcher.)

    A search study's trials are its sampled architectures (workbench.study.search)."""
    if study.search is not None:
        from workbench.study.search import sample_trials

        return sample_trials(study, study_file)
    points = hyperparameter_points(study)
    trials = []
    for variant in study.variants:
        base = variant_job(study, study_file, variant.name)
        for index, hparams in enumerate(points):
            for seed in study.seeds:
                suffix = f"-p{index:03d}" if len(points) > 1 else ""
                trial_id = f"{variant.name}{suffix}-s{seed}"
                trials.append(make_trial(study, study_file, base, variant.name, seed, hparams, trial_id))
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
    return _assign(study_job(study, arch), variant.override, f"{study_file}: variants[{index}].override")


def study_job(study: Study, architecture: Any) -> dict[str, Any]:
    """A job dict of `architecture` with the study's scale, recipe and dataset."""
    recipe = study.recipe if isinstance(study.recipe, Recipe) else Recipe()
    return {
        "architecture": {k: v for k, v in architecture.items() if k != "$schema"} if isinstance(architecture, dict) else architecture,
        "scale": study.scale.model_dump(mode="json"),
        "recipe": recipe.model_dump(mode="json", exclude={"schema_"}),
        "dataset": study.dataset.model_dump(mode="json"),
    }


def make_trial(study: Study, study_file: str | Path, base: dict[str, Any], variant: str, seed: int,
               hparams: dict[str, Any], trial_id: str) -> TrialSpec:
    job = _assign(base, hparams, f"{study_file}: space")
    job["recipe"]["seed"] = seed
    job = _validated(job, f"{study_file} (trial {trial_id})")
    arch_file = next(v.architecture for v in study.variants if v.name == variant)
    return TrialSpec(trial_id, variant, seed, hparams, str(resolve_path(study_file, arch_file)), job)


def optuna_trial_id(variant: str, seed: int, hparams: dict[str, Any]) -> str:
    digest = hashlib.sha1(json.dumps(hparams, sort_keys=True).encode()).hexdigest()[:8]
    return f"{variant}-h{digest}-s{seed}"


def _assign(job: dict[str, Any], assignments: dict[str, Any], source: str) -> dict[str, Any]:
    job = json.loads(json.dumps(job))
    for key, value in assignments.items():
        part, rest = split_key(key)
        set_path(job[part], rest, value, source)
    return job


def _validated(job: dict[str, Any], source: str) -> dict[str, Any]:
    from pydantic import ValidationError

    try:
        return TrainJob.model_validate(job).model_dump(mode="json", exclude={"architecture": {"schema_"}, "recipe": {"schema_"}})
    except ValidationError as exc:
        raise ConfigError(source, validation_errors(exc)) from None
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(f"{source}: {exc}") from None
