"""Architecture commands: schema, validate, show, flops."""

from __future__ import annotations

import json
import sys

from workbench.cli.common import add_scale_option, bounded_int, console, giga, load_scaled, millions, signed_percent
from workbench.errors import ConfigError
from workbench.schema.architecture import MAX_RESOLUTION
from workbench.schema.search import MAX_CLASSES

SCHEMAS = {
    "architecture": ("workbench.schema.architecture", "Architecture"),
    "recipe": ("workbench.schema.recipe", "Recipe"),
    "study": ("workbench.schema.study", "Study"),
}


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a config kind", description="Print the JSON Schema of a config file kind, for editors and validators.")
    p.add_argument("kind", nargs="?", default="architecture", choices=sorted(SCHEMAS))
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("validate", help="validate config files", description="Validate architecture (and study/recipe) JSON files; one line per error.")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("show", help="the resolved stage table after scaling", description="Print an architecture's stage table after width/depth scaling, with per-block stochastic-depth rates and analytic cost.")
    p.add_argument("file")
    add_scale_option(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("flops", help="count params, FLOPs and activations with fvcore", description=(
        "Count parameters, FLOPs (multiply-adds of conv and linear layers, batch norm excluded) and activations. By default "
        "the stage table comes at once from the analytic cost model (pycls-style, no torch), then fvcore traces the built "
        "network and either confirms every figure or prints its own table."))
    p.add_argument("files", nargs="+")
    p.add_argument("--counter", choices=["both", "fvcore", "analytic"], default="both", help=(
        "both (default): analytic table at once, then checked against an fvcore trace; fvcore: the trace only; "
        "analytic: no torch, instant (--json uses fvcore unless this is analytic)"))
    p.add_argument("--resolution", type=bounded_int(8, MAX_RESOLUTION),
                   help=f"input size, 8 to {MAX_RESOLUTION} (default: each file's eval resolution)")
    p.add_argument("--by", choices=["stage", "module"], default="stage", help="breakdown rows (default: stage)")
    p.add_argument("--num-classes", type=bounded_int(1, MAX_CLASSES), default=1000,
                   help=f"classifier width, at most {MAX_CLASSES:,} (default 1000, as published)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_scale_option(p)
    p.set_defaults(func=cmd_flops)


def schema_dict(kind: str) -> dict:
    import importlib

    module, name = SCHEMAS[kind]
    model = getattr(importlib.import_module(module), name)
    schema = model.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def cmd_schema(args) -> int:
    text = json.dumps(schema_dict(args.kind), indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def detect_kind(data: object) -> str:
    if isinstance(data, dict):
        ref = str(data.get("$schema", ""))
        for kind in SCHEMAS:
            if kind in ref:
                return kind
        if "variants" in data or "search" in data:
            return "study"
        if "stages" not in data and ({"epochs", "optimizer", "progressive", "batch_size"} & set(data)):
            return "recipe"
    return "architecture"


def cmd_validate(args) -> int:
    import importlib

    from rich.markup import escape

    from workbench.schema.common import read_json, validate
    from workbench.schema.dataset import GIVEN_AT_RUN_TIME

    failed = 0
    out = console()
    for path in args.files:
        try:
            data = read_json(path)
            kind = detect_kind(data)
            module, name = SCHEMAS[kind]
            model = getattr(importlib.import_module(module), name)
            given_at_run_time: list[str] = []  # fields the file leaves to `--set` (an imagefolder's path)
            validate(model, {k: v for k, v in data.items() if k != "$schema"} if isinstance(data, dict) else data, path,
                     context={GIVEN_AT_RUN_TIME: given_at_run_time})
            notes = "".join(f" — note: {key} is given at run time (--set {key}=...)" for key in dict.fromkeys(given_at_run_time))
            out.print(f"[green]ok[/]  {escape(str(path))} ({kind}){notes}")
        except ConfigError as exc:
            failed += 1
            for line in exc.lines:
                print(f"error: {line}", file=sys.stderr)
    return 2 if failed else 0


def cmd_show(args) -> int:
    from rich.markup import escape
    from rich.table import Table

    from workbench.complexity import analytic_cost

    arch = load_scaled(args.file, args.sets)
    cost = analytic_cost(arch)
    blocks = arch.blocks()
    table = Table(title=f"{escape(arch.name)}  (width ×{arch.width_mult:g}, depth ×{arch.depth_mult:g}, "
                        f"train {arch.resolution.train} px, eval {arch.resolution.eval_size} px)")
    for col in ("stage", "block", "expand", "kernel", "stride", "in", "out", "layers", "SE", "drop rate", "output"):
        table.add_column(col, justify="left" if col in ("stage", "block") else "right")
    table.add_row("stem", "conv3x3", "", "3", "2", str(arch.in_channels), str(arch.stem_width), "1", "", "", _shape(cost.stages[0].output_shape))
    for i, (stage, shape) in enumerate(zip(arch.resolved_stages(), cost.stages[1:-1])):
        rates = [b.drop_rate for b in blocks if b.stage == i]
        table.add_row(f"{i + 1}", stage.block, f"{stage.expand:g}", str(stage.kernel), str(stage.stride), str(stage.in_channels),
                      str(stage.out_channels), str(stage.layers), f"{stage.se_ratio:g}", f"{min(rates):.3f}–{max(rates):.3f}", _shape(shape.output_shape))
    table.add_row("head", "conv1x1", "", "1", "1", str(blocks[-1].out_channels), str(arch.head_width), "1", "", f"dropout {arch.dropout:g}", "")
    out = console()
    out.print(table)
    out.print(f"{len(blocks)} blocks · stochastic depth {arch.stochastic_depth.schedule} (rate {arch.stochastic_depth.rate:g}) · "
              f"{arch.activation} · BN eps {arch.norm.eps:g} momentum {arch.norm.momentum:g}")
    out.print(f"analytic cost at {cost.resolution} px, 1000 classes: {millions(cost.params)} params, {giga(cost.flops)} FLOPs")
    return 0


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def cmd_flops(args) -> int:
    from workbench.complexity import CONVENTION

    archs = [(path, load_scaled(path, args.sets)) for path in args.files]
    if args.by == "module":
        return _flops_by_module(archs, args)
    if args.json:
        counter = "analytic" if args.counter == "analytic" else "fvcore"
        _print_json(_costs(archs, args, counter), counter)
        return 0
    out = console()
    out.print(f"[dim]{CONVENTION}[/]")
    first = "fvcore" if args.counter == "fvcore" else "analytic"
    costs = _costs(archs, args, first)
    _print_tables(out, costs, first)
    if args.counter == "both":
        _check_with_fvcore(out, archs, args, costs)
    return 0


def _costs(archs, args, counter: str) -> list:
    from workbench.complexity import analytic_cost, count_flops

    count = analytic_cost if counter == "analytic" else count_flops
    return [(path, count(arch, args.resolution, args.num_classes)) for path, arch in archs]


def _print_json(costs, counter: str) -> None:
    from workbench.complexity import CONVENTION

    base = costs[0][1]
    payload = {"convention": CONVENTION, "counter": counter, "architectures": [
        {"file": path, **cost.as_dict(), "delta_vs_first": {
            "params": cost.params - base.params, "flops": cost.flops - base.flops, "activations": cost.activations - base.activations}}
        for path, cost in costs]}
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def _print_tables(out, costs, counter: str) -> None:
    if len(costs) > 1:
        out.print(_comparison_table(costs))
    for path, cost in costs:
        out.print(_stage_table(path, cost, counter))


def _check_with_fvcore(out, archs, args, analytic) -> None:
    """fvcore is the reference count; the analytic table is only kept if the trace agrees with every figure."""
    import time

    start = time.perf_counter()
    with out.status("checking against an fvcore trace of the built network…"):
        traced = _costs(archs, args, "fvcore")
    seconds = time.perf_counter() - start
    differences = [line for (path, a), (_, f) in zip(analytic, traced) for line in _differences(path, a, f)]
    if not differences:
        out.print(f"[green]fvcore trace agrees[/] on every stage (params, FLOPs, activations), {seconds:.1f} s")
        return
    out.print("[yellow]The analytic model disagrees with the fvcore trace; fvcore's counts are the reference:[/]")
    for line in differences:
        out.print(f"  {line}")
    _print_tables(out, traced, "fvcore")


def _differences(path, analytic, traced) -> list[str]:
    rows = [(f"{path}: total", analytic, traced)]
    rows += [(f"{path}: {a.name}", a, f) for a, f in zip(analytic.stages, traced.stages)]
    return [f"{label} {field}: analytic {getattr(a, field):,} vs fvcore {getattr(f, field):,}"
            for label, a, f in rows for field in ("params", "flops", "activations") if getattr(a, field) != getattr(f, field)]


def _comparison_table(costs):
    from rich.markup import escape
    from rich.table import Table

    base = costs[0][1]
    table = Table(title=f"Δ against {escape(costs[0][1].name)}")
    for col in ("architecture", "resolution", "params", "Δ params", "FLOPs", "Δ FLOPs", "activations", "Δ act."):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for _, c in costs:
        table.add_row(escape(c.name), str(c.resolution), millions(c.params), signed_percent(c.params, base.params), giga(c.flops),
                      signed_percent(c.flops, base.flops), millions(c.activations), signed_percent(c.activations, base.activations))
    return table


def _stage_table(path, cost, counter: str):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(cost.name)} ({escape(path)}) at {cost.resolution} px: {cost.params:,} params · {giga(cost.flops)} FLOPs · "
                        f"{millions(cost.activations)} activations", caption=f"counted by {counter}")
    for col in ("stage", "block", "blocks", "params", "FLOPs", "activations", "output (C×H×W)"):
        table.add_column(col, justify="left" if col in ("stage", "block") else "right")
    for s in cost.stages:
        table.add_row(s.name, s.block, str(s.blocks), f"{s.params:,}", giga(s.flops), millions(s.activations), _shape(s.output_shape))
    return table


def _flops_by_module(archs, args) -> int:
    from rich.markup import escape
    from rich.table import Table

    from workbench.complexity import CONVENTION
    from workbench.complexity.fvcore_count import module_table

    results = [(path, arch, module_table(arch, args.resolution, args.num_classes)) for path, arch in archs]
    if args.json:
        sys.stdout.write(json.dumps({"convention": CONVENTION, "architectures": [
            {"file": path, "name": arch.name, "modules": rows} for path, arch, rows in results]}, indent=2) + "\n")
        return 0
    out = console()
    out.print(f"[dim]{CONVENTION}[/]")
    for path, arch, rows in results:
        table = Table(title=f"{escape(arch.name)} ({escape(path)}) by module")
        for col in ("module", "type", "params", "FLOPs", "activations"):
            table.add_column(col, justify="left" if col in ("module", "type") else "right")
        for r in rows:
            table.add_row("  " * r["module"].count(".") + r["module"], r["type"], f"{r['params']:,}", giga(r["flops"]), millions(r["activations"]))
        out.print(table)
    return 0


