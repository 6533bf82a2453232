"""recipe.compile: torch.compile of the model, on CPU here (inductor's C++ backend), and its checkpoints plain."""

import csv

import torch

from tests.test_train_helpers import quick_fit, tiny_arch, tiny_job


def test_a_compiled_run_trains_and_its_checkpoint_is_the_plain_model(tmp_path):
    """One epoch compiled; the checkpoint loads strictly into an uncompiled model whose predictions on the val split
    are the ones the compiled evaluation wrote."""
    from workbench.data import load_dataset
    from workbench.data.transforms import Normalizer, eval_images
    from workbench.model import build_model

    job = tiny_job(epochs=1, train_images=128, val_images=40, compile=True)
    assert quick_fit(job, tmp_path)["status"] == "completed"
    state = torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)["model"]
    assert not any(key.startswith("_orig_mod.") for key in state)
    model = build_model(tiny_arch(), 10).eval()
    model.load_state_dict(state)  # strict: the keys of an uncompiled model
    data = load_dataset(job.dataset, 1, 16)
    with torch.no_grad():
        logits = model(Normalizer(1, torch.device("cpu"))(eval_images(data.val_images, 16)))
    with open(tmp_path / "val_predictions.csv") as fh:
        written = [int(row["pred"]) for row in csv.DictReader(fh)]
    assert sum(p == w for p, w in zip(logits.argmax(1).tolist(), written)) >= len(written) - 1  # compiled kernels round differently
