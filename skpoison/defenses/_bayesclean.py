"""BayesClean: reject training points by their place in a Bayesian predictive distribution.

The paper's defense (Section V-C, Alg. 5 in Appendix D). A Bayesian linear
regression with Gamma hyperpriors is fitted by evidence maximisation (MacKay's
updates, up to ``T_EM`` iterations); this is exactly
:class:`sklearn.linear_model.BayesianRidge`, whose ``alpha_`` is the paper's noise
precision ``beta`` and whose ``lambda_`` is the paper's weight precision
``lambda``. Each training point then gets its predictive mean and standard
deviation ``mu_i``, ``sigma_i`` (``sigma_i^2 = 1 / beta + x_i^T Sigma_post x_i``)
and falls in one of three disjoint sets: accepted, flagged, rejected.

Poisoning points inflate the fitted noise variance ``1 / beta`` (Section V-B), so
the rule scales with the model's own uncertainty and needs no estimate of the
number of poisoning points.

Units. The Gamma hyperpriors are not scale free: a rate ``beta_2 = 1e-6`` is
negligible next to a noise variance of 1 but not next to one of 1e-8, and the
weight prior is isotropic, so its pull on each coefficient depends on the unit
of its feature. Fitted on raw data, the decisions then change with the units:
``y`` in dollars rejects far more clean points than the same ``y`` in
thousands. By default (``standardize=True``) the model is therefore fitted on
``X`` and ``y`` standardised (column means and standard deviations, as
:class:`~sklearn.preprocessing.StandardScaler`; no centring when
``fit_intercept=False``), the moments and scores are computed there and
mapped back: ``mu_i`` and ``sigma_i`` transform with ``y``, and the decisions
are invariant to ``y -> a y + b`` and ``X -> X D + c`` (``a != 0``, ``D``
diagonal and invertible), at any units float64 can hold (each column is first
divided by a power of two near its magnitude, so that nothing is squared in
the data's units: y in units of 1e69 and a feature in units of 1e-85 give the
decisions of the data in units of 1). This amounts to priors stated in
standard deviations of the data.
``standardize=False`` fits the raw data, the literal reading of Alg. 5.

Two readings of the thresholds
------------------------------
The text describes the accepted points as those "closest to the predictive mean";
Alg. 5 writes the accept set as ``|y_i| <= |mu_i + c1 sigma_i|``. The two differ:
the formula compares magnitudes, so for a negative ``mu_i`` a point far *below*
the mean can be accepted and a point just above it rejected. We implement

- ``rule="residual"`` (default), the text's reading:
  accepted ``|y_i - mu_i| <= c1 sigma_i``, rejected ``|y_i - mu_i| > c2 sigma_i``,
  flagged in between;
- ``rule="paper"``, Alg. 5 literally: accepted ``|y_i| <= |mu_i + c1 sigma_i|``,
  rejected ``|y_i| > |mu_i + c2 sigma_i|``, flagged otherwise. Where
  ``|mu_i + c1 sigma_i| > |mu_i + c2 sigma_i|`` (possible when ``mu_i < 0``) the
  literal sets overlap; acceptance takes precedence so the three sets stay a
  partition. Note that this rule is not monotone in ``c1``, ``c2``: for
  ``mu_i < 0``, a larger ``c`` shrinks ``|mu_i + c sigma_i|`` and accepts fewer
  points. It also depends on where the origin of ``y`` is (shifting ``y`` by a
  constant changes the decisions), which the residual rule does not.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.linear_model import BayesianRidge
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions

from .._state import atomic_fit
from .._validation import validate_regression_data
from ._base import BaseDefense
from ._linear import _BLOCK_ELEMENTS, _power_of_two_near, _shifted_and_scaled

_EPS = np.finfo(np.float64).eps
# _standard_frame's one pass is used when each column's mean lies within
# _MAX_SHIFT standard deviations of its origin (centring cancels a digit at most).
_MAX_SHIFT = 4.0

__all__ = ["BayesCleanFilter"]


def _predictive_mean_std(estimator: BayesianRidge, X: np.ndarray, centred=False):
    """``estimator.predict(X, return_std=True)`` over blocks of rows, never NaN.

    The variance is ``x_c^T sigma_ x_c + 1 / alpha_`` (``x_c = x - X_offset_``),
    as in ``BayesianRidge.predict``, with the model term clipped at 0: it is
    non-negative in exact arithmetic, but when ``y`` is fitted almost exactly on
    unscaled features (e.g. of order 1e8) ``sigma_`` is tiny, the quadratic form
    cancels to a small negative number and ``predict`` returns NaN. Elsewhere the
    result is that of ``predict`` (the mean bit for bit unless ``centred``). On
    the whole of ``X`` the predictive std builds temporaries the size of ``X``;
    blocks of about 512 KB keep the memory flat and the work in cache (the
    product with ``sigma_`` runs about a third faster than on 8 MB blocks).
    ``centred=True``: the rows of ``X`` are already ``x_c`` (the fit centred
    them in place), and the mean is ``x_c . coef_ + intercept_ + X_offset_ .
    coef_``.
    """
    step = max(64, (1 << 16) // max(X.shape[1], 1))
    mu = np.empty(X.shape[0])
    sigma = np.empty(X.shape[0])
    noise_var = 1.0 / estimator.alpha_
    coef, intercept = estimator.coef_, estimator.intercept_
    if centred:
        intercept = intercept + estimator.X_offset_ @ coef
    for start in range(0, X.shape[0], step):
        block = slice(start, start + step)
        # LinearModel.predict's X @ coef_ + intercept_, without validating
        # each block again.
        np.dot(X[block], coef, out=mu[block])
        mu[block] += intercept
        Xc = X[block] if centred else X[block] - estimator.X_offset_
        model_var = np.einsum("ij,ij->i", np.dot(Xc, estimator.sigma_), Xc)
        sigma[block] = np.sqrt(np.maximum(model_var, 0.0) + noise_var)
    return mu, sigma


def _moments_and_scores(
    estimator: BayesianRidge, X: np.ndarray, y: np.ndarray, centred=False
):
    """Predictive mean and std of the rows of ``X`` and the scores ``|y - mu| / sigma``."""
    with np.errstate(all="ignore"):
        mu, sigma = _predictive_mean_std(estimator, X, centred)
        # sigma >= sqrt(1 / alpha_) > 0 in exact arithmetic; guard the division.
        scores = np.abs(y - mu) / np.maximum(sigma, np.finfo(np.float64).tiny)
    return mu, sigma, scores


def _standard_frame(A: np.ndarray, centre: bool):
    """Column means and scales of ``A`` (as :class:`StandardScaler`), never under/overflowing.

    Nothing is squared in the units of ``A``: the columns are first divided by
    a power of two (exact), so the squares are of order 1 whatever the units
    (data at 1e-200 keeps its spread instead of looking constant). One pass, a
    row block at a time and no copy of ``A``: the sums and squares of ``(A -
    origin) / unit``, with ``origin`` a value of each column from a sample of
    rows (so a constant column is exactly 0) and ``unit`` the power of two near
    the sample's largest deviation from it. When that is inaccurate (the mean
    more than a few standard deviations from the origin, or a row far beyond
    the sample, or a column constant on the sample),
    :func:`_standard_frame_two_pass`. Constant columns are found
    by ``StandardScaler``'s test (``sklearn.preprocessing._data.
    _is_constant_feature``, which is unit free) and get the scale of their
    unit, as there.
    """
    n, d = A.shape
    sample = A[:: max(1, n // 1024)]
    origin = np.partition(sample, sample.shape[0] // 2, axis=0)[sample.shape[0] // 2]
    with np.errstate(over="ignore", invalid="ignore"):
        spread = np.abs(sample - origin).max(axis=0)
    unit = _power_of_two_near(spread)
    total = np.zeros(d)
    squares = np.zeros(d)
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, step):
            shifted = A[start : start + step] - origin
            shifted /= unit
            total += shifted.sum(axis=0)
            squares += np.einsum("ij,ij->j", shifted, shifted)
        shift = total / n
        var = (squares - total * shift) / n
    # A column constant on the sample has no unit for the rest of its rows.
    if not (
        np.isfinite(squares).all()
        and np.all(shift * shift <= _MAX_SHIFT**2 * var)
        and np.all(spread > 0)
    ):
        return _standard_frame_two_pass(A, centre)
    mean = origin + shift * unit
    # The test on the columns in their units (degree 2 in them: any units).
    constant = var <= n * _EPS * var + (n * (origin / unit + shift) * _EPS) ** 2
    scale = np.where(constant, _power_of_two_near(np.abs(mean)), np.sqrt(var) * unit)
    return (mean if centre else np.zeros(d)), scale


def _standard_frame_two_pass(A: np.ndarray, centre: bool):
    """:func:`_standard_frame` in two passes: the largest magnitudes and sums, then
    the squares of the centred rows divided by the powers of two near the former
    (``StandardScaler``'s two-pass variance with its correction term)."""
    n, d = A.shape
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    total = np.zeros(d)
    top = np.zeros(d)
    for start in range(0, n, step):
        block = A[start : start + step]
        total += block.sum(axis=0)
        np.maximum(top, block.max(axis=0), out=top)
        np.maximum(top, -block.min(axis=0), out=top)
    unit = _power_of_two_near(top)
    mean = total / n
    squares = np.zeros(d)
    correction = np.zeros(d)
    for start in range(0, n, step):
        centred = A[start : start + step] - mean
        centred /= unit
        correction += centred.sum(axis=0)
        squares += np.einsum("ij,ij->j", centred, centred)
    var = (squares - correction * correction / n) / n
    constant = var <= n * _EPS * var + (n * (mean / unit) * _EPS) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var)) * unit
    return (mean if centre else np.zeros(d)), scale


