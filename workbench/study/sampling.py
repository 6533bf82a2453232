"""Architecture search: sample a study's design space under its budget and make each sample an ordinary trial.

random  rejection sampling from the study's sample_seed: draw every choice, build the network as it will be trained
        (after the study's scale and any `space` hyper-parameters), count it with the analytic cost model, keep it
        when it meets the constraints and is new. The same command draws the same architectures, so a re-run
        resumes by trial id (a000-s0, a001-s0, ...).
optuna  TPE through Ray Tune's OptunaSearch (workbench.study.optuna), which costs each proposal with the same
        SearchContext before it becomes a trial.

Every sampled architecture is written as an ordinary architecture JSON (results/<study>/architectures/<id>.json)
with the study's scale folded in, so `workbench train`, `workbench flops` and `workbench show` take it as is.

A search with search.latency_table predicts each draw's latency on the table's device (the sum of its parts plus the
table's constant, workbench.complexity.latency_table) and checks constraints.latency_ms with it, before anything
trains; the prediction goes into trial.json's search block and into every report, as latency_ms.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.complexity import analytic_cost
from workbench.complexity.latency_table import LatencyTable
from workbench.errors import ConfigError, WorkbenchError
from workbench.schema.architecture import Architecture, Scale
from workbench.schema.common import field_path, read_json, validation_errors
from workbench.schema.overrides import set_path
from workbench.schema.search import DRAW_OVERHEAD, LATENCY_TABLE_COMMAND, SAMPLING_BUDGET
from workbench.schema.study import Study, resolve_path
from workbench.study import ledger
from workbench.study.trials import TrialSpec, assign, build_trial, sample, study_job
from workbench import trialdir
from workbench.trialdir import nas_reward, reward_of

ARCHITECTURE_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "architecture.schema.json"
GROWING = ("layers", "out_channels", "expand", "stem_channels", "head_channels")  # choices whose larger values make a larger network


def with_reward(metrics: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A search trial's epoch metrics plus `reward` (the NAS objective of its val_top1)."""
    reward = reward_of(record, metrics.get("val_top1"))
    return metrics if reward is None else {**metrics, "reward": reward}


def architecture_costs(record: dict[str, Any]) -> dict[str, float]:
    """A search trial's architecture figures for its reports (objectives may name them): params, FLOPs and the
    latency predicted before training (constant over the epochs; the measured one is taken after the search)."""
    search = record.get("search") if isinstance(record.get("search"), dict) else {}
    return {name: search[name] for name in ("params", "flops", "latency_ms") if isinstance(search.get(name), (int, float))}


def finished_reward(folder: Path, trial_id: str) -> float | None:
    """The reward of a finished trial from its final val top-1, as Optuna was told it live (the trainer does not
    write rewards itself)."""
    record = trialdir.read_json(ledger.trial_dir(folder, trial_id) / trialdir.TRIAL) or {}
    return reward_of(record, ledger.status_of(folder, trial_id).get("final_val_top1"))


# --- candidates -------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    choices: dict[str, Any]  # the searched choices (two or more values) this draw took
    hparams: dict[str, Any]  # values of the study's hyper-parameter `space`, drawn with the architecture
    job: dict[str, Any]
    params: int
    flops: int
    violations: dict[str, float]
    blocks: int = 0  # after scaling: what costing it took
    latency_ms: float | None = None  # predicted by the study's latency table, if it has one

    @property
    def within_budget(self) -> bool:
        return all(v <= 0 for v in self.violations.values())

    @property
    def recorded(self) -> dict[str, Any]:
        """What trial.json's hparams hold: the searched choices and the drawn hyper-parameters."""
        return {**self.choices, **self.hparams}

    @property
    def key(self) -> str:
        return json.dumps(self.recorded, sort_keys=True)

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:8]


