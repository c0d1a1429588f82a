"""Fault tolerance: kill ``skpoison evaluate`` at random points, rerun, same results.

A reference run of a small study gives ``results.csv``. Then, repeatedly, the
same command is started in a fresh folder, killed (SIGKILL, no chance to
clean up) after a random delay, and rerun to completion. Each time:

- every unit file left by the killed run is complete JSON (atomic writes);
- the rerun's ``results.csv`` is byte-identical to the reference;
- no temporary file is left anywhere in the output folder.

SIGINT (Ctrl-C) is tested too: exit status 130, a message saying how to
resume, and the same final results. The default run kills twice; the
``slow`` variant kills eight times.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import record

COMMAND = [
    sys.executable, "-m", "skpoison.cli", "evaluate", "--dataset", "synthetic",
    "--alphas", "1", "0.5", "--ratios", "0", "0.1", "0.2", "--defenses", "none",
    "trim", "--reps", "3", "--n-outer-steps", "3", "--no-progress",
]  # fmt: skip


def _run(out: Path, timeout=240):
    return subprocess.run(
        [*COMMAND, "--out", str(out)], capture_output=True, text=True, timeout=timeout
    )


def _start(out: Path):
    return subprocess.Popen(
        [*COMMAND, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _leftovers(out: Path):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name)


def _check_units_complete(out: Path):
    units = sorted((out / "units").glob("*.json")) if (out / "units").exists() else []
    for unit in units:
        json.loads(unit.read_text(encoding="utf-8"))  # raises on a partial file
    return len(units)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    t0 = time.perf_counter()
    proc = _run(out)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert _leftovers(out) == []
    return (out / "results.csv").read_bytes(), elapsed, _check_units_complete(out), out


def _kill_and_resume(tmp_path, reference, n_kills, seed):
    expected, elapsed, n_units, _ = reference
    rng = np.random.default_rng(seed)
    # Spread the kills over the run: start-up, the units, the final writes.
    delays = rng.uniform(0.2, 1.0, size=n_kills) * elapsed
    for i, delay in enumerate(delays):
        out = tmp_path / f"kill{i}"
        proc = _start(out)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        done = _check_units_complete(out)
        assert done <= n_units
        rerun = _run(out)
        assert rerun.returncode == 0, rerun.stderr
        record(
            "skpoison evaluate", "kill -9 and resume", f"{done}/{n_units} units saved"
        )
        assert (out / "results.csv").read_bytes() == expected, (
            f"kill after {delay:.2f} s ({done} units saved): different results"
        )
        assert _leftovers(out) == [], f"temporary files left: {_leftovers(out)}"


def test_kill_and_resume_gives_identical_results(tmp_path, reference):
    _kill_and_resume(tmp_path, reference, n_kills=2, seed=0)


@pytest.mark.slow
def test_kill_and_resume_many_times(tmp_path, reference):
    _kill_and_resume(tmp_path, reference, n_kills=8, seed=1)


def test_ctrl_c_saves_and_resumes(tmp_path, reference):
    expected, elapsed, _, _ = reference
    out = tmp_path / "sigint"
    proc = _start(out)
    # Wait until at least one unit is saved, so the interrupt lands mid-study.
    deadline = time.time() + 120
    while (
        not list((out / "units").glob("*.json")) if (out / "units").exists() else True
    ):
        if proc.poll() is not None or time.time() > deadline:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode != 0:  # it may have finished before the signal landed
        assert proc.returncode == 130, stderr
        assert "rerun the same command to resume" in stderr
    _check_units_complete(out)
    rerun = _run(out)
    assert rerun.returncode == 0, rerun.stderr
    record("skpoison evaluate", "Ctrl-C and resume", "finite")
    assert (out / "results.csv").read_bytes() == expected
    assert _leftovers(out) == []


def test_rerun_removes_temporary_files_of_a_killed_write(tmp_path, reference):
    expected, _, _, finished = reference
    out = tmp_path / "stale"
    shutil.copytree(finished, out)
    # What a kill -9 in the middle of atomic_write_text leaves behind.
    (out / "units" / ".rep000_alpha1.0.json.abc123.tmp").write_text('{"rows": [')
    (out / ".results.csv.def456.tmp").write_text("dataset,mod")
    assert _run(out).returncode == 0
    assert (out / "results.csv").read_bytes() == expected
    assert _leftovers(out) == []


def test_output_files_are_readable_by_others(tmp_path, reference):
    """Results are ordinary files (umask permissions), not private temporaries."""
    out = reference[3]
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert modes["report.md"] == 0o666 & ~umask  # written by open()
    assert modes["results.csv"] == modes["report.md"], modes
