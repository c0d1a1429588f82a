"""The statistical attack StatP (Jagielski et al., S&P 2018, Section III-D).

A grey-box attack that needs the training data and query access to the model:

1. Rescale the clean features to the feasible box, ``u = (x - low) / (high -
   low)`` (the reference code's data lie in ``[0, 1]``, where ``u = x``), and
   fit a Gaussian to them: mean ``mu`` and covariance ``Sigma`` (the
   maximum-likelihood estimate, divided by ``n``) plus ``0.01 I``.
2. Draw each poison point's ``u`` from ``N(mu, Sigma)`` and round every
   coordinate to the nearer corner of ``[0, 1]`` (0 below 1/2, 1 from 1/2 up),
   i.e. every feature to the low or high end of the box.
3. Ask the model, trained on the clean data, for its prediction at the rounded
   point, and give the point the end of the target range farther from it (the
   high end when the prediction is at or below the middle).

The rounded points sit on the corners of the box, where the model's leverage is
largest, with targets as far as possible from what the model predicts there.

Details, as in the reference code (``manip-ml``, ``poison.py::rmml``): the
``0.01 I`` keeps ``Sigma`` positive definite when a feature is constant; the
model is any regressor (``estimator``, default ordinary least squares; the
reference uses ridge with ``alpha = 0.01``). Working in the box's coordinates
makes the points the same, in the data's units, whatever units the features are
in. Its handling of one-hot groups (one 1 per group) is not reproduced. The
poison points replace the rows drawn by the attack base; the samples are drawn
from ``random_state`` after that order, one point after another, so a smaller
ratio is a prefix of a larger one.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.utils._param_validation import HasMethods

from .._validation import check_predictions
from ._base import BasePoisoner

__all__ = ["StatPPoisoner"]

# The reference's covariance regulariser, on features scaled to [0, 1].
_COV_JITTER = 0.01


def _gaussian_fit(U):
    """Mean and ML covariance of ``U`` with ``0.01`` added to the diagonal."""
    mean = U.mean(axis=0)
    cov = np.atleast_2d(np.cov(U, rowvar=False, bias=True))
    cov[np.diag_indices_from(cov)] += _COV_JITTER
    return mean, cov


def _box_scale(low, high):
    """The box widths, 1 where the box is flat (a constant feature)."""
    width = high - low
    return np.where(width > 0, width, 1.0)


class StatPPoisoner(BasePoisoner):
    """StatP: Gaussian samples rounded to the box corners, targets flipped.

    Jagielski et al.'s statistical attack (2018): features drawn from a Gaussian
    fitted to the clean data and rounded to the corners of the feasible box;
    each target is the end of the target range farther from the clean model's
    prediction there. It needs the data and query access to the model, no
    optimisation. See :mod:`skpoison.attacks._statp` for the details.

    Also sets the fitted attributes of :class:`BasePoisoner`
    (``batch_slices_``, ``n_batches_``, ``bounds_``, ``n_features_in_``,
    ``feature_names_in_``).

    Parameters
    ----------
    poison_fraction : float in [0, 1), default=0.1
        ``n_p / n_tr``: the fraction of the training points replaced;
        ``n_p = round(poison_fraction * n_tr)``.
    estimator : regressor, default=None
        The model the attacker queries, fitted (a clone) on the clean data.
        ``None``: :class:`~sklearn.linear_model.LinearRegression`.
    bounds : (low, high) or None, default=None
        The feasible box: scalars or arrays of length ``n_features + 1`` (the
        last entry for the target). ``None`` uses the clean per-column minimum
        and maximum.
    random_state : int, RandomState instance or None, default=None
        Draws which rows are replaced, then the Gaussian samples.

    Attributes
    ----------
    poison_indices_ : ndarray of shape (n_poison,)
        The replaced rows.
    X_poison_ : ndarray of shape (n_poison, n_features)
        The poison points' features, each at a corner of the box.
    y_poison_ : ndarray of shape (n_poison,)
        Their targets, each at an end of the target range.
    estimator_ : regressor
        The clean model the attacker queried.
    mean_ : ndarray of shape (n_features,)
        Mean of the Gaussian fitted to the features rescaled to the box,
        ``(X - low) / (high - low)``.
    covariance_ : ndarray of shape (n_features, n_features)
        Its covariance (with ``0.01`` added to the diagonal).

    See Also
    --------
    FlipPoisoner : Extreme targets on copies of chosen clean points.
    NoisePoisoner : Uniform random points, a floor for comparisons.

    References
    ----------
    .. [1] M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru and B. Li,
       "Manipulating Machine Learning: Poisoning Attacks and Countermeasures
       for Regression Learning", IEEE S&P 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.attacks import StatPPoisoner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(0, 1, size=(100, 3))
    >>> y = X @ [0.5, 0.3, 0.2] + rng.normal(0, 0.05, size=100)
    >>> attack = StatPPoisoner(0.1, bounds=(0.0, 1.0), random_state=0)
    >>> X_pois, y_pois = attack.fit_resample(X, y)
    >>> np.unique(attack.X_poison_), np.unique(attack.y_poison_)
    (array([0., 1.]), array([0., 1.]))
    """

    _parameter_constraints: dict = {
        **BasePoisoner._parameter_constraints,
        "estimator": [HasMethods(["fit", "predict"]), None],
    }

    def __init__(
        self, poison_fraction=0.1, *, estimator=None, bounds=None, random_state=None
    ):
        self.poison_fraction = poison_fraction
        self.estimator = estimator
        self.bounds = bounds
        self.random_state = random_state

    def _prepare(self, state, rng, **fit_params):
        low, high = state["bounds"]
        X, y = state["X"], state["y"]
        template = LinearRegression() if self.estimator is None else self.estimator
        state["estimator"] = clone(template).fit(X, y)
        U = (X - low[:-1]) / _box_scale(low[:-1], high[:-1])
        state["mean"], state["cov"] = _gaussian_fit(U)

    def _craft(self, state, indices):
        low, high = state["bounds"]
        U = state["rng"].multivariate_normal(
            state["mean"], state["cov"], size=indices.size
        )
        X_p = np.where(U >= 0.5, high[:-1], low[:-1])
        pred = check_predictions(
            state["estimator"].predict(X_p), indices.size,
            estimator=state["estimator"], why="; StatP cannot choose the targets.",
        )  # fmt: skip
        # The far end: high unless the prediction is above the middle.
        y_p = np.where(pred <= (low[-1] + high[-1]) / 2, high[-1], low[-1])
        return X_p, y_p

    def _set_batch_attributes(self, kept):
        st = self._state
        self.estimator_ = st["estimator"]
        self.mean_, self.covariance_ = st["mean"], st["cov"]
