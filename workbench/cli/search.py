"""`workbench search run | analyze`: architecture search under FLOP and parameter budgets, through the study runner."""

from __future__ import annotations

import sys
from pathlib import Path

from workbench import trialdir
from workbench.cli.common import console, millions
from workbench.errors import WorkbenchError


def register(sub) -> None:
    from workbench.cli.study import add_run_arguments

    search = sub.add_parser("search", help="architecture search under FLOP and parameter budgets",
                            description="Sample a study's design space (its \"search\" block) under FLOP and parameter "
                                        "constraints, train the samples on Ray Tune, and analyse the results.")
    ssub = search.add_subparsers(dest="search_command", required=True, metavar="SUBCOMMAND")
    p = ssub.add_parser("run", help="sample and train architectures (resumable)", description=(
        "Sample num_samples architectures from the study's design space (algorithm random: rejection sampling from "
        "sample_seed; optuna: TPE), check each against the constraints with the analytic cost model before anything "
        "trains, write each as results/<study>/architectures/<id>.json, and train them through the study runner. "
        "Re-running the same command resumes: the same architectures are drawn and finished trials are not rerun."))
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = ssub.add_parser("analyze", help="Pareto fronts, EDF per design space, good range of each choice", description=(
        "Pareto front of accuracy against FLOPs and against measured latency, the error EDF per design space, and the "
        "good range of each choice (pycls bootstrap: resample the architectures, keep the top-k, count their values)."))
    p.add_argument("dirs", nargs="+", metavar="DIR", help="search result folders (results/<study>), several to compare spaces")
    p.add_argument("-o", "--output", metavar="DIR", help="folder for the PNGs and ranges.csv (default: DIR/analysis)")
    p.add_argument("--metric", default="val_top1", help="ranking metric: val_top1 (default), reward, or another recorded metric")
    p.add_argument("--top", type=float, default=0.25, help="top-k of each resample: a fraction (default 0.25) or a count")
    p.add_argument("--bootstrap", type=int, default=2000, help="resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    p.add_argument("--latency", choices=["measure", "train"], default="measure", help=(
        "measure: time batch-1 inference of every sampled architecture on this machine (cached in DIR/latency.json); "
        "train: use the training throughput the trials recorded"))
    p.add_argument("--latency-batch", type=int, default=1, help="batch size of the latency measurement (default 1)")
    p.set_defaults(func=cmd_analyze)


# --- run ----------------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    from workbench.cli.study import run_and_report
    from workbench.study.runner import prepare
    from workbench.study.trials import load_study

    if args.dry_run:  # no prepare(): a budget too tight for num_samples still shows what it let through
        study, _ = load_study(args.study, args.sets)
        _require_search(args.study, study)
        print_samples(args.study, study, Path(args.out) if args.out else Path(study.storage_path) / study.name)
        return 0
    prepared = prepare(args.study, args.sets, allow_cpu=args.allow_cpu, out=args.out)
    _require_search(args.study, prepared.study)
    return run_and_report(args, prepared, print_search_summary)


def _require_search(path: str, study) -> None:
    if study.search is None:
        raise WorkbenchError(f"{path}: the study has no search block; run its variants with `workbench study run`")


def print_samples(study_file: str, study, folder: Path) -> None:
    """The architectures a run would train (for optuna: a random preview of the space), with cost and acceptance."""
    from workbench.study.sampling import sample_space

    sampling = sample_space(study, study_file)
    context, candidates, report = sampling.context, sampling.candidates, sampling.report
    networks = [context.network(c) for c in candidates]
    constraints = study.search.constraints
    out = console()
    out.print(_samples_table(study, context.label, candidates, networks, folder))
    out.print(report.line())
    resolution = constraints.resolution or (networks[0].resolution.eval_size if networks else "the eval")
    out.print(f"constraints: {_budget_text(constraints)} · counted at {resolution} px with {constraints.num_classes} classes "
              "by the analytic cost model (equal to fvcore's count), before anything trains")
    out.print("[dim]stage: F = fused_mbconv, MB = mbconv; expansion, k kernel, × layers, output channels, se = squeeze-excitation "
              "(after the study's scale)[/]")
    if report.exhausted:
        out.print(f"[red]only {report.accepted} of {study.num_samples} architectures within the constraints after "
                  f"{report.draws} draws[/]: widen the constraints or "
                  + ("narrow the layers choices (the sampling budget is spent)" if report.budget_spent else "raise search.max_tries"))