def _fit_standardized(estimator: BayesianRidge, X: np.ndarray, y: np.ndarray):
    """Fit ``estimator`` on standardised ``(X, y)``; the moments, then the model, in the units.

    Returns the estimator and the predictive mean and std of the rows of ``X``
    in the units of ``y``, computed in standard coordinates (``mu = y_mean +
    y_scale * mu'``, ``sigma = y_scale * sigma'``) and the scores there, so that
    nothing in the decisions is squared in the data's units. Then, with ``x =
    x_mean + x_scale * x'`` and ``y = y_mean + y_scale * y'``, the model ``y' =
    w' . (x' - o') + b'`` with posterior covariance ``S'`` and noise precision
    ``a'`` is mapped back to ``y = w . (x - o) + b`` with ``w = y_scale * w' /
    x_scale``, ``S = diag(y_scale / x_scale) S' diag(y_scale / x_scale)``, ``a =
    a' / y_scale^2``, ``o = x_mean + x_scale * o'``, which gives the same
    predictive moments. ``S`` has the units of ``(y / x)^2``: with ``y`` in
    units 1e69 and a feature in units 1e-85 it is beyond float64 (a warning
    says so; the moments and decisions are unaffected).
    """
    centre = estimator.fit_intercept
    x_mean, x_scale = _standard_frame(X, centre)
    y_mean, y_scale = (float(v[0]) for v in _standard_frame(y[:, None], centre))
    Xs = _shifted_and_scaled(X, x_mean, x_scale, reciprocal=True)
    ys = (y - y_mean) / y_scale
    # Xs is the filter's own, so the fit need not copy it (copy_X=False: one
    # copy of X fewer); it may centre it in place, as scikit-learn does today:
    # its first row says whether it did.
    first_row = Xs[0].copy()
    estimator.set_params(copy_X=False).fit(Xs, ys)
    estimator.set_params(copy_X=True)  # a refit of estimator_ copies, as usual
    centred = not np.array_equal(Xs[0], first_row)
    mu_s, sigma_s, scores = _moments_and_scores(estimator, Xs, ys, centred)
    with np.errstate(all="ignore"):
        ratio = y_scale / x_scale
        mu, sigma = y_mean + y_scale * mu_s, y_scale * sigma_s
        estimator.coef_ = estimator.coef_ * ratio
        # Row then column: no outer product of the ratios, which can overflow
        # where S itself does not.
        estimator.sigma_ = estimator.sigma_ * ratio[:, None] * ratio[None, :]
        estimator.alpha_ = estimator.alpha_ / y_scale / y_scale
        estimator.intercept_ = (
            y_mean + y_scale * estimator.intercept_ - (x_mean @ estimator.coef_)
            if centre
            else 0.0
        )
    estimator.X_offset_ = x_mean + x_scale * estimator.X_offset_
    estimator.X_scale_ = np.ones_like(x_scale)
    mapped = (estimator.coef_, estimator.sigma_, estimator.intercept_)
    if not (
        all(np.isfinite(v).all() for v in mapped) and 0.0 < estimator.alpha_ < np.inf
    ):
        warnings.warn(
            "BayesCleanFilter: the fitted BayesianRidge in the units of X and y "
            "(estimator_) is beyond float64: its coefficients, posterior "
            "covariance (units of (y / x)^2) or noise precision overflow or "
            "underflow, so estimator_.predict may give inf or NaN. "
            "predictive_mean_, predictive_std_, scores_ and the decisions are "
            "computed in standard units and are exact.",
            UserWarning,
            stacklevel=3,
        )
    return estimator, mu, sigma, scores


