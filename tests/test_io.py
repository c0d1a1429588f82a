"""Atomic writes shared by the dataset export and the study checkpoints."""

import os

import pytest

from skpoison._io import atomic_open, atomic_write_bytes, atomic_write_text


@pytest.mark.parametrize(
    "write, old, new",
    [(atomic_write_bytes, b"old", b"new"), (atomic_write_text, "old", "new")],
)
def test_a_failed_write_keeps_the_previous_file_and_no_temporary(
    tmp_path, monkeypatch, write, old, new
):
    target = tmp_path / "sub" / "a.out"
    write(target, old)  # the folder is created

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write(target, new)
    read = target.read_bytes if isinstance(old, bytes) else target.read_text
    assert read() == old
    assert [p.name for p in target.parent.iterdir()] == ["a.out"]


def test_an_error_inside_the_block_leaves_nothing(tmp_path):
    target = tmp_path / "a.bin"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target) as fh:
            fh.write(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_files_get_the_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == mode


def test_only_write_modes():
    with pytest.raises(ValueError, match="mode"):
        with atomic_open("never", "a"):
            pass
