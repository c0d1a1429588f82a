"""iTrim: TRIM that estimates the poisoning fraction itself (Müller et al., 2020).

TRIM (:mod:`skpoison.defenses._trim`) must be told how many points to reject.
Müller, Kowatsch and Böttinger ("Data Poisoning Attacks on Regression Learning
and Corresponding Defenses", PRDC 2020, Section V) observe that the training
loss of TRIM, as a function of the assumed poisoning fraction ``eps``, drops
steeply while poison is still being removed and flattens once only clean points
are left to trim. iTrim runs TRIM on the grid ``eps = 0, step, 2 step, ...,
max_poison_fraction`` and returns the first ``eps`` after which the loss stops
falling:

.. math::

    \\hat\\varepsilon = \\min \\{\\varepsilon_i :
        |L(\\varepsilon_i) - L(\\varepsilon_{i+1})| < \\tau\\, \\mathrm{ptp}(y)^2 \\},

with ``L(eps)`` TRIM's trimmed loss (the mean squared residual of the kept
points) and ``tau`` the ``threshold``; if no step qualifies, ``eps`` is the
largest of the grid. The last grid point's successor has loss 0 (as in the
reference code), so it only qualifies when the loss is already below the
threshold.

Differences from the reference code, each to fit skpoison's conventions:

- Units. The reference scales targets to [0, 1] and compares the loss drop with
  an absolute ``1e-3``; here the threshold multiplies ``ptp(y)^2``, which is the
  same rule on [0, 1] targets and gives the same decision for any units or
  offset of ``y``.
- Fractions. ``eps`` is the fraction of the training set that is poison
  (``n_reject = floor(eps * n)``, skpoison's replacement convention), not the
  ratio of added to clean points (``n_keep = floor(n / (1 + eps))``).
- Grid points that round to the same number of rejected points are one point
  (on small data two steps can reject the same count; their loss drop would be
  exactly 0 and stop the search early).
- TRIM is skpoison's :class:`~skpoison.defenses.TrimRegressor` (first start on
  all points, its stopping rule) rather than a random start with 20 iterations.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval

from .._state import atomic_fit
from .._validation import validate_regression_data
from ._base import BaseDefense, PredictWithEstimatorMixin
from ._trim import TrimRegressor

__all__ = ["ITrimRegressor"]


def _reject_counts(n: int, max_fraction: float, step: float) -> np.ndarray:
    """Distinct ``floor(eps * n)`` over ``eps = 0, step, ...`` up to
    ``max_fraction``, leaving at least one point."""
    # The slack keeps grid points that are exact in decimal (0.3 / 0.02 = 15,
    # 0.06 * 50 = 3) from falling one short through binary rounding.
    n_steps = int(np.floor(max_fraction / step + 1e-9))
    fractions = step * np.arange(n_steps + 1)
    counts = np.floor(fractions * n + 1e-9).astype(np.intp)
    return np.unique(np.minimum(counts, n - 1))


def _knee(losses: np.ndarray, threshold: float) -> int:
    """Index of the first loss whose drop to the next is below ``threshold``
    (the successor of the last is 0); the last index if none is."""
    drops = np.abs(losses - np.append(losses[1:], 0.0))
    below = np.flatnonzero(drops < threshold)
    return int(below[0]) if below.size else losses.size - 1


class ITrimRegressor(PredictWithEstimatorMixin, RegressorMixin, BaseDefense):
    """iTrim: TRIM with the poisoning fraction estimated from its loss curve.

    Runs :class:`TrimRegressor` for assumed poisoning fractions ``0, step, ...,
    max_poison_fraction`` and keeps the first fraction after which TRIM's
    trimmed loss stops dropping by more than ``threshold * ptp(y)**2``
    (Müller, Kowatsch and Böttinger, 2020). The defender gives an upper bound on
    the poisoning instead of its exact size. See
    :mod:`skpoison.defenses._itrim` for the rule and how it differs from the
    reference code.

    Parameters
    ----------
    estimator : regressor, default=None
        The model to trim, as in :class:`TrimRegressor` (``None``: ordinary
        least squares, on TRIM's fast path).
    max_poison_fraction : float in (0, 1), default=0.4
        The largest poisoning fraction considered (``eps_hat`` of the paper),
        as a fraction of the training set.
    step : float in (0, 1), default=0.02
        Spacing of the grid of fractions (the reference code's 0.02).
    threshold : float >= 0, default=1e-3
        A drop of the trimmed loss below ``threshold * ptp(y)**2`` between two
        grid points marks the end of the poison (the reference value, for
        targets in [0, 1]).
    max_iter : int, default=400
        Passed to every :class:`TrimRegressor`.
    tol : float, default=1e-5
        Passed to every :class:`TrimRegressor`.
    n_init : int, default=1
        Passed to every :class:`TrimRegressor`.
    random_state : int, RandomState instance or None, default=None
        Draws one seed shared by all the TRIM runs (used only when
        ``n_init > 1``), so the loss curve compares like with like.

    Attributes
    ----------
    estimated_poison_fraction_ : float
        The estimated fraction of poison, ``n_reject_ / n_samples``.
    n_reject_ : int
        Number of rejected points.
    poison_fraction_grid_ : ndarray of shape (n_grid,)
        The fractions tried (distinct numbers of rejected points over
        ``n_samples``).
    trimmed_loss_curve_ : ndarray of shape (n_grid,)
        TRIM's trimmed loss at each fraction of the grid.
    trim_ : TrimRegressor
        The fitted TRIM at the estimated fraction.
    n_iter_ : int
        ``trim_.n_iter_``: its number of model fits.
    estimator_ : regressor
        ``trim_.estimator_``: the model trained on the kept points.
    inlier_mask_ : ndarray of shape (n_samples,), dtype=bool
        The points kept by ``trim_``.
    scores_ : ndarray of shape (n_samples,)
        Squared residuals of ``estimator_`` (higher is more suspicious).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column
        names.

    See Also
    --------
    TrimRegressor : The same defense with a fixed number of rejected points.
    BayesCleanFilter : Needs no estimate of the number of poisoning points.

    References
    ----------
    .. [1] N. M. Müller, D. Kowatsch and K. Böttinger, "Data Poisoning Attacks
       on Regression Learning and Corresponding Defenses", IEEE PRDC 2020,
       arXiv:2009.07008.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import ITrimRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-5, 5, size=(300, 1))
    >>> y = 0.8 * X.ravel() + rng.normal(0, 1.2, size=300)
    >>> y[:60] += 30.0  # 20% gross outliers
    >>> itrim = ITrimRegressor().fit(X, y)
    >>> itrim.estimated_poison_fraction_
    0.2
    >>> bool(itrim.inlier_mask_[:60].any())
    False
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "max_poison_fraction": [Interval(Real, 0, 1, closed="neither")],
        "step": [Interval(Real, 0, 1, closed="neither")],
        "threshold": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        max_poison_fraction: float = 0.4,
        step: float = 0.02,
        threshold: float = 1e-3,
        max_iter: int = 400,
        tol: float = 1e-5,
        n_init: int = 1,
        random_state=None,
    ):
        self.estimator = estimator
        self.max_poison_fraction = max_poison_fraction
        self.step = step
        self.threshold = threshold
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Estimate the poisoning fraction and run TRIM with it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (possibly poisoned).
        y : array-like of shape (n_samples,)
            Training targets.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_regression_data(
            self, X, y, dtype=np.float64, ensure_min_samples=2
        )
        n = X.shape[0]
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        counts = _reject_counts(n, self.max_poison_fraction, self.step)
        trims, losses = [], []
        for k in counts:
            trim = TrimRegressor(
                self.estimator,
                reject_fraction=int(k),
                max_iter=self.max_iter,
                tol=self.tol,
                n_init=self.n_init,
                random_state=seed,
            ).fit(X, y)
            trims.append(trim)
            losses.append(trim.trimmed_loss_)
        losses = np.asarray(losses)
        best = _knee(losses, self.threshold * float(np.ptp(y)) ** 2)

        trim = trims[best]
        self.trim_ = trim
        self.estimator_ = trim.estimator_
        self.inlier_mask_ = trim.inlier_mask_
        self.scores_ = trim.scores_
        self.n_iter_ = trim.n_iter_
        self.n_reject_ = int(counts[best])
        self.estimated_poison_fraction_ = self.n_reject_ / n
        self.poison_fraction_grid_ = counts / n
        self.trimmed_loss_curve_ = losses
        return self
