"""DefendedRegressor: a defense followed by a regressor, as one sklearn estimator.

This is how a filter drops into a plain ``sklearn.pipeline.Pipeline``,
``cross_validate`` and ``GridSearchCV`` (``param_grid={"defense__c1": [...]}``).
Inside ``imblearn.pipeline.Pipeline`` the defense can be used directly as a
sampler step instead.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    RegressorMixin,
    _fit_context,
    clone,
)
from sklearn.linear_model import LinearRegression
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.validation import _check_method_params

from .._state import atomic_fit
from .._validation import validate_regression_data
from ._base import PredictWithEstimatorMixin

__all__ = ["DefendedRegressor"]


class DefendedRegressor(
    PredictWithEstimatorMixin, MetaEstimatorMixin, RegressorMixin, BaseEstimator
):
    """Fit a defense, then a regressor on the training points the defense keeps.

    Parameters
    ----------
    defense : estimator
        A skpoison defense (any object whose ``fit(X, y)`` sets a boolean
        ``inlier_mask_``). It is cloned before fitting.
    estimator : regressor, default=None
        The model trained on the kept points; ``None`` means
        :class:`~sklearn.linear_model.LinearRegression`. It is cloned before
        fitting.

    Attributes
    ----------
    defense_ : estimator
        The fitted clone of ``defense``.
    estimator_ : regressor
        The fitted clone of ``estimator``, trained on the kept points.
    inlier_mask_ : ndarray of shape (n_samples,)
        True for the training points the defense kept.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    BayesCleanFilter : The paper's uncertainty-based filter.
    TrimRegressor : Trimmed least squares.

    Notes
    -----
    Extra keyword arguments of :meth:`fit` go to the defense's ``fit`` (for
    example ``X_trusted`` and ``y_trusted`` of :class:`~skpoison.defenses.DutiFilter`).
    With ``sklearn.set_config(enable_metadata_routing=True)`` they are routed
    instead: request them with ``defense.set_fit_request(...)`` and
    ``estimator.set_fit_request(...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skpoison.defenses import DefendedRegressor
    >>> from skpoison.defenses._base import BaseDefense
    >>> class KeepAll(BaseDefense):
    ...     def fit(self, X, y):
    ...         self.inlier_mask_ = np.ones(len(y), dtype=bool)
    ...         self.scores_ = np.zeros(len(y))
    ...         return self
    >>> X = np.arange(10.0).reshape(-1, 1); y = 2 * X.ravel() + 1
    >>> model = DefendedRegressor(KeepAll(), Ridge(alpha=0.0)).fit(X, y)
    >>> model.predict([[20.0]]).round(6)
    array([41.])
    """

    _parameter_constraints: dict = {
        "defense": [HasMethods(["fit"])],
        "estimator": [HasMethods(["fit", "predict"]), None],
    }

    def __init__(self, defense, estimator=None):
        self.defense = defense
        self.estimator = estimator

    def _make_estimator(self):
        return LinearRegression() if self.estimator is None else clone(self.estimator)

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, **fit_params):
        """Fit the defense on ``(X, y)``, then the estimator on the kept points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Training targets.
        **fit_params : dict
            Passed to the defense's ``fit`` (or routed, see Notes).

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_regression_data(self, X, y, dtype=np.float64)
        if _routing_enabled():
            routed = process_routing(self, "fit", **fit_params)
            defense_params, estimator_params = routed.defense.fit, routed.estimator.fit
        else:
            defense_params, estimator_params = fit_params, {}
        self.defense_ = clone(self.defense).fit(X, y, **defense_params)
        mask = np.asarray(getattr(self.defense_, "inlier_mask_", None))
        if mask.dtype != bool or mask.shape != (X.shape[0],):
            raise TypeError(
                f"defense {type(self.defense).__name__} must set a boolean inlier_mask_ "
                f"of shape ({X.shape[0]},) in fit."
            )
        if not mask.any():
            raise ValueError("The defense rejected every training point.")
        self.inlier_mask_ = mask
        # Per-sample metadata (sample_weight, ...) follows the kept rows.
        estimator_params = _check_method_params(
            X, params=estimator_params, indices=np.flatnonzero(mask)
        )
        self.estimator_ = self._make_estimator().fit(
            X[mask], y[mask], **estimator_params
        )
        return self

    def get_metadata_routing(self):
        """Route ``fit`` metadata to the defense and the estimator."""
        return (
            MetadataRouter(owner=self)
            .add(
                defense=self.defense,
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
            .add(
                estimator=self._make_estimator(),
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
        )
