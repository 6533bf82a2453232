"""Benchmarks that measure: `workbench bench` interleaves the compared models and reports medians, IQRs and ratios;
the references (torchvision, timm) are the same networks; bench/bench_loop.py reports loop over bare-step rates."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import ROOT
from workbench.errors import WorkbenchError
from workbench.model import build_model
from workbench.schema import load_architecture
from workbench.schema.recipe import Recipe
from workbench.train import bench
from workbench.train.device import resolve_execution

B0 = ROOT / "architectures" / "efficientnet_b0.json"


def fake_measurements(monkeypatch) -> list[tuple[int, str]]:
    """Replace the timer: each measurement 'takes' a time that names its step; returns the order of measurements."""
    order: list[tuple[int, str]] = []
    subjects: list[bench.Subject] = []
    make_subject = bench._subject

    def recording_subject(*args, **kwargs):
        subjects.append(make_subject(*args, **kwargs))
        return subjects[-1]

    def measure(step, min_run_time):
        index, kind = next((i, k) for i, s in enumerate(subjects) for k, f in s.steps.items() if f is step)
        order.append((index, kind))
        base = {"eval": 0.010, "train": 0.040}[kind] * (1 + index)  # the second model is twice as slow
        return SimpleNamespace(times=[base, base * 1.5, base * 2.0])

    monkeypatch.setattr(bench, "_subject", recording_subject)
    monkeypatch.setattr(bench, "_measure", measure)
    return order


def test_models_are_measured_in_alternation_with_medians_iqrs_and_ratios(monkeypatch):
    order = fake_measurements(monkeypatch)
    arch = load_architecture(B0)
    rows = bench.benchmark(arch, resolution=32, batch=4, rounds=3, warmup=0, num_classes=10, references=("torchvision",))
    assert [r["model"] for r in rows] == ["workbench", "torchvision"] and rows[0]["params"] == rows[1]["params"]
    # every round: eval mirrored (workbench, torchvision, torchvision, workbench), then train the same way
    mirrored = [(0, "eval"), (1, "eval"), (1, "eval"), (0, "eval"), (0, "train"), (1, "train"), (1, "train"), (0, "train")]
    assert order == mirrored * 3
    first, second = rows
    assert first["eval_ratio"] == first["train_ratio"] == 1.0
    assert second["train_ratio"] == pytest.approx(0.5)  # per round, the first model's time over this one's
    assert second["train_ms"] == pytest.approx(2 * first["train_ms"])  # the fake times scale with the model index
    assert first["eval_images_per_s"] == pytest.approx(4 / (first["eval_ms"] / 1000))
    assert all(r[f"{k}_iqr_ms"] >= 0 and r[f"{k}_measurements"] >= 3 for r in rows for k in ("eval", "train"))
    assert {"architecture", "resolution", "batch", "device", "threads", "rounds"} <= set(first) and first["rounds"] == 3


def test_median_and_iqr_of_known_times(monkeypatch):
    monkeypatch.setattr(bench, "_measure", lambda step, min_run_time: SimpleNamespace(times=[0.001, 0.002, 0.003, 0.004, 0.100]))
    row = bench.benchmark(load_architecture(B0), resolution=32, batch=2, rounds=1, warmup=0, num_classes=10)[0]
    assert row["train_ms"] == pytest.approx(3.0) and row["train_iqr_ms"] == pytest.approx(2.0)  # quartiles 2 and 4 ms


def test_real_timing_of_workbench_and_torchvision(monkeypatch):
    rows = bench.benchmark(load_architecture(B0), resolution=32, batch=2, rounds=2, min_run_time=0.01, warmup=1, num_classes=10,
                           references=("torchvision",))
    assert all(r["eval_ms"] > 0 and r["train_ms"] > 0 and r["train_ratio"] > 0 for r in rows)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm (the optional 'reference' extra) is not installed")
def test_timm_reference_is_the_same_network():
    model = bench.reference_model("timm", load_architecture(B0), 10)
    from workbench.model import build_model

    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in build_model(load_architecture(B0), 10).parameters())


def test_missing_timm_and_unknown_names_are_clear_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm then raises ImportError
    with pytest.raises(WorkbenchError, match="--timm needs the optional package timm"):
        bench.reference_model("timm", load_architecture(B0), 10)
    with pytest.raises(WorkbenchError, match="no reference implementation named keras"):
        bench.reference_model("keras", load_architecture(B0), 10)


def test_cli_bench_json_rows_and_the_older_steps_flag(workbench_cli):
    code, out, err = workbench_cli("bench", B0, "--resolution", "32", "--batch", "2", "--steps", "2", "--min-time", "0.01", "--warmup", "0",
                                   "--num-classes", "10", "--torchvision", "--json", "--threads", "1")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["model"] for r in rows] == ["workbench", "torchvision"] and all(r["rounds"] == 2 for r in rows)
    code, out, err = workbench_cli("bench", B0, "--resolution", "32", "--batch", "2", "--rounds", "1", "--min-time", "0.01",
                                   "--num-classes", "10", "--threads", "1")
    assert code == 0, err
    assert "1 interleaved rounds" in out and "IQR" in out and "ratio" in out
    code, _, err = workbench_cli("bench", B0, "--rounds", "0")
    assert code == 2 and "--rounds must be at least 1" in err


def test_bench_loop_prints_loop_over_bare_rates(capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_loop
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert bench_loop.main(["--cases", "proxy", "--repetitions", "2", "--max-train-images", "128", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["case"] == "proxy" and row["batch"] == 64 and row["image_size"] == 16 and row["repetitions"] == 2
    assert len(row["loop_images_per_s"]) == len(row["bare_images_per_s"]) == 2
    assert row["ratio_of_medians"] == pytest.approx(row["loop_median"] / row["bare_median"])
    assert row["ratio_min"] <= row["ratio_median"] <= row["ratio_max"]
    text = bench_loop.report([row])
    assert "loop/bare" in text and "proxy" in text and "goal: loop/bare >= 0.90" in text



def test_each_round_re_places_every_tensor_of_a_cpu_model_and_training_goes_on(monkeypatch):
    exe = resolve_execution(Recipe(), "cpu")
    subject = bench._subject("workbench", lambda: build_model(load_architecture(B0), 10), 3, 32, 2, 10, exe, None)
    subject.steps["train"]()  # the optimiser's state exists from the first step on
    before = [(t.data_ptr(), t.detach().clone()) for t in subject.tensors()]
    subject.relocate()
    after = subject.tensors()
    assert len(after) == len(before) > 3 * 200  # weights, buffers, the batch, AdamW's two moments and step per weight
    assert all(t.data_ptr() != ptr and torch.equal(t, value) for t, (ptr, value) in zip(after, before))
    weight = next(iter(subject.tensors()))
    value = weight.detach().clone()
    subject.steps["train"]()  # the optimiser still updates the model's own weights
    assert not torch.equal(weight, value)

    relocated = []
    monkeypatch.setattr(bench.Subject, "relocate", lambda self: relocated.append(self.source))
    fake_measurements(monkeypatch)
    bench.benchmark(load_architecture(B0), resolution=32, batch=2, rounds=3, warmup=0, num_classes=10, references=("torchvision",))
    assert relocated == ["workbench", "torchvision"] * 3