def _samples_table(study, label: str, candidates, networks, folder: Path):
    from rich.markup import escape
    from rich.table import Table

    from workbench.study import ledger

    sampler = "rejection sampling" if study.algorithm == "random" else "random preview; optuna proposes while it runs"
    table = Table(title=f"{study.name}: {len(candidates)} architectures sampled from design space '{label}' ({sampler}) → "
                        f"{escape(str(folder))}/")
    divisor, unit = flops_unit([c.flops for c in candidates])
    stages = max((len(n.stages) for n in networks), default=0)
    for col in ["id", *(f"stage {i + 1}" for i in range(stages)), "head", "res", "params", unit, "status"]:
        table.add_column(col, justify="right" if col in ("res", "params", unit) else "left")
    for index, (candidate, network) in enumerate(zip(candidates, networks)):
        arch_id = f"a{index:03d}" if study.algorithm == "random" else f"h{candidate.digest}"
        status = ledger.status_of(folder, f"{arch_id}-s{study.seeds[0]}")["status"] if study.algorithm == "random" else "—"
        table.add_row(arch_id, *(_stage_text(s) for s in network.resolved_stages()), str(network.head_width),
                      str(network.resolution.eval_size), millions(candidate.params), f"{candidate.flops / divisor:,.2f}", status)
    return table


def _stage_text(stage) -> str:
    from workbench.schema.architecture import BLOCK_KINDS

    block = BLOCK_KINDS[stage.block].short
    return f"{block}{stage.expand:g} k{stage.kernel} ×{stage.layers} {stage.out_channels}" + (" se" if stage.se_ratio else "")


def _budget_text(constraints) -> str:
    parts = []
    if constraints.flops is not None:
        divisor, unit = flops_unit([v for v in (constraints.flops.min, constraints.flops.max) if v])
        low = f"{constraints.flops.min / divisor:,.2f}" if constraints.flops.min else "0"
        high = f"{constraints.flops.max / divisor:,.2f}" if constraints.flops.max else "∞"
        parts.append(f"{low}–{high} {unit}")
    if constraints.max_params is not None:
        parts.append(f"≤ {millions(constraints.max_params)} params")
    return ", ".join(parts) or "none"


def print_search_summary(folder: Path, metric: str, top: int = 10) -> None:
    """After a run: the sampling report, the best architectures, and the FLOPs Pareto front."""
    from rich.table import Table

    from workbench.results import metrics, reader, search_analysis
    from workbench.study import ledger

    out = console()
    report = (trialdir.read_json(folder / trialdir.SEARCH) or {}).get("sampling") or {}
    if report:
        rejected = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted((report.get("rejected") or {}).items())) or "none"
        out.print(f"{report['sampler']} sampling: {report['accepted']} architectures from {report['draws']} draws · "
                  f"acceptance rate {report['acceptance_rate']:.1%} · rejected before training: {rejected}")
        if report.get("exhausted"):
            out.print(f"[red]the sampler found no further architecture within the constraints in {report['max_tries']} tries[/]: "
                      "widen the constraints or raise search.max_tries")
    try:
        archs = search_analysis.architectures(reader.load([folder]), metric)
    except WorkbenchError as exc:
        out.print(f"[dim]no search summary: {' '.join(exc.lines)}[/]")
        return
    higher = metric == "reward" or not metrics.lower_is_better(metric)
    ranked = sorted((a for a in archs if a.value is not None), key=lambda a: a.value, reverse=higher)
    front = {a.arch_id for a in search_analysis.pareto_members(archs, "flops", higher)}
    table = Table(title=f"best {min(top, len(ranked))} of {len(archs)} finished architectures by {metric}")
    divisor, unit = flops_unit([a.flops for a in archs if a.flops])
    for col in ("id", "params", unit, "val top-1", "reward", "seeds", "train s", "Pareto (FLOPs)"):
        table.add_column(col, justify="left" if col == "id" else "right")
    for a in ranked[:top]:
        seconds = sum(t.seconds or 0 for t in a.trials) / len(a.trials)
        table.add_row(a.arch_id, millions(a.params or 0), f"{(a.flops or 0) / divisor:,.2f}", _percent(a.accuracy),
                      f"{a.reward:.4f}" if a.reward is not None else "—", str(a.seeds), f"{seconds:,.0f}", "yes" if a.arch_id in front else "")
    out.print(table)
    if ranked:
        out.print(f"architectures: {folder / 'architectures'}/ · train the best again: workbench train "
                  f"{folder / 'architectures' / (ranked[0].arch_id + '.json')} · analyse: workbench search analyze {folder}")


