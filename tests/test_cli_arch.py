"""`workbench schema | validate | show | flops` as a user runs them, including bad input."""

import json
import subprocess
import sys
import time

from tests.conftest import ARCHITECTURES, ROOT

WORKBENCH = [sys.executable, "-m", "workbench.cli.main"]


def test_help_is_instant_and_imports_no_heavy_module():
    code = ("import sys, time; t = time.perf_counter(); from workbench.cli.main import build_parser; build_parser(); "
            "print(time.perf_counter() - t); print(sorted({'torch', 'ray', 'fvcore', 'pandas', 'matplotlib'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    assert float(out[0]) < 1.0
    assert out[1] == "[]"
    start = time.perf_counter()
    help_run = subprocess.run(WORKBENCH + ["--help"], cwd=ROOT, capture_output=True, text=True)
    assert help_run.returncode == 0 and "flops" in help_run.stdout
    assert time.perf_counter() - start < 5  # interpreter start included; the parser itself is checked above


def test_flops_json_for_several_files(workbench_cli):
    code, out, _ = workbench_cli("flops", ARCHITECTURES / "efficientnetv2_s.json", ARCHITECTURES / "half_layers.json", "--resolution", "96", "--json")
    assert code == 0
    payload = json.loads(out)
    first, second = payload["architectures"]
    assert "batch norm" in payload["convention"]
    assert first["name"] == "efficientnetv2_s" and first["resolution"] == 96
    assert second["delta_vs_first"]["flops"] == second["flops"] - first["flops"] < 0
    assert [s["name"] for s in second["stages"]][:2] == ["stem", "stage1"]
    assert sum(s["params"] for s in second["stages"]) == second["params"]


def test_flops_table_header_and_rows(workbench_cli):
    code, out, _ = workbench_cli("flops", ARCHITECTURES / "half_layers.json", "--resolution", "64", "--set", "scale.width_mult=0.5")
    assert code == 0
    assert "multiply-adds of conv and linear layers" in out and "batch norm" in out
    for row in ("stem", "stage1", "stage6", "head"):
        assert row in out


def test_flops_table_comes_from_the_analytic_model_then_fvcore_confirms_it(workbench_cli):
    code, out, _ = workbench_cli("flops", ARCHITECTURES / "half_layers.json", "--resolution", "64")
    assert code == 0
    assert out.index("counted by analytic") < out.index("fvcore trace agrees")
    assert "counted by fvcore" not in out


def test_flops_prints_fvcore_table_when_the_analytic_model_disagrees(workbench_cli, monkeypatch):
    import dataclasses

    import workbench.complexity as complexity

    real = complexity.analytic_cost
    monkeypatch.setattr(complexity, "analytic_cost", lambda *a: dataclasses.replace(real(*a), flops=1))
    code, out, _ = workbench_cli("flops", ARCHITECTURES / "half_layers.json", "--resolution", "64")
    assert code == 0
    assert "disagrees" in out and "total flops: analytic 1 vs fvcore" in out
    assert "counted by fvcore" in out


def test_flops_counter_choice(workbench_cli):
    analytic = json.loads(workbench_cli("flops", ARCHITECTURES / "half_layers.json", "--counter", "analytic", "--json")[1])
    traced = json.loads(workbench_cli("flops", ARCHITECTURES / "half_layers.json", "--json")[1])
    assert (analytic["counter"], traced["counter"]) == ("analytic", "fvcore")
    assert analytic["architectures"][0]["flops"] == traced["architectures"][0]["flops"]
    code, out, _ = workbench_cli("flops", ARCHITECTURES / "half_layers.json", "--resolution", "64", "--counter", "fvcore")
    assert code == 0 and "counted by fvcore" in out and "agrees" not in out


def test_flops_by_module(workbench_cli):
    code, out, _ = workbench_cli("flops", ARCHITECTURES / "efficientnet_b0.json", "--resolution", "64", "--by", "module", "--json")
    assert code == 0
    modules = {row["module"]: row for row in json.loads(out)["architectures"][0]["modules"]}
    assert modules["features.1.0"]["type"] == "MBConv"
    assert modules["classifier.1"]["flops"] == 1280 * 1000


def test_show_prints_the_scaled_stage_table(workbench_cli):
    code, out, _ = workbench_cli("show", ARCHITECTURES / "efficientnetv2_s.json", "--set", "scale.width_mult=0.25", "--set", "scale.depth_mult=0.25")
    assert code == 0
    assert "width ×0.25" in out and "12 blocks" in out


def test_validate_good_and_bad(tmp_path, workbench_cli):
    bad = json.loads((ARCHITECTURES / "efficientnetv2_s.json").read_text())
    bad["stages"][3]["in_channels"] = 48
    bad["stages"][0]["kernal"] = 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, out, err = workbench_cli("validate", ARCHITECTURES / "efficientnet_b0.json", path)
    assert code == 2
    assert "ok" in out and "efficientnet_b0.json" in out
    assert f"{path}: stages[0].kernal: unknown field" in err
    assert "Traceback" not in err


def test_bad_input_exits_2_without_traceback(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "name": "x",\n  "stages": [\n}')
    schema_error = tmp_path / "schema.json"
    schema_error.write_text(json.dumps({"name": "x", "stages": [{"block": "mbconv", "expand": 0, "kernel": 3, "stride": 1,
                                                                  "in_channels": 8, "out_channels": 8, "layers": 1}]}))
    cases = [
        (tmp_path / "missing.json", "missing.json: file not found"),
        (broken, "broken.json: invalid JSON at line 4, column 1"),
        (schema_error, "schema.json: stages[0].expand: Input should be greater than or equal to 1"),
    ]
    for path, message in cases:
        run = subprocess.run(WORKBENCH + ["flops", str(path)], cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        assert message in run.stderr
        assert "Traceback" not in run.stderr


def test_schema_command_prints_json_schema(workbench_cli):
    code, out, _ = workbench_cli("schema")
    schema = json.loads(out)
    assert schema["additionalProperties"] is False
    assert "$schema" in schema["properties"] and "stages" in schema["required"]
