"""Checkpoints: atomic writes and the guard against mixing studies."""

import json
import os

import pytest

from skpoison.evaluation import StudyStore
from skpoison.evaluation._checkpoint import atomic_write_text, config_hash


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_floats_round_trip_exactly(tmp_path):
    store = StudyStore(tmp_path, {"x": 1})
    value = 0.1 + 0.2
    store.save("u", {"v": value, "nan": float("nan")})
    loaded = store.load("u")
    assert loaded["v"] == value
    assert loaded["nan"] != loaded["nan"]


def test_same_config_resumes_other_config_is_refused(tmp_path):
    StudyStore(tmp_path, {"reps": 2}).save("rep0", {"rows": []})
    again = StudyStore(tmp_path, {"reps": 2})
    assert again.is_done("rep0")
    with pytest.raises(ValueError, match="different study"):
        StudyStore(tmp_path, {"reps": 3})
    fresh = StudyStore(tmp_path, {"reps": 3}, overwrite=True)
    assert not fresh.is_done("rep0")
    saved = json.loads((tmp_path / "study.json").read_text())
    assert saved["hash"] == config_hash({"reps": 3})


def test_hash_is_order_independent_and_sensitive():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.md", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o644
