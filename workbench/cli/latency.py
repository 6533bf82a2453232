"""`workbench latency ARCH.json...`, `workbench latency table STUDY.json` and `workbench export CHECKPOINT`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.cli.common import add_scale_option, bounded_int, console
from workbench.errors import WorkbenchError

PROTOCOL_OPTIONS = ("device", "runtime", "batch", "threads", "rounds", "warmup", "min_run_time")
TABLE_ONLY = ("output", "fit", "holdout", "seed", "part_run_time")
MEASURE_ONLY = ("predict", "resolution", "num_classes", "json")


def register(sub) -> None:
    p = sub.add_parser("latency", help="measured inference latency; latency tables and predictions for your device",
                       usage="workbench latency ARCH.json... [options]\n       workbench latency table STUDY.json [-o FILE] [options]",
                       description=(
        "Measure inference latency on this machine with one fixed protocol (torch.utils.benchmark: warm-up, fixed "
        "threads, CUDA synchronised, rounds interleaved across files): the median, 90th percentile and a 95 % bootstrap "
        "interval of the median per call. Results are cached in $WORKBENCH_CACHE/latency (default "
        "~/.cache/workbench/latency) by network content, input size, batch, device, runtime, threads and torch version, "
        "so asking again costs nothing. `latency table STUDY.json` times every part (stem, block, head, classifier) "
        "the study's design space can produce and writes a latency table; `--predict TABLE` prints the table's "
        "prediction beside each measurement, and its error on the networks it was not fitted on."))
    p.add_argument("files", nargs="+", metavar="ARCH.json", help=(
        "architecture files (an exported .onnx file with --runtime onnxruntime); or `table STUDY.json`"))
    group = p.add_argument_group("protocol (a latency table records its own; --predict takes it from the table)")
    group.add_argument("--device", choices=["cpu", "cuda"], help="default cpu")
    group.add_argument("--runtime", choices=["eager", "compile", "onnxruntime"], help=(
        "eager (default), compile (torch.compile), onnxruntime (the model exported to ONNX; needs the extra 'export')"))
    group.add_argument("--batch", type=bounded_int(1, 65536), help="images per call (default 1)")
    group.add_argument("--threads", type=bounded_int(1, 1024), help="intra-op threads (default 1: one core's latency)")
    group.add_argument("--rounds", type=bounded_int(1, 1000), help="interleaved rounds (default 5)")
    group.add_argument("--warmup", type=bounded_int(1, 100000), help="warm-up calls before timing (default 10)")
    group.add_argument("--min-run-time", type=float, metavar="SECONDS",
                       help="seconds of timed calls per file (a table: per network it fits on) and round (default 0.1)")
    group.add_argument("--no-cache", action="store_true", help="measure again and replace the cached results")
    group = p.add_argument_group("measuring files")
    group.add_argument("--resolution", type=bounded_int(8, 2048), help="input size (default: each file's eval resolution)")
    add_scale_option(group)
    group.add_argument("--num-classes", type=bounded_int(1, 100000), help="classifier width (default 1000; with --predict the table's)")
    group.add_argument("--predict", metavar="TABLE", help="a latency table (`workbench latency table`): print its prediction too")
    group.add_argument("--json", action="store_true", help="print JSON instead of a table")
    group = p.add_argument_group("latency table STUDY.json (--set KEY=VALUE then overrides a study field, as in `search run`)")
    group.add_argument("-o", "--output", metavar="FILE", help="where to write the table (default: the study's search.latency_table)")
    group.add_argument("--fit", type=bounded_int(1, 500), default=8, help="networks drawn from the space to fit the constant on (default 8)")
    group.add_argument("--holdout", type=bounded_int(0, 500), default=8, help="other draws to report the table's error on (default 8)")
    group.add_argument("--seed", type=int, default=0, help="seed of those draws (default 0)")
    group.add_argument("--part-run-time", type=float, metavar="SECONDS", default=None,
                       help="seconds of timed calls per part and round (default 0.02)")
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("export", help="a checkpoint as ONNX or TorchScript, checked against its logits", description=(
        "Export a trained checkpoint (checkpoint_best.pt) for deployment: the model takes normalised images of the "
        "checkpoint's eval size with a free batch size and returns logits. The export is loaded back (onnxruntime on "
        "CPU, or torch.jit.load) and must give the checkpoint's logits within 1e-4, or it is removed and the command "
        "fails. ONNX needs the optional extra: pip install 'workbench[export]'."))
    p.add_argument("checkpoint", help="checkpoint file (a trial folder's checkpoint_best.pt)")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"], help="onnx or torchscript")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write (model.onnx, model.pt)")
    p.set_defaults(func=cmd_export)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _given(args, names) -> list[str]:
    defaults = {"fit": 8, "holdout": 8, "seed": 0, "json": False, "sets": []}
    return [name for name in names if getattr(args, name, None) not in (None, defaults.get(name))]


def _protocol(args, base=None):
    from workbench.complexity.latency import Protocol

    given = {name: getattr(args, name) for name in PROTOCOL_OPTIONS}
    return Protocol(**{**(base or Protocol()).as_dict(), **{k: v for k, v in given.items() if v is not None}})


# --- latency ------------------------------------------------------------------------------------------


def cmd_latency(args) -> int:
    if args.files[0] == "table":
        return cmd_table(args)
    misplaced = _given(args, TABLE_ONLY)
    if misplaced:
        raise WorkbenchError(f"--{misplaced[0].replace('_', '-')} belongs to `workbench latency table STUDY.json`")
    from workbench.complexity.latency_report import latency_report, table_protocol
    from workbench.complexity.latency_table import LatencyTable

    table = LatencyTable.load(args.predict) if args.predict else None
    if table is not None:
        protocol = table_protocol(table, {name: getattr(args, name) for name in PROTOCOL_OPTIONS})
    else:
        protocol = _protocol(args)
    num_classes = args.num_classes or (table.num_classes if table is not None else None) or 1000
    items = [_item(path, args, num_classes, protocol.runtime) for path in args.files]
    report = latency_report(items, protocol, table, use_cache=not args.no_cache, progress=None if args.json else _progress)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)
    return 0


def _item(path: str, args, num_classes: int, runtime: str):
    from workbench.cli.common import load_scaled
    from workbench.complexity.latency_report import Item

    if path.endswith(".onnx"):
        if runtime != "onnxruntime":
            raise WorkbenchError(f"{path}: an exported ONNX model is timed with --runtime onnxruntime")
        if not Path(path).is_file():
            raise WorkbenchError(f"{path}: file not found")
        if args.sets or args.resolution:
            raise WorkbenchError(f"{path}: an exported model has its input size; --set and --resolution apply to architecture files")
        return Item(path, onnx_file=Path(path))
    return Item(path, arch=load_scaled(path, args.sets), resolution=args.resolution, num_classes=num_classes)


def _print_report(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    predicted = report.table is not None
    table = Table(title=f"inference latency per call · {escape(report.protocol.describe())}", caption_justify="left",
                  caption="median and 90th percentile of the timed calls; 95 % CI: bootstrap interval of the median"
                          + ("; error: predicted vs measured; * the table's constant was fitted on this network" if predicted else ""))
    columns = ["file", "px", "classes", "median ms", "p90 ms", "95 % CI ms"] + (["predicted ms", "error"] if predicted else []) + [""]
    for col in columns:
        table.add_column(col, justify="left" if col in ("file", "") else "right")
    for row in report.rows:
        t = row.timing
        ci = f"{t.ci_low_ms:.3f}–{t.ci_high_ms:.3f}" if t.ci_low_ms is not None else "—"
        cells = [escape(row.label) + (" *" if row.seen else ""), str(row.resolution), str(row.num_classes or "—"),
                 f"{t.median_ms:.3f}", f"{t.p90_ms:.3f}", ci]
        if predicted:
            cells += [f"{row.predicted_ms:.3f}", f"{row.error:+.1%}"]
        table.add_row(*cells, "cached" if t.cached else "")
    out = console()
    out.print(table)
    cached = sum(r.timing.cached for r in report.rows)
    if cached:
        from workbench.complexity.latency import cache_dir

        out.print(f"{cached} of {len(report.rows)} answered from the cache ({escape(str(cache_dir()))}; --no-cache measures again)")
    if predicted:
        mape, tau, n = report.predictor_error()
        text = (f"MAPE {mape:.1%}" + (f", Kendall's τ {tau:.2f}" if tau is not None else "")) if n else "no network it was not fitted on"
        holdout = report.table.as_dict()["holdout_error"]
        out.print(f"predictor on {n} network{'s' if n != 1 else ''} it was not fitted on: {text} · table {escape(str(report.table.path))}: "
                  f"{escape(report.table.describe())}" + (f"; its own check on {holdout['architectures']} draws: MAPE "
                  f"{holdout['mape']:.1%}" + (f", τ {holdout['kendall_tau']:.2f}" if holdout["kendall_tau"] is not None else "")
                  if holdout["mape"] is not None else ""))
    for note in report.notes:
        out.print(f"note: {escape(note)}")


# --- latency table --------------------------------------------------------------------------------------


def cmd_table(args) -> int:
    if len(args.files) != 2:
        raise WorkbenchError("usage: workbench latency table STUDY.json [-o FILE]: one study file with a search block")
    misplaced = _given(args, MEASURE_ONLY)
    if misplaced:
        raise WorkbenchError(f"--{misplaced[0].replace('_', '-')} belongs to `workbench latency ARCH.json...`, not to `latency table`")
    from rich.markup import escape

    from workbench.complexity.latency_table import PART_RUN_TIME
    from workbench.study.latency_space import build_space_table, table_path

    study_file = args.files[1]
    output = Path(args.output) if args.output else table_path(study_file, args.sets)
    table = build_space_table(study_file, args.sets, _protocol(args), fit=args.fit, holdout=args.holdout, seed=args.seed,
                              part_run_time=args.part_run_time or PART_RUN_TIME, use_cache=not args.no_cache, progress=_progress)
    table.save(output)
    out = console()
    out.print(f"latency table of design space '{escape(str(table.space))}' · {escape(table.protocol.describe())}")
    out.print(f"{len(table.parts)} parts timed (stem, blocks, heads, classifiers) · constant {table.constant_ms:+.3f} ms fitted on "
              f"{len(table.fit)} networks drawn from the space")
    holdout = table.as_dict()["holdout_error"]
    if holdout["architectures"]:
        tau = holdout["kendall_tau"]
        out.print(f"error on {holdout['architectures']} other draws it was not fitted on: MAPE {holdout['mape']:.1%}"
                  + (f", Kendall's τ {tau:.2f}" if tau is not None else ""))
    out.print(f"wrote {escape(str(output))}")
    return 0


# --- export -----------------------------------------------------------------------------------------------


def cmd_export(args) -> int:
    from workbench.train.export import export_checkpoint

    done = export_checkpoint(args.checkpoint, args.format, args.output)
    channels, size, _ = done.input_shape
    print(f"wrote {done.path} ({done.format}): input images (batch, {channels}, {size}, {size}), normalised, any batch size; "
          f"output logits of {done.num_classes} classes")
    print(f"checked with {done.checked_with}: logits within {done.max_abs_diff:.1e} of the checkpoint's (batch 1 and 3)")
    return 0
