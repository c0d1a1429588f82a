"""Loaders for the three datasets shipped with skpoison.

Heart Disease, Boston Housing and Appliances (Sec. VI and Table I of the paper)
ship inside the package as gzip-compressed CSV files (``data/*.csv.gz``): a
header row, numeric columns only, the last column named ``target``. Each file's
sha256 is checked every time it is read (hashing a 1.7 MB file costs a few
milliseconds), so a damaged installation fails loudly instead of returning
wrong numbers.

The loaders follow :mod:`sklearn.datasets`: ``return_X_y``, ``as_frame``
(pandas is imported only then) and a :class:`~sklearn.utils.Bunch` with
``data``, ``target``, ``feature_names``, ``target_names``, ``frame`` and
``DESCR``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

__all__ = [
    "ChecksumError",
    "load_appliances",
    "load_boston_housing",
    "load_heart",
]

# Both are module attributes so that tests can point the loaders at a damaged copy.
_DATA_DIR = resources.files("skpoison.datasets") / "data"
_DESCR_DIR = resources.files("skpoison.datasets") / "descr"

_SHA256 = {
    "boston.csv.gz": "94256979dc3a4ff4812ad6cec1448dc783c092cad5925cb4d48b79944b82d4a5",
    "heart_disease.csv.gz": "b25cd563848c76e1c7308b7b0638700436a25b5e3c6f388dca21b6b5dc4872af",
    "appliances.csv.gz": "c31f5646463cca691e4bf469d3b03483ca515174c020d5f2490cc1963726c624",
}

# Appliances' target was min-max scaled over the whole file; raw Wh = 10 + 1070 * t.
_APPLIANCES_WH_MIN = 10.0
_APPLIANCES_WH_RANGE = 1070.0


class ChecksumError(OSError):
    """A dataset file does not have the expected hash.

    Raised when a shipped file is damaged, or when a downloaded or cached file
    (:func:`fetch_loan`) is not the one the library expects.

    Examples
    --------
    >>> from skpoison.datasets import ChecksumError
    >>> issubclass(ChecksumError, OSError)
    True
    """


def _check_sha256(content: bytes, expected: str, *, name: str) -> None:
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise ChecksumError(
            f"The dataset file {name!r} is damaged: its sha256 is {actual}, "
            f"expected {expected}. Reinstall skpoison (pip install --force-reinstall "
            "skpoison) to restore the shipped data."
        )


def _parse_csv(text: str, *, name: str) -> tuple[list[str], np.ndarray]:
    """Split a header-plus-numbers CSV text into column names and a float64 array."""
    header_line, _, body = text.partition("\n")
    header = [column.strip() for column in next(csv.reader([header_line]))]
    try:
        values = np.loadtxt(
            io.StringIO(body, newline=None), delimiter=",", dtype=np.float64, ndmin=2
        )
    except ValueError as exc:
        raise ValueError(f"Could not parse {name!r} as numeric CSV: {exc}") from exc
    if values.shape[1] != len(header):
        raise ValueError(
            f"{name!r} has {len(header)} column names but {values.shape[1]} columns."
        )
    return header, values


def _read_shipped(filename: str) -> tuple[list[str], np.ndarray]:
    content = (_DATA_DIR / filename).read_bytes()
    _check_sha256(content, _SHA256[filename], name=str(_DATA_DIR / filename))
    return _parse_csv(gzip.decompress(content).decode("utf-8"), name=filename)


def _read_descr(name: str) -> str:
    return (_DESCR_DIR / name).read_text(encoding="utf-8")


def _to_frame(data, target, feature_names, target_name):
    """Wrap the arrays in pandas objects, as sklearn's loaders do for ``as_frame``."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is in the test extra
        raise ImportError(
            "as_frame=True needs pandas: pip install 'skpoison[pandas]'."
        ) from exc
    frame = pd.DataFrame(data, columns=list(feature_names))
    frame[target_name] = target
    return frame, frame[list(feature_names)], frame[target_name]


def _make_bunch(
    data: np.ndarray,
    target: np.ndarray,
    feature_names: list[str],
    target_name: str,
    descr: str,
    *,
    return_X_y: bool,
    as_frame: bool,
):
    """Package loaded arrays the way sklearn's loaders do (shared by all loaders)."""
    frame = None
    if as_frame:
        frame, data, target = _to_frame(data, target, feature_names, target_name)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        frame=frame,
        feature_names=np.asarray(feature_names, dtype=object),
        target_names=np.asarray([target_name], dtype=object),
        DESCR=descr,
    )


