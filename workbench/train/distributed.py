"""Data-parallel trials on Ray Train: one trial on N workers with PyTorch DDP.

    result = fit_on_workers(job, "runs/v2s", Workers(2), storage=Path("runs/.ray_train"), name="v2s")

Ray Train's TorchTrainer (Ray Train V2, RAY_TRAIN_V2_ENABLED=1) starts N worker processes, each with
`ScalingConfig.resources_per_worker`, sets up torch.distributed among them (gloo on CPU, nccl on GPU) and runs
`worker_loop` on each: the one training loop, `workbench.train.fit`, as rank r of N (workbench.train.ranks). Rank 0
trains into the trial folder exactly as a one-process run does (lock, commit protocol, resume), the other ranks never
write. Each epoch every rank calls ray.train.report with the same all-reduced metrics row; inside a Ray Tune trial
a TuneReportCallback passes rank 0's on to Tune (workbench.study.trainable), as Ray's "Hyperparameter Tuning with
Ray Tune" guide for Train V2 lays out.

Ray Train keeps a small run folder of its own under `storage` (no checkpoints: the trial folder is the checkpoint,
and a failed run resumes from its checkpoint_last.pt when it is started again; Ray Train itself retries nothing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import trialdir as files
from workbench.errors import WorkbenchError
from workbench.schema.recipe import TrainJob

TRAIN_V2 = {"RAY_TRAIN_V2_ENABLED": "1"}
Report = Callable[[dict[str, Any]], dict[str, Any]]  # a metrics row (with "finished") -> what ray.train.report gets


@dataclass(frozen=True)
class Workers:
    """N data-parallel workers of one trial and the resources each takes (resources.workers, cpus, gpus)."""

    count: int
    cpus: float = 1.0
    gpus: float = 0.0
    driver_cpus: float = 0.0  # CPUs of the process driving them (a Ray Tune trial) that the workers leave out
    threads_per_worker: int | None = None  # torch threads of each; default the whole CPUs it asks for


    @property
    def use_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def backend(self) -> str:
        return "nccl" if self.use_gpu else "gloo"

    @property
    def threads(self) -> int:
        """torch CPU threads of each worker."""
        return self.threads_per_worker or max(1, int(self.cpus))

    def resources(self) -> dict[str, float]:
        """What each worker asks Ray for."""
        return {"CPU": self.cpus - self.driver_cpus / self.count, **({"GPU": self.gpus} if self.use_gpu else {})}


@dataclass(frozen=True)
class WorkersResult:
    status: dict[str, Any]  # the trial's final status.json
    last_report: dict[str, Any]  # the last metrics rank 0 reported ({} when the run trained no epoch)


def fit_on_workers(job: TrainJob, out_dir: str | Path, workers: Workers, *, storage: Path, name: str,
                   report: Report | None = None, callbacks: Sequence[Any] = (), trial: dict[str, Any] | None = None,
                   resume: bool = True, progress: bool = False, device: str | None = None) -> WorkersResult:
    """Train `job` into `out_dir` on `workers` through Ray Train (Ray must be initialised).

    report: turns each epoch's metrics row into what every rank passes to ray.train.report (default: the row's
    numbers); callbacks: Ray Train callbacks, e.g. Tune's TuneReportCallback. progress: rank 0 prints its epoch lines
    (to its Ray worker log, or through Ray to the driver's terminal). device: as fit's, for CPU workers (GPU
    workers train on the GPU Ray Train gives each).
    A failure of the run is raised as WorkbenchError with rank 0's reason (its status.json says the same).
    """
    os.environ.update(TRAIN_V2)
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    folder = Path(out_dir).resolve()
    config = {"job": job.model_dump(mode="json"), "out": str(folder), "threads": workers.threads, "report": report,
              "trial": trial, "resume": resume, "progress": progress, "device": device}
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config=config,
        torch_config=TorchConfig(backend=workers.backend),
        scaling_config=ray.train.ScalingConfig(num_workers=workers.count, use_gpu=workers.use_gpu,
                                               resources_per_worker=workers.resources()),
        run_config=ray.train.RunConfig(name=name, storage_path=str(Path(storage).resolve()), callbacks=list(callbacks),
                                       failure_config=ray.train.FailureConfig(max_failures=0),
                                       logging_config=ray.train.LoggingConfig(log_level="WARNING")),
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as exc:
        raise WorkbenchError(failure_lines(exc, folder)) from None
    return WorkersResult(files.read_json(folder / files.STATUS) or {}, dict(result.metrics or {}))


def worker_loop(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs: fit as this worker's rank, reporting every epoch to Ray Train."""
    import ray.train
    import ray.train.torch

    from workbench.train.loop import fit
    from workbench.train.ranks import World

    device = ray.train.torch.get_device()
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)  # nccl's collectives (barrier, object broadcasts) use the current device
    world = World.current(device)
    report = config["report"] or numbers

    def on_epoch(metrics: dict[str, Any], _folder: Path) -> None:
        ray.train.report(report(metrics))  # every rank reports the same row: Ray Train waits for all of them

    fit(TrainJob.model_validate(config["job"]), config["out"], on_epoch=on_epoch, device=world_device(world) or config["device"],
        progress=config["progress"], resume=config["resume"], trial=config["trial"], threads=config["threads"], world=world)


def world_device(world) -> str | None:
    """This rank's device: its GPU under nccl (Ray Train makes one visible per worker), else as the recipe says."""
    return str(world.device) if world.backend == "nccl" else None


def numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a metrics row (Ray's results are flat scalars)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def failure_lines(exc: BaseException, folder: Path) -> list[str]:
    """Why a Ray Train run failed: the reason rank 0 wrote into status.json, else the first worker's error."""
    status = files.read_json(folder / files.STATUS)
    if isinstance(status, dict) and status.get("status") == files.FAILED and status.get("reason"):
        return [f"{folder}: {status['reason']}"]
    failures = getattr(exc, "worker_failures", None) or {}
    for rank in sorted(failures):
        error = failures[rank]
        while getattr(error, "cause", None) is not None and not isinstance(error, WorkbenchError):
            error = error.cause
        if isinstance(error, WorkbenchError):
            return error.lines
        return [f"worker {rank} of the data-parallel run failed: {type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"]
    return [str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__]
