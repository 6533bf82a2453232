"""Studies: expand a study file into trials and schedule them on Ray Tune (imports ray lazily)."""

from workbench.study.trials import TrialSpec, expand, load_study

__all__ = ["TrialSpec", "expand", "load_study", "run_study"]


def run_study(*args, **kwargs):
    from workbench.study.runner import run_study as _run

    return _run(*args, **kwargs)
