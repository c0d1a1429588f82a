"""Checkpoints of a poisoning study: one file per finished unit of work.

A study (:func:`~skpoison.evaluation.poisoning_curve` with ``out_dir``) is cut
into units (one attack and its evaluations, see :mod:`._curve`). Each finished
unit is written to ``out_dir/units/<key>.json`` the moment it completes, by the
process that collects the results, with an atomic write: the JSON goes to a
temporary file in the same folder, is flushed to disk, then renamed over the
target with :func:`os.replace` (:func:`skpoison._io.atomic_write_text`,
shared with the dataset export). A crash, a ``kill -9`` or a full disk therefore
leaves either the whole previous file or the whole new one, never half a file.

``out_dir/study.json`` holds the arguments that decide the results and their
hash. A rerun with the same arguments loads the finished units and skips them;
a rerun with different arguments in the same folder is refused (mixing the
units of two studies would give a table that no single command produced),
unless ``overwrite=True`` asks to start afresh.

Each unit file carries what identifies it: the study's hash, the unit's key and
a SHA-256 checksum of its payload. On resume a unit is used only if all three
match; one copied from another study, hand-edited, truncated or not written by
this module (``{}``, bad JSON) is recomputed, with a warning naming the file.

One run at a time: the store holds a file lock (``out_dir/.study.lock``, from
`filelock <https://py-filelock.readthedocs.io>`_) from the check of
``study.json`` to the end of the study, so a second run into the same folder
is refused with a clear error instead of mixing its units with the first's.
Under the lock, a temporary file (``.<name>.<pid>.<random>.tmp``, see
:mod:`skpoison._io`) is removed at start-up only if it is provably stale: its
writing process is not alive (or its name has no pid). Another live process's
in-flight write, e.g. a report written after its study ended, is left alone.

Floats go through JSON with Python's shortest round-trip ``repr``, so a resumed
study gives the same bits as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .._io import atomic_write_text

__all__ = ["StudyStore", "atomic_write_text", "config_hash"]

_STUDY_FILE = "study.json"
_UNITS_DIR = "units"
_LOCK_FILE = ".study.lock"
#: Bumped when the unit layout changes; older files are recomputed.
_UNIT_FORMAT = 2


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr)


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-able configuration.

    Examples
    --------
    >>> config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    True
    """
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:16]


def _differences(old: dict, new: dict) -> dict:
    """``{key: (old value, new value)}`` for the keys whose values differ."""
    return {
        k: (old.get(k), new.get(k))
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    }


class DifferentStudyError(ValueError):
    """The output folder holds a study with another configuration.

    ``differences`` maps each differing key of the configuration to its
    ``(stored, requested)`` values; the message names them, and the CLI
    rewords the remedy (``--overwrite`` instead of ``overwrite=True``).
    """

    def __init__(self, out_dir, differences: dict, *, remedy="pass overwrite=True"):
        self.out_dir, self.differences = out_dir, differences

        def short(value):
            text = _canonical(value)
            return text if len(text) <= 60 else text[:57] + "..."

        what = "; ".join(
            f"{k}: {short(a)} there, {short(b)} now"
            for k, (a, b) in differences.items()
        )
        super().__init__(
            f"{out_dir} holds the results of a different study ({what or 'unknown'}); "
            f"use another output folder or {remedy} to discard them."
        )


