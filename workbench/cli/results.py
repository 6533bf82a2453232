"""Results commands: results compare / plot / errors / show / tensorboard: argument parsing, dispatch, printing.

Nothing heavy is imported here: each handler imports workbench.results (pandas, scipy, matplotlib, rich) itself.
`show_comparison` prints a comparison as `results compare` does; `study run` prints its table through it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from workbench.errors import WorkbenchError

FORMATS = ("table", "markdown", "csv", "json")
PLOT_KINDS = ("curves", "pareto", "sensitivity", "edf")

DIRS_HELP = ("study folders (results/<study>), trial folders (from `workbench train --out DIR`), "
             "or a folder of study folders such as results/")
BY_HELP = ("group rows by this field: variant, seed, study, space, hp.<dotted hyper-parameter>, or a config.json "
           "path such as architecture.name; several joined by ',' (default: variant, plus every hyper-parameter "
           "that varies inside a variant, so that rows differ only by seed)")


def register(sub) -> None:
    results = sub.add_parser(
        "results", help="compare studies, plot curves / Pareto fronts / sensitivity / EDFs, analyse errors",
        description="Read study and trial folders (the table is computed from the trial folders, so a killed or "
                    "half-written study still reads; incomplete trials are counted and marked, never averaged).")
    rsub = results.add_subparsers(dest="results_command", required=True, metavar="SUBCOMMAND")

    p = rsub.add_parser(
        "compare", help="one row per variant: n, mean ± std, Δ vs baseline with 95 %% CI, p, Holm's p, g, verdict",
        description="One row per group (variant, or hyper-parameter value): finished seeds, incomplete trials, "
                    "params, GFLOPs, best and final metric as mean ± sample std over seeds, the difference to the "
                    "baseline with its confidence interval and p-value (paired t on the seeds both ran when they "
                    "pair up, else Welch), p adjusted by Holm across the rows, Hedges' g with its interval, the seeds "
                    "80 % power needs, a verdict (better / worse / equivalent / open; a study with adaptive seeds is "
                    "judged on its looks, as it ran), training time and images/s. Several study folders: rows "
                    "labelled by study.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help=DIRS_HELP)
    p.add_argument("--metric", default="val_top1", help="metric of metrics.jsonl (default val_top1; val_top5, val_loss, ...)")
    p.add_argument("--by", default=None, help=BY_HELP)
    p.add_argument("--baseline", help="the group Δ is measured against (default: study.json's baseline, else the first "
                                      "variant); with several studies STUDY:NAME uses one group for every study")
    p.add_argument("--delta-on", choices=["best", "final"], default="best", help="Δ, CI and p on the best (default) or final epoch")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the interval (default 0.95)")
    p.add_argument("--min-effect", type=float, default=None, metavar="EFFECT",
                   help="the smallest difference that matters, in the metric's display units (percentage points for "
                        "accuracies): seeds needed are for it (default: the observed Δ), and rows whose equivalence "
                        "interval lies inside ±EFFECT are marked equivalent (default: an adaptive study's min_effect)")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (terminal), markdown (to paste), csv or json (raw numbers)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--machine", help="machine line of the markdown header (default: what the study recorded, if anything)")
    p.add_argument("--note", action="append", default=[], help="extra line under the markdown header (repeatable)")
    p.set_defaults(func=cmd_compare)

    p = rsub.add_parser(
        "plot", help="curves, Pareto front, hyper-parameter sensitivity or error EDF as PNG",
        description="curves: validation metric per epoch and per wall-clock second (mean over seeds, band across "
                    "seeds); pareto: best metric against GFLOPs (or --x latency / params), Pareto front of the "
                    "variant means marked; sensitivity: best metric against each swept hyper-parameter; edf: "
                    "empirical distribution of error per variant or design space (pycls).")
    p.add_argument("dirs", nargs="+", metavar="DIR", help=DIRS_HELP)
    p.add_argument("--kind", choices=PLOT_KINDS, required=True)
    p.add_argument("-o", "--output", help="image file (.png, .svg or .pdf; default DIR/plots/KIND.png)")
    p.add_argument("--x", help="curves: epoch or seconds (default both panels); pareto: flops (default), latency "
                               "(training ms/image from train_images_per_s) or params")
    p.add_argument("--metric", default="val_top1")
    p.add_argument("--by", default=None, help=BY_HELP + "; edf default: space if trials have one, else variant")
    p.add_argument("--band", choices=["minmax", "std"], default="minmax", help="curves: band across seeds (default min–max)")
    p.add_argument("--params", help="sensitivity: only these swept hyper-parameters, joined by ','")
    p.set_defaults(func=cmd_plot)

    p = rsub.add_parser(
        "errors", help="per-example errors: hardest validation examples and an image grid",
        description="From every finished trial's val_predictions.csv: the wrong-rate of each validation example "
                    "per variant (averaged over seeds), the hardest examples (wrong under most variants) as a table, "
                    "and with -o an image grid of them with their label and most common wrong prediction.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help=DIRS_HELP)
    p.add_argument("--top", type=int, default=16, help="how many hardest examples (default 16)")
    p.add_argument("-o", "--output", help="image grid of the hardest examples (.png); loads the dataset of the trials' config.json")
    p.add_argument("--matrix", help="also draw every trial's wrong predictions as a black/white matrix (.png)")
    p.add_argument("--by", default=None, help=BY_HELP)
    p.add_argument("--format", choices=["table", "markdown", "csv"], default="table")
    p.add_argument("--columns", type=int, default=8, help="images per row of the grid (default 8)")
    p.set_defaults(func=cmd_errors)

    p = rsub.add_parser(
        "show", help="one trial: config, per-epoch curve, final figures",
        description="One trial folder (results/<study>/trials/<id>, or what `workbench train --out DIR` wrote): "
                    "its configuration, the per-epoch table with a sparkline, and the final figures and status.")
    p.add_argument("trial_dir", metavar="TRIAL_DIR")
    p.add_argument("--metric", default="val_top1", help="metric of the sparkline and best/final lines (default val_top1)")
    p.add_argument("--all-epochs", action="store_true", help="every epoch, not the first and last 40")
    p.add_argument("--full-config", action="store_true", help="every config field, not only the key ones")
    p.set_defaults(func=cmd_show)

    p = rsub.add_parser(
        "tensorboard", help="open TensorBoard on study folders",
        description="Find the TensorBoard event files the trainer wrote per trial and run "
                    "`tensorboard --logdir DIR` (several folders: --logdir_spec name:DIR,...). Each trial appears as "
                    "a run named trials/<trial_id>. --from-metrics OUT rebuilds event files from metrics.jsonl first.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help=DIRS_HELP)
    p.add_argument("--port", type=int, help="port (tensorboard's default 6006)")
    p.add_argument("--host", help="address to bind, e.g. 0.0.0.0 to reach it from another machine")
    p.add_argument("--print", dest="print_only", action="store_true", help="only print the command")
    p.add_argument("--from-metrics", metavar="OUT", help="first rebuild event files from metrics.jsonl into OUT "
                                                        "(for studies checked out without their git-ignored events)")
    p.set_defaults(func=cmd_tensorboard)


def _command(name: str, dirs: list, options: list[tuple[str, object]]) -> str:
    """The command line that reproduces this output, for the markdown header."""
    parts = ["workbench", "results", name, *map(str, dirs)]
    for flag, value in options:
        if value is None or value is False or value == []:
            continue
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            for item in value:
                parts += [flag, str(item)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _write(text: str, output: str | None) -> None:
    if output:
        path = Path(output)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _console(file=None, width: int | None = None):
    from rich.console import Console

    return Console(file=file, highlight=False, width=width)


def _print_rich(result, command: str, machine: str | None, notes: list[str], output: str | None) -> None:
    """The rich table: to a file at its full width; to a terminal narrower than the table as two-line records."""
    from workbench.results import tables

    needed = tables.rich_width(result)
    if output:
        import io

        buffer = io.StringIO()
        _console(buffer, width=max(100, needed)).print(tables.rich(result, command, machine, notes))
        _write(buffer.getvalue(), output)
        return
    console = _console()
    if not console.is_terminal:  # a pipe or a file: never fold numbers
        console = _console(width=max(100, needed))
    narrow = console.width < needed
    console.print(tables.rich(result, command, machine, notes, wrap=narrow))
    if narrow:
        console.print(f"[dim](rows shown as records: the table needs {needed} columns; widen the terminal, "
                      "or use --format markdown)[/dim]")


def show_comparison(dirs: list, *, metric: str = "val_top1", by: str | None = None, baseline: str | None = None,
                    delta_on: str = "best", confidence: float = 0.95, fmt: str = "table", output: str | None = None,
                    machine: str | None = None, notes: list[str] | tuple[str, ...] = (),
                    min_effect: float | None = None) -> None:
    """Compare the trials of these folders and print (or with `output` write) the table in `fmt` (one of
    FORMATS), as `workbench results compare` does; a WorkbenchError says what is wrong with the folders."""
    from workbench.results import compare, reader, tables

    if fmt not in FORMATS:
        raise WorkbenchError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    result = compare.compare(reader.load(list(dirs)), metric=metric, by=by, baseline=baseline, delta_on=delta_on,
                             confidence=confidence, min_effect=min_effect)
    command = _command("compare", dirs, [
        ("--metric", None if metric == "val_top1" else metric), ("--by", by), ("--baseline", baseline),
        ("--delta-on", None if delta_on == "best" else delta_on),
        ("--confidence", None if confidence == 0.95 else confidence), ("--min-effect", min_effect), ("--format", fmt),
    ])
    notes = list(notes)
    if fmt == "markdown":
        _write(tables.markdown(result, command=command, machine=machine, notes=notes), output)
    elif fmt in ("csv", "json"):
        _write(tables.csv_text(result) if fmt == "csv" else tables.json_text(result), output)
        for note in result.notes:  # the raw rows carry no notes: say on stderr where they came from
            print(f"note: {note}", file=sys.stderr)
    else:
        _print_rich(result, command, machine, notes, output)


def cmd_compare(args) -> int:
    show_comparison(args.dirs, metric=args.metric, by=args.by, baseline=args.baseline, delta_on=args.delta_on,
                    confidence=args.confidence, fmt=args.format, output=args.output, machine=args.machine,
                    notes=args.note, min_effect=args.min_effect)
    return 0


def cmd_plot(args) -> int:
    from workbench.results import figures, plots, reader

    studies = reader.load(args.dirs)
    params = [p.strip() for p in args.params.split(",")] if args.params else None
    if params and args.kind != "sensitivity":
        raise WorkbenchError("--params applies to --kind sensitivity")
    fig = plots.plot(args.kind, studies, metric=args.metric, x=args.x, by=args.by, band=args.band, params=params)
    output = args.output
    if not output:
        suffix = f"_{args.x}" if args.x else ""
        output = str(Path(args.dirs[0]) / "plots" / f"{args.kind}{suffix}.png")
    path = figures.save(fig, output)
    print(f"wrote {path}")
    return 0


def cmd_errors(args) -> int:
    from workbench.results import error_figures, error_tables, figures, per_example, reader

    if args.top < 1:
        raise WorkbenchError("--top must be at least 1")
    analysis = per_example.analyse(reader.load(args.dirs), by=args.by)
    if args.format == "csv":
        sys.stdout.write(error_tables.hardest_csv(analysis, args.top))
    elif args.format == "markdown":
        sys.stdout.write(error_tables.markdown(error_tables.error_tables(analysis, args.top)))
    else:
        console = _console()
        for part in error_tables.rich(error_tables.error_tables(analysis, args.top)):
            console.print(part)
    if args.output:
        grid = error_figures.image_grid(analysis, top=args.top, columns=args.columns)
        print(f"wrote {figures.save(grid, args.output)}", file=sys.stderr)
    if args.matrix:
        print(f"wrote {figures.save(error_figures.matrix(analysis), args.matrix)}", file=sys.stderr)
    return 0


def cmd_show(args) -> int:
    from workbench.results import show

    trial = show.load_trial(args.trial_dir)
    if trial.metrics:
        from workbench.results import reader

        reader.check_metric([trial], args.metric)
    _console().print(show.render(trial, max_epochs=10**9 if args.all_epochs else 40, metric=args.metric,
                                 full=args.full_config))
    return 0


def cmd_tensorboard(args) -> int:
    import importlib.util
    import subprocess

    from workbench.results import tb

    dirs = args.dirs
    if args.from_metrics:
        from workbench.results import reader

        folders = tb.export_events(reader.load(args.dirs), args.from_metrics)
        print(f"wrote event files for {len(folders)} trials under {args.from_metrics}", file=sys.stderr)
        dirs = [args.from_metrics]
    command = tb.command(dirs, args.port, args.host)
    print(shlex.join(command))
    if args.print_only:
        return 0
    if importlib.util.find_spec("tensorboard") is None:
        raise WorkbenchError("tensorboard is not installed in this environment: pip install tensorboard, "
                             "then run the command above")
    return subprocess.call([sys.executable, "-m", "tensorboard.main", *command[1:]])