def _load_shipped(
    filename: str,
    descr_name: str,
    target_name: str,
    *,
    return_X_y: bool,
    as_frame: bool,
    target_transform=None,
):
    header, values = _read_shipped(filename)
    data = np.ascontiguousarray(values[:, :-1])
    target = values[:, -1].copy()
    if target_transform is not None:
        target = target_transform(target)
    return _make_bunch(
        data,
        target,
        header[:-1],
        target_name,
        _read_descr(descr_name),
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


def load_boston_housing(*, return_X_y: bool = False, as_frame: bool = False):
    """Load the Boston Housing dataset (regression, 506 x 13).

    Median value of owner-occupied homes (``MEDV``, in k$) in 506 census tracts
    of the Boston area, in raw units (Harrison and Rubinfeld, 1978). The paper
    splits it into 253 / 76 / 177 training / validation / test points (Table I).
    The ``B`` column encodes the proportion of Black residents through a
    non-monotonic transform; it is kept only to reproduce the paper (read
    ``DESCR``).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a Series and
        ``frame`` a DataFrame holding both (pandas is imported only then).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        data : ndarray of shape (506, 13) or DataFrame
            The features, float64.
        target : ndarray of shape (506,) or Series
            ``MEDV``, float64.
        feature_names : ndarray of str of shape (13,)
            ``CRIM, ZN, INDUS, CHAS, NOX, RM, AGE, DIS, RAD, TAX, PTRATIO, B, LSTAT``.
        target_names : ndarray of str of shape (1,)
            ``["MEDV"]``.
        frame : DataFrame of shape (506, 14) or None
            Only when ``as_frame=True``.
        DESCR : str
            Source, licence, preprocessing and the paper's split sizes.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    ChecksumError
        If the shipped file does not have the expected sha256.

    See Also
    --------
    load_heart, load_appliances, fetch_loan
    train_val_test_split : The paper's 50 / 15 / 35 split.

    Examples
    --------
    >>> from skpoison.datasets import load_boston_housing
    >>> X, y = load_boston_housing(return_X_y=True)
    >>> X.shape, y.shape
    ((506, 13), (506,))
    """
    return _load_shipped(
        "boston.csv.gz",
        "boston_housing.rst",
        "MEDV",
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


def load_heart(*, return_X_y: bool = False, as_frame: bool = False):
    """Load the Heart Disease dataset (regression, 3198 x 28).

    US county-level heart-disease mortality as shipped by the BIG-LID authors
    (Weerasinghe et al., 2021): every column, target included, min-max scaled to
    [0, 1] over the whole file. The column names are not known, so the features
    are named ``x00`` to ``x27``. The paper splits it into 1599 / 480 / 1119
    points (Table I).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a Series and
        ``frame`` a DataFrame holding both (pandas is imported only then).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        data : ndarray of shape (3198, 28) or DataFrame
            The features, float64, in [0, 1].
        target : ndarray of shape (3198,) or Series
            Scaled mortality, float64, in [0, 1].
        feature_names : ndarray of str of shape (28,)
            ``x00`` to ``x27``.
        target_names : ndarray of str of shape (1,)
            ``["heart_disease_mortality"]``.
        frame : DataFrame of shape (3198, 29) or None
            Only when ``as_frame=True``.
        DESCR : str
            Source, licence, preprocessing and the paper's split sizes.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    ChecksumError
        If the shipped file does not have the expected sha256.

    See Also
    --------
    load_boston_housing, load_appliances, fetch_loan

    Examples
    --------
    >>> from skpoison.datasets import load_heart
    >>> heart = load_heart()
    >>> heart.data.shape, heart.feature_names[:2].tolist()
    ((3198, 28), ['x00', 'x01'])
    """
    return _load_shipped(
        "heart_disease.csv.gz",
        "heart.rst",
        "heart_disease_mortality",
        return_X_y=return_X_y,
        as_frame=as_frame,
    )


def load_appliances(
    *, return_X_y: bool = False, as_frame: bool = False, raw_units: bool = False
):
    """Load the Appliances energy dataset (regression, 19735 x 16).

    Energy used by appliances in a low-energy house (UCI, Candanedo et al.,
    2017), every 10 minutes, as shipped by the BIG-LID authors: 16 temperature,
    humidity and pressure features, every column min-max scaled to [0, 1] over
    the whole file. Rows are in time order. The paper splits it into
    9868 / 2960 / 6907 points (Table I).

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a Series and
        ``frame`` a DataFrame holding both (pandas is imported only then).
    raw_units : bool, default=False
        If True, undo the min-max scaling of the target, giving the energy in
        Wh: ``10 + 1070 * target`` (10 to 1080 Wh). The features stay scaled
        (their ranges were not published). Standardisation makes this choice
        irrelevant for training; it only changes MSEs reported in raw units.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        data : ndarray of shape (19735, 16) or DataFrame
            The features, float64, in [0, 1].
        target : ndarray of shape (19735,) or Series
            Energy use, scaled to [0, 1] or in Wh (``raw_units``), float64.
        feature_names : ndarray of str of shape (16,)
            ``T2, T3, T4, T8, RH_1, ..., RH_9, T_out, RH_out, Press_mm_hg``.
        target_names : ndarray of str of shape (1,)
            ``["Appliances"]``.
        frame : DataFrame of shape (19735, 17) or None
            Only when ``as_frame=True``.
        DESCR : str
            Source, licence, preprocessing and the paper's split sizes.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    ChecksumError
        If the shipped file does not have the expected sha256.

    See Also
    --------
    load_heart, load_boston_housing, fetch_loan

    Examples
    --------
    >>> from skpoison.datasets import load_appliances
    >>> X, y = load_appliances(return_X_y=True)
    >>> X.shape, float(y.min()), float(y.max())
    ((19735, 16), 0.0, 1.0)
    >>> _, y_wh = load_appliances(return_X_y=True, raw_units=True)
    >>> float(y_wh.min()), float(y_wh.max())
    (10.0, 1080.0)
    """
    transform = None
    if raw_units:

        def transform(t):
            return _APPLIANCES_WH_MIN + _APPLIANCES_WH_RANGE * t

    return _load_shipped(
        "appliances.csv.gz",
        "appliances.rst",
        "Appliances",
        return_X_y=return_X_y,
        as_frame=as_frame,
        target_transform=transform,
    )
