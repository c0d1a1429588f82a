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

a ``(d+1) x (d+1)`` matrix built from one ``n x d`` block ``r * X`` (the
gradients are never stored in any other form) and whose top eigenvector is the
top right singular vector of the centred gradients (``numpy.linalg.eigh`` on
the small matrix, never an SVD of an ``n x p`` one). The scores are then
``(r_i z_i^T v + mu^T v)^2``, one matrix-vector product. The least-squares fits
of the rounds use Gram statistics (:mod:`skpoison.defenses._linear`) that are
downdated by the removed rows only.

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
from ._base import BaseDefense
from ._linear import (
    _BLOCK_ELEMENTS,
    LinearFrame,
    gram_statistics,
    gram_statistics_without,
    predict_linear,
    solve_gram,
)

__all__ = ["SeverFilter", "linear_per_sample_gradients", "torch_per_sample_gradients"]


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
            # The least-squares fits run in the data's frame (see
            # skpoison.defenses._linear), and so do the scores.
            frame, Xf, yf = LinearFrame.from_data(X, y)
            gram = (gram_statistics(Xf, yf), frame, Xf, yf)
            standard = _standard_coordinates(Xf)
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
            removed = idx[np.argsort(tau, kind="stable")[idx.size - n_remove :]]
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
            return _linear_scores(Xf, yf, active, idx, theta_f, standard)
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


def _standard_coordinates(X):
    """``(mean, 1 / std, centred, work)``: the columns' moments (1 for a constant column).

    ``centred`` is ``X - mean``, which every round's :func:`_linear_scores`
    reads (computed once, not twice per round); ``work`` is an array like
    ``X`` that every round overwrites: a fresh one per round pays its page
    faults again (800 MB at ``n = 1e6``, ``d = 100``).
    """
    mean = X.mean(axis=0)
    centred = np.subtract(X, mean, out=np.empty_like(X))
    work = np.square(centred, out=np.empty_like(X))
    std = np.sqrt(work.mean(axis=0))
    return mean, 1.0 / np.where(std > 0, std, 1.0), centred, work


def _linear_scores(X, y, active, idx, theta, standard=None) -> np.ndarray:
    """SEVER scores of the active rows for a linear model, from the (d+1)^2 covariance.

    The gradients are taken with respect to the parameters of the same model on
    the standard coordinates ``(x - mean) * inv_std`` (``standard``, from
    :func:`_standard_coordinates`, whose work array is overwritten; ``None``:
    ``X`` as it is), so that the scores do not depend on the origin or the
    units of the columns.
    """
    m = idx.size
    d = X.shape[1]
    # Residuals on the full X with zeros on the inactive rows: the one n x d
    # block below is r * X, with no copy of X[active].
    r = predict_linear(X, theta)
    np.subtract(y, r, out=r)
    r[~active] = 0.0
    if standard is None:
        inv_std, Xc, rX = np.ones(d), X, np.empty_like(X)
    else:
        _, inv_std, Xc, rX = standard
    # rX = (X - mean) * inv_std * r, one row block at a time (in cache).
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    for start in range(0, X.shape[0], step):
        rows = slice(start, start + step)
        block = np.multiply(Xc[rows], inv_std, out=rX[rows])
        block *= r[rows, None]
    M = np.empty((d + 1, d + 1))
    M[:d, :d] = rX.T @ rX
    M[:d, d] = M[d, :d] = rX.T @ r
    M[d, d] = r @ r
    # Mean of r_i z_i in standard coordinates (the sign is irrelevant).
    mu = np.append(rX.sum(axis=0), r.sum()) / m
    del rX
    S = M / m - np.outer(mu, mu)
    # Full eigendecomposition of the small (d+1) x (d+1) matrix: cheap and robust.
    _, V = np.linalg.eigh(S)
    v = V[:, -1]
    # z_i . v = (x_i - mean) . (inv_std * v_x) + v_d, centred before the product
    # so that an offset of X cancels no digits.
    proj = (r * (Xc @ (inv_std * v[:d]) + v[d]))[idx] - mu @ v
    return proj**2
