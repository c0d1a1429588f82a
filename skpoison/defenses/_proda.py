"""Proda: robust least squares from many small random groups of points.

Wen, Zhao, Xue, Oprea and Qian, "With Great Dispersion Comes Greater
Resilience: Efficient Poisoning Attacks and Defenses for Linear Regression
Models", IEEE TIFS 16, 2021. One round of Proda:

1. draw a random group of ``g`` points (``gamma_Proda = 5`` in the skpoison
   paper) and fit least squares on it;
2. compute the squared residuals of that fit on all ``n`` points and keep the
   ``n - k`` smallest (``k = floor(reject_fraction * n)``, 40% in the paper);
3. refit least squares on the kept points and record its mean squared error
   on them.

The refit with the lowest loss is returned. This is one TRIM step started from
many small random seeds.

Number of groups. A group is clean with probability ``(1 - a)^g`` when a
fraction ``a`` of the points is poisoned, so ``N`` independent groups are all
dirty with probability ``(1 - (1 - a)^g)^N``. Bounding that by ``epsilon``
(``epsilon_Proda = 1e-5``, "an upper bound on the probability that no group of
points belongs to the clean training set") gives

    N = ceil(log(epsilon) / log(1 - (1 - a)^g)),

with ``a = reject_fraction`` (the defender's assumed poisoning fraction): 143
groups for the paper's settings (:func:`proda_n_groups`).

Small fits. With ``g = 5`` points and ``d + 1 > 5`` parameters the group's least
squares problem is underdetermined; like :func:`numpy.linalg.lstsq` we take the
minimum-norm solution, ``pinv(Z_g) y_g``, taken in the data's median frame (columns
centred on their medians and scaled to ``[-1, 1]``: ``median_frame`` of
:class:`~skpoison.defenses._linear.LinearFrame`) so that the choice among the
solutions does not depend on the units or origins of the features; only the
groups' rows are moved there, and the fits are then converted to the frame the
rest of the fit works in. All groups are solved at once by a batched
pseudo-inverse of the ``(N, g, d+1)`` stack, and the residuals of all groups are
one matrix product ``X @ Theta`` (split into column blocks of about 128 MiB when
``n`` is large, so the ``n x N`` matrix is never held whole).

Cost of the refits and ``n_refits``. Each refit needs the Gram matrix of its
``n - k`` kept points, ``O(n d^2)``: the literal algorithm (``n_refits=None``,
the default) refits every one of the ``N`` groups, about ``0.4 N`` full Gram
computations when the Gram of all points is downdated by the rejected rows.
With ``n_refits=m`` only the ``m`` groups whose *small* fit has the lowest
trimmed loss (the sum of its ``n - k`` smallest squared residuals, which the
selection step computes anyway) are refitted, and the best of those refits is
returned. This is a deviation from Wen et al. (the ranking of groups before the
refit is a proxy for the ranking after it); it costs ``O(m)`` instead of
``O(N)`` Gram computations and is what makes Proda about as fast as a few
least-squares fits at large ``n``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.linear_model import LinearRegression
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from .._state import atomic_fit
from .._validation import check_n_from_fraction, validate_regression_data
from ._base import BaseDefense, PredictWithEstimatorMixin
from ._linear import (
    _BLOCK_ELEMENTS,
    _EPS,
    LinearFrame,
    gram_statistics,
    gram_statistics_without,
    refit_least_squares,
    solve_gram,
    squared_residuals,
    trimmed_sum_of_squares,
)

__all__ = ["ProdaRegressor", "proda_n_groups"]

# Size of one block of the residual matrix (n rows x some groups).
_BLOCK_BYTES = 128 * 2**20


def proda_n_groups(epsilon: float, poison_fraction: float, group_size: int) -> int:
    """Number of random groups so that none is clean with probability at most ``epsilon``.

    ``ceil(log(epsilon) / log(1 - (1 - poison_fraction) ** group_size))``, and 1
    when ``poison_fraction == 0`` (any group is clean).

    Parameters
    ----------
    epsilon : float in (0, 1)
        Upper bound on the probability that every group contains a poisoned point.
    poison_fraction : float in [0, 1)
        The assumed fraction of poisoned training points.
    group_size : int
        Points per group.

    Returns
    -------
    n_groups : int

    Examples
    --------
    >>> proda_n_groups(1e-5, 0.4, 5)
    143
    """
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}.")
    if not 0.0 <= poison_fraction < 1.0:
        raise ValueError(f"poison_fraction must be in [0, 1), got {poison_fraction}.")
    p_clean = (1.0 - poison_fraction) ** group_size
    if p_clean >= 1.0:
        return 1
    if p_clean <= 0.0:
        raise ValueError(
            f"proda_n_groups: a group of {group_size} points is clean with "
            f"probability (1 - {poison_fraction})^{group_size}, which underflows "
            "to 0: no number of groups reaches epsilon."
        )
    return max(1, math.ceil(math.log(epsilon) / math.log1p(-p_clean)))


def _group_fits(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, frame=None
) -> np.ndarray:
    """Least squares with intercept on every group at once (min-norm when underdetermined).

    Returns an array of shape ``(n_groups, n_features + 1)``: coefficients then
    intercept, ``pinv(Z_g) y_g`` for each group by one batched pseudo-inverse,
    in ``frame`` (a :class:`~skpoison.defenses._linear.LinearFrame`, where the
    minimum-norm choice is made; ``None``: the data as they are). Only the
    groups' rows are moved into the frame.
    """
    n_groups, size = groups.shape
    d = X.shape[1]
    Zg = np.empty((n_groups, size, d + 1))
    yg = y[groups]
    if frame is None:
        Zg[..., :d] = X[groups]
    else:
        np.subtract(X[groups], frame.x_offset, out=Zg[..., :d])
        Zg[..., :d] /= frame.x_scale
        yg = (yg - frame.y_offset) / frame.y_scale
    Zg[..., d] = 1.0
    return (np.linalg.pinv(Zg) @ yg[..., None])[..., 0]


def _squared_group_residuals(X, y, Theta) -> np.ndarray:
    """The squared residuals of the fits ``Theta`` (one per column) on every row.

    Returns an array of shape ``(n_fits, n_samples)``, one fit per row, so that
    each fit's residuals are contiguous for the selections that follow (no
    strided copy per fit). It is built by row blocks of ``X`` (4 MiB of
    output each), the product taken transposed and squared while in cache.
    """
    d = X.shape[1]
    out = np.empty((Theta.shape[1], X.shape[0]))
    coef, intercept = np.ascontiguousarray(Theta[:d].T), Theta[d][:, None]
    step = max(1, 4 * _BLOCK_ELEMENTS // max(Theta.shape[1], 1))
    for start in range(0, X.shape[0], step):
        rows = slice(start, start + step)
        R = np.matmul(coef, X[rows].T, out=out[:, rows])
        R += intercept
        R -= y[rows]
        R *= R
    return out


class ProdaRegressor(PredictWithEstimatorMixin, RegressorMixin, BaseDefense):
    """Proda (Wen et al., 2021): least squares refitted from many small random groups.

    Each of ``n_groups_`` random groups of ``group_size`` points gives a small
    least-squares fit; the ``reject_fraction`` of points with the largest
    residuals under it are dropped and least squares is refitted on the rest.
    The refit with the lowest mean squared error on its kept points is the
    model. See :mod:`skpoison.defenses._proda` for the derivation of the number
    of groups and the vectorised implementation.

    Parameters
    ----------
    reject_fraction : float or int, default=0.4
        Points dropped before each refit, a fraction of ``n_samples`` in
        ``[0, 1)`` or a count; also the assumed poisoning fraction ``a`` that
        sets the number of groups. The paper rejects 40%.
    group_size : int, default=5
        Points per random group (``gamma_Proda = 5`` in the paper).
    epsilon : float, default=1e-5
        Upper bound on the probability that no group is entirely clean
        (``epsilon_Proda``); sets ``n_groups_`` by :func:`proda_n_groups`.
    n_groups : int, default=None
        Number of groups; overrides ``epsilon`` when given.
    n_refits : int, default=None
        ``None`` refits every group (Wen et al.'s algorithm). An int ``m`` refits
        only the ``m`` groups whose small fit has the lowest trimmed loss, a
        much cheaper approximation for large ``n`` (see the module docstring).
    max_groups : int, default=100_000
        Refuse to fit (``ValueError``) when the number of groups, from
        ``epsilon`` or ``n_groups``, exceeds it. The count grows like
        ``(1 - reject_fraction)^-group_size``: 143 for the paper's settings, over
        a million for ``reject_fraction=0.9``, each group costing a least-squares
        fit; the bound turns such a request into an error instead of hours and
        gigabytes.
    random_state : int, RandomState instance or None, default=None
        Draws the groups.

    Attributes
    ----------
    estimator_ : LinearRegression
        The returned model: the least-squares refit on the points of
        ``inlier_mask_`` (stored in a ``LinearRegression`` for its API; its
        ``coef_`` and ``intercept_`` come from Proda's own solve).
    coef_ : ndarray of shape (n_features,)
        Its coefficients.
    intercept_ : float
        Its intercept.
    inlier_mask_ : ndarray of shape (n_samples,), dtype=bool
        The points the returned model was refitted on (those with the smallest
        residuals under the best group's small fit).
    scores_ : ndarray of shape (n_samples,)
        Squared residuals of the returned model (higher = more suspicious).
    n_groups_ : int
        Number of random groups drawn.
    groups_ : ndarray of shape (n_groups_, group_size)
        The indices of the points in each group.
    best_group_ : int
        Index (in ``groups_``) of the group that gave the returned model.
    group_losses_ : ndarray of shape (n_groups_,)
        Mean squared error of each group's refit on its kept points, NaN for
        the groups not refitted when ``n_refits`` is set.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    SeverFilter : Filter by outlying per-sample gradients.
    TrimRegressor : Trimmed least squares (one start, many steps).
    sklearn.linear_model.RANSACRegressor : Random consensus from minimal subsets.

    References
    ----------
    .. [1] J. Wen, B. Z. H. Zhao, M. Xue, A. Oprea and H. Qian,
       "With Great Dispersion Comes Greater Resilience: Efficient Poisoning
       Attacks and Defenses for Linear Regression Models", IEEE Transactions on
       Information Forensics and Security 16, 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import ProdaRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = X @ [1.0, -1.0] + 0.1 * rng.normal(size=200)
    >>> y[:20] += 30.0
    >>> proda = ProdaRegressor(random_state=0).fit(X, y)
    >>> proda.n_groups_, proda.coef_.round(1)
    (143, array([ 1., -1.]))
    >>> bool(proda.inlier_mask_[:20].any())
    False
    """

    _parameter_constraints: dict = {
        "reject_fraction": [
            Interval(numbers.Real, 0.0, 1.0, closed="left"),
            Interval(numbers.Integral, 0, None, closed="left"),
        ],
        "group_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "epsilon": [Interval(numbers.Real, 0.0, 1.0, closed="neither")],
        "n_groups": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_refits": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "max_groups": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        reject_fraction: float | int = 0.4,
        group_size: int = 5,
        epsilon: float = 1e-5,
        n_groups: int | None = None,
        n_refits: int | None = None,
        max_groups: int = 100_000,
        random_state=None,
    ):
        self.reject_fraction = reject_fraction
        self.group_size = group_size
        self.epsilon = epsilon
        self.n_groups = n_groups
        self.n_refits = n_refits
        self.max_groups = max_groups
        self.random_state = random_state

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit Proda on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Training targets.

        Returns
        -------
        self : object
            Fitted regressor.
        """
        X, y = validate_regression_data(self, X, y, dtype=np.float64)
        n, d = X.shape
        if n < self.group_size:
            raise ValueError(
                f"group_size={self.group_size} is larger than n_samples={n}."
            )
        n_reject = check_n_from_fraction(
            self.reject_fraction, n, name="reject_fraction", min_remaining=1
        )
        n_keep = n - n_reject
        if self.n_groups is not None:
            n_groups = int(self.n_groups)
        else:
            n_groups = proda_n_groups(self.epsilon, n_reject / n, self.group_size)
        if n_groups > self.max_groups:
            raise ValueError(
                f"ProdaRegressor would draw {n_groups} groups (reject_fraction="
                f"{self.reject_fraction!r}, group_size={self.group_size}, epsilon="
                f"{self.epsilon!r}, n_groups={self.n_groups!r}), more than "
                f"max_groups={self.max_groups}. Lower reject_fraction or "
                "group_size, raise epsilon, or raise max_groups."
            )
        rng = check_random_state(self.random_state)
        groups = np.stack(
            [rng.choice(n, self.group_size, replace=False) for _ in range(n_groups)]
        )

        # Everything runs in the data's frame (see skpoison.defenses._linear):
        # data at any scale, with any offsets, gives the same groups' residuals.
        frame, Xf, yf = LinearFrame.from_data(X, y)
        loss_scale = frame.squared_scale()
        Theta = _group_fits(X, y, groups, frame.median_frame)
        Theta = frame.median_frame.convert(Theta, frame).T  # (d+1, N)

        literal = self.n_refits is None
        n_refits = n_groups if literal else min(self.n_refits, n_groups)
        refit = _Refit(Xf, yf, n_keep, frame.x_scale, n_refits)
        losses = np.full(n_groups, np.nan)
        trimmed = np.empty(n_groups)
        best = (np.inf, -1, None, None, None)  # see _Refit
        block = max(1, _BLOCK_BYTES // (8 * n))
        for start in range(0, n_groups, block):
            R = _squared_group_residuals(Xf, yf, Theta[:, start : start + block])
            for j, r2 in enumerate(R):
                g = start + j
                if not literal:
                    r2.partition(n_keep - 1)  # in place: R is not read again
                    trimmed[g] = r2[:n_keep].sum()
                    continue
                best = refit(r2, g, losses, best)
        if not literal:
            order = np.argsort(trimmed, kind="stable")[: self.n_refits]
            for g in order:
                r2 = squared_residuals(Xf, yf, Theta[:, g])
                best = refit(r2, g, losses, best)

        _, g_best, mask, theta_f, stats = best
        # The returned model as accurate as a refit from scratch on its rows.
        theta_f, r2 = refit_least_squares(
            Xf, yf, mask, stats, theta_f, column_scale=frame.x_scale
        )
        theta = frame.to_original(theta_f)
        self.estimator_ = LinearRegression()
        self.estimator_.coef_ = theta[:d].copy()
        self.estimator_.intercept_ = float(theta[d])
        self.estimator_.n_features_in_ = d
        self.coef_ = theta[:d].copy()
        self.intercept_ = float(theta[d])
        self.inlier_mask_ = mask
        with np.errstate(under="ignore", over="ignore"):
            self.scores_ = r2 * loss_scale
            self.group_losses_ = losses * loss_scale
        self.n_groups_ = n_groups
        self.groups_ = groups
        self.best_group_ = int(g_best)
        return self

    def _relaxed_acceptance(self, X, y, temperature):
        """Log soft accept weights (:mod:`skpoison.defenses._relaxation`).

        The winning group is held fixed; its minimum-norm least-squares fit in
        the data's frame (held fixed too) is differentiated, and the margin is
        a soft rank of the absolute residuals under it.
        """
        import torch

        from ._relaxation import log_soft_accept, rank_threshold

        frame, _, _ = LinearFrame.from_data(X.detach().numpy(), y.detach().numpy())
        frame = frame.median_frame  # where the group fits are taken
        Xf = (X - torch.as_tensor(frame.x_offset)) / torch.as_tensor(frame.x_scale)
        yf = (y - frame.y_offset) / frame.y_scale
        Zf = torch.cat([Xf, torch.ones_like(Xf[:, :1])], dim=1)
        group = torch.as_tensor(self.groups_[self.best_group_])
        theta = torch.linalg.pinv(Zf[group]) @ yf[group]
        r = (yf - Zf @ theta).abs()
        t = rank_threshold(r, int(self.inlier_mask_.sum()))
        return log_soft_accept(t - r, temperature)


class _Refit:
    """Least squares on the ``n_keep`` smallest residuals of a group's fit."""

    # The loss from the Gram statistics is used when it has at least 6 digits
    # (its rounding bound below 1e-6 of it) and it is more than 1e-6 above the
    # best loss so far: it cannot then change which refit is the best.
    margin = 1e-6

    def __init__(self, X, y, n_keep, column_scale, n_refits):
        self.X, self.y, self.n_keep, self.column_scale = X, y, n_keep, column_scale
        n = X.shape[0]
        # Downdating the Gram of all rows costs n + m k rows for m refits,
        # building each from its kept rows m (n - k): the cheaper one.
        self.downdate = n_keep == n or n + n_refits * (n - n_keep) < n_refits * n_keep
        self.full = gram_statistics(X, y) if self.downdate else None

    def __call__(self, r2, g, losses, best):
        """Refit on the ``n_keep`` smallest ``r2``; record the loss, keep the best.

        ``best`` is ``(loss, group, kept mask, theta, Gram statistics)``.
        """
        n = self.X.shape[0]
        mask = np.ones(n, dtype=bool)
        stats = self.full
        if self.n_keep < n:
            rejected = np.argpartition(r2, self.n_keep - 1)[self.n_keep :]
            mask[rejected] = False
            if self.downdate:
                # The Gram of all points less the rejected rows (k < n - k rows
                # in the paper's setting).
                stats = gram_statistics_without(
                    self.full, self.X, self.y, rejected, mask
                )
            else:
                stats = gram_statistics(self.X, self.y, mask)
        theta = solve_gram(stats[0], stats[1], column_scale=self.column_scale)
        # yty - 2 theta'Zty + theta'ZtZ theta cancels for good fits: its
        # rounding is about eps times the terms (bounded by those of the
        # statistics of all rows when the rejected ones were subtracted).
        ZtZ, _, yty, _ = self.full if self.downdate else stats
        size = yty + float(theta @ ZtZ @ theta)
        rounding = 1e3 * theta.size * _EPS * size
        rss = trimmed_sum_of_squares(stats[0], stats[1], stats[2], theta)
        loss = rss / self.n_keep
        if not (rss > rounding / self.margin and loss > best[0] * (1 + self.margin)):
            # A candidate for the best, or too few digits: from the residuals.
            loss = float(squared_residuals(self.X, self.y, theta)[mask].mean())
        losses[g] = loss
        if loss < best[0]:
            return (loss, g, mask, theta, stats)
        return best
