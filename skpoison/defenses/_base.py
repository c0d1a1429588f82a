"""The contract every defense follows.

A defense decides, in ``fit(X, y)``, which training points to keep:

- ``inlier_mask_``: bool array of shape (n_samples,), True for kept points;
- ``scores_``: float array of shape (n_samples,), higher means more suspicious
  (each defense documents what its score is);
- ``n_features_in_`` (and ``feature_names_in_`` for DataFrames).

``fit_resample(X, y)`` then returns the kept points, which makes every defense a
sampler in the sense of imbalanced-learn: inside ``imblearn.pipeline.Pipeline`` it
cleans the training folds and is skipped at predict time. To drop a defense into a
plain ``sklearn.pipeline.Pipeline`` wrap it in :class:`~skpoison.defenses.DefendedRegressor`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["BaseDefense", "PredictWithEstimatorMixin", "mask_keep_lowest"]


def mask_keep_lowest(scores: np.ndarray, n_reject: int) -> np.ndarray:
    """Boolean mask that keeps all but the ``n_reject`` highest scores.

    Ties are broken by a stable sort, so the result depends on the scores only,
    never on hidden state.

    Examples
    --------
    >>> mask_keep_lowest(np.array([0.1, 5.0, 0.2, 3.0]), 2)
    array([ True, False,  True, False])
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    n_keep = n - int(n_reject)
    mask = np.ones(n, dtype=bool)
    if n_reject <= 0:
        return mask
    if n_keep <= 0:
        return ~mask
    # O(n) selection instead of a full sort (TRIM calls this every iteration on
    # up to millions of points). Same result as a stable argsort: values below
    # the threshold are kept, ties at the threshold go to the lowest indices, and
    # NaN (sorted last by np.partition) is rejected first.
    threshold = np.partition(scores, n_keep - 1)[n_keep - 1]
    if np.isnan(threshold):
        mask = ~np.isnan(scores)
        at_threshold = np.flatnonzero(~mask)
    else:
        mask = scores < threshold
        at_threshold = np.flatnonzero(scores == threshold)
    mask[at_threshold[: n_keep - int(mask.sum())]] = True
    return mask


class BaseDefense(BaseEstimator):
    """Base class of skpoison's defenses (filters and robust regressors).

    Subclasses implement ``fit`` and set ``inlier_mask_`` and ``scores_``.
    This base adds :meth:`fit_resample` and :meth:`get_inliers`.

    Examples
    --------
    A defense that rejects the point with the largest absolute target, to show
    the contract (real defenses: :class:`~skpoison.defenses.BayesCleanFilter`,
    :class:`~skpoison.defenses.TrimRegressor`, ...):

    >>> import numpy as np
    >>> from skpoison.defenses import BaseDefense
    >>> class RejectLargestTarget(BaseDefense):
    ...     def fit(self, X, y):
    ...         self.scores_ = np.abs(np.asarray(y, dtype=float))
    ...         self.inlier_mask_ = mask_keep_lowest(self.scores_, 1)
    ...         return self
    >>> X = np.arange(8.0).reshape(4, 2); y = np.array([0.5, -9.0, 1.0, 2.0])
    >>> X_kept, y_kept = RejectLargestTarget().fit_resample(X, y)
    >>> y_kept
    array([0.5, 1. , 2. ])
    >>> RejectLargestTarget().fit(X, y).get_inliers()
    array([0, 2, 3])
    """

    def fit_resample(self, X, y, **fit_params):
        """Fit the defense and return the training points it keeps.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (possibly poisoned).
        y : array-like of shape (n_samples,)
            Training targets.
        **fit_params : dict
            Passed on to ``fit`` (for example the trusted set of
            :class:`~skpoison.defenses.DutiFilter`).

        Returns
        -------
        X_kept : array-like of shape (n_kept, n_features)
            The rows of ``X`` with ``inlier_mask_`` True, of the same container
            type as ``X`` (a DataFrame stays a DataFrame).
        y_kept : array-like of shape (n_kept,)
            The matching targets.
        """
        self.fit(X, y, **fit_params)
        keep = np.flatnonzero(self.inlier_mask_)
        return _safe_indexing(X, keep), _safe_indexing(y, keep)

    def get_inliers(self):
        """Indices of the kept training points (``np.flatnonzero(inlier_mask_)``)."""
        check_is_fitted(self, "inlier_mask_")
        return np.flatnonzero(self.inlier_mask_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A defense needs y to decide what to reject.
        tags.target_tags.required = True
        return tags


class PredictWithEstimatorMixin:
    """``predict`` for defenses that end with a fitted regressor in ``estimator_``.

    The input is checked against what ``fit`` saw (number and names of features)
    and converted to float64 before the regressor sees it.
    """

    def predict(self, X):
        """Predict with the model trained on the kept points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predictions.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.estimator_.predict(X)
