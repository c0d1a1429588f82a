"""SEVER: filter the training points whose loss gradients stick out along one direction.

Diakonikolas, Kamath, Kane, Li, Steinhardt and Stewart, "Sever: A Robust
Meta-Algorithm for Stochastic Optimization", ICML 2019 (reference code:
``hoonose/sever``). One round, on the points still active:

1. fit the model;
2. per-sample gradients ``g_i`` of the loss ``1/2 (f(x_i) - y_i)^2`` with respect
   to *all* parameters (the intercept included);
3. centre them, ``g_i - mu``, and take the top right singular vector ``v`` of the
   centred ``m x p`` matrix;
4. score ``tau_i = ((g_i - mu)^T v)^2`` and remove the highest scores.

A ridge penalty adds the same vector ``alpha * theta`` to every gradient, so it
disappears when they are centred: the scores only depend on the fit.

Units and origins. The gradients of a linear model are taken with respect to
its parameters on the standard coordinates ``(x - mean) / std`` of the
training rows (the same model, reparametrised: the fit and the residuals do
not change). The reference takes them on ``X`` as given, where the intercept's
gradient ``-r_i`` is compared with ``-r_i x_i``: an offset of a column (a
timestamp) or its unit then changes the top direction and which points are
removed. In standard coordinates the decisions are invariant to the units and
origins of ``X`` and ``y``; on data already standardised (mean 0 and standard
deviation 1 per column, as the paper's) the two coincide. A torch model's
gradients are those of its own parameters, in the units of ``X``.

Linear least squares (closed form). With ``z_i = [x_i, 1]`` and residual
``r_i = y_i - theta^T z_i`` the gradient is ``g_i = -r_i z_i`` (``x_i`` in standard
coordinates, below). The uncentred second
moment is ``sum_i r_i^2 z_i z_i^T = Z^T diag(r^2) Z``, so the centred covariance is

    S = Z^T diag(r^2) Z / m - mu mu^T,    mu = -Z^T r / m,

a ``(d+1) x (d+1)`` matrix whose top eigenvector is the top right singular
vector of the centred gradients (``numpy.linalg.eigh`` on the small matrix,
never an SVD of an ``n x p`` one). The scores are then ``(r_i z_i^T v + mu^T
v)^2``. Neither the gradients nor the standard coordinates are stored: the
residuals and ``Z^T diag(r^2) Z`` are accumulated one row block (in cache) at
a time, one read of ``X``, and the projections take a second read. On data
whose columns have their means within a few standard deviations of 0 (the
frame of the default model, below) the blocks are those of ``X`` itself,
``w_i = r_i [x_i, 1]``, and the standard coordinates enter through the small
matrix ``T = [[D, -D m], [0, 1]]`` (``m`` the column means, ``D`` the inverse
standard deviations): ``g_i = T w_i``, so ``S = T S_w T^T`` and ``g_i^T v =
w_i^T (T^T v)``; centring the moments there cancels about a digit.

The least-squares fits of the rounds use Gram statistics
(:mod:`skpoison.defenses._linear`) that are downdated by the removed rows
only. They are accumulated on ``X`` as it is when that is accurate (every
column's mean within 4 standard deviations of 0 and its mean square far from
the ends of float64); otherwise on ``X`` copied into the frame of
:class:`~skpoison.defenses._linear.LinearFrame` (median 0, largest absolute
value 1 per column). ``y`` is always moved to its frame.

Linear estimators (a 1-d ``coef_`` and an ``intercept_`` after fit:
scikit-learn's, and :class:`~skpoison.models.TorchLinearRegressor`, although
it also has a torch ``module_``) take this closed form, refitted each round.

Neural networks (any other estimator exposing a fitted ``torch.nn.Module`` as
``module_``, such as :class:`~skpoison.models.TorchMLPRegressor`). Per-sample
gradients come from ``torch.func``: ``vmap`` over ``grad`` of the per-sample loss
written with ``functional_call``; the ``m x p`` matrix is centred and its top
singular vector taken with :func:`sklearn.utils.extmath.randomized_svd`.

Rounds and the amount removed. The reference removes, in each of 4 rounds, the
points at or above the ``1 - eps/2`` quantile of the scores (about ``2 eps`` in
total). The skpoison paper rejects 40% of the points in total (Appendix E), so
here ``reject_fraction`` fixes the *total* ``k = floor(reject_fraction * n)`` and
the rounds remove ``k / n_rounds`` points each (rounded so the counts add up to
``k``, the earlier rounds taking the extra point). Unlike the reference, a round
whose scores are all zero still removes its share, so the total is always ``k``.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.extmath import randomized_svd

from .._state import atomic_fit
from .._validation import check_n_from_fraction, validate_regression_data
from ._base import BaseDefense, mask_keep_lowest
from ._linear import (
    _BLOCK_ELEMENTS,
    LinearFrame,
    _centre_and_scale,
    _power_of_two_near,
    gram_statistics,
    gram_statistics_without,
    predict_linear,
    solve_gram,
)

__all__ = ["SeverFilter", "linear_per_sample_gradients", "torch_per_sample_gradients"]

# _least_squares_frame keeps X as it is when every column's mean square lies
# in (_TINY, _HUGE / n) and its mean within _MAX_OFFSET standard deviations of 0.
_TINY = 2.0**-800
_HUGE = 2.0**800
_MAX_OFFSET = 4.0
# Residuals, gradients and columns whose spread lies beyond 2**+-256 are moved
# to units near 1 (_unit_near_one): their squares and fourth moments would
# under- or overflow.
_FAR_UNITS = 2.0**256


def linear_per_sample_gradients(
    X: np.ndarray, y: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """Per-sample gradients of ``1/2 (theta^T [x, 1] - y)^2`` for a linear model.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    theta : ndarray of shape (n_features + 1,)
        Coefficients followed by the intercept.

    Returns
    -------
    gradients : ndarray of shape (n_samples, n_features + 1)
        Row ``i`` is ``-r_i [x_i, 1]`` with ``r_i = y_i - theta^T [x_i, 1]``; the
        last column is the gradient with respect to the intercept.

    Examples
    --------
    >>> linear_per_sample_gradients(np.array([[2.0]]), np.array([1.0]),
    ...                             np.array([1.0, 0.0]))
    array([[2., 1.]])
    """
    X = np.asarray(X, dtype=np.float64)
    r = np.asarray(y, dtype=np.float64) - predict_linear(X, theta)
    G = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float64)
    np.multiply(X, -r[:, None], out=G[:, :-1])
    G[:, -1] = -r
    return G


def torch_per_sample_gradients(module, X, y) -> np.ndarray:
    """Per-sample gradients of ``1/2 (f(x) - y)^2`` for a torch module, via ``torch.func``.

    ``vmap`` over ``grad`` of the single-sample loss (written with
    ``functional_call``), so there is no Python loop over samples.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch ``(b, n_features)`` to ``(b,)`` or ``(b, 1)`` predictions.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)

    Returns
    -------
    gradients : ndarray of shape (n_samples, n_parameters)
        The gradients with respect to ``module.parameters()`` (in that order),
        each flattened, as float64.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(1, 1).double()
    >>> with torch.no_grad():
    ...     _ = lin.weight.fill_(1.0), lin.bias.fill_(0.0)
    >>> torch_per_sample_gradients(lin, np.array([[2.0]]), np.array([1.0]))
    array([[2., 1.]])
    """
    import torch
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in module.named_parameters()}
    first = next(iter(params.values()))
    # ascontiguousarray: torch refuses negative strides (a reversed view).
    Xt = torch.as_tensor(
        np.ascontiguousarray(X), dtype=first.dtype, device=first.device
    )
    yt = torch.as_tensor(
        np.ascontiguousarray(y), dtype=first.dtype, device=first.device
    )

    def sample_loss(p, x, target):
        out = functional_call(module, p, (x.unsqueeze(0),))
        return 0.5 * (out.reshape(()) - target) ** 2

    grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, Xt, yt)
    flat = torch.cat([grads[k].reshape(Xt.shape[0], -1) for k in params], dim=1)
    return flat.detach().cpu().numpy().astype(np.float64)


def _split_counts(total: int, n_parts: int) -> np.ndarray:
    """``n_parts`` non-increasing integers adding up to ``total``."""
    base, extra = divmod(total, n_parts)
    return np.array([base + (i < extra) for i in range(n_parts)], dtype=int)


def _normalise(scores: np.ndarray) -> np.ndarray:
    top = scores.max(initial=0.0)
    return scores / top if top > 0 else np.zeros_like(scores)


class SeverFilter(BaseDefense):
    """SEVER filter (Diakonikolas et al., 2019): remove points with outlying gradients.

    In each of ``n_rounds`` rounds the model is fitted on the active points, the
    per-sample loss gradients (intercept included) are centred, and the points
    with the largest squared projection on their top singular vector are removed.
    For linear models the gradients are taken on standardised features, so the
    decisions do not depend on the units or origins of ``X`` and ``y``.
    See :mod:`skpoison.defenses._sever` for the derivation of the linear closed
    form and how the 40% total of the paper is split across rounds.

    Parameters
    ----------
    estimator : regressor, default=None
        The model whose gradients are inspected. ``None`` means least squares
        with intercept (ridge when ``alpha > 0``) solved on Gram statistics,
        the fast path. Otherwise it is cloned and refitted each round, and must
        be either linear (``coef_`` and ``intercept_`` after fit; closed-form
        gradients) or expose a fitted ``torch.nn.Module`` as ``module_`` (for
        example :class:`~skpoison.models.TorchMLPRegressor`; gradients by
        ``torch.func``).
    reject_fraction : float or int, default=0.4
        Total number of points removed over all rounds: a fraction of
        ``n_samples`` in ``[0, 1)`` or a count. The paper rejects 40%.
    n_rounds : int, default=4
        Number of filtering rounds, as in the reference experiments. Each
        removes about ``reject_fraction / n_rounds`` of the points.
    alpha : float, default=0.0
        Ridge penalty of the default least-squares model (as ``Ridge(alpha)``:
        the intercept is not penalised). Ignored when ``estimator`` is given.
    random_state : int, RandomState instance or None, default=None
        Seeds :func:`~sklearn.utils.extmath.randomized_svd` on the torch path.

    Attributes
    ----------
    inlier_mask_ : ndarray of shape (n_samples,), dtype=bool
        True for the points that survived all rounds.
    scores_ : ndarray of shape (n_samples,)
        Suspicion of each point: ``(n_rounds - 1 - t) + tau / max(tau)`` where
        ``t`` is the last round the point took part in and ``tau`` its squared
        projection in that round. Points removed earlier score higher, so the
        ``n_reject`` highest scores are exactly the removed points.
    removal_round_ : ndarray of shape (n_samples,), dtype=int
        The round in which a point was removed, ``-1`` for the kept ones.
    n_reject_ : int
        Number of removed points.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    ProdaRegressor : Robust regression from many small random groups.
    DutiFilter : Label debugging with a trusted set.

    References
    ----------
    .. [1] I. Diakonikolas, G. Kamath, D. Kane, J. Li, J. Steinhardt and
       A. Stewart, "Sever: A Robust Meta-Algorithm for Stochastic Optimization",
       ICML 2019, pp. 1596-1606.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import SeverFilter
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = X @ [1.0, 2.0, -1.0] + 0.1 * rng.normal(size=200)
    >>> y[:10] += 20.0
    >>> sever = SeverFilter(reject_fraction=0.1).fit(X, y)
    >>> bool(sever.inlier_mask_[:10].any()), int(sever.inlier_mask_.sum())
    (False, 180)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "reject_fraction": [
            Interval(numbers.Real, 0.0, 1.0, closed="left"),
            Interval(numbers.Integral, 0, None, closed="left"),
        ],
        "n_rounds": [Interval(numbers.Integral, 1, None, closed="left")],
        "alpha": [Interval(numbers.Real, 0.0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        reject_fraction: float | int = 0.4,
        n_rounds: int = 4,
        alpha: float = 0.0,
        random_state=None,
    ):
        self.estimator = estimator
        self.reject_fraction = reject_fraction
        self.n_rounds = n_rounds
        self.alpha = alpha
        self.random_state = random_state

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Run the SEVER rounds on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Training targets.

        Returns
        -------
        self : object
            Fitted filter.
        """
        X, y = validate_regression_data(self, X, y, dtype=np.float64)
        n = X.shape[0]
        n_reject = check_n_from_fraction(
            self.reject_fraction, n, name="reject_fraction", min_remaining=2
        )
        counts = _split_counts(n_reject, self.n_rounds)
        random_state = check_random_state(self.random_state)
        active = np.ones(n, dtype=bool)
        removal_round = np.full(n, -1, dtype=int)
        scores = np.zeros(n)
        gram = None
        self._torch_gradients_ = False
        if self.estimator is None:
            # The least-squares fits run in a safe frame (X itself when its
            # Gram statistics are accurate), and so do the scores.
            frame, Xf, yf, stats = _least_squares_frame(X, y)
            gram = (stats, frame, Xf, yf)
            standard = _moments_from_gram(stats)
        else:
            standard = _standard_coordinates(X)

        for t, n_remove in enumerate(counts):
            idx = np.flatnonzero(active)
            tau = self._round_scores(X, y, active, idx, gram, standard, random_state)
            # The last round's tau ranks the kept points; earlier rounds' tau
            # only matter for the removed ones (see scores_).
            scores[idx] = (self.n_rounds - 1 - t) + _normalise(tau)
            if n_remove == 0:
                continue
            # The n_remove highest, ties to the later rows (a stable argsort's
            # order), in O(m); in increasing order.
            removed = idx[~mask_keep_lowest(tau, n_remove)]
            active[removed] = False
            removal_round[removed] = t
            if gram is not None:
                stats, frame, Xf, yf = gram
                stats = gram_statistics_without(stats, Xf, yf, removed, active)
                gram = (stats, frame, Xf, yf)

        # Removed points sit at or above their round's offset, kept ones below 1.
        self.scores_ = scores
        self.inlier_mask_ = active
        self.removal_round_ = removal_round
        self.n_reject_ = int(n_reject)
        return self

    def _relaxed_acceptance(self, X, y, temperature):
        """Log soft accept weights (:mod:`skpoison.defenses._relaxation`).

        Each round's active set is held fixed; its fit (the GD victim's ``T``
        steps for the paper's victim, least squares standing in for any other
        estimator), the centred gradients in standard coordinates, their top
        eigenvector and the projections are differentiated. A row's weight is
        the product of the rounds' sigmoids of ``threshold - |projection|``.
        """
        import torch
        from sklearn.linear_model import Ridge

        from ._relaxation import (
            estimator_fit,
            log_soft_accept,
            rank_threshold,
            standard_coordinates,
        )

        ridge = self.alpha
        if self.estimator is not None:
            # Ridge for a Ridge; the GD victim is fitted by its own steps
            # (estimator_fit); least squares stands in for any other.
            ridge = (
                float(self.estimator.alpha) if type(self.estimator) is Ridge else 0.0
            )
        n = X.shape[0]
        if self._torch_gradients_:
            # A torch model's gradients are in the units of X, as in fit.
            mean, inv_std = torch.zeros_like(X[0]), torch.ones_like(X[0])
        else:
            mean, inv_std = standard_coordinates(X)
        Zs = torch.cat([(X - mean) * inv_std, torch.ones_like(X[:, :1])], dim=1)
        log_s = torch.zeros_like(y)
        rounds = self.removal_round_
        for t, n_remove in enumerate(_split_counts(self.n_reject_, self.n_rounds)):
            if n_remove == 0:
                continue
            active = (rounds == -1) | (rounds >= t)
            w = torch.as_tensor(active, dtype=X.dtype)
            m = int(active.sum())
            coef, intercept = estimator_fit(self.estimator, X, y, w, ridge)
            G = (y - X @ coef - intercept)[:, None] * Zs
            mu = (w[:, None] * G).sum(0) / m
            S = (w[:, None] * G).T @ G / m - torch.outer(mu, mu)
            v = torch.linalg.eigh(S)[1][:, -1]
            proj = (G @ v - mu @ v).abs()
            threshold = rank_threshold(proj[torch.as_tensor(active)], m - n_remove)
            log_s = log_s + log_soft_accept(threshold - proj, temperature, among=active)
        assert log_s.shape == (n,)
        return log_s

    def _round_scores(self, X, y, active, idx, gram, standard, random_state):
        """Squared projections ``tau`` of the active points' centred gradients."""
        if self.estimator is None:
            (ZtZ, Zty, _, _), frame, Xf, yf = gram
            theta_f = solve_gram(ZtZ, Zty, self.alpha, column_scale=frame.x_scale)
            # tau only ranks and is normalised: residuals in the frame's units
            # (order 1) keep the fourth moments of huge or tiny data finite.
            return _linear_scores(
                Xf, yf, active, idx, theta_f, standard, centred_near_zero=True
            )
        model = clone(self.estimator).fit(X[idx], y[idx])
        coef = getattr(model, "coef_", None)
        intercept = getattr(model, "intercept_", None)
        if coef is not None and intercept is not None and np.ndim(coef) == 1:
            # A linear model (sklearn's, or the GD victim, whose torch module
            # is nn.Linear): closed-form gradients in standard coordinates,
            # never per-sample autograd and a randomized SVD.
            theta = np.append(np.asarray(coef, dtype=np.float64), float(intercept))
            return _linear_scores(X, y, active, idx, theta, standard)
        module = getattr(model, "module_", None)
        if module is not None and _is_torch_module(module):
            self._torch_gradients_ = True
            G = torch_per_sample_gradients(module, X[idx], y[idx])
            # Gradients in units far from 1 would square to subnormals or
            # infinity inside the SVD: an exact power-of-two scaling first.
            G *= _unit_near_one(np.abs(G).max(initial=0.0))
            G -= G.mean(axis=0)
            _, _, Vt = randomized_svd(G, 1, random_state=random_state)
            return (G @ Vt[0]) ** 2
        raise TypeError(
            f"SeverFilter needs per-sample gradients: estimator "
            f"{type(self.estimator).__name__} must be linear (1-d coef_ and "
            "intercept_ after fit) or expose a fitted torch module as module_."
        )


