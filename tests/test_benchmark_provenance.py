"""benchmarks/_provenance.py: one implementation of "the commit a result ran at"."""

import importlib.util
import subprocess
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _provenance():
    spec = importlib.util.spec_from_file_location(
        "_provenance", BENCHMARKS / "_provenance.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(*args):
    try:
        return subprocess.run(
            ["git", *args], cwd=BENCHMARKS, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_commit_is_the_short_or_the_full_head():
    commit = _provenance().commit
    head = _git("rev-parse", "HEAD")
    dirty = "-dirty" if _git("status", "--porcelain", "--untracked-files=no") else ""
    assert commit(full=True) == head + dirty
    assert commit() == _git("rev-parse", "--short", "HEAD") + dirty
    assert head.startswith(commit().removesuffix("-dirty"))
    # Another checkout's (here this one's, named by its root).
    assert commit(root=BENCHMARKS.parent, full=True) == head + dirty


@pytest.mark.parametrize(
    "script",
    [
        "bench_huber.py",
        "estimate_reproduction.py",
        "bench_dnn_study.py",
        "bench_dnn_engine.py",
    ],
)
def test_benchmarks_name_their_commit_through_the_helper(script):
    source = (BENCHMARKS / script).read_text(encoding="utf-8")
    assert "from _provenance import commit" in source
    assert "rev-parse" not in source