def _checksum(payload: Any) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _is_stale(tmp: Path) -> bool:
    """Whether a temporary ``.<name>.<pid>.<random>.tmp`` has no live writer."""
    parts = tmp.name[1 : -len(".tmp")].rsplit(".", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return not _pid_alive(int(parts[1]))
    return True  # not named by skpoison._io: nobody is writing it


class StudyStore:
    """The output folder of one study: its configuration and its finished units.

    Parameters
    ----------
    out_dir : path-like
        The folder; created if missing.
    config : dict
        Everything that decides the results (JSON-able; anything else is
        recorded by its ``repr``).
    overwrite : bool, default=False
        Delete finished units of a different study instead of refusing.

    Raises
    ------
    DifferentStudyError
        If ``out_dir`` holds a study with a different configuration and
        ``overwrite`` is False (a :class:`ValueError` naming the keys that
        differ).
    ValueError
        If ``out_dir`` is a file, or another process is running a study in
        ``out_dir`` (it holds the folder's lock).

    Notes
    -----
    The lock is held until :meth:`close` (or the end of a ``with`` block, or
    the store's garbage collection). Stores of one process share it, so a
    process may reopen its own folder.

    Examples
    --------
    >>> import tempfile
    >>> with StudyStore(tempfile.mkdtemp(), {"reps": 2}) as store:
    ...     store.save("rep0", {"rows": [1.5]})
    ...     store.is_done("rep0"), store.load("rep0")
    (True, {'rows': [1.5]})
    """

    def __init__(self, out_dir, config: dict, *, overwrite: bool = False):
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ValueError(f"{self.out_dir} is a file, not a folder for a study.")
        self.config = json.loads(_canonical(config))
        self.hash = config_hash(self.config)
        self.units_dir = self.out_dir / _UNITS_DIR
        self._loaded: dict = {}
        self._rejected: set = set()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # One lock object per folder and process (is_singleton): reentrant, so
        # a process can reopen its own study; another process is refused.
        self._lock = FileLock(self.out_dir / _LOCK_FILE, timeout=0, is_singleton=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise ValueError(
                f"{self.out_dir} is in use by another run (it holds "
                f"{self.out_dir / _LOCK_FILE}); wait for it to finish or use "
                "another output folder."
            ) from None
        self._closed = False
        try:
            self._open(overwrite)
        except BaseException:
            self.close()
            raise

    def _open(self, overwrite: bool) -> None:
        study_file = self.out_dir / _STUDY_FILE
        if study_file.exists():
            try:
                old = json.loads(study_file.read_text(encoding="utf-8"))
            except ValueError:  # damaged: treat as another study
                old = {}
            old = old if isinstance(old, dict) else {}
            if old.get("hash") != self.hash:
                if not overwrite:
                    old_config = old.get("config", {})
                    raise DifferentStudyError(
                        self.out_dir,
                        _differences(
                            old_config if isinstance(old_config, dict) else {},
                            self.config,
                        ),
                    )
                shutil.rmtree(self.units_dir, ignore_errors=True)
        self.units_dir.mkdir(parents=True, exist_ok=True)
        # A write killed (SIGKILL) between creation and os.replace leaves its
        # temporary file behind; under the lock, one whose writer is dead is stale.
        for folder in (self.out_dir, self.units_dir):
            for tmp in folder.glob(".*.tmp"):
                if _is_stale(tmp):
                    tmp.unlink(missing_ok=True)
        atomic_write_text(
            study_file,
            json.dumps({"hash": self.hash, "config": self.config}, indent=2) + "\n",
        )

    def close(self) -> None:
        """Release the folder's lock (idempotent)."""
        if not getattr(self, "_closed", True):
            self._closed = True
            self._lock.release()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def _path(self, key: str) -> Path:
        return self.units_dir / f"{key}.json"

    def _read(self, key: str) -> dict | None:
        """The payload of unit ``key`` if its file is present and checks out."""
        path = self._path(key)
        if not path.exists():
            return None
        try:
            unit = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:  # truncated, not UTF-8, ...
            problem = f"it is not valid JSON ({exc})"
        else:
            problem = self._check_unit(key, unit)
        if problem is not None:
            warnings.warn(
                f"Checkpoint {path} is ignored and the unit recomputed: {problem}.",
                UserWarning,
                stacklevel=3,
            )
            return None
        return unit["payload"]

    def _check_unit(self, key: str, unit: Any) -> str | None:
        if not isinstance(unit, dict) or not {"study", "key", "sha256", "payload"} <= (
            unit.keys()
        ):
            return "it lacks the study hash, key, checksum or payload"
        if unit.get("format") != _UNIT_FORMAT:
            return f"it has format {unit.get('format')!r}, not {_UNIT_FORMAT}"
        if unit["study"] != self.hash:
            return f"it belongs to study {unit['study']!r}, not {self.hash!r}"
        if unit["key"] != key:
            return f"it holds unit {unit['key']!r}, not {key!r}"
        if unit["sha256"] != _checksum(unit["payload"]):
            return "its checksum does not match its content (edited or damaged)"
        if not isinstance(unit["payload"], dict):
            return "its payload is not a JSON object"
        return None

    def is_done(self, key: str) -> bool:
        """Whether the unit ``key`` has been saved and its file checks out.

        A file that fails the check (another study's, edited, truncated) is
        reported with a warning and counts as not done.
        """
        if key not in self._loaded:
            if key in self._rejected:  # warned once already
                return False
            payload = self._read(key)
            if payload is None:
                if self._path(key).exists():
                    self._rejected.add(key)
                return False
            self._loaded[key] = payload
        return True

    def save(self, key: str, payload: dict) -> None:
        """Save a finished unit atomically, with the study hash and a checksum."""
        # Round trip first, so the checksum is of what a reader will parse.
        payload = json.loads(json.dumps(payload))
        unit = {
            "format": _UNIT_FORMAT,
            "study": self.hash,
            "key": key,
            "sha256": _checksum(payload),
            "payload": payload,
        }
        atomic_write_text(self._path(key), json.dumps(unit) + "\n")
        self._loaded[key] = payload
        self._rejected.discard(key)

    def load(self, key: str) -> dict:
        """Load a finished unit (see :meth:`is_done`).

        Raises
        ------
        ValueError
            If the unit is missing or its file fails the check.
        """
        if not self.is_done(key):
            raise ValueError(
                f"No valid checkpoint for unit {key!r} in {self.units_dir}."
            )
        return self._loaded[key]
