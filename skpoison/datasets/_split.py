"""The paper's experimental protocol: a random 50/15/35 split and standardisation.

Appendix E and Table I of the paper: every dataset is split at random into a
training, a validation and a test part (about 50 %, 15 % and 35 %), and
features and target are standardised with the mean and standard deviation of
the *clean* training part only, so that the attacker's poisoning points never
move the normalisation (footnote 6) and the transform can be undone to report
errors in the data's own units.

Split sizes are ``round_half_up(train_size * n)`` and
``round_half_up(val_size * n)``; the test part takes the rest. This is the
rounding that reproduces all four rows of Table I exactly: Loan 3361/1008/2353
of 6722, Heart Disease 1599/480/1119 of 3198, Boston Housing 253/76/177 of 506
and Appliances 9868/2960/6907 of 19735 (sklearn's floor/ceil rules give
9867/2961 on Appliances).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import (
    Bunch,
    _safe_indexing,
    check_consistent_length,
    check_random_state,
    indexable,
)
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .._state import atomic_fit
from .._validation import check_not_datetime

__all__ = ["PaperStandardizer", "split_and_standardize", "train_val_test_split"]


def _n_from_size(size, n_samples: int, *, name: str) -> int:
    """A fraction (rounded half up) or a count of ``n_samples``."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if not 1 <= size <= n_samples:
            raise ValueError(
                f"{name}={size} as a count must be in [1, n_samples={n_samples}]."
            )
        return int(size)
    if isinstance(size, numbers.Real) and not isinstance(size, bool):
        if not 0.0 < float(size) < 1.0:
            raise ValueError(f"{name}={size} as a fraction must be in (0, 1).")
        # round() first so that 0.15 * n landing a hair below .5 still rounds up.
        return math.floor(round(float(size) * n_samples, 9) + 0.5)
    raise TypeError(f"{name} must be a float in (0, 1) or an int, got {size!r}.")