def _is_torch_module(obj) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(obj, torch.nn.Module)


def _least_squares_frame(X, y):
    """The frame of the least-squares rounds: ``(frame, X', y', gram_statistics(X', y'))``.

    ``y`` is always moved to its frame (a vector: cheap). ``X`` stays as it is,
    with no copy, when its Gram statistics are accurate: they are finite, no
    column's mean square is near the ends of float64 (where squares overflow
    or lose digits as subnormals) and every column's mean lies within
    ``_MAX_OFFSET`` standard deviations of 0, so that centring them cancels at
    most a digit. Otherwise ``X`` is copied into the frame of
    :class:`~skpoison.defenses._linear.LinearFrame` (median 0, largest
    absolute value 1 per column), where it holds: a column's mean lies within
    a standard deviation of its median.
    """
    yf, y_offset, y_scale, _, _ = _centre_and_scale(y[:, None], "y")
    yf = yf[:, 0]
    try:
        stats = gram_statistics(X, yf)
    except ValueError:  # squares beyond float64 in the units of X
        stats = None
    if stats is not None:
        ZtZ, n = stats[0], max(stats[3], 1)
        d = X.shape[1]
        mean_square = np.diag(ZtZ)[:d] / n
        mean = ZtZ[:d, d] / n
        variance = mean_square - mean * mean
        if np.all(
            (mean_square > _TINY)
            & (mean_square < _HUGE / n)
            & (mean * mean <= _MAX_OFFSET**2 * variance)
        ):
            frame = LinearFrame(
                np.zeros(d), np.ones(d), float(y_offset[0]), float(y_scale[0])
            )
            return frame, X, yf, stats
    frame, Xf, yf = LinearFrame.from_data(X, y)
    return frame, Xf, yf, gram_statistics(Xf, yf)


