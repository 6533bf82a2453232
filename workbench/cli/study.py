"""`workbench study run`: one trial per variant x seed x hyper-parameter point, scheduled by Ray Tune."""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.cli.common import console, millions
from workbench.trialdir import SUMMARY_CSV


def register(sub) -> None:
    study = sub.add_parser("study", help="run ablation studies on Ray Tune", description="Run a study file's trials on Ray Tune.")
    ssub = study.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND")
    p = ssub.add_parser("run", help="run (or resume) a study", description=(
        "Run every trial of a study (variants x seeds x hyper-parameter points). Re-running the same command after an "
        "interruption resumes it: finished trials are skipped, interrupted ones continue from their last epoch."))
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)


def add_run_arguments(p) -> None:
    p.add_argument("study", help="study JSON (studies/*.json)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study field: recipe.epochs=2, seeds=[0,1], dataset=CIFAR10, dataset.path=..., resources.gpus=0.25")
    p.add_argument("--address", help="join an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--dry-run", action="store_true", help="print the trial table (params, FLOPs) without training")
    p.add_argument("--allow-cpu", action="store_true", help="run a GPU study on CPU instead of refusing")
    p.add_argument("--out", help="results folder (default: <storage_path>/<study name>)")
    p.add_argument("--no-live", action="store_true", help="no live display (logs, CI)")


def cmd_run(args) -> int:
    from workbench.study.runner import prepare

    prepared = prepare(args.study, args.sets, allow_cpu=args.allow_cpu, out=args.out)
    if args.dry_run:
        print_trial_table(prepared)
        return 0
    return run_and_report(args, prepared, _print_comparison)


def run_and_report(args, prepared, report) -> int:
    """Run the prepared study, print `report(folder, metric)` and the outcome; the exit code says whether trials failed."""
    from rich.markup import escape

    from workbench.study.cluster import check_gpus_available
    from workbench.study.runner import run_prepared

    study, folder = prepared.study, prepared.folder
    if not args.address:
        check_gpus_available(study)
    _stop_gracefully_on_signals()
    out = console()
    out.print(f"[bold]{study.name}[/]: {len(prepared.trials) or study.num_samples} trials → {escape(str(folder))}/")
    outcome = run_prepared(prepared, address=args.address, display=not args.no_live)
    if outcome.skipped:
        out.print(f"{len(outcome.skipped)} trials had finished in an earlier run and were not rerun.")
    report(folder, study.metric)
    out.print(f"summary: {escape(str(folder / SUMMARY_CSV))} (and .parquet) · wall time {outcome.seconds:,.0f} s")
    if outcome.interrupted:
        out.print("[yellow]interrupted[/]: re-run the same command to resume; finished trials will not be rerun.")
        return 130
    failed = outcome.failed
    if failed:
        for trial_id, reason in failed:
            print(f"failed: {trial_id}: {reason}", file=sys.stderr)
        print(f"{len(failed)} of {len(outcome.trials)} trials failed; the others finished.", file=sys.stderr)
        return 1
    return 0


def _stop_gracefully_on_signals() -> None:
    """Ctrl-C, and `kill PID` (or a batch system's stop), end the study: statuses written, exit 130, resumable."""
    import signal

    from workbench.study.tuner import request_stop

    def interrupt(signum, frame):
        request_stop()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _print_comparison(folder: Path, metric: str) -> None:
    from workbench.cli.results import show_comparison
    from workbench.errors import WorkbenchError

    try:
        show_comparison([str(folder)], metric=metric)
    except WorkbenchError as exc:  # e.g. no trial finished yet
        console().print(f"[dim]no comparison table: {' '.join(exc.lines)}[/]")


def print_trial_table(prepared) -> None:
    from rich.markup import escape
    from rich.table import Table

    from workbench.study.cluster import machine_capacity
    from workbench.study.runner import trial_overview

    study, rows = prepared.study, trial_overview(prepared)
    resources = study.resources
    per_worker = f"{resources.cpus:g} CPU + {resources.gpus:g} GPU"
    table = Table(title=f"{study.name}: {len(rows)} trials ({study.algorithm}, scheduler {study.scheduler.name}, "
                        + (f"{resources.workers} workers x ({per_worker}) per trial" if resources.workers > 1 else f"{per_worker} per trial")
                        + f") → {escape(str(prepared.folder))}/")
    hp_keys = sorted({k for row in rows for k in row.hparams})
    numeric = ("seed", "resolution", "params", "MFLOPs", "workers", "CPUs", "GPUs")
    for col in ["trial", "variant", "seed", *hp_keys, "resolution", "params", "MFLOPs", "workers", "CPUs", "GPUs", "status"]:
        table.add_column(col, justify="right" if col in numeric else "left")
    for row in rows:
        table.add_row(row.trial_id, row.variant, str(row.seed), *(escape(_short(row.hparams.get(k))) for k in hp_keys), str(row.resolution),
                      millions(row.params), f"{row.flops / 1e6:,.1f}", str(row.workers), f"{row.cpus:g}", f"{row.gpus:g}", row.status)
    out = console()
    out.print(table)
    if study.algorithm == "optuna":
        out.print(f"optuna samples {study.num_samples} points of {sorted(study.space)} while the study runs.")
    if study.adaptive_seeds is not None:
        seeds = study.adaptive_seeds
        out.print(f"adaptive seeds: seeds 0-{seeds.initial - 1} first; after each round a variant whose difference to "
                  f"the baseline is still open (and the baseline) runs one more, up to {seeds.max}: the table lists "
                  f"every trial the study may run ({len(rows)} at most).")
    fits, cpus, gpus = machine_capacity(study)
    at_once = fits if study.max_concurrent_trials is None else min(fits, study.max_concurrent_trials)
    gpu_text = f", {gpus} GPU{'s' if gpus != 1 else ''}" if resources.gpus > 0 else ""
    out.print(f"{at_once} trial{'s' if at_once != 1 else ''} at once on this machine ({cpus} CPUs{gpu_text}"
              + (f"; max_concurrent_trials {study.max_concurrent_trials}" if study.max_concurrent_trials is not None else "")
              + "); a Ray cluster joined with --address fits more", markup=False)
    out.print("[dim]params and FLOPs of the backbone (classifier excluded: its width is the dataset's class count) at the train resolution; "
              "CPUs and GPUs of a whole trial, all its workers[/]")


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
