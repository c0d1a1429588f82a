"""DUTI: debug the training labels with a small set of trusted items.

Zhang, Zhu and Wright, "Training Set Debugging Using Trusted Items", AAAI 2018
(MATLAB ``duti_reg``). Given training points ``(x_i, y_i)``, ``i <= n``, and
trusted items ``(x~_j, y~_j)``, ``j <= m``, DUTI looks for label corrections
``delta`` such that the model trained on ``(X, y + delta)`` fits the trusted items:

    min_delta  (c / m) sum_j (y~_j - f(x~_j))^2 + (1 / n) sum_i (y_i + delta_i - f(x_i))^2
               + (gamma / n) ||delta||_1
    s.t.       f = argmin_g (1 / n) sum_i (y_i + delta_i - g(x_i))^2 + lambda ||g||^2,

with confidence ``c`` on the trusted items (100 in the skpoison paper) and ridge
``lambda`` (0.1). It is solved for a decreasing path of ``gamma``; the earlier the
correction ``delta_i`` of a point becomes non-zero, the more suspicious it is.

The outer problem is a lasso. The inner ridge is linear in the labels:
``f(X) = H (y + delta)`` on the training points and ``f(X~) = A (y + delta)`` on the
trusted ones, so (multiplying by ``n``) the outer objective is exactly

    ||B delta - t||^2 + gamma ||delta||_1,
    B = [sqrt(w) A; I - H],   t = [sqrt(w) (y~ - A y); -(I - H) y],   w = n c / m,

a lasso in ``delta``: the hypergradient is exact, with no unrolling. Writing
``Q = B^T B`` and ``b = B^T t``, we solve ``min 1/2 delta^T Q delta - b^T delta +
gamma / 2 ||delta||_1``. Its optimality condition is the fixed point
``delta = S(b + (I - Q) delta)`` (``S`` soft-thresholds at ``gamma / 2``), which
is linear once the active set and signs are known: we alternate solving the
active block exactly and recomputing the active set (a semismooth Newton or
primal-dual active-set method), warm-started from the previous penalty, until
the set repeats; the solution is then exact, not approximate. (Proximal
gradient or ADMM crawl here: the trusted term is ``w ~ n c / m`` times heavier
than the rest, so ``Q`` is badly conditioned.)

Feature maps (``kernel``).

- ``"linear"`` (the default, because the paper's victim is linear
  regression and its largest training set, Appliances, is beyond the RBF size
  limit): ``f(x) = theta^T [x, 1]``, ridge on the coefficients only. With ``Z = [X, 1]``, ``G = Z^T Z`` and
  ``P = (G + n lambda I')^{-1}`` (``I'`` without the intercept entry),
  ``H = Z P Z^T`` and ``A = Z~ P Z^T``, so ``Q = I - Z M Z^T`` with the
  ``(d+1) x (d+1)`` matrix ``M = 2P - PGP - w P Z~^T Z~ P``. With
  ``u = M Z^T delta`` the fixed point lives in ``d + 1`` dimensions: for an
  active set ``A`` with signs ``s``, ``(I - M G_A) u = M (Z_A^T b_A - gamma/2
  Z_A^T s_A)``, where ``G_A = Z_A^T Z_A`` is updated by the rows that enter or
  leave ``A`` only. One iteration is one pass over ``X`` plus a ``(d+1)``-sized
  solve: memory and time are ``O(n d)`` per iteration, which reaches
  ``n = 10^6``.
- ``"rbf"`` (the original MATLAB code's kernel ridge), ``k(x, x') =
  exp(-kernel_gamma ||x - x'||^2)``: ``H = K (K + n lambda I)^{-1}`` and
  ``A = K~ (K + n lambda I)^{-1}`` are formed from an eigendecomposition of the
  ``n x n`` kernel matrix, ``O(n^3)`` time and ``O(n^2)`` memory, so it is
  limited to ``max_samples_kernel`` training points (5000 by default, about
  200 MB per ``n x n`` matrix) and raises a ``ValueError`` beyond. Kernel ridge
  has no intercept; labels are centred by the trusted items' mean first.

Ranking. ``gamma`` runs over ``n_gammas`` values spaced geometrically from
``gamma_max = max_i |grad_i(0)|`` (above which ``delta = 0``) down to
``gamma_max * gamma_min_ratio``, stopping early once at least as many points
as are to be rejected have a non-zero correction. The ranking is DUTI's: by the
path step at which ``delta_i`` first becomes non-zero; points that become
non-zero at the same step, and the points that never do, are ordered by the
size of their gradient ``|grad_i|`` just before (for the latter, at the end of
the path), which is the penalty below which their correction would turn on.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.linalg
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array

from .._state import atomic_fit
from .._validation import check_n_from_fraction, validate_regression_data
from ._base import BaseDefense, mask_keep_lowest
from ._linear import _column_medians, gram_statistics, solve_gram

try:  # imbalanced-learn registers ``fit_resample`` as a routable method on import,
    # which must happen before the class below is defined for
    # ``set_fit_resample_request`` to exist.
    import imblearn.base  # noqa: F401
except ImportError:  # pragma: no cover - without imblearn there is no imblearn Pipeline
    pass

__all__ = ["DutiFilter"]


def _check_scaled_weights(duti, n, m):
    """The penalty ``n lambda`` and the weight ``n c / m`` must be finite numbers.

    Beyond float64 they reach LAPACK as inf (then NaN), where the solvers can
    hang: refuse them first.
    """
    for name, value in (
        ("regularization", n * duti.regularization),
        ("confidence", n * duti.confidence / m),
    ):
        if not np.isfinite(value):
            raise ValueError(
                f"DutiFilter: {name}={getattr(duti, name)!r} is too large for "
                f"n_samples={n}: the scaled value {value!r} overflows float64."
            )


class _LinearLasso:
    """The linear DUTI lasso, ``Q = I - Z M Z^T``, solved by active-set Newton steps.

    KKT: ``delta = S(b + Z u)`` with ``u = M Z^T delta`` (``S`` soft-thresholds
    at ``kappa``), a fixed point in ``d + 1`` dimensions. Given the active set
    ``A`` and signs ``s`` of ``b + Z u``, the fixed point is linear:
    ``(I - M G_A) u = M (Z_A^T b_A - kappa Z_A^T s_A)`` with ``G_A = Z_A^T Z_A``.
    We iterate (a semismooth Newton method on the piecewise-linear fixed-point
    map) until the active set and signs repeat, which makes the solution exact.
    ``G_A`` and the two small vectors are updated by the rows that changed
    only, so one iteration costs one pass over ``X`` plus ``O(changes d^2)``.
    """

    def __init__(self, X, y, X_t, y_t, regularization, confidence):
        n, d = X.shape
        m = X_t.shape[0]
        # Shifting the features (trusted items alike) by the training medians
        # changes only the unpenalised intercept, not the model, and keeps the
        # Gram matrix free of the cancellation that large offsets cause.
        shift = _column_medians(X)  # np.median's, faster
        X, X_t = X - shift, X_t - shift
        self.X = X
        self.shift = shift
        G, s0, _, _ = gram_statistics(X, y)
        Gt, st, _, _ = gram_statistics(X_t, y_t)
        # P = (G + n lambda I')^-1. On large unscaled, rank-deficient X the
        # penalty vanishes next to G in float64 and the matrix is numerically
        # singular: solve_gram then returns the truncated (minimum-norm) inverse.
        P = solve_gram(G, np.eye(d + 1), ridge=n * regularization)
        P = 0.5 * (P + P.T)
        w = n * confidence / m
        theta0 = P @ s0
        PGP = P @ G @ P
        self.M = 2.0 * P - PGP - w * P @ Gt @ P
        # b = -y + Z beta (see the module docstring; Z~^T y~ - Z~^T Z~ theta0 = st - Gt theta0)
        beta = w * P @ (st - Gt @ theta0) + (2.0 * P - PGP) @ s0
        self.b = self._Z(beta) - y
        # Warm-started state of the path: u, signs, and the active-set statistics.
        self.u = np.zeros(d + 1)
        self.signs = np.zeros(n, dtype=np.int8)
        self.G_A = np.zeros((d + 1, d + 1))
        self.zb_A = np.zeros(d + 1)
        self.zs_A = np.zeros(d + 1)
        self.converged = True

    def _Z(self, v):
        return self.X @ v[:-1] + v[-1]

    def _Zt(self, u):
        return np.append(self.X.T @ u, u.sum())

    def matvec(self, v):
        return v - self._Z(self.M @ self._Zt(v))

    def _update_active(self, rows, old, new):
        for sel, sign in ((old != 0, -1.0), (new != 0, 1.0)):
            if not sel.any():
                continue
            Xr = self.X[rows[sel]]
            dG, db, _, _ = gram_statistics(Xr, self.b[rows[sel]])
            signs = (old if sign < 0 else new)[sel].astype(np.float64)
            self.G_A += sign * dG
            self.zb_A += sign * db
            self.zs_A += sign * np.append(Xr.T @ signs, signs.sum())

    def solve(self, kappa, max_iter):
        """Solve at penalty ``kappa``; return ``(delta, gradient of the smooth part)``."""
        p = self.u.shape[0]
        self.converged = False
        v = None
        for _ in range(max_iter):
            # Solve for the current active set at this kappa, then check its signs.
            rhs = self.M @ (self.zb_A - kappa * self.zs_A)
            lhs = np.eye(p) - self.M @ self.G_A
            try:
                self.u = np.linalg.solve(lhs, rhs)
            except np.linalg.LinAlgError:
                # Numerically singular (large unscaled, rank-deficient X): the
                # least-squares solution of the fixed point.
                self.u = scipy.linalg.lstsq(lhs, rhs, check_finite=False)[0]
            v = self.b + self._Z(self.u)
            new = (np.sign(v) * (np.abs(v) > kappa)).astype(np.int8)
            rows = np.flatnonzero(new != self.signs)
            if rows.size == 0:
                self.converged = True
                break
            self._update_active(rows, self.signs[rows], new[rows])
            self.signs = new
        if v is None:  # pragma: no cover - max_iter >= 1
            v = self.b + self._Z(self.u)
        # v is b + Z u for the final u (each iteration ends by computing it):
        # not a second pass over X for the same vector.
        delta = _soft_threshold(v, kappa)
        # M Z^T delta, the path's u after this step, kept for _solve_path: the
        # gradient below is matvec(delta) - b with it.
        self.u_after = self.M @ self._Zt(delta)
        return delta, 2.0 * ((delta - self._Z(self.u_after)) - self.b)


class _KernelLasso:
    """The RBF kernel-ridge DUTI lasso with explicit ``Q``, solved by active-set Newton steps.

    Same fixed point as the linear case, ``delta = S(b + (I - Q) delta)``, in
    ``n`` dimensions: given the active set ``A`` and signs ``s``,
    ``Q_AA delta_A = b_A - kappa s_A`` (a Cholesky solve of the active block),
    repeated until the active set and signs repeat.
    """

    def __init__(self, X, y, X_t, y_t, regularization, confidence, kernel_gamma):
        n = X.shape[0]
        m = X_t.shape[0]
        offset = y_t.mean()
        y, y_t = y - offset, y_t - offset
        s, U = scipy.linalg.eigh(rbf_kernel(X, gamma=kernel_gamma))
        s = np.clip(s, 0.0, None)
        inv = 1.0 / (s + n * regularization)
        A = (rbf_kernel(X_t, X, gamma=kernel_gamma) @ U * inv) @ U.T
        IH = (
            U * (n * regularization * inv)
        ) @ U.T  # I - H = n lambda (K + n lambda I)^-1
        w = n * confidence / m
        self.Q = w * A.T @ A + IH @ IH
        self.b = w * A.T @ (y_t - A @ y) - IH @ (IH @ y)
        self.delta = np.zeros(n)
        self.signs = np.zeros(n, dtype=np.int8)
        self.converged = True

    def matvec(self, v):
        return self.Q @ v

    def solve(self, kappa, max_iter):
        """Solve at penalty ``kappa``; return ``(delta, gradient of the smooth part)``."""
        self.converged = False
        for _ in range(max_iter):
            # Solve for the current active set at this kappa, then check its signs.
            act = np.flatnonzero(self.signs)
            self.delta = np.zeros_like(self.b)
            if act.size:
                self.delta[act] = scipy.linalg.solve(
                    self.Q[np.ix_(act, act)],
                    self.b[act] - kappa * self.signs[act],
                    assume_a="pos",
                    check_finite=False,
                )
            v = self.b + self.delta - self.Q @ self.delta
            new = (np.sign(v) * (np.abs(v) > kappa)).astype(np.int8)
            if np.array_equal(new, self.signs):
                self.converged = True
                break
            self.signs = new
        return self.delta.copy(), 2.0 * (self.matvec(self.delta) - self.b)


def _soft_threshold(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


class DutiFilter(BaseDefense):
    """DUTI (Zhang, Zhu and Wright, 2018): rank training labels with trusted items.

    Finds label corrections that make a ridge model trained on the corrected
    training set fit a small trusted set, with an L1 penalty on the
    corrections, along a decreasing path of penalties; the points whose
    correction turns on first are rejected. See :mod:`skpoison.defenses._duti`
    for the derivation (the outer problem is a lasso solved exactly) and the
    two feature maps.

    The trusted set is a pair of fit parameters, ``fit(X, y, X_trusted=...,
    y_trusted=...)``, also accepted by :meth:`fit_resample`. Inside a
    :class:`~sklearn.pipeline.Pipeline` (through
    :class:`~skpoison.defenses.DefendedRegressor`) or an
    ``imblearn.pipeline.Pipeline``, enable metadata routing and request them
    with ``set_fit_request(X_trusted=True, y_trusted=True)`` (for imblearn's
    Pipeline, which maps its ``fit`` to both the step's ``fit`` and
    ``fit_resample``, set ``set_fit_resample_request`` the same way too;
    imblearn 0.14 does not pass ``step__param`` fit parameters to samplers
    without routing). The trusted features must be
    in the same space as the ``X`` that reaches this step.

    Parameters
    ----------
    reject_fraction : float or int, default=0.4
        Points rejected, a fraction of ``n_samples`` in ``[0, 1)`` or a count.
        The paper rejects 40%.
    confidence : float, default=100.0
        Confidence ``c`` on every trusted item (``c_DUTI = 100``).
    regularization : float, default=0.1
        Ridge ``lambda`` of the inner model (``lambda_DUTI = 0.1``), on the
        mean squared loss: ``(1/n) ||y - f(X)||^2 + lambda ||f||^2``.
    kernel : {"linear", "rbf"}, default="linear"
        Feature map of the inner ridge model: explicit linear features with an
        intercept (the paper's victim model; scales to large ``n``) or the RBF
        kernel of the original code (at most ``max_samples_kernel`` points).
    kernel_gamma : float, default=None
        RBF width, ``k(x, x') = exp(-kernel_gamma ||x - x'||^2)``; ``None`` uses
        ``1 / (n_features * X.var())`` (sklearn's ``"scale"``).
    max_samples_kernel : int, default=5000
        Largest training set accepted with ``kernel="rbf"``.
    n_gammas : int, default=30
        Length of the penalty path.
    gamma_min_ratio : float, default=1e-3
        Smallest penalty of the path relative to the largest.
    max_iter : int, default=100
        Active-set (Newton) iterations per penalty at most; each one that
        changes nothing ends the solve exactly. Typically a handful suffice
        thanks to the warm start from the previous penalty.

    Attributes
    ----------
    inlier_mask_ : ndarray of shape (n_samples,), dtype=bool
        False for the ``n_reject`` highest-ranked points.
    scores_ : ndarray of shape (n_samples,)
        Suspicion: ``(n_steps - k) + |g| / gamma_{k-1}`` for a point whose
        correction first became non-zero at path step ``k`` (``g`` its gradient
        just before, ``gamma_{-1} = gamma_max``), and ``min(|g| / gamma_last, 1)``
        for the points that never did. So earlier steps always rank higher.
    entry_step_ : ndarray of shape (n_samples,), dtype=int
        Path step at which each correction became non-zero, ``-1`` if never.
    corrections_ : ndarray of shape (n_samples,)
        The label corrections ``delta`` at the end of the path.
    gammas_ : ndarray of shape (n_steps,)
        The penalties solved, in the scale of the module docstring.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    SeverFilter : Filter by outlying per-sample gradients (no trusted set).
    BayesCleanFilter : The paper's uncertainty-based filter (no trusted set).

    References
    ----------
    .. [1] X. Zhang, X. Zhu and S. Wright, "Training Set Debugging Using Trusted
       Items", AAAI Conference on Artificial Intelligence, 2018, pp. 4482-4489.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import DutiFilter
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 2)); y = X @ [1.0, -1.0] + 0.1 * rng.normal(size=100)
    >>> y[:5] += 10.0
    >>> X_t = rng.normal(size=(30, 2)); y_t = X_t @ [1.0, -1.0]
    >>> duti = DutiFilter(reject_fraction=0.1).fit(X, y, X_trusted=X_t, y_trusted=y_t)
    >>> int((~duti.inlier_mask_).sum()), bool((~duti.inlier_mask_[:5]).all())
    (10, True)
    """

    _parameter_constraints: dict = {
        "reject_fraction": [
            Interval(numbers.Real, 0.0, 1.0, closed="left"),
            Interval(numbers.Integral, 0, None, closed="left"),
        ],
        "confidence": [Interval(numbers.Real, 0.0, None, closed="neither")],
        "regularization": [Interval(numbers.Real, 0.0, None, closed="neither")],
        "kernel": [StrOptions({"linear", "rbf"})],
        "kernel_gamma": [Interval(numbers.Real, 0.0, None, closed="neither"), None],
        "max_samples_kernel": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_gammas": [Interval(numbers.Integral, 1, None, closed="left")],
        "gamma_min_ratio": [Interval(numbers.Real, 0.0, 1.0, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        reject_fraction: float | int = 0.4,
        confidence: float = 100.0,
        regularization: float = 0.1,
        kernel: str = "linear",
        kernel_gamma: float | None = None,
        max_samples_kernel: int = 5000,
        n_gammas: int = 30,
        gamma_min_ratio: float = 1e-3,
        max_iter: int = 100,
    ):
        self.reject_fraction = reject_fraction
        self.confidence = confidence
        self.regularization = regularization
        self.kernel = kernel
        self.kernel_gamma = kernel_gamma
        self.max_samples_kernel = max_samples_kernel
        self.n_gammas = n_gammas
        self.gamma_min_ratio = gamma_min_ratio
        self.max_iter = max_iter

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, X_trusted=None, y_trusted=None):
        """Rank the training points with the trusted items and flag the top ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (possibly poisoned).
        y : array-like of shape (n_samples,)
            Training targets.
        X_trusted : array-like of shape (n_trusted, n_features)
            Features of the trusted (clean) items. Required.
        y_trusted : array-like of shape (n_trusted,)
            Targets of the trusted items. Required.

        Returns
        -------
        self : object
            Fitted filter.
        """
        X, y = validate_regression_data(self, X, y, dtype=np.float64)
        X_t, y_t = self._check_trusted(X_trusted, y_trusted)
        n = X.shape[0]
        n_reject = check_n_from_fraction(
            self.reject_fraction, n, name="reject_fraction", min_remaining=1
        )
        _check_scaled_weights(self, n, X_t.shape[0])
        if self.kernel == "rbf":
            if n > self.max_samples_kernel:
                raise ValueError(
                    f"kernel='rbf' builds n x n matrices and is limited to "
                    f"max_samples_kernel={self.max_samples_kernel} training points, "
                    f"got {n}. Use kernel='linear' for large data or raise the limit."
                )
            var = X.var()
            gamma = self.kernel_gamma or 1.0 / (X.shape[1] * (var if var > 0 else 1.0))
            problem = _KernelLasso(
                X, y, X_t, y_t, self.regularization, self.confidence, gamma
            )
        else:
            problem = _LinearLasso(X, y, X_t, y_t, self.regularization, self.confidence)
        self._solve_path(problem, n_reject)
        self.inlier_mask_ = mask_keep_lowest(self.scores_, n_reject)
        return self

    def fit_resample(self, X, y, *, X_trusted=None, y_trusted=None):
        """Fit with the trusted items and return the training points kept.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (possibly poisoned).
        y : array-like of shape (n_samples,)
            Training targets.
        X_trusted : array-like of shape (n_trusted, n_features)
            Features of the trusted items. Required.
        y_trusted : array-like of shape (n_trusted,)
            Targets of the trusted items. Required.

        Returns
        -------
        X_kept : array-like of shape (n_kept, n_features)
            The kept rows of ``X``, of the same container type.
        y_kept : array-like of shape (n_kept,)
            The matching targets.
        """
        # Named arguments (not **kwargs) so that set_fit_resample_request exists.
        return super().fit_resample(X, y, X_trusted=X_trusted, y_trusted=y_trusted)

    def _check_trusted(self, X_trusted, y_trusted):
        if X_trusted is None or y_trusted is None:
            raise ValueError(
                "DutiFilter needs a trusted set: pass fit(X, y, X_trusted=..., "
                "y_trusted=...). Inside a Pipeline, enable metadata routing and "
                "call set_fit_request(X_trusted=True, y_trusted=True)."
            )
        X_t = check_array(X_trusted, dtype=np.float64, input_name="X_trusted")
        y_t = check_array(
            y_trusted, dtype=np.float64, ensure_2d=False, input_name="y_trusted"
        )
        if y_t.ndim != 1:
            raise ValueError(f"y_trusted must be 1-d, got shape {y_t.shape}.")
        if X_t.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X_trusted has {X_t.shape[1]} features, but X has "
                f"{self.n_features_in_}."
            )
        if X_t.shape[0] != y_t.shape[0]:
            raise ValueError(
                f"X_trusted has {X_t.shape[0]} rows but y_trusted has {y_t.shape[0]}."
            )
        return X_t, y_t

    def _solve_path(self, problem, n_reject):
        """Solve along the penalty path; sets scores_, entry_step_, corrections_, gammas_."""
        b = problem.b
        n = b.shape[0]
        grad = -2.0 * b  # gradient of the smooth part at delta = 0
        gamma_max = float(np.abs(grad).max())
        entry = np.full(n, -1, dtype=int)
        scores = np.zeros(n)
        delta = np.zeros(n)
        used = []
        # u = M Z^T delta before each step and after the last (the relaxation).
        linear = isinstance(problem, _LinearLasso)
        path_u = [np.zeros(problem.u.shape[0])] if linear else None
        if gamma_max > 0.0 and n_reject > 0:
            gammas = (
                gamma_max
                * np.geomspace(1.0, self.gamma_min_ratio, self.n_gammas + 1)[1:]
            )
            n_steps = len(gammas)
            prev_gamma = gamma_max
            not_converged = 0
            for k, gamma in enumerate(gammas):
                # The objective is halved: 1/2 d^T Q d - b^T d + gamma / 2 ||d||_1.
                delta, new_grad = problem.solve(gamma / 2.0, self.max_iter)
                not_converged += not problem.converged
                if linear:
                    path_u.append(problem.u_after)  # M @ Z^T delta
                used.append(gamma)
                new = (delta != 0) & (entry < 0)
                # Tie-break within a step by the gradient before it.
                scores[new] = (n_steps - k) + np.minimum(
                    np.abs(grad[new]) / prev_gamma, 1.0
                )
                entry[new] = k
                grad, prev_gamma = new_grad, gamma
                if np.count_nonzero(entry >= 0) >= n_reject:
                    break
            never = entry < 0
            scores[never] = np.minimum(np.abs(grad[never]) / prev_gamma, 1.0)
            if not_converged:
                warnings.warn(
                    f"DutiFilter: the solver did not converge within max_iter="
                    f"{self.max_iter} at {not_converged} of {len(used)} penalties; "
                    "the ranking may be approximate. Increase max_iter.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        self.scores_ = scores
        self.entry_step_ = entry
        self.corrections_ = delta
        self.gammas_ = np.asarray(used)
        self._path_u_ = None if path_u is None else np.array(path_u)
        self._shift_ = problem.shift if linear else None
        self._n_reject_ = n_reject

    def _relaxed_acceptance(self, X, y, temperature, *, X_trusted, y_trusted):
        """Log soft accept weights (:mod:`skpoison.defenses._relaxation`).

        DUTI's score with each row's entry step and the lasso path's fixed
        points ``u`` held fixed: ``(n_steps - k) + min(2 |b_i + z_i^T u_{k-1}|
        / gamma_{k-1}, 1)`` for a row that enters at step ``k`` (the gradient
        of its correction just before), ``min(2 |b_i + z_i^T u_last| /
        gamma_last, 1)`` for the others; ``b`` (the labels' residuals under the
        trusted-item-weighted ridge) and ``gamma_max = 2 max |b|`` are
        differentiated. The margin is a soft rank of that score.
        """
        import torch

        from ._relaxation import log_soft_accept, rank_threshold

        if self.kernel != "linear":
            raise TypeError("DutiFilter's relaxation covers kernel='linear' only.")
        X_t, y_t = self._check_trusted(X_trusted, y_trusted)
        n, d = X.shape
        m = X_t.shape[0]
        shift = torch.as_tensor(self._shift_)
        ones = torch.ones_like(X[:, :1])
        Z = torch.cat([X - shift, ones], dim=1)
        Zt = torch.cat([torch.as_tensor(X_t) - shift, ones[:m]], dim=1)
        G, s0 = Z.T @ Z, Z.T @ y
        Gt, st = Zt.T @ Zt, Zt.T @ torch.as_tensor(y_t)
        penalty = torch.ones(d + 1, dtype=X.dtype)
        penalty[-1] = 0.0
        P = torch.linalg.inv(G + n * self.regularization * torch.diag(penalty))
        P = 0.5 * (P + P.T)
        w = n * self.confidence / m
        PGP = P @ G @ P
        beta = w * P @ (st - Gt @ (P @ s0)) + (2.0 * P - PGP) @ s0
        b = Z @ beta - y
        U = torch.as_tensor(self._path_u_)
        n_used = U.shape[0] - 1
        if n_used == 0:  # no path (nothing to reject, or all labels fitted)
            score = torch.zeros_like(y)
        else:
            ratios = np.geomspace(1.0, self.gamma_min_ratio, self.n_gammas + 1)
            gamma_max = 2.0 * b.abs().max()
            entry = self.entry_step_
            before = np.where(entry >= 0, entry, n_used)  # index into U and ratios
            v = b + (Z * U[torch.as_tensor(before)]).sum(1)
            prev = gamma_max * torch.as_tensor(ratios[before])
            frac = torch.clamp(2.0 * v.abs() / prev, max=1.0)
            steps = torch.as_tensor(
                np.where(entry >= 0, self.n_gammas - entry, 0), dtype=X.dtype
            )
            score = steps + frac
        t = rank_threshold(score, n - self._n_reject_)
        return log_soft_accept(t - score, temperature)