@dataclass
class SamplingReport:
    sampler: str
    max_tries: int
    draws: int = 0
    within_budget: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)  # constraint name -> draws that violated it
    exhausted: bool = False
    work: int = 0  # blocks costed, plus DRAW_OVERHEAD a draw: sampling stops at SAMPLING_BUDGET

    @property
    def budget_spent(self) -> bool:
        return self.work >= SAMPLING_BUDGET

    def count(self, candidate: Candidate) -> None:
        self.draws += 1
        if candidate.within_budget:
            self.within_budget += 1
        for name, excess in candidate.violations.items():
            if excess > 0:
                self.rejected[name] += 1

    @property
    def acceptance_rate(self) -> float:
        """Share of draws within the constraints (duplicates included: they met the budget)."""
        return self.within_budget / self.draws if self.draws else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "draws": self.draws, "within_budget": self.within_budget, "accepted": self.accepted,
                "duplicates": self.duplicates, "rejected": dict(self.rejected), "acceptance_rate": self.acceptance_rate,
                "max_tries": self.max_tries, "exhausted": self.exhausted, "blocks_costed": self.work}

    def line(self) -> str:
        rejected = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(self.rejected.items())) or "none"
        spent = f" · sampling budget of {SAMPLING_BUDGET:,} blocks costed spent" if self.budget_spent else ""
        return (f"{self.sampler} sampling: {self.accepted} architectures from {self.draws} draws · acceptance rate "
                f"{self.acceptance_rate:.1%} · rejected: {rejected} · duplicates skipped: {self.duplicates}{spent}")


