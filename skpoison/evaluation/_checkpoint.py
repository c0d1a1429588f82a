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

Floats go through JSON with Python's shortest round-trip ``repr``, so a resumed
study gives the same bits as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from .._io import atomic_write_text

__all__ = ["StudyStore", "atomic_write_text", "config_hash"]

_STUDY_FILE = "study.json"
_UNITS_DIR = "units"


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
        If ``out_dir`` is a file.

    Examples
    --------
    >>> import tempfile
    >>> store = StudyStore(tempfile.mkdtemp(), {"reps": 2})
    >>> store.save("rep0", {"rows": [1.5]})
    >>> store.is_done("rep0"), store.load("rep0")
    (True, {'rows': [1.5]})
    """

    def __init__(self, out_dir, config: dict, *, overwrite: bool = False):
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ValueError(f"{self.out_dir} is a file, not a folder for a study.")
        self.config = json.loads(_canonical(config))
        self.hash = config_hash(self.config)
        self.units_dir = self.out_dir / _UNITS_DIR
        study_file = self.out_dir / _STUDY_FILE
        if study_file.exists():
            old = json.loads(study_file.read_text(encoding="utf-8"))
            if old.get("hash") != self.hash:
                if not overwrite:
                    raise DifferentStudyError(
                        self.out_dir, _differences(old.get("config", {}), self.config)
                    )
                shutil.rmtree(self.units_dir, ignore_errors=True)
        self.units_dir.mkdir(parents=True, exist_ok=True)
        # A write killed (SIGKILL) between creation and os.replace leaves its
        # temporary file behind; one process writes a study folder, so any such
        # file found now is stale.
        for folder in (self.out_dir, self.units_dir):
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        atomic_write_text(
            study_file,
            json.dumps({"hash": self.hash, "config": self.config}, indent=2) + "\n",
        )

    def _path(self, key: str) -> Path:
        return self.units_dir / f"{key}.json"

    def is_done(self, key: str) -> bool:
        """Whether the unit ``key`` has been saved."""
        return self._path(key).exists()

    def save(self, key: str, payload: dict) -> None:
        """Save a finished unit atomically."""
        atomic_write_text(self._path(key), json.dumps(payload) + "\n")

    def load(self, key: str) -> dict:
        """Load a finished unit."""
        return json.loads(self._path(key).read_text(encoding="utf-8"))
