"""Latency: the measurement protocol's structure and cache, the cache key, the parts a network is made of, the latency
table (prediction, its error measures, files, device checks) and the `workbench latency` command.

No assertion here compares two timings (they flake on a shared machine): measurements use tiny networks and a short
protocol, and the tests check what is measured, what is cached, and that a prediction is exactly the table's sum."""

import json

import pytest
import torch

from tests.conftest import ROOT
from workbench.complexity import latency, latency_table
from workbench.complexity.latency import Protocol, Timing, cache_key, measure, summarise
from workbench.complexity.latency_table import LatencyTable, Network, network_content, network_parts, prediction_error
from workbench.errors import WorkbenchError
from workbench.model import build_model
from workbench.schema import load_architecture
from workbench.schema.architecture import Scale

V2S = ROOT / "architectures/efficientnetv2_s.json"
QUICK = Protocol(rounds=1, warmup=1, min_run_time=0.002)


def tiny(**changes):
    arch = load_architecture(V2S).scaled(Scale(width_mult=0.25, depth_mult=0.25, resolution=16))
    return arch.model_copy(update=changes)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))


# --- the protocol and its cache ---------------------------------------------------------------------------------


def test_protocol_refuses_impossible_settings():
    for bad in ({"device": "tpu"}, {"runtime": "tensorrt"}, {"batch": 0}, {"threads": 0}, {"rounds": 0}, {"min_run_time": 0}):
        with pytest.raises(WorkbenchError):
            Protocol(**bad)
    identity = Protocol().identity()
    assert identity["device_name"].startswith("cpu: ") and torch.__version__.startswith(identity["torch"])
    assert {"device", "runtime", "batch", "threads", "torch"} <= set(identity)


def test_summary_statistics_are_ordered_and_deterministic():
    seconds = [0.001 + 0.0001 * ((i * 37) % 11) for i in range(200)]
    first, again = summarise(seconds), summarise(seconds)
    assert first == again  # the bootstrap is seeded
    assert first.ci_low_ms <= first.median_ms <= first.ci_high_ms <= first.p90_ms
    assert first.median_ms == pytest.approx(1000 * sorted(seconds)[99] / 2 + 1000 * sorted(seconds)[100] / 2)
    assert first.samples == 200 and summarise(seconds, interval=False).ci_low_ms is None


def test_the_cache_key_is_the_network_and_the_question_not_the_file():
    subject = latency_table.network_subject(tiny(), 16, 10, "a")
    renamed = latency_table.network_subject(tiny(name="other", dropout=0.5, description="x"), 16, 10, "b")
    assert cache_key(subject, QUICK) == cache_key(renamed, QUICK)  # labels, dropout: not the inference graph
    assert len(cache_key(subject, QUICK)) == 64 and cache_key(subject, QUICK) == cache_key(subject, Protocol(rounds=1, warmup=1, min_run_time=0.002))
    stages = [s.model_copy(update={"kernel": 5}) if i == 2 else s for i, s in enumerate(tiny().stages)]
    others = [latency_table.network_subject(tiny(stages=stages), 16, 10, "k5"), latency_table.network_subject(tiny(), 24, 10, "24px"),
              latency_table.network_subject(tiny(), 16, 100, "100 classes"), latency_table.network_subject(tiny(activation="relu"), 16, 10, "r")]
    protocols = [Protocol(batch=2, rounds=1, warmup=1, min_run_time=0.002), Protocol(threads=2, rounds=1, warmup=1, min_run_time=0.002),
                 Protocol(runtime="onnxruntime", rounds=1, warmup=1, min_run_time=0.002), Protocol(rounds=2, warmup=1, min_run_time=0.002)]
    keys = {cache_key(s, QUICK) for s in others} | {cache_key(subject, p) for p in protocols} | {cache_key(subject, QUICK)}
    assert len(keys) == 1 + len(others) + len(protocols)