class SearchContext:
    """A study's design space resolved against its base: draws choices and turns them into trial jobs."""

    def __init__(self, study: Study, study_file: str | Path):
        if study.search is None:
            raise WorkbenchError(f"{study_file}: the study has no search block (use `workbench study run`)")
        self.study, self.study_file, self.space = study, str(study_file), study.search
        self.label = self.space.name or study.name
        self.base_file = resolve_path(study_file, self.space.base) if isinstance(self.space.base, str) else None
        self.dimensions = self.space.dimensions()
        self.searched = [key for key, values in self.dimensions if len(values) > 1]
        self.hparam_keys = sorted(study.space)
        self.base_job = study_job(study, self._base_architecture())
        self._check_largest()
        self._check_objectives()
        self.latency_table_file = resolve_path(study_file, self.space.latency_table) if self.space.latency_table else None
        self.latency = self._latency_table() if self.latency_table_file else None

    # --- the base -----------------------------------------------------------------------------------------

    def _base_architecture(self) -> dict[str, Any]:
        if self.base_file is None:
            return self._skeleton()
        try:
            data = read_json(self.base_file)
        except ConfigError as exc:
            raise ConfigError(self.study_file, [("search.base", line) for line in exc.lines]) from None
        if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
            raise ConfigError(self.study_file, [("search.base", f"{self.base_file} is not an architecture (no stages list)")])
        stages = len(data["stages"])
        if stages != len(self.space.stages):
            message = f"{len(self.space.stages)} entries but the base {self.base_file} has {stages} stages (one entry per stage)"
            raise ConfigError(self.study_file, [("search.stages", message)])
        return {k: v for k, v in data.items() if k != "$schema"}

    def _check_largest(self) -> None:
        """Refuse a space whose largest point (every layers, channels and expansion choice at its largest) is too big,
        before any draw: every other point is smaller in blocks and widths, so no draw then fails on size."""
        largest = {key: max(values) for key, values in self.dimensions if key.rsplit(".", 1)[-1] in GROWING}
        self._network({**self.base_job, "architecture": self.architecture(largest)}, largest, "the largest network of the space")

    def _check_objectives(self) -> None:
        if self.space.objectives and self.study.algorithm == "optuna" and self.study.scheduler.name == "asha":
            raise ConfigError(self.study_file, [("scheduler.name", (
                "asha stops trials by one metric at each rung, and a multi-objective Optuna search (search.objectives) "
                "ranks by several (Ray Tune gives it no single metric): use scheduler fifo, or one objective as metric"))])

    def _latency_table(self) -> LatencyTable:
        """The study's latency table, refused at once when it is missing, damaged, from another device or torch
        version, or made for another input size or classifier width than the study counts at."""
        constraints = self.space.constraints
        try:
            table = LatencyTable.load(self.latency_table_file)
            problems = [f"{self.latency_table_file}: {problem}" for problem in table.problems(
                constraints.resolution or self.base_network().resolution.eval_size, constraints.num_classes)]
        except WorkbenchError as exc:
            problems = exc.lines
        rebuild = f"build it on this machine with `{LATENCY_TABLE_COMMAND} {self.study_file} -o {self.latency_table_file}`"
        if problems:
            raise ConfigError(self.study_file, [("search.latency_table", f"{problem}; {rebuild}") for problem in problems])
        return table

    def base_network(self) -> Architecture:
        """The base with every choice at its first value, as trained (after the study's scale)."""
        return self._network({**self.base_job, "architecture": self.architecture({})}, {}, "the base network")

    def _skeleton(self) -> dict[str, Any]:
        """A stage-count base: every field comes from the choices; the first value of each stands in until then."""
        first = {key: values[0] for key, values in self.dimensions}
        stages = [{"block": first[f"stages.{i}.block"], "expand": first[f"stages.{i}.expand"], "kernel": first[f"stages.{i}.kernel"],
                   "stride": stage.stride, "in_channels": 1, "out_channels": first[f"stages.{i}.out_channels"],
                   "layers": first[f"stages.{i}.layers"]} for i, stage in enumerate(self.space.stages)]
        return {"name": self.label, "stem_channels": first["stem_channels"], "stages": stages}

    # --- drawing and costing ---------------------------------------------------------------------------

    def draw(self, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
        """One random point: the searched choices, then the hyper-parameters, in a fixed order."""
        choices = {key: rng.choice(values) for key, values in self.dimensions if len(values) > 1}
        hparams = {key: sample(self.study.space[key], rng) for key in self.hparam_keys}
        return choices, hparams

    def architecture(self, choices: dict[str, Any]) -> dict[str, Any]:
        """The base with every declared choice applied (fixed ones too) and the channel chain rewired."""
        arch = json.loads(json.dumps(self.base_job["architecture"]))
        for key, values in self.dimensions:
            value = choices[key] if key in choices else values[0]
            if key.endswith(".se"):
                set_path(arch, key.removesuffix(".se") + ".se_ratio", self.space.se_ratio if value else 0.0, "search")
            else:
                set_path(arch, key, value, "search")
        for stage, declared in zip(arch["stages"], self.space.stages):
            if declared.stride is not None:
                stage["stride"] = declared.stride
        if arch.get("stem_channels") is not None:
            arch["stages"][0]["in_channels"] = arch["stem_channels"]
        for previous, stage in zip(arch["stages"], arch["stages"][1:]):
            stage["in_channels"] = previous["out_channels"]
        return arch

    def candidate(self, choices: dict[str, Any], hparams: dict[str, Any]) -> Candidate:
        job = assign({**self.base_job, "architecture": self.architecture(choices)}, hparams, f"{self.study_file}: space")
        network = self._network(job, choices)
        constraints = self.space.constraints
        cost = analytic_cost(network, constraints.resolution, constraints.num_classes)
        latency = self.latency.predict(network, constraints.resolution, constraints.num_classes).ms if self.latency else None
        return Candidate(choices, hparams, job, cost.params, cost.flops, constraints.violations(cost.params, cost.flops, latency),
                         sum(stage.blocks for stage in cost.stages), latency)

    def network(self, candidate: Candidate) -> Architecture:
        """The network a candidate trains: its architecture after the study's scale (and any scale hyper-parameters)."""
        return self._network(candidate.job, candidate.choices)

    def _network(self, job: dict[str, Any], choices: dict[str, Any], label: str | None = None) -> Architecture:
        from pydantic import ValidationError

        source = f"{self.study_file} ({label or 'search choices ' + ', '.join(f'{k}={v}' for k, v in choices.items())})"
        try:
            network = Architecture.model_validate(job["architecture"]).scaled(Scale.model_validate(job["scale"]))
        except ValidationError as exc:
            raise ConfigError(source, validation_errors(exc, ("architecture",))) from None
        problems = network.size_problems()  # the study's scale compounds onto the architecture's multipliers
        if problems:
            raise ConfigError(source, [(field_path(("scale",) + loc), f"the scaled network: {message}") for loc, message in problems])
        return network

    # --- trials ---------------------------------------------------------------------------------------

    def reward_factor(self, flops: int) -> float | None:
        target = self.space.target_flops
        return None if target is None else nas_reward(1.0, flops, target, self.space.reward.weight)

    def trial(self, candidate: Candidate, arch_id: str, seed: int, sampler: str) -> TrialSpec:
        constraints = self.space.constraints
        resolution = constraints.resolution or self._network(candidate.job, candidate.choices).resolution.eval_size
        search = {"architecture_id": arch_id, "sampler": sampler, "choices": candidate.choices, "params": candidate.params,
                  "flops": candidate.flops, "resolution": resolution, "num_classes": constraints.num_classes,
                  "reward_factor": self.reward_factor(candidate.flops), "target_flops": self.space.target_flops,
                  "reward_weight": self.space.reward.weight}
        if candidate.latency_ms is not None:
            search.update(latency_ms=candidate.latency_ms, latency_table=str(self.latency_table_file))
        architecture = {**self.architecture(candidate.choices), "name": f"{self.label}-{arch_id}",
                        "description": self.describe(candidate, search, candidate.job["scale"])}
        return build_trial({**self.base_job, "architecture": architecture}, candidate.hparams, seed, trial_id=f"{arch_id}-s{seed}",
                           variant=arch_id, architecture=f"{trialdir.ARCHITECTURES}/{arch_id}.json", source=self.study_file,
                           recorded=candidate.recorded, extra={"space": self.label, "search": search})

    def describe(self, candidate: Candidate, search: dict[str, Any], scale: dict[str, Any]) -> str:
        """Where an architecture came from, for its file's description: space, sampler, choices, cost."""
        base = self.base_file.name if self.base_file else f"a {self.space.base}-stage skeleton"
        choices = ", ".join(f"{k}={v}" for k, v in candidate.choices.items())
        hparams = ", ".join(f"{k}={v}" for k, v in candidate.hparams.items())
        folded = f"width x{scale['width_mult']:g}, depth x{scale['depth_mult']:g}" + (f", {scale['resolution']} px" if scale.get("resolution") else "")
        return (f"Sampled by `workbench search run` ({search['sampler']}, sample_seed {self.study.sample_seed}) from design space "
                f"'{self.label}' of study {self.study.name} around {base}. Choices: {choices}."
                + (f" Drawn with hyper-parameters: {hparams}." if hparams else "")
                + f" The study's scale ({folded}) is folded in. Analytic cost at {search['resolution']} px with "
                  f"{search['num_classes']} classes: {search['params']:,} params, {search['flops']:,} FLOPs."
                + (f" Predicted latency {candidate.latency_ms:.3f} ms ({self.latency.protocol.device}, {self.latency.protocol.runtime}, "
                   f"batch {self.latency.protocol.batch}, table {self.latency_table_file.name})." if candidate.latency_ms is not None else ""))

    def split(self, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """An Optuna configuration -> (searched choices, hyper-parameters)."""
        return ({k: config[k] for k in self.searched if k in config}, {k: config[k] for k in self.hparam_keys if k in config})

    def choices(self) -> dict[str, list[Any]]:
        """Each searched dimension and its values."""
        return {key: values for key, values in self.dimensions if len(values) > 1}


# --- random: rejection sampling ---------------------------------------------------------------------------

def sample_candidates(context: SearchContext, count: int) -> tuple[list[Candidate], SamplingReport]:
    """`count` distinct architectures within the constraints, drawn from sample_seed (the same ones every time)."""
    rng = random.Random(context.study.sample_seed)
    report = SamplingReport("random", context.space.max_tries)
    accepted: list[Candidate] = []
    seen: set[str] = set()
    while len(accepted) < count and report.draws < context.space.max_tries and not report.budget_spent:
        candidate = context.candidate(*context.draw(rng))
        report.count(candidate)
        report.work += candidate.blocks + DRAW_OVERHEAD
        if not candidate.within_budget:
            continue
        if candidate.key in seen:
            report.duplicates += 1
            continue
        seen.add(candidate.key)
        accepted.append(candidate)
    report.accepted = len(accepted)
    report.exhausted = len(accepted) < count
    return accepted, report


@dataclass
class Sampling:
    """What rejection sampling drew for a study: its context, the accepted candidates, and the report."""

    context: SearchContext
    candidates: list[Candidate]
    report: SamplingReport

    def trials(self) -> list[TrialSpec]:
        """The trials of a random search: each accepted architecture once per seed (an error if too few were found)."""
        study, report, source = self.context.study, self.report, self.context.study_file
        if report.exhausted:
            raise WorkbenchError([
                (f"{source}: only {report.accepted} of {study.num_samples} architectures found within the constraints "
                 f"after {report.draws} draws ({report.line()})"),
                (f"{source}: widen search.constraints or the choices, lower num_samples"
                 + (" or narrow the layers choices" if report.budget_spent else ", or raise search.max_tries")),
            ])
        return [self.context.trial(c, f"a{i:03d}", seed, "random") for i, c in enumerate(self.candidates) for seed in study.seeds]


def sample_space(study: Study, study_file: str | Path) -> Sampling:
    context = SearchContext(study, study_file)
    return Sampling(context, *sample_candidates(context, study.num_samples))


# --- files ------------------------------------------------------------------------------------------------


def write_sampled(folder: Path, sampling: Sampling, trials: list[TrialSpec]) -> None:
    """Before training: every sampled architecture as an architecture JSON, and the sampling report."""
    for trial in trials:
        write_architecture(folder, trial.record())
    write_report(folder, sampling.context, sampling.report)


def write_report(folder: Path, context: SearchContext, report: SamplingReport) -> None:
    trialdir.write_json(folder / trialdir.SEARCH, {
        "space": context.label, "study": context.study.name, "base": str(context.base_file or f"{context.space.base} stages"),
        "sampling": report.as_dict(), "constraints": context.space.constraints.model_dump(mode="json"),
        "target_flops": context.space.target_flops, "reward_weight": context.space.reward.weight,
        "choices": context.choices(), "objectives": context.space.objectives, "latency": latency_record(context),
    })


def latency_record(context: SearchContext) -> dict[str, Any] | None:
    """What search.json keeps of the latency table: where it is, its protocol, and the budget it checks."""
    if context.latency is None:
        return None
    budget = context.space.constraints.latency_ms
    return {**context.latency.summary(), "budget": budget.model_dump() if budget else None}


def architecture_document(record: dict[str, Any], schema_dir: Path) -> dict[str, Any]:
    """The trained network of a search trial as an ordinary architecture file (the study's scale folded in)."""
    from workbench.schema.recipe import TrainJob

    body = TrainJob.model_validate(record["job"]).network.model_dump(mode="json", exclude={"schema_"})
    return {"$schema": os.path.relpath(ARCHITECTURE_SCHEMA, schema_dir), "name": body.pop("name"),
            "description": body.pop("description"), **body}


def write_architecture(folder: Path, record: dict[str, Any]) -> Path:
    target = folder / record["architecture"]
    document = architecture_document(record, target.parent.resolve())
    if trialdir.read_json(target) != document:
        trialdir.write_json(target, document)
    return target
