"""Four trials at 0.25 GPU against one trial at 1 GPU: total training images/s and GPU utilisation (issue 17).

    python3 bench/gpu/fractional.py            # on the GPU machine (bench/gpu/run.sh runs it)
    python3 bench/gpu/fractional.py --dry-run  # CPU, tiny: two trials at 1 CPU against one at 2 CPUs

Both runs train the same job (V2-S at 224 px on digits upsampled, 6 epochs); the shared run starts four copies with
four seeds. Total img/s is the sum over trials of their training images/s (status.json), each measured while the
others ran; GPU utilisation is sampled with NVML every half second while the study runs. One JSON line is printed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def study(seeds: int, gpus: float, cpus: float, dry: bool) -> dict:
    scale = {"width_mult": 0.25, "depth_mult": 0.25, "resolution": 16} if dry else {"width_mult": 1, "depth_mult": 1, "resolution": 224}
    recipe = {"epochs": 1 if dry else 6, "batch_size": 32 if dry else 64}
    dataset = {"name": "digits", "max_train_images": 64 if dry else None, "max_val_images": 32 if dry else 128}
    return {"name": f"fractional_{seeds}x{gpus:g}", "description": "bench", "dataset": dataset, "scale": scale, "recipe": recipe,
            "variants": [{"name": "v2s", "architecture": str(ROOT / "architectures/efficientnetv2_s.json")}],
            "seeds": list(range(seeds)), "resources": {"cpus": cpus, "gpus": gpus}}


class Utilisation:
    """Mean GPU utilisation (%) sampled with NVML in a thread; None without a GPU."""

    def __init__(self):
        self.samples: list[int] = []
        self.stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.nvml = pynvml
        except Exception:  # no NVML (a CPU machine): report no utilisation rather than fail the figure
            self.nvml = None

    def __enter__(self):
        if self.nvml is not None:
            threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.5):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __exit__(self, *exc) -> None:
        self.stop.set()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def run(seeds: int, gpus: float, cpus: float, dry: bool) -> dict:
    from workbench.study.runner import run_study
    from workbench.trialdir import status_of

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.json"
        path.write_text(json.dumps(study(seeds, gpus, cpus, dry)))
        with Utilisation() as utilisation:
            started = time.perf_counter()
            outcome = run_study(path, out=str(Path(tmp) / "results"), display=False, allow_cpu=dry)
            wall = time.perf_counter() - started
        statuses = [status_of(outcome.folder / "trials" / t) for t in outcome.trials]
    rates = [s.get("train_images_per_s") or 0.0 for s in statuses]
    return {"trials": seeds, "gpus_per_trial": gpus, "total_images_per_s": sum(rates), "per_trial_images_per_s": rates,
            "gpu_utilisation_percent": utilisation.mean, "study_wall_s": wall, "statuses": [s.get("status") for s in statuses]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny: two trials at 1 CPU against one at 2 CPUs")
    args = parser.parse_args()
    if args.dry_run:
        shared, whole = run(2, 0.0, 1.0, True), run(1, 0.0, 2.0, True)
    else:
        shared, whole = run(4, 0.25, 3.0, False), run(1, 1.0, 12.0, False)
    print(json.dumps({"figure": "fractional", "label": "4 trials at 0.25 GPU vs 1 at 1 GPU" if not args.dry_run else "dry run on CPU",
                      "shared": shared, "whole": whole,
                      "throughput_ratio": shared["total_images_per_s"] / whole["total_images_per_s"] if whole["total_images_per_s"] else None}))


if __name__ == "__main__":
    main()