def test_the_cache_key_changes_with_the_torch_version(monkeypatch):
    subject = latency_table.network_subject(tiny(), 16, 10, "a")
    before = cache_key(subject, QUICK)
    monkeypatch.setattr(latency, "torch_version", lambda: "0.0.0")
    assert cache_key(subject, QUICK) != before


def test_a_repeated_question_is_answered_from_the_cache(monkeypatch):
    subjects = [latency_table.network_subject(tiny(), 16, 10, "a"), latency_table.network_subject(tiny(), 24, 10, "b")]
    first = measure(subjects, QUICK)
    assert [t.cached for t in first] == [False, False]
    assert all(t.median_ms > 0 and t.p90_ms >= t.median_ms and t.ci_low_ms <= t.median_ms <= t.ci_high_ms for t in first)
    assert all(t.samples >= 1 and t.load is not None for t in first)
    files = sorted((latency.cache_dir()).glob("*.json"))
    assert len(files) == 2 and json.loads(files[0].read_text())["protocol"]["threads"] == 1

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again")

    monkeypatch.setattr(latency, "_time", no_timing)
    again = measure(subjects, QUICK)
    assert [t.cached for t in again] == [True, True]
    assert [t.as_dict() for t in again] == [t.as_dict() for t in first]
    with pytest.raises(AssertionError, match="timed again"):
        measure(subjects[:1], QUICK, use_cache=False)


def test_an_unreadable_cache_entry_is_measured_again():
    subject = latency_table.network_subject(tiny(), 16, 10, "a")
    measure([subject], QUICK)
    (latency.cache_dir() / f"{cache_key(subject, QUICK)}.json").write_text("{not json")
    assert measure([subject], QUICK)[0].cached is False


# --- parts ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, activation", [("efficientnetv2_s", "silu"), ("efficientnet_b0", "silu"), ("v2s_all_fused", "gelu")])
def test_parts_are_the_builders_modules_in_order_and_chain(name, activation):
    arch = load_architecture(ROOT / f"architectures/{name}.json").scaled(Scale(width_mult=0.25, depth_mult=0.5, resolution=32))
    arch = arch.model_copy(update={"activation": activation})
    parts = network_parts(arch, 32, 7)
    model = build_model(arch, 7)
    assert [tuple(p.shape) for part in parts for p in part.build().parameters()] == [tuple(p.shape) for p in model.parameters()]
    assert [p.kind for p in parts] == ["stem"] + ["block"] * len(arch.blocks()) + ["head", "classifier"]
    x = torch.zeros(1, *parts[0].input_shape)
    with torch.no_grad():
        for part, following in zip(parts, parts[1:] + [None]):
            assert tuple(x.shape[1:]) == part.input_shape, part.key
            x = part.build().eval()(x)
        assert tuple(x.shape) == (1, 7)


def test_network_content_ignores_labels_and_regularisation_only():
    base = network_content(tiny(), 16, 10)
    assert base == network_content(tiny(name="x", dropout=0.4), 16, 10)
    assert base != network_content(tiny(), 16, 11) and base != network_content(tiny(width_mult=0.5), 16, 10)


# --- the table ------------------------------------------------------------------------------------------------


def synthetic_table(arch, constant=0.25) -> LatencyTable:
    parts = {p.key: 0.01 * (i + 1) for i, p in enumerate(network_parts(arch, 16, 10))}
    return LatencyTable(QUICK, QUICK.identity(), parts, constant, resolution=16, num_classes=10, space="tiny")


def test_a_prediction_is_the_sum_of_the_parts_plus_the_constant():
    arch = tiny()
    table = synthetic_table(arch)
    keys = [p.key for p in network_parts(arch, 16, 10)]
    assert len(set(keys)) < len(keys)  # repeated blocks: each occurrence counts
    expected = sum(table.parts[k] for k in keys) + 0.25
    prediction = table.predict(arch, 16, 10)
    assert prediction.ms == pytest.approx(expected) and prediction.timed_now == 0


