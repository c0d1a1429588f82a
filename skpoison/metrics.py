"""The paper's evaluation metrics: NMSE (Eq. 7) and the test defense gain (Eq. 8).

NMSE divides the mean squared error by the mean squared *label*,
``||y_true||^2 / n``, not by the variance of ``y_true``: on standardised
targets (mean 0 on the clean training data) the two are close, but NMSE is
not invariant to shifting the target. It is invariant to scaling ``y_true`` and
``y_pred`` by the same factor.

Which normaliser to use. The mean square is ``var(y) + mean(y)^2``, so on a
target with an offset the paper's NMSE is small whatever the model does
(predicting the mean alone scores ``var / (var + mean^2)``). Use the default,
``normalize="mean_square"`` (Eq. 7), to compare with the paper's numbers on
standardised targets; use ``normalize="variance"`` (``1 - R^2`` of the
predictions, shift- and scale-free; ``vnmse_scorer``) for targets in their
own units, or to compare studies whose targets are centred differently. The
default warns (:class:`~skpoison.exceptions.UncentredTargetWarning`) when
``|mean(y_true)| > 0.5 std(y_true)``: there the two normalisers differ by more
than 25 %, far more than the test split of a standardised target drifts
(about ``1 / sqrt(n_test)`` standard deviations).

The defense gain is the relative reduction of NMSE a defense brings,
``100 * (NMSE_no_defense - NMSE_defense) / NMSE_no_defense``: positive when the
defense helps, negative when it hurts.

``nmse_scorer`` is ``make_scorer(nmse, greater_is_better=False)`` and
``vnmse_scorer`` its variance-normalised twin: they return ``-nmse`` so that
greater is better, as ``cross_validate`` and ``GridSearchCV`` expect. scikit-learn has no public registry for scorer names, so pass the
object itself (``scoring=nmse_scorer``), not a string.

Examples
--------
>>> from sklearn.linear_model import LinearRegression
>>> from sklearn.model_selection import cross_val_score
>>> from skpoison.datasets import make_poisoning_regression_1d
>>> from skpoison.metrics import nmse_scorer
>>> X, y = make_poisoning_regression_1d(100, random_state=0)
>>> scores = cross_val_score(LinearRegression(), X, y, cv=3, scoring=nmse_scorer)
>>> bool((scores < 0).all())
True
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from sklearn.metrics import make_scorer, mean_squared_error
from sklearn.utils import check_consistent_length
from sklearn.utils.validation import _check_sample_weight, check_array

from .exceptions import UncentredTargetWarning

__all__ = ["defense_gain", "nmse", "nmse_scorer", "vnmse_scorer"]

# |mean| > 0.5 std: the mean square exceeds the variance by more than 25 %.
_UNCENTRED_RATIO = 0.5
_NORMALIZERS = ("mean_square", "variance")


def _check_1d(values, name: str) -> np.ndarray:
    values = check_array(
        values, ensure_2d=False, dtype=np.float64, input_name=name, ensure_min_samples=1
    )
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be 1-d (or a single column), got shape {values.shape}."
        )
    return values


def nmse(
    y_true,
    y_pred,
    *,
    sample_weight=None,
    normalize: Literal["mean_square", "variance"] = "mean_square",
) -> float:
    """Normalised mean squared error, as defined in the paper (Eq. 7).

    ``NMSE = MSE(y_true, y_pred) / (||y_true||_2^2 / n)``: the mean squared
    error divided by the mean squared label. With ``sample_weight``, both means
    are weighted. With ``normalize="variance"`` the divisor is the variance of
    ``y_true`` instead (``1 - R^2``), which does not change when ``y_true`` and
    ``y_pred`` are shifted together.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True targets, finite and not all zero.
    y_pred : array-like of shape (n_samples,)
        Predictions, finite.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights of the samples.
    normalize : {"mean_square", "variance"}, default="mean_square"
        The divisor: the mean square of ``y_true`` (the paper's Eq. 7; compare
        with the paper on standardised targets) or its variance (targets in
        their own units, or centred differently). See the module docstring.

    Returns
    -------
    nmse : float
        Non-negative; 0 for a perfect prediction, 1 for predicting 0
        (``"mean_square"``) or for predicting the mean (``"variance"``).

    Raises
    ------
    ValueError
        If an input holds NaN or inf, is not 1-d, the lengths differ, the
        normaliser is 0 (``y_true`` all zeros, or constant with
        ``"variance"``), or ``normalize`` is unknown.

    Warns
    -----
    UncentredTargetWarning
        With ``"mean_square"``, when ``|mean(y_true)| > 0.5 std(y_true)``
        (weighted): the result then depends on the target's offset.

    See Also
    --------
    defense_gain : Relative NMSE reduction of a defense (Eq. 8).
    sklearn.metrics.mean_squared_error : The numerator.

    References
    ----------
    .. [1] J. Carnerero-Cano, L. Muñoz-González, P. Spencer and E. C. Lupu,
       "Stealthy Poisoning Attacks Bypass Defenses in Regression Settings",
       Eq. (7).

    Examples
    --------
    >>> from skpoison.metrics import nmse
    >>> nmse([1.0, -1.0, 0.0], [1.0, -1.0, 0.0])
    0.0
    >>> nmse([1.0, -1.0], [0.0, 0.0])
    1.0
    >>> nmse([2.0, -2.0], [1.0, -3.0])
    0.25
    >>> nmse([1.0, -1.0, 0.0], [0.5, -1.0, 0.5], normalize="variance")
    0.25
    >>> nmse([11.0, 9.0, 10.0], [10.5, 9.0, 10.5], normalize="variance")
    0.25
    """
    if normalize not in _NORMALIZERS:
        raise ValueError(
            f"normalize must be one of {list(_NORMALIZERS)}, got {normalize!r}."
        )
    y_true = _check_1d(y_true, "y_true")
    y_pred = _check_1d(y_pred, "y_pred")
    check_consistent_length(y_true, y_pred)
    if sample_weight is not None:
        sample_weight = _check_sample_weight(
            sample_weight, y_true, ensure_non_negative=True
        )
    # NMSE is scale-free: dividing both by max|y_true| first avoids overflow in
    # the squares for very large targets and changes nothing else.
    largest = np.max(np.abs(y_true))
    if largest > 0:
        y_true, y_pred = y_true / largest, y_pred / largest
    mean = np.average(y_true, weights=sample_weight)
    variance = np.average((y_true - mean) ** 2, weights=sample_weight)
    if normalize == "variance":
        if not variance > 0:
            raise ValueError(
                "nmse(normalize='variance') is undefined when y_true is constant "
                "(its variance, the normaliser, is 0)."
            )
        normaliser = variance
    else:
        normaliser = np.average(y_true**2, weights=sample_weight)
        if not normaliser > 0:
            raise ValueError(
                "nmse is undefined when y_true is all zeros (||y_true||^2 = 0 is "
                "the normaliser)."
            )
        offset = abs(mean) / np.sqrt(variance) if variance > 0 else np.inf
        if offset > _UNCENTRED_RATIO:
            warnings.warn(
                f"nmse: y_true is far from centred (|mean| = {offset:.3g} "
                "standard deviations > 0.5), so Eq. 7's mean-square normaliser "
                "exceeds the variance by more than 25 % and the NMSE depends on "
                "the target's offset. Centre the target or use "
                "normalize='variance' (vnmse_scorer).",
                UncentredTargetWarning,
                stacklevel=2,
            )
    mse = mean_squared_error(y_true, y_pred, sample_weight=sample_weight)
    return float(mse / normaliser)


def defense_gain(nmse_no_defense, nmse_defense):
    """Test defense gain in percent (Eq. 8), elementwise.

    ``100 * (nmse_no_defense - nmse_defense) / nmse_no_defense``: how much a
    defense reduces the NMSE relative to the undefended model. Positive when
    the defense helps, 0 when it changes nothing, negative when it hurts.

    Parameters
    ----------
    nmse_no_defense : float or array-like
        NMSE of the model trained without defense (the reference); must be
        finite and > 0.
    nmse_defense : float or array-like
        NMSE of the defended model; finite and >= 0. Broadcast against
        ``nmse_no_defense``.

    Returns
    -------
    gain : float or ndarray
        The gain in percent, a float for scalar inputs, else an array of the
        broadcast shape.

    Raises
    ------
    ValueError
        If the reference is zero or negative, an NMSE is negative, a value is
        NaN or inf, or the shapes do not broadcast.

    See Also
    --------
    nmse : The normalised mean squared error (Eq. 7).

    References
    ----------
    .. [1] J. Carnerero-Cano, L. Muñoz-González, P. Spencer and E. C. Lupu,
       "Stealthy Poisoning Attacks Bypass Defenses in Regression Settings",
       Eq. (8).

    Examples
    --------
    >>> from skpoison.metrics import defense_gain
    >>> defense_gain(0.5, 0.25)
    50.0
    >>> defense_gain([0.5, 0.5], [0.5, 1.0]).tolist()
    [0.0, -100.0]
    """
    reference = np.asarray(nmse_no_defense, dtype=np.float64)
    defended = np.asarray(nmse_defense, dtype=np.float64)
    for name, values in (("nmse_no_defense", reference), ("nmse_defense", defended)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must be finite, got NaN or inf.")
        if np.any(values < 0):
            raise ValueError(f"{name} must be >= 0 (an NMSE), got a negative value.")
    if np.any(reference == 0):
        raise ValueError(
            "nmse_no_defense must be > 0: the gain is relative to it and is "
            "undefined for a zero reference."
        )
    try:
        gain = 100.0 * (reference - defended) / reference
    except ValueError as exc:
        raise ValueError(
            f"nmse_no_defense of shape {reference.shape} and nmse_defense of shape "
            f"{defended.shape} do not broadcast."
        ) from exc
    return float(gain) if gain.ndim == 0 else gain


#: Scorer for ``scoring=`` in ``cross_validate`` / ``GridSearchCV``: returns
#: ``-nmse(y, estimator.predict(X))`` because sklearn maximises scores; pass the
#: object itself (sklearn has no public registry for scorer names).
nmse_scorer = make_scorer(nmse, greater_is_better=False)

#: Like :data:`nmse_scorer`, with ``nmse(..., normalize="variance")``: for
#: targets that are not centred (their own units, or centred differently).
vnmse_scorer = make_scorer(nmse, greater_is_better=False, normalize="variance")
