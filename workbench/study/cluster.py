"""Where a study's trials run: a private local Ray, or a Ray cluster joined by address; GPU checks that answer at once."""

from __future__ import annotations

import os

from workbench.errors import WorkbenchError
from workbench.schema.study import Study

# Ray writes its own per-trial CSV/JSON/TensorBoard loggers and changes into trial folders by default; the
# trainer already writes every file the workbench reads, with absolute paths. Ctrl-C must reach the driver as
# KeyboardInterrupt (Ray's own handler would end tuner.fit() quietly, indistinguishable from a finished run).
RAY_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_DISABLE_SIGINT_HANDLER": "1", "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
           "RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1e9",
           "RAY_DEDUP_LOGS": "0"}


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
    import torch

    gpus = torch.cuda.device_count()
    check_gpus(study, gpus, "this machine")
    # address="local": always a private Ray, never a cluster someone else started on this machine. Its processes
    # inherit RAY_ENV from this one (no runtime_env, whose agent would set up an environment per worker).
    ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=gpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=256 * 1024 * 1024)


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
    check_gpus(study, ray.cluster_resources().get("GPU", 0), f"the Ray cluster at {address}")


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
    """Answer at once, before Ray starts, when a local study asks for GPUs this machine lacks."""
    if study.resources.gpus <= 0:
        return
    import torch

    check_gpus(study, torch.cuda.device_count(), "this machine")


def check_gpus(study: Study, available: float, where: str) -> None:
    wanted = study.resources.gpus
    if wanted > 0 and available < wanted:
        raise WorkbenchError([
            f"the study asks for {wanted:g} GPU per trial (resources.gpus) but {where} has {available:g}: "
            "Ray would wait for GPUs forever.",
            "Run on CPU with --allow-cpu, set resources.gpus=0, or pass --address of a Ray cluster with GPUs.",
        ])
