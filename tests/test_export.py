"""`workbench export`: a trained checkpoint as ONNX (checked with onnxruntime on CPU, free batch size) or TorchScript,
giving the checkpoint's logits within 1e-4; and `workbench latency --runtime onnxruntime` on the exported file."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from workbench.train.predict import load_trained

V2S = ROOT / "architectures/efficientnetv2_s.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real training run (one epoch on a sliver of digits) and its best checkpoint, with EMA weights as evaluated."""
    from workbench.cli.main import main

    out = tmp_path_factory.mktemp("run") / "v2s"
    code = main(["train", str(V2S), "--dataset", "digits", "--set", "scale.width_mult=0.25", "--set", "scale.depth_mult=0.25",
                 "--set", "scale.resolution=16", "--set", "recipe.epochs=1", "--set", "dataset.max_train_images=80",
                 "--set", "dataset.max_val_images=40", "--set", "recipe.ema={\"decay\": 0.9}", "--out", str(out), "--threads", "1",
                 "--quiet"])
    assert code == 0
    return out / "checkpoint_best.pt"


def reference_logits(checkpoint, images: torch.Tensor) -> np.ndarray:
    model, _ = load_trained(checkpoint)
    with torch.no_grad():
        return model(images).numpy()


def test_onnx_export_gives_the_checkpoints_logits_at_any_batch_size(checkpoint, tmp_path, workbench_cli):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    target = tmp_path / "model.onnx"
    code, out, err = workbench_cli("export", checkpoint, "--format", "onnx", "-o", target)
    assert code == 0, err
    assert "checked with onnxruntime (CPU)" in out and "input images (batch, 3, 16, 16)" in out
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and [o.name for o in session.get_outputs()] == ["logits"]
    generator = torch.Generator().manual_seed(7)
    for batch in (1, 2, 5):
        images = torch.randn(batch, 3, 16, 16, generator=generator)
        logits = session.run(["logits"], {"images": images.numpy()})[0]
        assert logits.shape == (batch, 10)
        np.testing.assert_allclose(logits, reference_logits(checkpoint, images), atol=1e-4, rtol=0)
    props = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
    assert json.loads(props["workbench.classes"]) == [str(i) for i in range(10)]

    code, out, err = workbench_cli("latency", target, "--runtime", "onnxruntime", "--rounds", "1", "--warmup", "1",
                                   "--min-run-time", "0.002", "--json")
    assert code == 0, err
    row = json.loads(out)["architectures"][0]
    assert row["resolution"] == 16 and row["median_ms"] > 0 and json.loads(out)["protocol"]["runtime"] == "onnxruntime"


def test_torchscript_export_gives_the_checkpoints_logits(checkpoint, tmp_path, workbench_cli):
    target = tmp_path / "model.pt"
    code, out, err = workbench_cli("export", checkpoint, "--format", "torchscript", "-o", target)
    assert code == 0, err
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(target))
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        np.testing.assert_allclose(loaded(images).numpy(), reference_logits(checkpoint, images), atol=1e-4, rtol=0)


def test_export_refuses_bad_input(checkpoint, tmp_path, workbench_cli):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    cases = [(["export", tmp_path / "none.pt", "--format", "onnx", "-o", tmp_path / "m.onnx"], "not found"),
             (["export", garbage, "--format", "torchscript", "-o", tmp_path / "m.pt"], "not a readable workbench checkpoint"),
             (["export", checkpoint, "--format", "torchscript", "-o", tmp_path], "a folder")]
    for argv, message in cases:
        code, _, err = workbench_cli(*argv)
        assert code == 2 and message in err and "Traceback" not in err, err
    code, _, err = workbench_cli("export", checkpoint, "--format", "tflite", "-o", tmp_path / "m")
    assert code == 2 and "invalid choice" in err


def test_an_export_that_disagrees_is_removed(checkpoint, tmp_path, monkeypatch):
    from workbench.errors import WorkbenchError
    from workbench.train import export

    monkeypatch.setattr(export, "_max_difference", lambda model, run, shape: 1.0)
    with pytest.raises(WorkbenchError, match="differ from the checkpoint's by 1.00e\\+00"):
        export.export_checkpoint(checkpoint, "torchscript", tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
