"""Where a study's trials run: a private local Ray, or a Ray cluster joined by address; resource checks that answer
at once; what one trial asks of Ray and how many trials fit at once.

A trial of `resources.workers` 1 is one Ray Tune trial process with `cpus` and `gpus`. With N > 1 workers the Tune
trial only drives a Ray Train run (workbench.train.distributed) and asks for DRIVER_CPUS (Tune refuses a request of
nothing), which its N Ray Train workers leave out of theirs: each asks for `gpus` and cpus - DRIVER_CPUS / N, so a
trial takes N x cpus CPUs in all and 2 workers of 1 CPU fit on 2 cores. Tune counts only the drivers, so the runner
caps the trials running at once at what the workers' resources allow (Ray's Train-in-Tune guide: set
max_concurrent_trials).
"""

from __future__ import annotations

import os
import time

from workbench.errors import WorkbenchError
from workbench.schema.study import Resources, Study
from workbench.train.distributed import Workers

# Ray writes its own per-trial CSV/JSON/TensorBoard loggers and changes into trial folders by default; the
# trainer already writes every file the workbench reads, with absolute paths. Ctrl-C must reach the driver as
# KeyboardInterrupt (Ray's own handler would end tuner.fit() quietly, indistinguishable from a finished run).
RAY_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_DISABLE_SIGINT_HANDLER": "1", "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
           "RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1e9",
           "RAY_DEDUP_LOGS": "0", "RAY_TRAIN_V2_ENABLED": "1"}
# Tune's trial actors always carry a runtime_env (Ray's tune/execution/class_cache.py sets env vars on them), so they
# never take the default workers a local Ray prestarts for its first driver: those would only compete for the cores
# while the trials start (1.3 s of the demo's start on 2 cores, bench/README.md).
LOCAL_SYSTEM_CONFIG = {"prestart_worker_first_driver": False}
DRIVER_CPUS = 0.01  # the Tune trial that drives a data-parallel trial's Ray Train workers mostly waits


def trial_resources(resources: Resources) -> dict[str, float]:
    """What the Tune trial itself asks for (tune.with_resources)."""
    if resources.workers > 1:
        return {"cpu": DRIVER_CPUS, "gpu": 0.0}
    return {"cpu": resources.cpus, "gpu": resources.gpus}


def trial_workers(resources: Resources) -> Workers | None:
    """The Ray Train workers of a data-parallel trial (None: the trial trains in its own process)."""
    if resources.workers == 1:
        return None
    return Workers(resources.workers, resources.cpus, resources.gpus, driver_cpus=DRIVER_CPUS)


def trials_at_once(resources: Resources, cpus: float, gpus: float) -> int:
    """How many trials fit at once into `cpus` and `gpus` (0: not even one; at most MAX_AT_ONCE)."""
    fits = _times(cpus, resources.workers * resources.cpus)
    if resources.gpus > 0:
        fits = min(fits, _times(gpus, resources.workers * resources.gpus))
    return fits


MAX_AT_ONCE = 1_000_000  # a request of a few femto-CPUs fits any number of times; the count says so, finitely


def _times(have: float, need: float) -> int:
    return int(min(have / need + 1e-9, MAX_AT_ONCE))


def machine_capacity(study: Study) -> tuple[int, int, int]:
    """(trials that fit at once, CPUs, GPUs) of this machine; GPUs are counted (by torch) only for a GPU study."""
    cpus, gpus = os.cpu_count() or 1, 0
    if study.resources.gpus > 0:
        import torch

        gpus = torch.cuda.device_count()
    return trials_at_once(study.resources, cpus, gpus), cpus, gpus


def concurrent_trials(study: Study, cluster: dict[str, float]) -> int | None:
    """max_concurrent_trials for Tune: as the study says, else for data-parallel trials what the workers' resources
    allow on the cluster (Tune would otherwise start a driver per trial, each waiting for its workers)."""
    if study.max_concurrent_trials is not None or study.resources.workers == 1:
        return study.max_concurrent_trials
    return max(1, trials_at_once(study.resources, cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)))


