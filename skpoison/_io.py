"""Atomic file writes shared by the dataset export and the study checkpoints.

A file is written to a temporary file in the same folder (so that the rename
stays on one file system), flushed and fsynced, then renamed onto the target
with :func:`os.replace`, which is atomic: a crash, a ``kill -9`` or a full disk
leaves the previous file or none, never a half-written one. Any error removes
the temporary file. The temporary name is ``.<name>.<pid>.<random>.tmp``; a
write killed between creation and rename leaves it behind, and
:class:`skpoison.evaluation.StudyStore` removes such files (``.*.tmp``) when a
study restarts. The file is created with ``os.open(..., 0o666)``, so the umask
decides its permissions, as for any file made by :func:`open`
(:func:`tempfile.mkstemp` would make it private, ``0o600``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None):
    """Open a temporary file that replaces ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or path-like
        The target; its folder is created if needed.
    mode : {"wb", "w"}, default="wb"
        Binary or text.
    encoding : str, default=None
        The text encoding (text mode only).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> with atomic_open(target) as fh:
    ...     _ = fh.write(b"hello")
    >>> target.read_bytes()
    b'hello'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Never leave a half-written temporary file behind.
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> atomic_write_bytes(target, b"hello")
    >>> target.read_bytes()
    b'hello'
    """
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically, in UTF-8 (see :func:`atomic_open`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = tempfile.mkdtemp()
    >>> atomic_write_text(pathlib.Path(d) / "a.txt", "hello")
    >>> (pathlib.Path(d) / "a.txt").read_text()
    'hello'
    """
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
