"""The latency of a design space: the table of every part it can produce (`workbench latency table`), and after a
search, every trained architecture measured against the latency budget (results/<study>/latency.json).

A design space fixes each stage's stride, so the input size of every block is known from the resolution; a block's
part depends on its stage's own choices and on the width feeding it (the previous stage's output, or the stem), so
enumerating, stage by stage, the product of those choices lists every part any draw can contain: first blocks,
repeated blocks (layers at their largest), stems, heads and classifiers. Every other choice stays at its first value
while one stage is enumerated. The table's constant is fitted on whole networks drawn from the space (within its
FLOP and parameter bounds), and its error is reported on other draws it was not fitted on.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import trialdir
from workbench.complexity.latency import Protocol, measure
from workbench.complexity.latency_table import (PART_RUN_TIME, LatencyTable, Network, Part, build_table, network_content,
                                                network_parts, network_subject, prediction_error)
from workbench.errors import ConfigError, WorkbenchError
from workbench.schema import load_architecture
from workbench.schema.architecture import Architecture
from workbench.schema.study import Study
from workbench.study import ledger
from workbench.study.sampling import SearchContext
from workbench.study.trials import load_study

MAX_TABLE_NETWORKS = 20_000  # networks enumerated to list a space's parts (the shipped CPU space needs about 600)
TOLERANCE = 0.05  # a measured latency this far over the budget still counts as within it (the measurement's noise)


# --- the table -----------------------------------------------------------------------------------------


def latency_free(study: Study) -> Study:
    """The study without its latency table, budget and objectives: what the table itself is built from."""
    search = study.search
    constraints = search.constraints.model_copy(update={"latency_ms": None})
    return study.model_copy(update={"search": search.model_copy(update={"constraints": constraints, "latency_table": None,
                                                                          "objectives": None})})


def count_size(context: SearchContext) -> tuple[int, int]:
    """The input size and classifier width the study counts its networks at."""
    constraints = context.space.constraints
    return constraints.resolution or context.base_network().resolution.eval_size, constraints.num_classes


def space_networks(context: SearchContext) -> Iterator[Architecture]:
    """Networks that together contain every part the space can produce (see the module's docstring)."""
    values = dict(context.dimensions)
    searched = set(context.searched)
    hparams = context.draw(random.Random(0))[1]
    stages = len(context.space.stages)
    groups = []
    for i in range(stages):
        own = [k for k in context.searched if k.startswith(f"stages.{i}.") and not k.endswith(".layers")]
        feed = f"stages.{i - 1}.out_channels" if i else "stem_channels"
        layers = f"stages.{i}.layers"
        groups.append((own + ([feed] if feed in searched else []), {layers: max(values[layers])} if layers in searched else {}))
    groups.append(([k for k in (f"stages.{stages - 1}.out_channels", "head_channels") if k in searched], {}))
    total = sum(math.prod(len(values[k]) for k in keys) for keys, _ in groups)
    if total > MAX_TABLE_NETWORKS:
        raise ConfigError(context.study_file, [("search.stages", (
            f"listing every part of this space takes {total:,} networks (the product of each stage's choices and the "
            f"widths feeding it), more than the limit of {MAX_TABLE_NETWORKS:,}: narrow the choices"))])
    for keys, fixed in groups:
        for combination in itertools.product(*(values[k] for k in keys)):
            yield context.network(context.candidate({**fixed, **dict(zip(keys, combination))}, hparams))


def space_parts(context: SearchContext) -> list[Part]:
    resolution, num_classes = count_size(context)
    parts: dict[str, Part] = {}
    for network in space_networks(context):
        for part in network_parts(network, resolution, num_classes):
            parts.setdefault(part.key, part)
    return list(parts.values())


def draw_networks(context: SearchContext, count: int, seed: int) -> list[Network]:
    """`count` distinct networks (by what their latency depends on) within the study's FLOP and parameter bounds,
    drawn from their own seed, so that they are not the search's own first draws."""
    rng = random.Random(f"workbench latency table {seed}")
    resolution, num_classes = count_size(context)
    found: dict[str, Network] = {}
    for _ in range(context.space.max_tries):
        if len(found) >= count:
            break
        candidate = context.candidate(*context.draw(rng))
        if candidate.within_budget:
            network = context.network(candidate)
            key = str(network_content(network, resolution, num_classes))
            found.setdefault(key, Network(f"draw{len(found):02d}", network, resolution, num_classes))
    return list(found.values())


def table_path(study_file: str, sets: list[str]) -> Path:
    """Where `workbench latency table` writes by default: the study's search.latency_table."""
    from workbench.schema.study import resolve_path

    study, _ = load_study(study_file, sets)
    if study.search is None:
        raise WorkbenchError(f"{study_file}: the study has no search block (a latency table covers a design space)")
    if study.search.latency_table is None:
        raise WorkbenchError(f"{study_file}: no search.latency_table names the table's file: give it with -o FILE")
    return resolve_path(study_file, study.search.latency_table)


def build_space_table(study_file: str, sets: list[str], protocol: Protocol, *, fit: int = 8, holdout: int = 8, seed: int = 0,
                      part_run_time: float = PART_RUN_TIME, use_cache: bool = True,
                      progress: Callable[[str], None] | None = None) -> LatencyTable:
    """The latency table of a study's design space on this machine under `protocol`."""
    study, _ = load_study(study_file, sets)
    if study.search is None:
        raise WorkbenchError(f"{study_file}: the study has no search block (a latency table covers a design space)")
    context = SearchContext(latency_free(study), study_file)
    parts = space_parts(context)
    networks = draw_networks(context, fit + holdout, seed)
    if len(networks) < 2:
        raise WorkbenchError(f"{study_file}: found {len(networks)} distinct networks within the constraints to fit the "
                             "table's constant on; widen search.constraints")
    split = max(1, min(fit, len(networks) - 1)) if holdout else len(networks)
    resolution, num_classes = count_size(context)
    if progress:
        progress(f"{len(parts)} distinct parts in design space '{context.label}' at {resolution} px; fitting on {split} "
                 f"networks, checking on {len(networks) - split}")
    return build_table(parts, networks[:split], networks[split:], protocol, part_run_time=part_run_time, use_cache=use_cache,
                       progress=progress, resolution=resolution, num_classes=num_classes, space=context.label,
                       study=str(study_file))


# --- after a search: measured against the budget ---------------------------------------------------------


@dataclass
class Trained:
    arch_id: str
    file: Path
    resolution: int
    num_classes: int
    predicted_ms: float | None


def trained_architectures(folder: Path) -> list[Trained]:
    """Each architecture of the search folder with a finished trial and its file, once (whatever its seeds), with the
    input size and classifier width its cost and latency were counted at."""
    out: dict[str, Trained] = {}
    for record in ledger.recorded_trials(folder):
        search = record.get("search")
        if not isinstance(search, dict) or not ledger.is_finished(folder, record["trial_id"]):
            continue
        file = folder / str(record.get("architecture") or "")
        arch_id = str(search.get("architecture_id") or record.get("variant"))
        if arch_id not in out and file.is_file():
            out[arch_id] = Trained(arch_id, file, int(search.get("resolution") or 0), int(search.get("num_classes") or 1000),
                                   search.get("latency_ms"))
    return list(out.values())


@dataclass
class LatencyCheck:
    """Every trained architecture's measured latency, beside the prediction and the budget (latency.json)."""

    path: Path
    protocol: Protocol
    budget: dict[str, Any] | None
    rows: dict[str, dict[str, Any]]
    measured_now: int

    @property
    def over(self) -> list[str]:
        return [arch_id for arch_id, row in self.rows.items() if row.get("budget") == "over"]

    def error(self) -> tuple[float | None, float | None, int]:
        """MAPE and Kendall's tau of predicted against measured, over the architectures that have both."""
        pairs = [(r["predicted_ms"], r["median_ms"]) for r in self.rows.values() if r.get("predicted_ms") is not None]
        return (*prediction_error([p for p, _ in pairs], [m for _, m in pairs]), len(pairs))


def budget_verdict(ms: float, budget: dict[str, Any] | None) -> str | None:
    """within: inside the budget; tolerance: outside by at most TOLERANCE; over: further outside; None without one."""
    if not budget:
        return None
    low, high = budget.get("min"), budget.get("max")
    if (high is None or ms <= high) and (low is None or ms >= low):
        return "within"
    if (high is None or ms <= high * (1 + TOLERANCE)) and (low is None or ms >= low * (1 - TOLERANCE)):
        return "tolerance"
    return "over"


def recorded_latency(folder: Path) -> dict[str, Any] | None:
    """search.json's latency block: the table's path, protocol and the budget it checked."""
    record = (trialdir.read_json(folder / trialdir.SEARCH) or {}).get("latency")
    return record if isinstance(record, dict) and isinstance(record.get("protocol"), dict) else None


def recorded_protocol(folder: Path) -> Protocol | None:
    record = recorded_latency(folder)
    try:
        return Protocol(**record["protocol"]) if record else None
    except (TypeError, WorkbenchError):
        return None


def measure_search(folder: Path, protocol: Protocol | None = None, *, use_cache: bool = True,
                   progress: Callable[[str], None] | None = None) -> LatencyCheck | None:
    """Measure every trained architecture of a search folder (default protocol: its latency table's) and write
    latency.json; None when the folder has no trained architecture file."""
    trained = trained_architectures(folder)
    if not trained:
        return None
    record = recorded_latency(folder) or {}
    protocol = protocol or recorded_protocol(folder) or Protocol()
    comparable = bool(record) and protocol.identity() == record.get("identity")  # the table's device, runtime, batch, threads
    budget = record.get("budget") if comparable else None
    subjects = []
    for t in trained:
        arch = load_architecture(t.file)
        subjects.append(network_subject(arch, t.resolution or arch.resolution.eval_size, t.num_classes, t.arch_id))
    timings = measure(subjects, protocol, use_cache=use_cache, progress=progress)
    rows = {}
    for t, subject, timing in zip(trained, subjects, timings):
        rows[t.arch_id] = {"file": str(t.file), "resolution": subject.input_shape[1], "num_classes": t.num_classes,
                           **timing.as_dict(), "ms_per_image": timing.median_ms / protocol.batch,
                           "predicted_ms": t.predicted_ms if comparable else None,
                           "budget": budget_verdict(timing.median_ms, budget)}
    path = folder / trialdir.LATENCY
    trialdir.write_json(path, {"device": protocol.label(), "batch": protocol.batch, "protocol": protocol.as_dict(),
                               "identity": protocol.identity(), "budget": budget, "tolerance": TOLERANCE,
                               "table": record.get("table"), "architectures": rows})
    return LatencyCheck(path, protocol, budget, rows, sum(not t.cached for t in timings))
