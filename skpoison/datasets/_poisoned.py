"""Export and reload a poisoned training set, with which rows are poison.

A poisoning run is expensive (the attack dominates the paper's experiments);
its output, the poisoned training set and the positions of the poison points,
is worth keeping so that defenses and victims can be studied again without
re-running the attack, or shared with someone who does not use skpoison.

Two formats, chosen by the file's suffix:

``.npz``
    NumPy's archive with the arrays ``X``, ``y``, ``is_poison``,
    ``poison_indices`` (in the order given, e.g. the attack's batch order),
    ``feature_names`` and the metadata as one JSON string. Read back without
    pickle (``allow_pickle=False``), so loading an untrusted file cannot run
    code. Floats are stored bit for bit.
``.csv``
    A plain table any tool can read: comment lines ``# ...`` first (a format
    line and the metadata as JSON), then a header with the feature names,
    ``target`` and ``is_poison`` (0/1), then one row per training point. The
    header quotes every name, so a name may hold commas, quotes, newlines or
    start with ``#`` and still come back exactly (only the leading lines that
    start with ``#`` are comments; ``pandas.read_csv(path, comment="#")``
    reads the file too as long as no name contains ``#``).
    Floats are written with Python's shortest round-trip ``repr``, so they
    also come back bit for bit; the order of ``poison_indices`` is not kept
    (they come back sorted).

Every export round-trips what it accepts: a feature name is any ``str``
without NUL characters that UTF-8 can encode (others are refused with a
``ValueError``). Loading validates the file (shapes, finite float values,
``poison_indices`` that agree with the ``is_poison`` column, names of the
right length) and turns a damaged file (truncated archive, bad JSON, ...) into
a ``ValueError`` naming the file and the problem.

Files are written atomically (a temporary file in the same folder, then
:func:`os.replace`, see :mod:`skpoison._io`): an interrupted export leaves the
previous file or none, never half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils.validation import check_array, check_consistent_length

from .._io import atomic_open
from .._validation import check_not_datetime

__all__ = ["load_poisoned_dataset", "save_poisoned_dataset"]

_FORMAT_LINE = "skpoison poisoned dataset v1"
_METADATA_PREFIX = "metadata: "
_SUFFIXES = (".npz", ".csv")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"path must end in .npz or .csv (the format is chosen by the suffix), "
            f"got {str(path)!r}."
        )
    return suffix


def _check_poison_indices(poison_indices, n_samples: int) -> np.ndarray:
    """Integer positions in ``[0, n_samples)`` without repeats, or a boolean mask."""
    idx = np.asarray(poison_indices)
    if idx.dtype == bool:
        if idx.shape != (n_samples,):
            raise ValueError(
                f"poison_indices as a boolean mask must have shape ({n_samples},), "
                f"got {idx.shape}."
            )
        return np.flatnonzero(idx)
    if idx.ndim != 1:
        raise ValueError(
            f"poison_indices must be 1-d (positions or a boolean mask), got shape "
            f"{idx.shape}."
        )
    if idx.size == 0:
        return np.zeros(0, dtype=np.intp)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(
            f"poison_indices must hold integer positions or booleans, got dtype "
            f"{idx.dtype}."
        )
    if idx.min() < 0 or idx.max() >= n_samples:
        raise ValueError(
            f"poison_indices must lie in [0, {n_samples}) (rows of X), got values "
            f"from {idx.min()} to {idx.max()}."
        )
    if np.unique(idx).size != idx.size:
        raise ValueError("poison_indices has repeated positions.")
    return idx.astype(np.intp)


def _check_feature_names(feature_names, n_features: int) -> list[str]:
    if feature_names is None:
        return [f"x{j}" for j in range(n_features)]
    if isinstance(feature_names, str):
        raise TypeError("feature_names must be a sequence of str, not one str.")
    names = list(feature_names)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"feature_names must hold str, got {name!r} of type "
                f"{type(name).__name__}."
            )
        # NumPy's str arrays drop trailing NULs and the csv module refuses
        # them; UTF-8 cannot encode lone surrogates: refuse what cannot
        # come back.
        if "\x00" in name:
            raise ValueError(f"feature_names must not contain NUL: {name!r}.")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"feature_names must be valid Unicode text, got {name!r}."
            ) from None
    names = [str(name) for name in names]
    if len(names) != n_features:
        raise ValueError(
            f"feature_names has {len(names)} names for {n_features} features."
        )
    reserved = {"target", "is_poison"} & set(names)
    if reserved or len(set(names)) != len(names):
        raise ValueError(
            "feature_names must be unique and must not use the column names "
            f"'target' or 'is_poison', got {names}."
        )
    return names


def save_poisoned_dataset(
    path: str | os.PathLike,
    X,
    y,
    poison_indices,
    *,
    feature_names=None,
    **metadata,
) -> Path:
    """Write a poisoned training set and the positions of its poison points.

    Parameters
    ----------
    path : str or path-like
        Output file; ``.npz`` or ``.csv`` (see :mod:`skpoison.datasets._poisoned`
        for both layouts). An existing file is replaced atomically.
    X : array-like of shape (n_samples, n_features)
        The poisoned training features (finite).
    y : array-like of shape (n_samples,) or (n_samples, 1)
        The poisoned training targets (finite).
    poison_indices : array-like of int, or of bool with shape (n_samples,)
        Rows of ``X`` that are poison points (for example
        ``StealthyPoisoner.poison_indices_``), or a boolean mask.
    feature_names : sequence of str, default=None
        Column names; ``x0, x1, ...`` if None.
    **metadata
        JSON-serialisable values stored with the data (the attack's
        parameters, the dataset's name, seeds, ...).

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``X`` or ``y`` hold NaN or inf or have the wrong shape, the lengths
        differ, ``poison_indices`` are out of range or repeated, or the suffix
        is not ``.npz`` / ``.csv``.
    TypeError
        If ``poison_indices`` are neither integers nor booleans, or a
        metadata value is not JSON-serialisable.

    See Also
    --------
    load_poisoned_dataset : Read the file back.
    skpoison.attacks.StealthyPoisoner : Produces ``X``, ``y`` and ``poison_indices``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from skpoison.datasets import load_poisoned_dataset, save_poisoned_dataset
    >>> X, y = np.arange(8.0).reshape(4, 2), np.array([0.5, 1.5, -2.0, 3.0])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "poisoned.csv"
    >>> _ = save_poisoned_dataset(path, X, y, [2], alpha=0.5)
    >>> data = load_poisoned_dataset(path)
    >>> data.poison_indices, data.is_poison.tolist(), data.metadata
    (array([2]), [False, False, True, False], {'alpha': 0.5})
    >>> bool((data.data == X).all() and (data.target == y).all())
    True
    """
    path = Path(path)
    suffix = _suffix(path)
    check_not_datetime(X)
    X = check_array(X, dtype=np.float64, input_name="X")
    y = check_array(y, dtype=np.float64, ensure_2d=False, input_name="y")
    if y.ndim == 2 and y.shape[1] == 1:  # a single column, as sklearn accepts
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-d, got shape {y.shape}.")
    check_consistent_length(X, y)
    n_samples, n_features = X.shape
    idx = _check_poison_indices(poison_indices, n_samples)
    names = _check_feature_names(feature_names, n_features)
    try:
        meta_json = json.dumps(metadata, sort_keys=True, allow_nan=True)
    except TypeError as exc:
        raise TypeError(
            f"metadata values must be JSON-serialisable (numbers, strings, lists, "
            f"dicts): {exc}"
        ) from None
    is_poison = np.zeros(n_samples, dtype=bool)
    is_poison[idx] = True

    if suffix == ".npz":

        def write(fh):
            np.savez(
                fh,
                X=X,
                y=y,
                is_poison=is_poison,
                poison_indices=idx.astype(np.int64),
                feature_names=np.array(names, dtype=str),
                metadata=np.array(meta_json),
            )

    else:

        def write(fh):
            text = io.StringIO()
            text.write(f"# {_FORMAT_LINE}\n# {_METADATA_PREFIX}{meta_json}\n")
            # Quoting the header keeps a name starting with "#" from reading
            # as a comment, and newlines or commas inside the name.
            header = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL)
            header.writerow([*names, "target", "is_poison"])
            writer = csv.writer(text, lineterminator="\n")
            for row, target, flag in zip(X.tolist(), y.tolist(), is_poison.tolist()):
                writer.writerow([*map(repr, row), repr(target), int(flag)])
            fh.write(text.getvalue().encode("utf-8"))

    with atomic_open(path, "wb") as fh:
        write(fh)
    return path


def _read_csv(path: Path):
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    metadata = {}
    # Comments are the leading lines that start with "#" (the header is quoted).
    pos = 0
    while text.startswith("#", pos):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end + 1
        comment = text[pos:end].rstrip("\r\n")[1:].strip()
        if comment.startswith(_METADATA_PREFIX):
            metadata = json.loads(comment[len(_METADATA_PREFIX) :])
        pos = end
    rows = [row for row in csv.reader(io.StringIO(text[pos:])) if row]
    if not rows:
        raise ValueError("no header row")
    header = rows[0]
    if [name.strip() for name in header[-2:]] != ["target", "is_poison"]:
        raise ValueError(
            f"the last two columns must be 'target' and 'is_poison', got {header[-2:]}"
        )
    if any(len(row) != len(header) for row in rows[1:]):
        raise ValueError(f"every row must have {len(header)} values")
    try:
        values = np.array(rows[1:], dtype=np.float64).reshape(-1, len(header))
    except ValueError as exc:
        raise ValueError(f"every value must be a number ({exc})") from None
    flags = values[:, -1]
    if not np.isin(flags, (0.0, 1.0)).all():
        raise ValueError("the is_poison column must hold 0 or 1")
    is_poison = flags == 1.0
    return (
        values[:, :-2],
        values[:, -2],
        is_poison,
        np.flatnonzero(is_poison),
        header[:-2],
        metadata,
    )


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as archive:
        missing = {"X", "y", "is_poison", "poison_indices"} - set(archive.files)
        if missing:
            raise ValueError(f"not a poisoned dataset, missing {sorted(missing)}")
        X = archive["X"]
        y = archive["y"]
        is_poison = archive["is_poison"]
        idx = archive["poison_indices"]
        if "feature_names" in archive.files:
            names = archive["feature_names"]
            if names.dtype.kind != "U" or names.ndim != 1:
                raise ValueError(
                    f"feature_names must be a 1-d array of str, got dtype "
                    f"{names.dtype} and shape {names.shape}"
                )
            names = names.tolist()
        else:
            names = None
        metadata = (
            json.loads(str(archive["metadata"])) if "metadata" in archive.files else {}
        )
    for name, arr, kinds in (
        ("X", X, "fiu"),
        ("y", y, "fiu"),
        ("is_poison", is_poison, "biu"),
        ("poison_indices", idx, "iu"),
    ):
        if arr.dtype.kind not in kinds:
            raise ValueError(f"{name} has dtype {arr.dtype}, expected a number type")
    if is_poison.dtype.kind != "b":
        if not np.isin(is_poison, (0, 1)).all():
            raise ValueError("is_poison must hold booleans (or 0 and 1)")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d, got shape {X.shape}")
    if names is None:
        names = [f"x{j}" for j in range(X.shape[1])]
    return (
        X.astype(np.float64),
        y.astype(np.float64),
        is_poison.astype(bool),
        idx.astype(np.intp),
        names,
        metadata,
    )


def _check_loaded(X, y, is_poison, idx, names, metadata) -> None:
    """The invariants :func:`save_poisoned_dataset` guarantees, checked on read."""
    if X.ndim != 2 or y.shape != (X.shape[0],) or is_poison.shape != y.shape:
        raise ValueError(
            f"inconsistent shapes X {X.shape}, y {y.shape}, is_poison {is_poison.shape}"
        )
    for name, arr in (("X", X), ("y", y)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity")
    if idx.ndim != 1:
        raise ValueError(f"poison_indices must be 1-d, got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= X.shape[0]):
        raise ValueError(f"poison_indices must lie in [0, {X.shape[0]})")
    if np.unique(idx).size != idx.size:
        raise ValueError("poison_indices has repeated positions")
    if not np.array_equal(np.sort(idx), np.flatnonzero(is_poison)):
        raise ValueError(
            f"poison_indices ({idx.size} positions) disagree with the is_poison "
            f"column ({int(is_poison.sum())} rows flagged)"
        )
    if len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} feature names for {X.shape[1]} features")
    if not isinstance(metadata, dict):
        raise ValueError(
            f"the metadata must be a JSON object, got {type(metadata).__name__}"
        )


#: What a damaged file raises inside NumPy, zipfile, zlib, json or csv.
_DAMAGED = (
    ValueError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    pickle.UnpicklingError,
    csv.Error,
)


def load_poisoned_dataset(path: str | os.PathLike) -> Bunch:
    """Read a file written by :func:`save_poisoned_dataset`.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` or ``.csv`` file. A CSV written by another tool is accepted
        if its last two columns are ``target`` and ``is_poison`` (0/1).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (float64, shape (n_samples, n_features)), ``target`` (float64,
        shape (n_samples,)), ``is_poison`` (bool mask), ``poison_indices``
        (the order saved for ``.npz``, sorted for ``.csv``),
        ``feature_names`` (list of str) and ``metadata`` (dict).

    Raises
    ------
    ValueError
        Naming the file, if the suffix is not ``.npz`` / ``.csv``, the file is
        damaged (truncated, not a zip archive, bad JSON), lacks a required
        column or array, holds non-numeric, NaN or infinite values or arrays
        of the wrong dtype, its ``poison_indices`` disagree with its
        ``is_poison`` column, or it has names of the wrong length.

    See Also
    --------
    save_poisoned_dataset : Write the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from skpoison.datasets import load_poisoned_dataset, save_poisoned_dataset
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "poisoned.npz"
    >>> _ = save_poisoned_dataset(path, np.eye(3), [1.0, 2.0, 3.0], [2, 0])
    >>> load_poisoned_dataset(path).poison_indices
    array([2, 0])
    """
    path = Path(path)
    suffix = _suffix(path)
    reader = _read_npz if suffix == ".npz" else _read_csv
    try:
        X, y, is_poison, idx, names, metadata = loaded = reader(path)
        _check_loaded(*loaded)
    except _DAMAGED as exc:  # UnicodeDecodeError and JSONDecodeError included
        kind = "a poisoned .npz archive" if suffix == ".npz" else "a poisoned CSV"
        raise ValueError(
            f"{path} is not a valid {kind} (damaged or not written by "
            f"save_poisoned_dataset): {exc}."
        ) from exc
    return Bunch(
        data=X,
        target=y,
        is_poison=is_poison,
        poison_indices=idx,
        feature_names=list(names),
        metadata=metadata,
    )