def test_a_part_the_table_lacks_is_timed_once_with_the_tables_protocol(monkeypatch):
    arch = tiny()
    table = synthetic_table(arch)
    asked = []

    def fake_measure(subjects, protocol, **kwargs):
        asked.append(([s.label for s in subjects], protocol))
        return [Timing(1.0, 1.0, None, None, 1) for _ in subjects]

    monkeypatch.setattr(latency_table, "measure", fake_measure)
    before = table.predict(arch, 16, 10).ms
    assert table.predict(arch, 16, 100).ms == pytest.approx(before - 0.01 * len(network_parts(arch, 16, 10)) + 1.0)
    assert len(asked) == 1 and asked[0][0] == [network_parts(arch, 16, 100)[-1].key]
    assert asked[0][0][0].startswith("classifier ") and asked[0][1].min_run_time == table.part_run_time
    table.predict(arch, 16, 100)
    assert len(asked) == 1  # kept


def test_prediction_error_is_mape_and_kendalls_tau():
    mape, tau = prediction_error([1.0, 2.0, 3.0, 4.0], [1.25, 2.0, 2.5, 4.0])
    assert mape == pytest.approx((0.2 + 0 + 0.2 + 0) / 4) and tau == pytest.approx(1.0)
    _, tau = prediction_error([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0])
    assert tau == pytest.approx(1 / 3)
    assert prediction_error([], []) == (None, None) and prediction_error([1.0], [2.0]) == (0.5, None)


def test_a_table_round_trips_and_names_what_differs_on_another_machine(tmp_path):
    table = synthetic_table(tiny())
    path = table.save(tmp_path / "t.json")
    loaded = LatencyTable.load(path)
    assert loaded.parts == table.parts and loaded.constant_ms == table.constant_ms and loaded.protocol == QUICK
    assert loaded.problems(16, 10) == []
    assert any("32 px" in p for p in loaded.problems(32, 10)) and any("classes" in p for p in loaded.problems(16, 1000))
    data = json.loads(path.read_text())
    data["identity"]["device_name"] = "cpu: another processor (64 logical cores)"
    data["identity"]["torch"] = "1.0.0"
    path.write_text(json.dumps(data))
    problems = LatencyTable.load(path).problems()
    assert len(problems) == 2 and "another processor" in problems[0] and "1.0.0" in problems[1]
    path.write_text("{}")
    with pytest.raises(WorkbenchError, match="not a latency table"):
        LatencyTable.load(path)
    with pytest.raises(WorkbenchError, match="not found"):
        LatencyTable.load(tmp_path / "missing.json")


def test_build_table_fits_the_constant_on_fit_networks_and_reports_holdout_error(monkeypatch):
    """With the measurements injected, the constant is the median residual and the holdout error follows exactly."""
    nets = [Network(f"n{i}", tiny(width_mult=w), 16, 10) for i, w in enumerate((0.25, 0.3, 0.4, 0.5, 0.6))]
    parts = [p for n in nets for p in network_parts(n.arch, 16, 10)]
    part_ms = {p.key: 0.01 * (1 + len(p.key) % 7) for p in parts}
    extra = [0.10, 0.20, 0.30, 0.25, 0.25]  # what whole networks cost beyond their parts

    def fake_measure(subjects, protocol, **kwargs):
        out = []
        for s in subjects:
            if "part" in s.content:
                out.append(Timing(part_ms[s.content["part"]], 0, None, None, 1))
            else:
                index = int(s.label[1:])
                total = sum(part_ms[k] for k in s.content["network"])
                out.append(Timing(total + extra[index], 0, None, None, 1))
        return out

    monkeypatch.setattr(latency_table, "measure", fake_measure)
    table = latency_table.build_table(parts, nets[:3], nets[3:], QUICK, resolution=16, num_classes=10)
    assert table.constant_ms == pytest.approx(0.20) and len(table.parts) == len(part_ms)
    assert [r["label"] for r in table.fit] == ["n0", "n1", "n2"] and [r["label"] for r in table.holdout] == ["n3", "n4"]
    for row, residual in zip(table.holdout, extra[3:]):
        assert row["measured_ms"] - row["predicted_ms"] == pytest.approx(residual - 0.20)
    assert table.as_dict()["holdout_error"]["architectures"] == 2 and table.seen() == {r["content"] for r in table.fit}


