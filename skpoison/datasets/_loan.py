"""The Loan dataset, downloaded on demand, and the data home that caches it.

The paper's fourth dataset (Lending Club interest rates, preprocessed by
Jagielski et al., 2018) is ``datasets/loan-processed.csv`` in the public GitHub
repository jagielski/manip-ml (MIT licence). It is too large to ship, so
:func:`fetch_loan` downloads it once, like sklearn's ``fetch_*`` loaders.

The file is identified by its git blob SHA-1, the hash GitHub shows for it:
``sha1(b"blob <size>\\0" + content)``. A download is written to a temporary
file in the data home, verified, then moved into place with :func:`os.replace`
(atomic on one file system), so a corrupted or interrupted download never
leaves a file behind that a later call would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from ._base import ChecksumError, _make_bunch, _parse_csv, _read_descr

__all__ = ["clear_data_home", "fetch_loan", "get_data_home"]

# Module constants so that tests can serve a made-up file from 127.0.0.1.
# master is the repository's only branch (head 7a0cac8 when this was written).
_LOAN_URL = (
    "https://raw.githubusercontent.com/jagielski/manip-ml/master/"
    "datasets/loan-processed.csv"
)
_LOAN_GIT_SHA1 = "f7604b69ef645036565b08422e4b464a8e0f7cab"
_LOAN_FILENAME = "loan-processed.csv"
_LOAN_TARGET = "int_rate"
_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 16


def get_data_home(data_home: str | os.PathLike | None = None) -> str:
    """Return the folder where skpoison caches downloaded datasets.

    By default the folder is ``~/skpoison_data``; the ``SKPOISON_DATA``
    environment variable or the ``data_home`` argument override it. The folder
    is created if it does not exist.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to use. If None, ``SKPOISON_DATA`` or ``~/skpoison_data``.

    Returns
    -------
    data_home : str
        The absolute path of the folder.

    See Also
    --------
    clear_data_home, fetch_loan

    Examples
    --------
    >>> import tempfile, os
    >>> from skpoison.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     os.path.isdir(get_data_home(os.path.join(tmp, "cache")))
    True
    """
    if data_home is None:
        # An empty SKPOISON_DATA means unset, not the current folder.
        data_home = os.environ.get("SKPOISON_DATA") or os.path.join(
            "~", "skpoison_data"
        )
    data_home = os.path.abspath(os.path.expanduser(os.fspath(data_home)))
    os.makedirs(data_home, exist_ok=True)
    return data_home


def clear_data_home(data_home: str | os.PathLike | None = None) -> None:
    """Delete the data home and everything cached in it.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to delete. If None, the one :func:`get_data_home` returns.

    See Also
    --------
    get_data_home

    Examples
    --------
    >>> import tempfile, os
    >>> from skpoison.datasets import clear_data_home, get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     home = get_data_home(os.path.join(tmp, "cache"))
    ...     clear_data_home(home)
    ...     os.path.exists(home)
    False
    """
    shutil.rmtree(get_data_home(data_home))


def _git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _manual_download_hint(url: str, path: str) -> str:
    return (
        f"Download {url} on a machine with internet access (for example "
        f"`curl -L -o {_LOAN_FILENAME} {url}`) and copy it to {path} "
        "(or set SKPOISON_DATA / data_home to the folder that holds it). "
        f"skpoison checks it against the git blob SHA-1 {_LOAN_GIT_SHA1}."
    )


def _download(url: str, path: str, expected_sha1: str) -> None:
    """Download ``url`` to ``path`` atomically, checking the git blob SHA-1."""
    folder = os.path.dirname(path)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as tmp:
            try:
                with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                    announced = response.headers.get("Content-Length")
                    received = 0
                    while chunk := response.read(_CHUNK_BYTES):
                        tmp.write(chunk)
                        received += len(chunk)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                raise ConnectionError(
                    f"Could not download the Loan dataset from {url}: {exc}. "
                    + _manual_download_hint(url, path)
                ) from exc
        # urllib does not raise when a server closes the connection early.
        if announced is not None and received != int(announced):
            raise ConnectionError(
                f"The download of {url} was interrupted: received {received} of "
                f"{announced} bytes. Try again, or " + _manual_download_hint(url, path)
            )
        content = Path(tmp_path).read_bytes()
        actual = _git_blob_sha1(content)
        if actual != expected_sha1:
            raise ChecksumError(
                f"The file downloaded from {url} is not the expected one: its git "
                f"blob SHA-1 is {actual}, expected {expected_sha1}. Nothing was "
                "saved. The download may be corrupted, or the file may have "
                "changed upstream."
            )
        os.replace(tmp_path, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a partial file in the cache.
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def _read_loan(path: str, expected_sha1: str):
    content = Path(path).read_bytes()
    actual = _git_blob_sha1(content)
    if actual != expected_sha1:
        raise ChecksumError(
            f"The cached Loan file {path} is damaged: its git blob SHA-1 is "
            f"{actual}, expected {expected_sha1}. Delete it (or call "
            "skpoison.datasets.clear_data_home()) so that fetch_loan downloads it "
            "again."
        )
    header, values = _parse_csv(content.decode("utf-8"), name=path)
    # manip-ml's own reader takes the first column as the target; use the name
    # when the header has it.
    target_col = header.index(_LOAN_TARGET) if _LOAN_TARGET in header else 0
    feature_cols = [j for j in range(len(header)) if j != target_col]
    data = np.ascontiguousarray(values[:, feature_cols])
    target = values[:, target_col].copy()
    feature_names = [header[j] for j in feature_cols]
    return data, target, feature_names, header[target_col]


def fetch_loan(
    data_home: str | os.PathLike | None = None,
    download_if_missing: bool = True,
    *,
    return_X_y: bool = False,
    as_frame: bool = False,
    n_samples: int | None = None,
    random_state=None,
):
    """Load the Loan dataset (Lending Club interest rates), downloading it once.

    The file ``datasets/loan-processed.csv`` of the GitHub repository
    jagielski/manip-ml (MIT licence; Jagielski et al., 2018) is downloaded from
    ``raw.githubusercontent.com`` into the data home on first use, checked
    against its git blob SHA-1 (``f7604b69ef645036565b08422e4b464a8e0f7cab``)
    and cached; later calls read the cached copy (and check it again). The
    target is the ``int_rate`` column, every other column is a feature.

    The paper used a random subset of 6722 rows with 88 features, split
    3361 / 1008 / 2353 (Table I); which rows is not published. Pass
    ``n_samples=6722`` and a ``random_state`` to draw a subset of that size
    reproducibly.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Where to cache the file. If None, the ``SKPOISON_DATA`` environment
        variable or ``~/skpoison_data`` (see :func:`get_data_home`).
    download_if_missing : bool, default=True
        If False, raise a ``FileNotFoundError`` instead of downloading when the
        file is not cached.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a Series and
        ``frame`` a DataFrame holding both (pandas is imported only then).
    n_samples : int, default=None
        If given, return this many rows drawn at random without replacement
        (in random order). If None, all rows in file order.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw of ``n_samples`` rows; ignored when ``n_samples`` is None.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        data : ndarray of shape (n_samples, n_features) or DataFrame
            The features, float64.
        target : ndarray of shape (n_samples,) or Series
            ``int_rate``, float64.
        feature_names : ndarray of str of shape (n_features,)
            The CSV's column names, target excluded.
        target_names : ndarray of str of shape (1,)
            ``["int_rate"]``.
        frame : DataFrame or None
            Only when ``as_frame=True``.
        DESCR : str
            Source, licence and how the paper used the data.

    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If the file is not cached and ``download_if_missing`` is False.
    ConnectionError
        If the download fails (no network, interrupted transfer); the message
        says where to get the file and where to put it.
    ChecksumError
        If the downloaded or cached file does not have the expected hash.

    See Also
    --------
    get_data_home, clear_data_home, load_heart
    train_val_test_split : The paper's 50 / 15 / 35 split.

    References
    ----------
    .. [1] M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru and B. Li,
       "Manipulating Machine Learning: Poisoning Attacks and Countermeasures for
       Regression Learning", IEEE S&P 2018.

    Examples
    --------
    Without a cached copy and without downloading, the error says what to do:

    >>> import tempfile
    >>> from skpoison.datasets import fetch_loan
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fetch_loan(data_home=tmp, download_if_missing=False)
    Traceback (most recent call last):
    ...
    FileNotFoundError: The Loan dataset is not in ...

    With network access, ``fetch_loan(n_samples=6722, random_state=0)`` returns
    a subset of the paper's size.
    """
    if n_samples is not None and (
        isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1
    ):
        raise ValueError(
            f"n_samples must be a positive int or None, got {n_samples!r}."
        )
    path = os.path.join(get_data_home(data_home), _LOAN_FILENAME)
    if not os.path.exists(path):
        if not download_if_missing:
            raise FileNotFoundError(
                f"The Loan dataset is not in {path} and download_if_missing=False. "
                "Call fetch_loan() with network access, or "
                + _manual_download_hint(_LOAN_URL, path)
            )
        _download(_LOAN_URL, path, _LOAN_GIT_SHA1)
    data, target, feature_names, target_name = _read_loan(path, _LOAN_GIT_SHA1)
    if n_samples is not None:
        if n_samples > data.shape[0]:
            raise ValueError(
                f"n_samples={n_samples} is larger than the {data.shape[0]} rows "
                "of the Loan dataset."
            )
        rows = check_random_state(random_state).choice(
            data.shape[0], size=n_samples, replace=False
        )
        data, target = data[rows], target[rows]
    return _make_bunch(
        data,
        target,
        feature_names,
        target_name,
        _read_descr("loan.rst"),
        return_X_y=return_X_y,
        as_frame=as_frame,
    )