def start_ray(study: Study, address: str | None) -> None:
    """Join the cluster at `address` (or $RAY_ADDRESS), else start a private Ray on this machine."""
    import ray

    os.environ.update(RAY_ENV)
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        ray.shutdown()
    if address and address != "local":
        _join(study, address)
        return
    gpus = 0
    if study.resources.gpus > 0:  # a CPU study's driver never imports torch (1.3 s of its start: bench/README.md)
        import torch

        gpus = torch.cuda.device_count()
    check_resources(study, os.cpu_count() or 1, gpus, "this machine")
    # address="local": always a private Ray, never a cluster someone else started on this machine. Its processes
    # inherit RAY_ENV from this one (no runtime_env, whose agent would set up an environment per worker).
    ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=gpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, object_store_memory=256 * 1024 * 1024, _system_config=LOCAL_SYSTEM_CONFIG)


def stop_ray(timings: dict[str, float] | None = None) -> None:
    """Shut down this process's Ray and sweep the machine's dataset copies nobody uses any more; timings["ray_shutdown"]
    gets its seconds. In the driver's own thread, never a background one: a Ray object that the garbage collector
    frees while ray.shutdown is under way elsewhere ends the process ("The core worker has already been shutdown")."""
    import ray

    from workbench.shm import sweep

    clock = time.perf_counter()
    ray.shutdown()  # stops the trial actors; their folders keep the last finished epoch
    sweep()
    if timings is not None:
        timings["ray_shutdown"] = time.perf_counter() - clock


def _join(study: Study, address: str) -> None:
    import ray

    _probe(address)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, runtime_env={"env_vars": RAY_ENV})
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
        raise WorkbenchError([
            f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}",
            "Is `ray start --head` running there, and does this machine have the cluster's auth token "
            "(~/.ray/auth_token, or RAY_AUTH_MODE=disabled on both sides of a trusted network)?",
        ]) from None
    cluster = ray.cluster_resources()
    check_resources(study, cluster.get("CPU", 0), cluster.get("GPU", 0), f"the Ray cluster at {address}")


def _probe(address: str) -> None:
    """ray.init(address=...) retries an unreachable head for minutes; a plain TCP connect answers in seconds."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise WorkbenchError([f"no Ray cluster answers at {address} ({exc.strerror or exc})",
                              "Start one with `ray start --head --port=PORT` (see README: On a Ray cluster)."]) from None


def check_gpus_available(study: Study) -> None:
    """Answer at once, before Ray starts, when a local study asks for more GPUs, CPUs or workers than this machine has."""
    gpus = 0
    if study.resources.gpus > 0:
        import torch

        gpus = torch.cuda.device_count()
    check_resources(study, os.cpu_count() or 1, gpus, "this machine")


def check_resources(study: Study, cpus: float, gpus: float, where: str) -> None:
    """Refuse a trial that could never start on `where` (Ray would wait for its resources forever)."""
    check_gpus(study, gpus, where)
    resources = study.resources
    need = resources.workers * resources.cpus
    if need > cpus:
        asked = (f"{resources.workers} workers x {resources.cpus:g} CPU per trial (resources.workers, resources.cpus)"
                 if resources.workers > 1 else f"{resources.cpus:g} CPU per trial (resources.cpus)")
        raise WorkbenchError([f"the study asks for {asked} but {where} has {cpus:g}: Ray would wait for CPUs forever.",
                              "Lower resources.cpus or resources.workers, or pass --address of a Ray cluster with more CPUs."])


def check_gpus(study: Study, available: float, where: str) -> None:
    resources = study.resources
    wanted = resources.workers * resources.gpus
    if wanted > 0 and available < wanted:
        asked = (f"{resources.workers} workers x {resources.gpus:g} GPU per trial (resources.workers, resources.gpus)"
                 if resources.workers > 1 else f"{wanted:g} GPU per trial (resources.gpus)")
        raise WorkbenchError([
            f"the study asks for {asked} but {where} has {available:g}: Ray would wait for GPUs forever.",
            "Run on CPU with --allow-cpu, set resources.gpus=0" + (" or fewer resources.workers" if resources.workers > 1 else "")
            + ", or pass --address of a Ray cluster with GPUs.",
        ])
