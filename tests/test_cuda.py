"""The CUDA path (issue 17): mixed precision, channels_last, torch.compile, fractional-GPU trials, out of memory.

Marked `cuda` and skipped without a CUDA device; bench/gpu/run.sh runs them on a lent GPU (`pytest -m cuda`).
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import ROOT
from tests.test_train_helpers import quick_fit, tiny_job
from workbench.trialdir import read_metrics

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
ARCH = str(ROOT / "architectures/efficientnetv2_s.json")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_lowers_the_loss(tmp_path, amp):
    job = tiny_job(epochs=4, train_images=512, val_images=120, device="cuda", amp=amp, schedule={"warmup_epochs": 0})
    status = quick_fit(job, tmp_path)
    rows = read_metrics(tmp_path)
    assert status["status"] == "completed" and ("bf16" if amp == "bf16" else "fp16") in status["device"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and all(r["train_loss"] == r["train_loss"] for r in rows)


def test_channels_last_and_compile_give_the_eval_logits_of_eager_fp32():
    from workbench.model import build_model
    from workbench.schema import load_architecture
    from workbench.schema.architecture import Scale

    torch.manual_seed(0)
    arch = load_architecture(ARCH).scaled(Scale(width_mult=0.5, depth_mult=0.5, resolution=128))
    model = build_model(arch, 10).cuda().eval()
    images = torch.randn(8, 3, 128, 128, device="cuda")
    with torch.no_grad():
        reference = model(images).float()
        scale = reference.abs().max().item()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            amp = model(images).float()
        fast = model.to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            amp_cl = fast(images.contiguous(memory_format=torch.channels_last)).float()
            compiled = torch.compile(fast)(images.contiguous(memory_format=torch.channels_last)).float()
    # bf16 keeps 8 bits of mantissa: about 1 % of the largest logit, after a whole network of rounding
    for name, logits in (("bf16", amp), ("bf16 + channels_last", amp_cl), ("bf16 + channels_last + compile", compiled)):
        assert (logits - reference).abs().max().item() <= 0.05 * scale + 1e-3, name


def test_a_compiled_amp_run_trains(tmp_path):
    job = tiny_job(epochs=2, train_images=256, val_images=120, device="cuda", amp="bf16", compile=True, channels_last=True)
    assert quick_fit(job, tmp_path)["status"] == "completed"


def study_file(tmp_path, variants, **fields):
    study = {"name": "cuda", "description": "test", "dataset": {"name": "digits", "max_train_images": 1024, "max_val_images": 200},
             "scale": {"width_mult": 0.5, "depth_mult": 0.5, "resolution": 64}, "recipe": {"epochs": 15, "batch_size": 64},
             "variants": variants, "resources": {"cpus": 2, "gpus": 0.25}, **fields}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    return path


def test_four_trials_share_one_gpu_at_a_quarter_each(tmp_path):
    from workbench.study.runner import run_study

    path = study_file(tmp_path, [{"name": "v2s", "architecture": ARCH}], seeds=[0, 1, 2, 3])
    outcome = run_study(path, out=str(tmp_path / "res"), display=False)
    assert not outcome.failed and not outcome.interrupted
    folders = [tmp_path / "res" / "trials" / t for t in outcome.trials]
    started = [(f / "config.json").stat().st_mtime for f in folders]
    ended = [(f / "status.json").stat().st_mtime for f in folders]
    assert all(json.loads((f / "status.json").read_text())["status"] == "completed" for f in folders)
    assert max(started) < min(ended)  # at one moment all four were training on the one GPU


def test_an_out_of_memory_trial_fails_alone_with_the_reason(tmp_path):
    from workbench.study.runner import run_study

    huge = {"name": "huge", "architecture": str(ROOT / "architectures/efficientnetv2_l.json"),
            "override": {"scale.width_mult": 2.0, "scale.depth_mult": 1.0, "scale.resolution": 512, "recipe.batch_size": 1024}}
    path = study_file(tmp_path, [{"name": "ok", "architecture": ARCH}, huge], recipe={"epochs": 2, "batch_size": 64},
                      dataset={"name": "digits", "max_train_images": 1024, "max_val_images": 64})
    outcome = run_study(path, out=str(tmp_path / "res"), display=False)
    statuses = {t: json.loads((tmp_path / "res" / "trials" / t / "status.json").read_text()) for t in outcome.trials}
    assert statuses["ok-s0"]["status"] == "completed"
    assert statuses["huge-s0"]["status"] == "failed" and "out of memory" in statuses["huge-s0"]["reason"]
