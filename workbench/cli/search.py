"""`workbench search run | analyze`: architecture search under FLOP and parameter budgets, through the study runner."""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.cli.common import bounded_int, console, millions
from workbench.errors import WorkbenchError


def register(sub) -> None:
    from workbench.cli.study import add_run_arguments

    search = sub.add_parser("search", help="architecture search under FLOP, parameter and latency budgets",
                            description="Sample a study's design space (its \"search\" block) under FLOP, parameter and "
                                        "latency constraints, train the samples on Ray Tune, and analyse the results.")
    ssub = search.add_subparsers(dest="search_command", required=True, metavar="SUBCOMMAND")
    p = ssub.add_parser("run", help="sample and train architectures (resumable)", description=(
        "Sample num_samples architectures from the study's design space (algorithm random: rejection sampling from "
        "sample_seed; optuna: TPE, or NSGA-II for search.objectives), check each against the constraints with the "
        "analytic cost model (and search.latency_table's prediction) before anything trains, write each as "
        "results/<study>/architectures/<id>.json, and train them through the study runner; with a latency table, every "
        "trained architecture is then measured against the budget (results/<study>/latency.json). Re-running the same "
        "command resumes: the same architectures are drawn and finished trials are not rerun."))
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)

    p = ssub.add_parser("analyze", help="Pareto fronts, EDF per design space, good range of each choice", description=(
        "Pareto front of accuracy against FLOPs and against measured latency, each with its hypervolume; predicted "
        "against measured latency when the search had a latency table; the error EDF per design space, and the good "
        "range of each choice (pycls bootstrap: resample the architectures, keep the top-k, count their values)."))
    p.add_argument("dirs", nargs="+", metavar="DIR", help="search result folders (results/<study>), several to compare spaces")
    p.add_argument("-o", "--output", metavar="DIR", help="folder for the PNGs and ranges.csv (default: DIR/analysis)")
    p.add_argument("--metric", default="val_top1", help="ranking metric: val_top1 (default), reward, or another recorded metric")
    p.add_argument("--top", type=float, default=0.25, help="top-k of each resample: a fraction (default 0.25) or a count")
    p.add_argument("--bootstrap", type=int, default=2000, help="resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    p.add_argument("--latency", choices=["measure", "train"], default="measure", help=(
        "measure: time the inference of every trained architecture on this machine with `workbench latency`'s protocol "
        "and cache (into DIR/latency.json, beside the latency table's prediction); train: use the training throughput "
        "the trials recorded"))
    p.add_argument("--latency-batch", type=bounded_int(1, 65536), help="images per call (default: the search's latency table's, else 1)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="device of the measurement (default: the latency table's, else cpu)")
    p.add_argument("--runtime", choices=["eager", "compile", "onnxruntime"], help=(
        "runtime of the measurement: eager, compile, onnxruntime (default: the latency table's, else eager)"))
    p.add_argument("--threads", type=bounded_int(1, 1024), help="threads of the measurement (default: the table's, else 1)")
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
    return run_and_report(args, prepared, _after_run)


def _after_run(folder: Path, metric: str) -> None:
    verify_latency(folder)
    print_search_summary(folder, metric)


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
              "by the analytic cost model (equal to fvcore's count)" + (", latency predicted by the latency table "
              f"{context.latency_table_file} ({context.latency.protocol.describe()})" if context.latency else "")
              + ", before anything trains")
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
    latency = ["latency ms"] if any(c.latency_ms is not None for c in candidates) else []
    for col in ["id", *(f"stage {i + 1}" for i in range(stages)), "head", "res", "params", unit, *latency, "status"]:
        table.add_column(col, justify="right" if col in ("res", "params", unit, *latency) else "left")
    for index, (candidate, network) in enumerate(zip(candidates, networks)):
        arch_id = f"a{index:03d}" if study.algorithm == "random" else f"h{candidate.digest}"
        status = ledger.status_of(folder, f"{arch_id}-s{study.seeds[0]}")["status"] if study.algorithm == "random" else "—"
        table.add_row(arch_id, *(_stage_text(s) for s in network.resolved_stages()), str(network.head_width),
                      str(network.resolution.eval_size), millions(candidate.params), f"{candidate.flops / divisor:,.2f}",
                      *([f"{candidate.latency_ms:.3f}"] if latency else []), status)
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
    if constraints.latency_ms is not None:
        low, high = constraints.latency_ms.min, constraints.latency_ms.max
        parts.append(f"{low or 0:g}–{high:g} ms" if high is not None else f"≥ {low:g} ms")
    return ", ".join(parts) or "none"


def print_search_summary(folder: Path, metric: str, top: int = 10) -> None:
    """After a run: the sampling report, the best architectures, and the FLOPs Pareto front."""
    from rich.markup import escape
    from rich.table import Table

    from workbench.results import search_front

    out = console()
    for line, warning in search_front.sampling_lines(folder):
        out.print(f"[red]{escape(line)}[/]" if warning else escape(line))
    try:
        summary = search_front.search_summary(folder, metric)
    except WorkbenchError as exc:
        out.print(f"[dim]no search summary: {escape(' '.join(exc.lines))}[/]")
        return
    table = Table(title=f"best {min(top, len(summary.ranked))} of {len(summary.archs)} finished architectures by {metric}")
    for col in summary.headers():
        table.add_column(col, justify="left" if col == "id" else "right")
    for row in summary.rows(top):
        table.add_row(*row)
    out.print(table)
    if summary.ranked:
        best = folder / "architectures" / (summary.ranked[0].arch_id + ".json")
        out.print(f"architectures: {escape(str(folder / 'architectures'))}/ · train the best again: workbench train "
                  f"{escape(str(best))} · analyse: workbench search analyze {escape(str(folder))}")


def verify_latency(folder: Path) -> None:
    """After a run with a latency table: measure every trained architecture and print it against the budget."""
    from workbench.study.latency_space import measure_search, recorded_latency

    if recorded_latency(folder) is None:
        return
    check = measure_search(folder, progress=_progress)
    if check is not None:
        print_latency_check(check.rows, check.budget, check.protocol.describe(), check.path)


def print_latency_check(rows: dict, budget: dict | None, device: str, path: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from workbench.results.search_front import LatencyRows, budget_text, latency_rows

    found = latency_rows(rows, budget)
    title = f"latency measured after training · {escape(device)}" + (f" · budget {budget_text(budget)}" if budget else "")
    table = Table(title=title, caption=f"predicted: the latency table's sum of parts, before training; written to {escape(str(path))}",
                  caption_justify="left")
    for col in LatencyRows.headers(bool(budget)):
        table.add_column(col, justify="left" if col == "id" else "right")
    for row in found.rows:
        table.add_row(*row)
    out = console()
    out.print(table)
    if found.compared:
        tau = f", Kendall's τ {found.tau:.2f}" if found.tau is not None else ""
        out.print(f"predicted vs measured on {found.compared} architectures: MAPE {found.mape:.1%}{tau}")
    if budget:
        v = found.verdicts
        colour = "red" if v["over"] else "green"
        out.print(f"[{colour}]budget {budget_text(budget)}: {v['within']} within, {v['tolerance']} outside by at most 5 %, "
                  f"{v['over']} further outside[/]")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def flops_unit(values: list[float]) -> tuple[float, str]:
    from workbench.results.metrics import flops_unit as unit

    return unit(values)


# --- analyze ------------------------------------------------------------------------------------------


def cmd_analyze(args) -> int:
    from workbench.results import figures, plots, reader, records, search_analysis, search_front

    studies = reader.load(args.dirs)
    archs = search_analysis.architectures(studies, args.metric)
    if args.metric not in ("reward",) and not any(a.value is not None for a in archs):
        reader.check_metric(records.all_trials(studies), args.metric)
    folders = sorted({s.path for s in studies if not s.loose}, key=str)
    checks = measure_latency(folders, args) if args.latency == "measure" else []
    device = search_analysis.attach_latency(archs, folders) if args.latency == "measure" else None
    output = Path(args.output or Path(args.dirs[0]) / "analysis")
    written = [figures.save(search_analysis.plot_pareto(archs, args.metric, "flops"), output / "pareto_flops.png"),
               figures.save(search_analysis.plot_pareto(archs, args.metric, "latency", device), output / "pareto_latency.png"),
               figures.save(plots.edf(studies, "val_top1", by="space"), output / "edf.png")]
    higher = search_front.higher_is_better(args.metric)
    ranges = search_analysis.good_ranges(archs, args.top, args.bootstrap, args.seed, higher)
    written.append(_write_ranges(ranges, output / "ranges.csv"))
    _print_ranges(ranges, archs, args)
    for check in checks:
        print_latency_check(check.rows, check.budget, check.protocol.describe(), check.path)
    budgets = [c.budget.get("max") for c in checks if c.budget and c.budget.get("max")]
    for front in search_front.fronts(archs, args.metric, device, max(budgets) if budgets else None):
        console().print(f"Pareto front, {args.metric} vs {front.label}: {front.text()}", highlight=False)
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

    from workbench.results import search_analysis, search_front

    table = Table(title=search_front.ranges_title(archs, args.metric, args.top, args.bootstrap),
                  caption="top-k range: median over resamples of the top-k's smallest and largest value (95 % bootstrap "
                          "interval in brackets); confidence: share of resamples whose top-k has that value most often; "
                          "share: of the top-k holding it, against all sampled architectures", caption_justify="left")
    for col in search_analysis.ranges_headers(ranges):
        table.add_column(col, justify="right" if col in ("confidence",) else "left")
    for row in search_analysis.ranges_rows(ranges):
        table.add_row(*row)
    console().print(table)


def measure_latency(folders: list[Path], args) -> list:
    """Every trained architecture of each search folder timed on this machine (the shared protocol and its cache),
    into the folder's latency.json; the protocol is the options', else the search's latency table's, else the default."""
    from workbench.complexity.latency import Protocol
    from workbench.study.latency_space import measure_search, recorded_protocol

    given = {"device": args.device, "runtime": args.runtime, "batch": args.latency_batch, "threads": args.threads}
    recorded = next((p for p in map(recorded_protocol, folders) if p is not None), None)
    base = (recorded or Protocol()).as_dict()
    protocol = Protocol(**{**base, **{k: v for k, v in given.items() if v is not None}})
    checks = []
    for folder in folders:
        check = measure_search(folder, protocol, progress=_progress)
        if check is not None:
            checks.append(check)
            if check.measured_now:
                print(f"measured the inference latency of {check.measured_now} architectures into {check.path}", file=sys.stderr)
    return checks
