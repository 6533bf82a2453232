"""Studies: a study file's trials scheduled on Ray Tune (imports ray lazily).

Modules in order, each importing only those before it: trials (TrialSpec, the trial-building API, grid and random
expansion) <- ledger (the study folder) <- sampling (architecture search) <- optuna (Optuna through Ray Tune) <-
trainable (the Ray Tune trial function) <- runner (prepare, run, settle statuses); cluster and display beside them.
"""

from workbench.study.trials import TrialSpec, load_study

__all__ = ["TrialSpec", "load_study", "prepare", "run_study"]


def prepare(*args, **kwargs):
    from workbench.study.runner import prepare as _prepare

    return _prepare(*args, **kwargs)


def run_study(*args, **kwargs):
    from workbench.study.runner import run_study as _run

    return _run(*args, **kwargs)