def _split_indices(
    n_samples: int,
    *,
    train_size,
    val_size,
    test_size,
    shuffle: bool,
    random_state,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_train = _n_from_size(train_size, n_samples, name="train_size")
    n_val = _n_from_size(val_size, n_samples, name="val_size")
    if test_size is None:
        n_test = n_samples - n_train - n_val
    else:
        n_test = _n_from_size(test_size, n_samples, name="test_size")
    if min(n_train, n_val, n_test) < 1 or n_train + n_val + n_test > n_samples:
        raise ValueError(
            f"With n_samples={n_samples}, train_size={train_size}, "
            f"val_size={val_size} and test_size={test_size} the parts have "
            f"{n_train}, {n_val} and {n_test} samples; each needs at least one "
            f"and together they cannot exceed {n_samples}."
        )
    if shuffle:
        order = check_random_state(random_state).permutation(n_samples)
    else:
        order = np.arange(n_samples)
    return (
        order[:n_train],
        order[n_train : n_train + n_val],
        order[n_train + n_val : n_train + n_val + n_test],
    )


def train_val_test_split(
    X,
    y,
    *,
    train_size: float | int = 0.5,
    val_size: float | int = 0.15,
    test_size: float | int | None = None,
    random_state=None,
    shuffle: bool = True,
) -> list:
    """Split data into training, validation and test parts as the paper does.

    The defaults are the proportions of the paper's Table I (50 % / 15 % /
    rest, about 35 %). Fractions are rounded half up and the test part takes
    what is left, which gives Table I's sizes exactly (e.g. Boston Housing:
    253 / 76 / 177 of 506).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features (arrays, lists, DataFrames and sparse matrices are indexed
        like sklearn's ``train_test_split`` does).
    y : array-like of shape (n_samples,)
        Target.
    train_size : float or int, default=0.5
        Fraction of the samples in ``(0, 1)``, or a count, for training.
    val_size : float or int, default=0.15
        Fraction in ``(0, 1)``, or a count, for validation.
    test_size : float, int or None, default=None
        Fraction or count for testing. If None, every sample not used for
        training or validation (about 35 % with the defaults).
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle; an int gives the same split every time.
    shuffle : bool, default=True
        If False, the parts are consecutive blocks in the input order.

    Returns
    -------
    splitting : list of length 6
        ``[X_train, X_val, X_test, y_train, y_val, y_test]``, of the input
        types.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` have different lengths, or a part would be empty or
        the parts would need more samples than there are.

    See Also
    --------
    split_and_standardize : Split, then standardise with the training part.
    sklearn.model_selection.train_test_split : The two-part version.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.datasets import train_val_test_split
    >>> X, y = np.arange(1012).reshape(506, 2), np.arange(506)
    >>> X_tr, X_val, X_te, y_tr, y_val, y_te = train_val_test_split(
    ...     X, y, random_state=0)
    >>> len(y_tr), len(y_val), len(y_te)
    (253, 76, 177)
    """
    X, y = indexable(X, y)
    check_consistent_length(X, y)
    n_samples = len(y) if hasattr(y, "__len__") else y.shape[0]
    parts = _split_indices(
        n_samples,
        train_size=train_size,
        val_size=val_size,
        test_size=test_size,
        shuffle=shuffle,
        random_state=random_state,
    )
    return [_safe_indexing(X, idx) for idx in parts] + [
        _safe_indexing(y, idx) for idx in parts
    ]


def _check_y(y) -> np.ndarray:
    y = check_array(
        y, ensure_2d=False, dtype=np.float64, input_name="y", ensure_min_samples=1
    )
    return column_or_1d(y, warn=False)


def _check_statistics(mean, scale, name: str) -> None:
    """Finite data can still overflow float64 in the variance (|values| ~1e154+)."""
    bad = ~(np.isfinite(mean) & np.isfinite(scale))
    if bad.any():
        raise ValueError(
            f"{name} has values too large to standardise in float64 (the variance "
            f"overflows at columns {np.flatnonzero(bad)[:5].tolist()}); rescale "
            f"{name} first."
        )


class PaperStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardise features and target with statistics of the clean training data.

    The paper (Appendix E) z-scores features and target with the mean and
    standard deviation of the clean training part only; poisoning points
    added later are transformed, never refitted on. This class keeps the two
    statistics side by side so they can be applied to every part and undone
    for reporting. Features and target are scaled by
    :class:`~sklearn.preprocessing.StandardScaler` (population standard
    deviation; a constant column gets scale 1, never NaN).

    Used on ``X`` alone (``transform(X)``) it is an ordinary transformer, so it
    can sit in a :class:`~sklearn.pipeline.Pipeline`.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Mean of each feature on the training data.
    scale_ : ndarray of shape (n_features,)
        Standard deviation of each feature (1 where it is 0).
    y_mean_ : float
        Mean of the training target; only if ``fit`` was given ``y``.
    y_scale_ : float
        Standard deviation of the training target (1 if it is 0); only if
        ``fit`` was given ``y``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``, when ``X`` has string column
        names.

    See Also
    --------
    split_and_standardize : The paper's split followed by this standardiser.
    sklearn.preprocessing.StandardScaler : What scales each part.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.datasets import PaperStandardizer
    >>> X = np.array([[1.0, 5.0], [3.0, 5.0]])
    >>> y = np.array([10.0, 20.0])
    >>> scaler = PaperStandardizer().fit(X, y)
    >>> X_std, y_std = scaler.transform(X, y)
    >>> X_std.tolist(), y_std.tolist()
    ([[-1.0, 0.0], [1.0, 0.0]], [-1.0, 1.0])
    >>> scaler.inverse_transform_y(y_std).tolist()
    [10.0, 20.0]
    """

    @atomic_fit
    def fit(self, X, y=None):
        """Compute the mean and standard deviation of ``X`` (and ``y``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean training features.
        y : array-like of shape (n_samples,), default=None
            Clean training target. If None, only features are standardised.

        Returns
        -------
        self : PaperStandardizer
            The fitted standardiser.
        """
        check_not_datetime(X)
        X = validate_data(self, X, dtype=np.float64)
        self._x_scaler = StandardScaler().fit(X)
        self.mean_ = self._x_scaler.mean_
        self.scale_ = self._x_scaler.scale_
        _check_statistics(self.mean_, self.scale_, "X")
        # A refit without y must not keep the target statistics of an earlier fit.
        for name in ("y_mean_", "y_scale_"):
            if hasattr(self, name):
                delattr(self, name)
        if y is not None:
            y = _check_y(y)
            check_consistent_length(X, y)
            y_scaler = StandardScaler().fit(y.reshape(-1, 1))
            self.y_mean_ = float(y_scaler.mean_[0])
            self.y_scale_ = float(y_scaler.scale_[0])
            _check_statistics(y_scaler.mean_, y_scaler.scale_, "y")
        return self

    def _check_y_fitted(self):
        check_is_fitted(self)
        if not hasattr(self, "y_scale_"):
            raise ValueError(
                "This PaperStandardizer was fitted without y; call fit(X, y) to "
                "standardise the target too."
            )

    def transform(self, X, y=None):
        """Standardise ``X`` (and ``y``) with the training statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features to standardise.
        y : array-like of shape (n_samples,), default=None
            Target to standardise; needs ``fit`` to have been given ``y``.

        Returns
        -------
        X_std : ndarray of shape (n_samples, n_features)
            Standardised features.
        y_std : ndarray of shape (n_samples,)
            Standardised target, returned (as a second value) only if ``y`` is
            given.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        X_std = self._x_scaler.transform(X)
        if y is None:
            return X_std
        y_std = self.transform_y(y)
        check_consistent_length(X_std, y_std)
        return X_std, y_std

    def transform_y(self, y):
        """Standardise a target with the training mean and standard deviation.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Target in the data's units.

        Returns
        -------
        y_std : ndarray of shape (n_samples,)
            ``(y - y_mean_) / y_scale_``.
        """
        self._check_y_fitted()
        return (_check_y(y) - self.y_mean_) / self.y_scale_

    def inverse_transform(self, X):
        """Map standardised features back to the data's units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Standardised features.

        Returns
        -------
        X_orig : ndarray of shape (n_samples, n_features)
            ``X * scale_ + mean_``.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64, input_name="X")
        return self._x_scaler.inverse_transform(X)

    def inverse_transform_y(self, y):
        """Map a standardised target (or prediction) back to the data's units.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Standardised target or predictions.

        Returns
        -------
        y_orig : ndarray of shape (n_samples,)
            ``y * y_scale_ + y_mean_``.
        """
        self._check_y_fitted()
        return _check_y(y) * self.y_scale_ + self.y_mean_


def split_and_standardize(
    X,
    y,
    *,
    train_size: float | int = 0.5,
    val_size: float | int = 0.15,
    test_size: float | int | None = None,
    random_state=None,
    shuffle: bool = True,
) -> Bunch:
    """Split as the paper does, then standardise every part with the training part.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features, finite.
    y : array-like of shape (n_samples,)
        Target, finite.
    train_size, val_size, test_size, random_state, shuffle
        As in :func:`train_val_test_split`.

    Returns
    -------
    split : :class:`~sklearn.utils.Bunch`
        With float64 arrays ``X_train``, ``X_val``, ``X_test`` (standardised
        features), ``y_train``, ``y_val``, ``y_test`` (standardised targets),
        ``train_indices``, ``val_indices``, ``test_indices`` (the rows of the
        input each part came from) and ``scaler``, the
        :class:`PaperStandardizer` fitted on the training part (use
        ``scaler.inverse_transform_y`` to report in the data's units).

    See Also
    --------
    train_val_test_split, PaperStandardizer

    Examples
    --------
    >>> from skpoison.datasets import load_boston_housing, split_and_standardize
    >>> X, y = load_boston_housing(return_X_y=True)
    >>> split = split_and_standardize(X, y, random_state=0)
    >>> split.X_train.shape, split.X_val.shape, split.X_test.shape
    ((253, 13), (76, 13), (177, 13))
    >>> round(float(split.y_train.mean()), 12), round(float(split.y_train.std()), 12)
    (0.0, 1.0)
    """
    check_not_datetime(X)
    X = check_array(X, dtype=np.float64, input_name="X")
    y = _check_y(y)
    check_consistent_length(X, y)
    train, val, test = _split_indices(
        X.shape[0],
        train_size=train_size,
        val_size=val_size,
        test_size=test_size,
        shuffle=shuffle,
        random_state=random_state,
    )
    scaler = PaperStandardizer().fit(X[train], y[train])
    parts = {}
    for name, idx in (("train", train), ("val", val), ("test", test)):
        parts[f"X_{name}"], parts[f"y_{name}"] = scaler.transform(X[idx], y[idx])
        parts[f"{name}_indices"] = idx
    return Bunch(scaler=scaler, **parts)