class BayesCleanFilter(BaseDefense):
    """The paper's BayesClean defense: filter points by predictive uncertainty.

    Fits :class:`~sklearn.linear_model.BayesianRidge` on the (possibly poisoned)
    training set, computes each point's predictive mean ``mu_i`` and standard
    deviation ``sigma_i``, and splits the points into accepted (within ``c1``
    standard deviations), rejected (beyond ``c2``) and flagged (in between).
    Flagged points are rejected by default, as in the paper's experiments.

    Parameters
    ----------
    c1 : float, default=0.5
        Acceptance threshold, in predictive standard deviations (``c_1`` in the paper).
    c2 : float, default=1.5
        Rejection threshold, in predictive standard deviations (``c_2`` in the
        paper). Must satisfy ``c2 >= c1``.
    flagged : {"reject", "keep"}, default="reject"
        What to do with flagged points (between ``c1`` and ``c2``): the paper's
        experiments reject them.
    rule : {"residual", "paper"}, default="residual"
        ``"residual"`` measures the distance to the predictive mean,
        ``|y_i - mu_i|``, against ``c sigma_i`` (the paper's text); ``"paper"``
        applies Alg. 5's formula ``|y_i|`` against ``|mu_i + c sigma_i|``
        literally. See the module docstring for how they differ.
    max_iter : int, default=300
        Maximum number of evidence-maximisation iterations (``T_EM`` in the paper).
    tol : float, default=1e-3
        Stop the iterations when the coefficients change by less than ``tol``
        (see :class:`~sklearn.linear_model.BayesianRidge`).
    alpha_1, alpha_2 : float, default=1e-6
        Shape and rate of the Gamma prior on the noise precision (``beta_1``,
        ``beta_2`` in the paper).
    lambda_1, lambda_2 : float, default=1e-6
        Shape and rate of the Gamma prior on the weight precision (``lambda_1``,
        ``lambda_2`` in the paper).
    fit_intercept : bool, default=True
        Whether the Bayesian model has an (unpenalised) intercept.
    standardize : bool, default=True
        Fit the Bayesian model on standardised ``X`` and ``y`` and map its
        moments back, so that the decisions do not depend on the units (or,
        with an intercept, the origins) of ``X`` and ``y`` (see the module
        docstring). ``False`` fits the raw data, whose decisions depend on
        them through the priors.

    Attributes
    ----------
    estimator_ : BayesianRidge
        The fitted Bayesian linear model, in the units of ``X`` and ``y``:
        ``predict(X, return_std=True)`` gives ``predictive_mean_`` and
        ``predictive_std_``. With ``standardize=True`` it was fitted on the
        standardised data and its ``coef_``, ``intercept_``, ``sigma_``,
        ``alpha_`` and ``X_offset_`` are mapped back; ``lambda_``, ``scores_``
        and the other evidence quantities stay those of the standardised fit.
        ``sigma_`` is in the units of ``(y / x)^2``: where that is beyond
        float64 (e.g. ``y`` in units of 1e100 and a feature in units of
        1e-100) a ``UserWarning`` says so and ``estimator_.predict`` may give
        inf or NaN; ``predictive_mean_``, ``predictive_std_``, ``scores_`` and
        the masks are computed in standard units and are unaffected.
    predictive_mean_ : ndarray of shape (n_samples,)
        ``mu_i`` of each training point.
    predictive_std_ : ndarray of shape (n_samples,)
        ``sigma_i`` of each training point: ``BayesianRidge``'s predictive
        std, with the term ``x_i^T Sigma_post x_i`` clipped at 0 where rounding
        makes it negative (``y`` fitted almost exactly on unscaled ``X``), so
        it is never NaN and at least ``sqrt(1 / estimator_.alpha_)``.
    accepted_mask_ : ndarray of shape (n_samples,), dtype=bool
        Points accepted as benign (``I_1`` in the paper).
    flagged_mask_ : ndarray of shape (n_samples,), dtype=bool
        Points flagged for inspection (``I_2``).
    rejected_mask_ : ndarray of shape (n_samples,), dtype=bool
        Points rejected (``I_3``).
    inlier_mask_ : ndarray of shape (n_samples,), dtype=bool
        The kept points: ``accepted_mask_``, plus ``flagged_mask_`` when
        ``flagged="keep"``.
    scores_ : ndarray of shape (n_samples,)
        ``|y_i - mu_i| / sigma_i``, the distance to the predictive mean in
        standard deviations (higher is more suspicious). With ``rule="residual"``
        a point is accepted iff ``scores_ <= c1`` and rejected iff ``scores_ > c2``.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.BayesianRidge : The Bayesian model underneath.
    TrimRegressor : Trimmed least squares, which needs the number of points to reject.
    DefendedRegressor : Train any regressor on the points this filter keeps.

    References
    ----------
    .. [1] J. Carnerero-Cano, L. Muñoz-González, P. Spencer and E. C. Lupu,
       "Stealthy Poisoning Attacks Bypass Defenses in Regression Settings",
       Section V and Alg. 5.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import BayesCleanFilter
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-5, 5, size=(200, 1))
    >>> y = 0.8 * X.ravel() + rng.normal(0, 1.2, size=200)
    >>> y[:20] += 30.0  # gross outliers
    >>> bc = BayesCleanFilter().fit(X, y)
    >>> bool(bc.rejected_mask_[:20].all())
    True
    >>> X_kept, y_kept = bc.fit_resample(X, y)
    >>> X_kept.shape[0] == int(bc.inlier_mask_.sum())
    True
    """

    _parameter_constraints: dict = {
        "c1": [Interval(Real, 0, None, closed="left")],
        "c2": [Interval(Real, 0, None, closed="left")],
        "flagged": [StrOptions({"reject", "keep"})],
        "rule": [StrOptions({"residual", "paper"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "alpha_1": [Interval(Real, 0, None, closed="left")],
        "alpha_2": [Interval(Real, 0, None, closed="left")],
        "lambda_1": [Interval(Real, 0, None, closed="left")],
        "lambda_2": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
    }

    def __init__(
        self,
        c1: float = 0.5,
        c2: float = 1.5,
        *,
        flagged: str = "reject",
        rule: str = "residual",
        max_iter: int = 300,
        tol: float = 1e-3,
        alpha_1: float = 1e-6,
        alpha_2: float = 1e-6,
        lambda_1: float = 1e-6,
        lambda_2: float = 1e-6,
        fit_intercept: bool = True,
        standardize: bool = True,
    ):
        self.c1 = c1
        self.c2 = c2
        self.flagged = flagged
        self.rule = rule
        self.max_iter = max_iter
        self.tol = tol
        self.alpha_1 = alpha_1
        self.alpha_2 = alpha_2
        self.lambda_1 = lambda_1
        self.lambda_2 = lambda_2
        self.fit_intercept = fit_intercept
        self.standardize = standardize

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the Bayesian model and split the training points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (possibly poisoned).
        y : array-like of shape (n_samples,)
            Training targets.

        Returns
        -------
        self : object
            Fitted filter.

        Raises
        ------
        ValueError
            If ``c1 > c2``, or if ``X`` and ``y`` are too large for float64
            (their squares overflow, |values| beyond about 1e154): standardise
            them first.
        """
        if self.c1 > self.c2:
            raise ValueError(
                f"c1 must be <= c2 (accept within c1 std, reject beyond c2 std); "
                f"got c1={self.c1}, c2={self.c2}."
            )
        X, y = validate_regression_data(
            self, X, y, dtype=np.float64, ensure_min_samples=2
        )
        # Finite data whose squares overflow (|values| beyond ~1e154): BayesianRidge
        # would return NaN or inf moments; say so instead.
        with np.errstate(over="ignore", invalid="ignore"):
            overflow = not (
                np.isfinite(np.einsum("ij,ij->", X, X)) and np.isfinite(y @ y)
            )
        if overflow:
            raise ValueError(
                "X and y are too large for BayesianRidge in float64: their squares "
                "overflow. Standardise (or rescale) the data first."
            )
        estimator = BayesianRidge(
            max_iter=self.max_iter,
            tol=self.tol,
            alpha_1=self.alpha_1,
            alpha_2=self.alpha_2,
            lambda_1=self.lambda_1,
            lambda_2=self.lambda_2,
            fit_intercept=self.fit_intercept,
        )
        if self.standardize:
            estimator, mu, sigma, scores = _fit_standardized(estimator, X, y)
        else:
            estimator.fit(X, y)
            mu, sigma, scores = _moments_and_scores(estimator, X, y)
        if not (np.isfinite(mu).all() and np.isfinite(scores).all()):
            raise ValueError(
                "BayesianRidge gave non-finite predictive moments "
                f"(alpha_={estimator.alpha_:.3g}, lambda_={estimator.lambda_:.3g}): "
                "the data are too large or too badly scaled. Standardise (or "
                "rescale) X and y first."
            )
        self.estimator_ = estimator
        self.predictive_mean_, self.predictive_std_ = mu, sigma
        self.scores_ = scores
        if self.rule == "residual":
            # On the scores, which are computed in standard units (standardize=True).
            accepted = scores <= self.c1
            rejected = scores > self.c2
        else:
            abs_y = np.abs(y)
            accepted = abs_y <= np.abs(mu + self.c1 * sigma)
            rejected = (abs_y > np.abs(mu + self.c2 * sigma)) & ~accepted
        flagged = ~accepted & ~rejected
        self.accepted_mask_ = accepted
        self.flagged_mask_ = flagged
        self.rejected_mask_ = rejected
        self.inlier_mask_ = accepted | flagged if self.flagged == "keep" else accepted
        return self

    def _relaxed_acceptance(self, X, y, temperature):
        """Log soft accept weights (:mod:`skpoison.defenses._relaxation`).

        The predictive moments with ``alpha_`` (in the units of ``y``) and
        ``lambda_`` held at this fit's values, differentiable in ``X`` and
        ``y`` (torch, float64).
        """
        import torch

        from ._relaxation import log_soft_accept, psd_solve

        est = self.estimator_
        centre = self.fit_intercept
        y_mean, y_scale = 0.0, 1.0
        alpha = float(est.alpha_)
        if self.standardize:
            Xd, yd = X.detach().numpy(), y.detach().numpy()
            x_ref = StandardScaler(with_mean=centre).fit(Xd).scale_
            y_ref = float(StandardScaler(with_mean=centre).fit(yd[:, None]).scale_[0])
            x_std = torch.sqrt(((X - X.mean(0)) ** 2).mean(0))
            # Constant columns keep the scaler's unit scale (no gradient).
            x_scale = torch.where(
                torch.as_tensor(np.isclose(x_std.detach().numpy(), x_ref)),
                x_std,
                torch.as_tensor(x_ref),
            )
            y_std = torch.sqrt(((y - y.mean()) ** 2).mean())
            y_scale = y_std if np.isclose(float(y_std.detach()), y_ref) else y_ref
            if centre:
                y_mean = y.mean()
                X = (X - X.mean(0)) / x_scale
                y = (y - y_mean) / y_scale
            else:
                X, y = X / x_scale, y / y_scale
            # The fit's noise precision (held fixed in the units of y), in
            # standardised units.
            alpha = alpha * y_scale**2
        lam = float(est.lambda_)
        if centre:
            x_off, y_off = X.mean(0), y.mean()
        else:
            x_off, y_off = torch.zeros_like(X[0]), torch.zeros_like(y[0])
        Xc, yc = X - x_off, y - y_off
        G = Xc.T @ Xc
        eye = torch.eye(X.shape[1], dtype=X.dtype)
        coef = psd_solve(G + (lam / alpha) * eye, Xc.T @ yc)
        Sigma = torch.linalg.solve(alpha * G + lam * eye, eye)
        mu = Xc @ coef + y_off
        var = ((Xc @ Sigma) * Xc).sum(1).clamp_min(0.0) + 1.0 / alpha
        sd = torch.sqrt(var)
        cs = [self.c2] if self.flagged == "keep" else [self.c1]
        if self.rule == "residual":
            margin = cs[0] - (y - mu).abs() / sd
        else:
            # Alg. 5's rule is not invariant to the origin of y: in its units.
            mu_o, sd_o, y_o = y_mean + y_scale * mu, y_scale * sd, y_mean + y_scale * y
            if self.flagged == "keep":
                cs = [self.c1, self.c2]
            margins = [((mu_o + c * sd_o).abs() - y_o.abs()) / sd_o for c in cs]
            margin = margins[0] if len(margins) == 1 else torch.maximum(*margins)
        return log_soft_accept(margin, temperature)