# --- the command ------------------------------------------------------------------------------------------------

SHORT = ["--rounds", "1", "--warmup", "1", "--min-run-time", "0.002"]


def test_latency_command_prints_json_and_answers_again_from_the_cache(workbench_cli):
    args = ["latency", V2S, "--set", "scale.width_mult=0.25", "--set", "scale.depth_mult=0.25", "--resolution", "16", *SHORT, "--json"]
    code, out, err = workbench_cli(*args)
    assert code == 0, err
    first = json.loads(out)
    row = first["architectures"][0]
    assert row["resolution"] == 16 and row["num_classes"] == 1000 and row["cached"] is False
    assert row["ci_low_ms"] <= row["median_ms"] <= row["ci_high_ms"] and row["p90_ms"] >= row["median_ms"]
    assert first["protocol"] == {"device": "cpu", "runtime": "eager", "batch": 1, "threads": 1, "warmup": 1, "rounds": 1,
                                 "min_run_time": 0.002}
    code, out, _ = workbench_cli(*args)
    again = json.loads(out)["architectures"][0]
    assert again["cached"] is True and again["median_ms"] == row["median_ms"]
    code, out, _ = workbench_cli(*args[:-1])
    assert code == 0 and "answered from the cache" in out and "median ms" in out


def test_latency_command_refuses_bad_requests(tmp_path, workbench_cli):
    table = synthetic_table(tiny()).save(tmp_path / "t.json")
    cases = [
        (["latency", V2S, "-o", tmp_path / "x.json"], "belongs to `workbench latency table"),
        (["latency", V2S, "--predict", table, "--threads", "2"], "--threads 2 (the table was made with 1)"),
        (["latency", V2S, "--predict", tmp_path / "none.json"], "latency table not found"),
        (["latency", tmp_path / "m.onnx"], "with --runtime onnxruntime"),
        (["latency", "table", ROOT / "studies/fused_vs_mb.json"], "has no search block"),
        (["latency", "table", ROOT / "studies/search_v2s_space.json", "--predict", table], "--predict belongs to"),
        (["latency", V2S, "--min-run-time", "-1"], "run time positive"),
    ]
    for argv, message in cases:
        code, out, err = workbench_cli(*argv)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)


def test_predict_prints_predicted_beside_measured_and_the_error_on_unseen_networks(tmp_path, workbench_cli):
    arch = tiny()
    table = synthetic_table(arch)
    table.fit = [{"label": "seen", "content": latency_table.content_hash(network_content(arch, 16, 10)), "measured_ms": 1.0, "sum_ms": 0.8}]
    path = table.save(tmp_path / "t.json")
    files = []
    for i, width in enumerate((1.0, 1.2)):
        data = json.loads(arch.model_dump_json(exclude={"schema_"}))
        data["width_mult"] *= width
        files.append(tmp_path / f"a{i}.json")
        files[-1].write_text(json.dumps(data))
    code, out, err = workbench_cli("latency", *files, "--predict", path, "--json", *SHORT)
    assert code == 0, err
    report = json.loads(out)
    rows = report["architectures"]
    assert rows[0]["seen_by_table"] is True and rows[1]["seen_by_table"] is False
    assert rows[0]["predicted_ms"] == pytest.approx(table.predict(arch, 16, 10).ms) and rows[0]["num_classes"] == 10
    assert report["predictor"]["unseen"] == 1 and report["predictor"]["mape"] == pytest.approx(abs(rows[1]["error"]))
