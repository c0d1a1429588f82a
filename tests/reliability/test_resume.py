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
    (out / "units" / ".rep000_stealthy_alpha1.0.json.abc123.tmp").write_text(
        '{"rows": ['
    )
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


# ------------------------------------------------ unit checks and the lock
def _store(out, config=None, **kw):
    from skpoison.evaluation import StudyStore

    return StudyStore(out, config or {"study": 1}, **kw)


def _copy_from_other_study(out, key):
    with _store(out.parent / "other", {"study": 2}) as other:
        other.save(key, {"rows": [9.0]})
    shutil.copy(other._path(key), out / "units" / f"{key}.json")


def _edit(out, key):
    path = out / "units" / f"{key}.json"
    path.write_text(path.read_text().replace("1.5", "2.5"))


def _truncate(out, key):
    path = out / "units" / f"{key}.json"
    path.write_text(path.read_text()[:20])


def _empty_object(out, key):
    (out / "units" / f"{key}.json").write_text("{}")


def _old_format(out, key):
    (out / "units" / f"{key}.json").write_text('{"rows": [1.5]}')


def _renamed(out, key):
    with _store(out) as store:
        store.save("other-unit", {"rows": [1.5]})
    os.replace(out / "units" / "other-unit.json", out / "units" / f"{key}.json")


BAD_UNITS = {
    "copied from another study": (_copy_from_other_study, "belongs to study"),
    "hand-edited": (_edit, "checksum"),
    "truncated": (_truncate, "not valid JSON"),
    "{}": (_empty_object, "lacks the study hash"),
    "unversioned (older layout)": (_old_format, "lacks the study hash"),
    "another unit's file": (_renamed, "holds unit 'other-unit'"),
}


@pytest.mark.parametrize("case", list(BAD_UNITS))
def test_a_unit_failing_its_check_is_recomputed_with_a_warning(case, tmp_path):
    damage, match = BAD_UNITS[case]
    out = tmp_path / "study"
    with _store(out) as store:
        store.save("u1", {"rows": [1.5]})
        store.save("u2", {"rows": [0.5]})
    damage(out, "u1")
    with _store(out) as store:
        with pytest.warns(UserWarning, match=match) as warned:
            assert not store.is_done("u1")
        assert "u1.json" in str(warned[0].message)
        assert store.is_done("u2") and store.load("u2") == {"rows": [0.5]}
        with pytest.raises(ValueError, match="No valid checkpoint"):
            store.load("u1")
    record("poisoning_curve", f"resume with a bad unit: {case}", "finite")


def test_resume_recomputes_a_unit_copied_from_another_study(tmp_path):
    """End to end: the copied unit is not merged; the table equals a fresh run's."""
    from reliability_subjects import make_data

    from skpoison.evaluation import poisoning_curve

    X, y = make_data(40)
    kw = dict(
        alphas=[1.0], ratios=[0.0, 0.2], defenses=["none"], n_repetitions=2,
        attack_params={"n_outer_steps": 1, "n_inner_steps": 3},
        victim_params={"n_epochs": 3},
    )  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    first = poisoning_curve((X, y), out_dir=a, random_state=0, **kw)
    poisoning_curve((X, y), out_dir=b, random_state=1, **kw)
    unit = sorted((b / "units").glob("*.json"))[0]
    shutil.copy(unit, a / "units" / unit.name)
    with pytest.warns(UserWarning, match=f"{unit.name}.*belongs to study"):
        again = poisoning_curve((X, y), out_dir=a, random_state=0, **kw)
    record("poisoning_curve", "resume with a unit of another study", "finite")
    cols = [c for c in first.columns if "time" not in c]
    assert first[cols].equals(again[cols])


_HOLDER = """
import sys, time
from skpoison.evaluation import StudyStore
store = StudyStore(sys.argv[1], {"study": 1})
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_second_run_into_the_same_folder_is_refused(tmp_path):
    """Two processes: the second refuses clearly while the first holds the folder."""
    out = tmp_path / "study"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        # The holder's in-flight temporary file must survive our start-up.
        live = out / "units" / f".u.json.{holder.pid}.{'a' * 32}.tmp"
        live.write_text("{")
        with pytest.raises(ValueError, match="in use by another run"):
            _store(out)
        record("poisoning_curve", "resume: concurrent run", "ValueError")
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    dead = out / "units" / ".v.json.999999999.abc.tmp"  # no such pid
    dead.write_text("{")
    with _store(out) as store:  # the first run has ended: the folder is free
        store.save("u", {"rows": []})
    assert not dead.exists()
    assert not live.exists()  # its writer has exited: stale now


def test_live_writers_temporaries_are_kept(tmp_path):
    out = tmp_path / "study"
    _store(out).close()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / f".results.csv.{sleeper.pid}.{'b' * 32}.tmp"
        live.write_text("dataset")
        _store(out).close()
        assert live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    _store(out).close()
    assert not live.exists()