def _moments_from_gram(stats):
    """``(mean, 1 / std)`` of the columns behind accurate Gram statistics (1 if constant)."""
    ZtZ, n = stats[0], max(stats[3], 1)
    d = ZtZ.shape[0] - 1
    mean = ZtZ[:d, d] / n
    std = np.sqrt(np.maximum(np.diag(ZtZ)[:d] / n - mean * mean, 0.0))
    return mean, 1.0 / np.where(std > 0, std, 1.0)


def _standard_coordinates(X):
    """``(mean, 1 / std)`` of the columns of ``X`` (1 for a constant column).

    Two passes (the mean, then the squares of the centred rows, a block at a
    time: no copy of ``X``), so an offset of a column cancels no digits.
    """
    mean = X.mean(axis=0)
    std = _centred_rms(X, mean)
    # A spread beyond 2**+-256 squares to subnormals or infinity: those columns
    # again, scaled by a power of two that brings their spread near 1.
    far = ~((std > 1.0 / _FAR_UNITS) & (std < _FAR_UNITS))
    if far.any():
        cols = np.flatnonzero(far)
        unit = _unit_near_one(np.ptp(X[:, cols], axis=0))
        std[cols] = _centred_rms(X[:, cols], mean[cols], unit) / unit
    return mean, 1.0 / np.where(std > 0, std, 1.0)


