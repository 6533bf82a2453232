import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURES = ROOT / "architectures"
PRESETS = {
    **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
    "efficientnetv2_s": "efficientnet_v2_s",
    "efficientnetv2_m": "efficientnet_v2_m",
    "efficientnetv2_l": "efficientnet_v2_l",
}

# The longest test files, first: `make test` runs files on 2 processes (pytest-xdist, --dist loadfile) and hands
# them out in this order, so the long ones start at once and the short ones fill the gaps.
LONGEST_FILES = ["test_readme.py", "test_gpu_batch.py", "test_study_statuses.py", "test_distributed_study.py", "test_seeding_run.py",
                 "test_study_run.py", "test_config_fuzz.py", "test_crash_consistency.py", "test_study_failures.py"]

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def private_data_copies(tmp_path, monkeypatch):
    """A disk cache and a shared-copy folder of this test's own, and no dataset held in memory before or after;
    yields the shared-copy folder (workbench.data.shared)."""
    from workbench.data import clear_memory

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBENCH_SHM", str(tmp_path / "shm"))
    (tmp_path / "shm").mkdir()
    clear_memory()
    yield tmp_path / "shm"
    clear_memory()


@pytest.fixture
def workbench_cli():
    """Run `workbench ...` in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from workbench.cli.main import main

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse usage errors
                code = exc.code
        return code, out.getvalue(), err.getvalue()

    return run


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order