def flops_unit(values: list[float]) -> tuple[float, str]:
    from workbench.results.metrics import flops_unit as unit

    return unit(values)


def _percent(value) -> str:
    return "—" if value is None else f"{value * 100:.2f} %"


# --- analyze ------------------------------------------------------------------------------------------


def cmd_analyze(args) -> int:
    from workbench.results import figures, metrics, plots, reader, records, search_analysis

    studies = reader.load(args.dirs)
    archs = search_analysis.architectures(studies, args.metric)
    if args.metric not in ("reward",) and not any(a.value is not None for a in archs):
        reader.check_metric(records.all_trials(studies), args.metric)
    folders = sorted({s.path for s in studies if not s.loose}, key=str)
    if args.latency == "measure":
        measure_latency(archs, folders, args.latency_batch)
    device = search_analysis.attach_latency(archs, folders) if args.latency == "measure" else None
    output = Path(args.output or Path(args.dirs[0]) / "analysis")
    written = [figures.save(search_analysis.plot_pareto(archs, args.metric, "flops"), output / "pareto_flops.png"),
               figures.save(search_analysis.plot_pareto(archs, args.metric, "latency", device), output / "pareto_latency.png"),
               figures.save(plots.edf(studies, "val_top1", by="space"), output / "edf.png")]
    higher = args.metric == "reward" or not metrics.lower_is_better(args.metric)
    ranges = search_analysis.good_ranges(archs, args.top, args.bootstrap, args.seed, higher)
    written.append(_write_ranges(ranges, output / "ranges.csv"))
    _print_ranges(ranges, archs, args)
    _print_fronts(archs, args.metric, higher, device)
    for path in written:
        print(f"wrote {path}")
    return 0


def _write_ranges(ranges, path: Path) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([r.as_dict() for r in ranges]).to_csv(path, index=False)
    return path


def _print_ranges(ranges, archs, args) -> None:
    from rich.table import Table

    from workbench.results import search_analysis

    spaces = sorted({a.space for a in archs})
    counts = ", ".join(f"{s}: top {search_analysis.top_count(sum(a.space == s for a in archs), args.top)} of "
                       f"{sum(a.space == s for a in archs)}" for s in spaces)
    table = Table(title=f"good range of each choice by {args.metric} ({counts}; {args.bootstrap} bootstrap resamples)",
                  caption="top-k range: median over resamples of the top-k's smallest and largest value (95 % bootstrap "
                          "interval in brackets); confidence: share of resamples whose top-k has that value most often; "
                          "share: of the top-k holding it, against all sampled architectures", caption_justify="left")
    for col in search_analysis.ranges_headers(ranges):
        table.add_column(col, justify="right" if col in ("confidence",) else "left")
    for row in search_analysis.ranges_rows(ranges):
        table.add_row(*row)
    console().print(table)


def _print_fronts(archs, metric: str, higher: bool, device: str | None) -> None:
    from workbench.results import search_analysis

    out = console()
    for x, label in (("flops", "FLOPs"), ("latency", f"latency ({device})" if device else "training time per image")):
        members = search_analysis.pareto_members(archs, x, higher)
        text = ", ".join(f"{a.arch_id} ({_cost_text(a, x)}, {_percent(a.accuracy)})" for a in members)
        out.print(f"Pareto front, {metric} vs {label}: {text}")


def _cost_text(arch, x: str) -> str:
    if x == "flops":
        return f"{(arch.flops or 0) / 1e6:,.2f} MFLOPs"
    value = arch.latency_ms if arch.latency_ms is not None else arch.train_ms_per_image
    return f"{value:.2f} ms"


def measure_latency(archs, folders: list[Path], batch: int) -> None:
    """Inference time per image of every sampled architecture on this machine, cached per folder and device."""
    from workbench.cli.train import prefer_sleeping_threads

    prefer_sleeping_threads()
    from workbench.train.bench import cached_latencies

    for folder in folders:
        files = {a.arch_id: (a.file, _num_classes(a)) for a in archs if a.file is not None and a.file.parent.parent == folder}
        measured = cached_latencies(folder / trialdir.LATENCY, files, batch)
        if measured:
            print(f"measured the inference latency of {measured} architectures (batch {batch}) into {folder / trialdir.LATENCY}",
                  file=sys.stderr)


def _num_classes(arch) -> int:
    return int(arch.trials[0].config.get("num_classes") or 1000)