def _centred_rms(X, mean, unit=None):
    """Root mean square of ``(X - mean) * unit`` per column, a row block at a time."""
    squares = np.zeros(X.shape[1])
    step = max(1, _BLOCK_ELEMENTS // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        centred = X[start : start + step] - mean
        if unit is not None:
            centred *= unit
        squares += np.einsum("ij,ij->j", centred, centred)
    return np.sqrt(squares / max(X.shape[0], 1))


def _unit_near_one(spread):
    """Per value, a power of two ``u`` with ``u * spread`` in ``[0.5, 1)`` when
    ``spread`` is beyond ``2**+-256``, else 1 (a float for a scalar).

    Scaling by it is exact and changes nothing in the usual units. A subnormal
    spread gets at most ``2**1023`` (its digits are lost already).
    """
    spread = np.asarray(spread, dtype=np.float64)
    far = np.isfinite(spread) & (spread > 0)
    far &= ~((spread > 1.0 / _FAR_UNITS) & (spread < _FAR_UNITS))
    with np.errstate(over="ignore"):
        unit = 1.0 / _power_of_two_near(np.where(far, spread, 1.0))
    unit = np.where(far, np.minimum(unit, 2.0**1023), 1.0)
    return unit if unit.ndim else float(unit)


def _linear_scores(
    X, y, active, idx, theta, standard=None, *, centred_near_zero=False
) -> np.ndarray:
    """SEVER scores of the active rows for a linear model, from the (d+1)^2 covariance.

    The gradients are taken with respect to the parameters of the same model on
    the standard coordinates ``(x - mean) * inv_std`` (``standard``, from
    :func:`_standard_coordinates`; ``None``: ``X`` as it is), so that the scores
    do not depend on the origin or the units of the columns. They are never
    stored: the second moments of the gradients are accumulated a row block at
    a time, together with the residuals (one read of ``X``), and the
    projections take a second read.

    ``centred_near_zero=True`` says that every column of ``X`` has its mean
    within a few standard deviations of 0 and a spread far from the ends of
    float64 (a frame of :func:`_least_squares_frame`): the moments of ``r_i
    [x_i, 1]`` are then accumulated on ``X`` itself and mapped to standard
    coordinates by the ``(d+1) x (d+1)`` matrix ``T = [[D, -D mean], [0, 1]]``
    (``D = diag(inv_std)``; centring them cancels about a digit). Otherwise
    each row block is standardised before it is squared, whatever the offsets
    and units of ``X``.

    Residuals are scaled by a power of two when the active targets spread
    beyond ``2**+-256`` (:func:`_unit_near_one`): ``tau`` only ranks and is
    normalised, and in units far from 1 the moments of ``r_i z_i`` would
    underflow to subnormals (at ``y`` in units of 1e-170 every point's score
    was noise) or overflow (LAPACK failed on ``y`` in units of 1e200).
    """
    n, d = X.shape
    m = idx.size
    unit = _unit_near_one(np.ptp(y[idx])) if m else 1.0
    if standard is None:
        mean, inv_std = np.zeros(d), np.ones(d)
    else:
        mean, inv_std = standard
    implicit = centred_near_zero or standard is None
    keep = active.astype(np.float64)
    r = np.empty(n)
    M = np.zeros((d + 1, d + 1))
    total = np.zeros(d + 1)
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    G = np.empty((min(step, n), d + 1))
    Z = None if implicit else np.empty((min(step, n), d))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        Xb, rb = X[rows], r[rows]
        # Residuals (0 on the inactive rows), then the block's gradients
        # [r z, r] while its rows are in cache.
        np.dot(Xb, theta[:d], out=rb)
        rb += theta[d]
        np.subtract(y[rows], rb, out=rb)
        rb *= keep[rows]
        if unit != 1.0:
            rb *= unit
        if not implicit:
            Xb = np.subtract(Xb, mean, out=Z[: Xb.shape[0]])
            Xb *= inv_std
        Gb = G[: Xb.shape[0]]
        np.multiply(Xb, rb[:, None], out=Gb[:, :d])
        Gb[:, d] = rb
        M += Gb.T @ Gb
        total += Gb.sum(axis=0)
    T = np.eye(d + 1)
    if implicit:
        T[:d, :d] = np.diag(inv_std)
        T[:d, d] = -inv_std * mean
    # Mean of r_i z_i in standard coordinates (the sign is irrelevant).
    mu = T @ total / m
    S = T @ (M / m) @ T.T - np.outer(mu, mu)
    # Full eigendecomposition of the small (d+1) x (d+1) matrix: cheap and robust.
    _, V = np.linalg.eigh(0.5 * (S + S.T))
    v = V[:, -1]
    if implicit:
        # z_i . v = x_i . u[:d] + u[d] with u = T^T v: one product with X (all
        # rows: X[idx] would be a copy).
        u = T.T @ v
        proj = X @ u[:d]
        proj += u[d]
    else:
        # Centred before the product, so that an offset of X cancels no digits.
        proj = np.empty(n)
        u = inv_std * v[:d]
        for start in range(0, n, step):
            rows = slice(start, start + step)
            Xb = np.subtract(X[rows], mean, out=Z[: proj[rows].size])
            np.dot(Xb, u, out=proj[rows])
        proj += v[d]
    proj *= r
    proj = proj[idx]
    proj -= mu @ v
    return proj**2
