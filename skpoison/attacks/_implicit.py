r"""Exact hypergradients for scikit-learn's linear victims (implicit differentiation).

The victim is a scikit-learn estimator fitted to its own optimum:
:class:`~sklearn.linear_model.LinearRegression`, :class:`~sklearn.linear_model.Ridge`,
:class:`~sklearn.linear_model.Lasso` or :class:`~sklearn.linear_model.ElasticNet`.
:class:`ImplicitLinearEngine` gives the validation loss of the model trained on
``D_fixed U (X_p, y_p)`` (with optional per-sample weights ``s``),
``val = 1 / (2 m) sum_val (x^T w + b - y)^2`` (the convention of
:mod:`skpoison.attacks._hypergradient`), and its exact gradient with respect
to the poison rows, their targets and their weights.

Objectives (scikit-learn's, with ``e_i = x_i^T w + b - y_i``, ``n_s = sum s_i``)::

    LinearRegression:  sum s_i e_i^2                                (minimum-norm w)
    Ridge:             sum s_i e_i^2 + alpha ||w||^2
    ElasticNet:        1/(2 n_s) sum s_i e_i^2 + alpha rho ||w||_1
                       + alpha (1 - rho) / 2 ||w||^2                 (rho = l1_ratio)

(Lasso is ``rho = 1``; scikit-learn rescales ``sample_weight`` to sum to
``n``, which is the ``1 / (2 n_s)`` above.) Multiplied by ``n_s`` for the
(Elastic Net) and halved (OLS, Ridge), each is
``J = 1/2 sum s_i e_i^2 + kappa * P(w)`` with ``kappa = n_s`` or ``1``.

Solution
    The intercept is unpenalised, so with centred data (weighted means
    ``x_bar``, ``y_bar``) ``w`` solves the centred normal equations on the
    active set ``A`` (all features for OLS and Ridge, ``w_j != 0`` for the
    Elastic Net)::

        C w_A = r - kappa l1 sign(w_A),   C = X_cA^T S X_cA + kappa l2 I,
        r = X_cA^T S y_c,   b = y_bar - x_bar^T w,

    with ``l2 = alpha`` (Ridge) or ``alpha (1 - rho)``, ``l1 = alpha rho``.
    OLS and Ridge are solved here in closed form, ``w = C^+ r``, the pseudo-inverse
    from an eigendecomposition of ``C`` (eigenvalues below ``max(n, p) eps
    lambda_max`` count as zero): for a rank-deficient OLS problem this is the
    minimum-norm solution on centred data, as scikit-learn's ``lstsq`` gives.
    For the Elastic Net scikit-learn's coordinate descent finds ``A`` and the
    signs; the equation above, solved on ``A``, then gives the same solution
    without the solver's tolerance (kept when its signs agree, which they do
    unless the solver stopped far from the optimum). Without an intercept, the
    same holds with ``x_bar = y_bar = 0`` and no ``b``.

Hypergradient
    Let ``theta = (w_A, b)``, ``z_i = (x_iA, 1)`` and ``H`` the Hessian of ``J``
    in ``theta``. The stationarity ``grad_theta J = sum s_i e_i z_i +
    kappa grad P = 0`` defines ``theta`` implicitly; with ``g = grad_theta val``
    and the adjoint ``v = H^{-1} g``, ``d val / d xi = -v^T d(grad_theta J) / d xi``
    for any datum ``xi``. For the rows (``q_i = z_i^T v``)::

        d(grad J)/d x_i = s_i (z_i w^T + e_i [I; 0])  ->  grad_{x_iA} = -s_i (q_i w_A + e_i v_w)
        d(grad J)/d y_i = -s_i z_i                    ->  grad_{y_i}  = s_i q_i
        d(grad J)/d s_i = e_i z_i + kappa' pi         ->  grad_{s_i}  = -(e_i q_i + kappa' pi^T v_w)

    with ``pi = l1 sign(w_A) + l2 w_A`` and ``kappa' = d kappa / d s_i`` (1 for the
    Elastic Net, 0 for OLS and Ridge). Inactive features have no first-order
    effect while the active set is locally constant: their gradient is 0.
    ``H = [[A_s, n_s x_bar], [n_s x_bar^T, n_s]]``; eliminating ``b`` (Schur
    complement ``C``) gives ``v_w = C^{-1} (g_w - x_bar g_b)``,
    ``v_b = g_b / n_s - x_bar^T v_w``, where ``(g_w, g_b) = (X_vA^T r_v, sum r_v) / m``.

    *Rank deficiency.* When ``C`` is singular (duplicated or constant columns,
    ``n <= d``), the solution ``w = C^+ r`` is differentiable only along
    perturbations that keep the rank: a row moved out of ``range(C)`` makes a
    new eigenvalue of order ``eps^2`` whose component of ``w`` is of order
    ``1 / eps``. Along rank-preserving perturbations (the rows stay in
    ``range(C) + x_bar``), ``d C^+ = -C^+ dC C^+`` on ``range(C)``, and
    ``r in range(C)``, so ``dw = C^+ (dr - dC w)``: the formulas above with
    ``C^+`` in place of ``C^{-1}``. The gradient they give lies in ``range(C)``
    (``w`` and ``v_w`` do), so ascent along it keeps the rank; it is finite
    always (an empty active set gives ``w = 0``, ``b = y_bar``).

Cost per call: ``O(n_p p^2)`` for the poison Gram matrix (the fixed part is
precomputed) plus one ``p x p`` eigendecomposition; the Elastic Net adds one
scikit-learn fit on all ``n`` rows (warm-started from the previous call). All
algebra runs in float64 NumPy (scikit-learn's precision); inputs and outputs
are torch tensors on ``device`` in ``dtype``. For data with large offsets the
statistics are accumulated around the mean of the fixed rows, so centring
does not cancel digits.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import clone
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge

from .._validation import resolve_device, resolve_dtype
from ._hypergradient import _EngineBase, _LinearModel

__all__ = ["ImplicitLinearEngine"]

SUPPORTED_ESTIMATORS = (LinearRegression, Ridge, Lasso, ElasticNet)
_SUPPORTED_NAMES = "LinearRegression, Ridge, Lasso or ElasticNet"


def _penalty(estimator):
    """``(l1, l2, scaled)`` of a supported estimator's objective (module docstring)."""
    kind = type(estimator)
    if kind not in SUPPORTED_ESTIMATORS:
        raise TypeError(
            f"The victim estimator must be a scikit-learn {_SUPPORTED_NAMES} "
            f"instance, got {estimator!r}."
        )
    params = estimator.get_params()
    if kind is not Lasso and kind is not ElasticNet and params.get("positive"):
        raise ValueError(
            f"{kind.__name__}(positive=True) is not supported as a victim "
            "(its solution is not the closed form)."
        )
    if kind is LinearRegression:
        return 0.0, 0.0, False
    alpha = params["alpha"]
    if not isinstance(alpha, numbers.Real) or not alpha >= 0:
        raise ValueError(
            f"{kind.__name__}.alpha must be a real number >= 0, got {alpha!r}."
        )
    alpha = float(alpha)
    if kind is Ridge:
        return 0.0, alpha, False
    rho = 1.0 if kind is Lasso else float(params["l1_ratio"])
    if not 0 <= rho <= 1:
        raise ValueError(f"ElasticNet.l1_ratio must be in [0, 1], got {rho!r}.")
    return alpha * rho, alpha * (1 - rho), True


def _pinv_solve(C, rhs):
    """``C^+ rhs`` for symmetric PSD ``C`` (columns of ``rhs``), never NaN."""
    if C.shape[0] == 0:
        return np.zeros_like(rhs)
    lam, U = np.linalg.eigh(C)
    tol = max(C.shape[0], 1) * np.finfo(np.float64).eps * max(lam[-1], 0.0)
    keep = lam > tol
    inv = np.zeros_like(lam)
    inv[keep] = 1.0 / lam[keep]
    return U @ ((U.T @ rhs) * (inv[:, None] if rhs.ndim == 2 else inv))


class ImplicitLinearEngine(_LinearModel, _EngineBase):
    """Exact hypergradients of a scikit-learn linear victim by implicit differentiation.

    The same interface as the other engines of
    :mod:`skpoison.attacks._hypergradient` (``value_and_grad``, ``value``,
    ``train``, ``predict``; torch tensors in and out), for a model fitted to
    its optimum by scikit-learn instead of ``T`` gradient-descent steps; see
    :mod:`skpoison.attacks._implicit` for the derivation.

    Parameters
    ----------
    estimator : LinearRegression, Ridge, Lasso or ElasticNet
        The victim (unfitted; its parameters define the objective). Not
        modified.
    X_fixed, y_fixed : array-like of shape (n_fixed, n_features), (n_fixed,)
        The training points that stay fixed.
    X_val, y_val : array-like of shape (m, n_features), (m,)
        The attacker's validation set.
    sample_weight : array-like of shape (n_fixed,) or None, default=None
        Weights of the fixed rows (scikit-learn's ``sample_weight``).
    dtype : torch.dtype or str, default=torch.float64
        Of the returned tensors (the algebra runs in float64).
    device : str or torch.device, default="cpu"
        Of the returned tensors.
    fixed_gram, val_gram : RowGram or None, default=None
        For unweighted ``LinearRegression`` and ``Ridge``: the statistics
        (:class:`~skpoison.attacks._gram.RowGram`) of the fixed rows, in place
        of ``X_fixed = y_fixed = None``, and of the validation set ``X_val``,
        ``y_val`` (optional, with ``fixed_gram`` only). The attack passes them
        at large ``n``; the result agrees with the one from the rows to
        rounding, not bit for bit.

    Attributes
    ----------
    l1_, l2_ : float
        The L1 and L2 penalties of the objective (module docstring).
    fit_intercept : bool
        The estimator's ``fit_intercept``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    >>> eng = ImplicitLinearEngine(Ridge(alpha=2.0), X[:20], y[:20], X[20:], y[20:])
    >>> val, gX, gy = eng.value_and_grad(X[:2], y[:2])
    >>> tuple(gX.shape), tuple(gy.shape)
    ((2, 3), (2,))
    >>> coef = eng.train(X[:2], y[:2])["weight"].numpy().ravel()
    >>> ref = Ridge(alpha=2.0).fit(np.vstack([X[:20], X[:2]]), np.r_[y[:20], y[:2]])
    >>> bool(np.allclose(coef, ref.coef_, rtol=1e-10))
    True
    """

    def __init__(
        self, estimator, X_fixed, y_fixed, X_val, y_val, *, sample_weight=None,
        dtype=torch.float64, device="cpu", fixed_gram=None, val_gram=None,
    ):  # fmt: skip
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.l1_, self.l2_, self._scaled = _penalty(estimator)
        self.estimator = estimator
        self.fit_intercept = bool(estimator.get_params()["fit_intercept"])
        self._set_data(X_fixed, y_fixed, X_val, y_val, fixed_gram)
        self._val_stats = None
        if fixed_gram is not None:
            self._from_gram(fixed_gram, val_gram, sample_weight)
            return
        if val_gram is not None:
            raise ValueError("val_gram is used with fixed_gram only.")
        X0 = self.X_fixed.cpu().double().numpy()
        y0 = self.y_fixed.cpu().double().numpy()
        s0 = self._check_weights(sample_weight, X0.shape[0], "sample_weight")
        self._X0, self._y0, self._s0 = X0, y0, s0
        # Statistics around the fixed rows' mean: centring then cancels no digits.
        if self.fit_intercept and X0.shape[0]:
            self._mu_x, self._mu_y = np.average(X0, 0, s0), np.average(y0, None, s0)
        else:
            self._mu_x, self._mu_y = np.zeros(X0.shape[1]), 0.0
        Xs, ys = X0 - self._mu_x, y0 - self._mu_y
        self._G0 = Xs.T @ (s0[:, None] * Xs)
        self._r0 = Xs.T @ (s0 * ys)
        self._sx0, self._sy0, self._n0 = s0 @ Xs, s0 @ ys, s0.sum()
        self._Xv = self.X_val.cpu().double().numpy() - self._mu_x
        self._yv = self.y_val.cpu().double().numpy() - self._mu_y
        if self._scaled:
            self._solver = clone(estimator).set_params(
                tol=min(float(estimator.tol), 1e-10),
                max_iter=max(int(estimator.max_iter), 10_000),
                warm_start=True,
            )

    def _from_gram(self, fixed_gram, val_gram, sample_weight):
        """The statistics from :class:`~skpoison.attacks._gram.RowGram` objects.

        OLS and Ridge need the fixed rows only through their (unit-weight)
        statistics; the shift is the gram's (its rows' mean, or the mean they
        had before rows were updated), so centring still cancels no digits.
        The validation terms then come from ``val_gram`` too, in ``O(p^2)`` per
        call instead of ``O(m p)``.
        """
        if self._scaled or sample_weight is not None:
            raise ValueError(
                "fixed_gram is for unweighted LinearRegression and Ridge victims."
            )
        d = self.n_features
        if self.fit_intercept:
            self._mu_x, self._mu_y = fixed_gram.shift
        else:
            self._mu_x, self._mu_y = np.zeros(d), 0.0
        ZtZ, Zty, _ = fixed_gram.around(self._mu_x, self._mu_y)
        self._G0, self._r0 = ZtZ[:d, :d], Zty[:d]
        self._sx0, self._sy0, self._n0 = ZtZ[:d, d], Zty[d], float(fixed_gram.n)
        self._X0 = self._y0 = self._s0 = None
        if val_gram is None:
            self._Xv = self.X_val.cpu().double().numpy() - self._mu_x
            self._yv = self.y_val.cpu().double().numpy() - self._mu_y
        else:
            self._Xv = self._yv = None
            ZtZ, Zty, yty = val_gram.around(self._mu_x, self._mu_y)
            self._val_stats = (ZtZ, Zty, yty, val_gram.n)

    def _validation_terms(self, w, b, active=None):
        """``(loss, g_w[active], g_b)`` of the model ``(w, b)`` on the validation set.

        ``g = (X_v^T r, sum r) / m`` for the residuals ``r``; from the rows, or
        from the validation statistics as a quadratic form (``val_gram``).
        """
        if self._val_stats is None:
            res = self._Xv @ w + b - self._yv
            m = res.shape[0]
            loss = 0.5 * np.mean(res**2)
            if active is None:
                return loss, None, None
            return loss, self._Xv[:, active].T @ res / m, res.mean()
        ZtZ, Zty, yty, m = self._val_stats
        theta = np.r_[w, b]
        q = ZtZ @ theta - Zty  # (X_v^T r, sum r)
        loss = max(0.5 * (theta @ (q - Zty) + yty) / m, 0.0)
        if active is None:
            return loss, None, None
        return loss, q[:-1][active] / m, q[-1] / m

    @staticmethod
    def _check_weights(s, n, name):
        if s is None:
            return np.ones(n)
        s = np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s,
                       dtype=np.float64)  # fmt: skip
        if s.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {s.shape}.")
        if not (np.isfinite(s).all() and (s >= 0).all()):
            raise ValueError(f"{name} must be finite and >= 0.")
        return s

    def _solve(self, X_p, y_p, s_p):
        """The fitted ``(w, b)`` (shifted frame) and the statistics of the call."""
        d = self.n_features
        Xs, ys = X_p - self._mu_x, y_p - self._mu_y
        n_s = self._n0 + s_p.sum()
        if not n_s > 0:
            raise ValueError("The training set has zero total sample weight.")
        G = self._G0 + Xs.T @ (s_p[:, None] * Xs)
        r = self._r0 + Xs.T @ (s_p * ys)
        x_bar, y_bar = np.zeros(d), 0.0
        if self.fit_intercept:
            x_bar, y_bar = (self._sx0 + s_p @ Xs) / n_s, (self._sy0 + s_p @ ys) / n_s
            G = G - n_s * np.outer(x_bar, x_bar)
            r = r - n_s * y_bar * x_bar
        kappa = n_s if self._scaled else 1.0
        if self._scaled:
            active, sign = self._active_set(Xs, ys, s_p)
        else:
            active, sign = np.arange(d), np.zeros(d)
        C = G[np.ix_(active, active)] + kappa * self.l2_ * np.eye(active.size)
        w = np.zeros(d)
        w[active] = _pinv_solve(C, r[active] - kappa * self.l1_ * sign)
        if self._scaled and np.any(np.sign(w[active]) != sign):
            # Coordinate descent stopped too far out for its active set: keep
            # scikit-learn's own solution.
            w[active] = self._solver.coef_[active]
        b = y_bar - x_bar @ w
        return w, b, dict(n_s=n_s, x_bar=x_bar, C=C, active=active, kappa=kappa)

    def _active_set(self, Xs, ys, s_p):
        """Active set and signs from scikit-learn's coordinate descent."""
        X = np.vstack([self._X0, Xs + self._mu_x])
        y = np.concatenate([self._y0, ys + self._mu_y])
        s = np.concatenate([self._s0, s_p])
        if getattr(self._solver, "coef_", None) is not None:
            if self._solver.coef_.shape != (X.shape[1],):
                del self._solver.coef_
        self._solver.fit(X, y, sample_weight=s)
        coef = self._solver.coef_
        active = np.flatnonzero(coef)
        return active, np.sign(coef[active])

    def _numpy_poison(self, X_p, y_p, sample_weight):
        X_p, y_p = self._poison(X_p, y_p)
        X_p = X_p.detach().cpu().double().numpy()
        y_p = y_p.detach().cpu().double().numpy()
        return (
            X_p,
            y_p,
            self._check_weights(sample_weight, X_p.shape[0], "poison weights"),
        )

    def _out(self, a):
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def train(self, X_p, y_p, sample_weight=None) -> dict[str, torch.Tensor]:
        """The estimator's solution ``{"weight": (1, d), "bias": (1,)}``."""
        w, b, _ = self._solve(*self._numpy_poison(X_p, y_p, sample_weight))
        bias = self._mu_y + b - self._mu_x @ w
        return self._as_params(self._out(np.r_[w, bias]))

    def value(self, X_p, y_p, sample_weight=None) -> torch.Tensor:
        """Validation loss of the model trained with the poison points."""
        w, b, _ = self._solve(*self._numpy_poison(X_p, y_p, sample_weight))
        return self._out(self._validation_terms(w, b)[0])

    def value_and_grad(self, X_p, y_p, sample_weight=None, *, weight_grad=False):
        """Validation loss and its exact gradient (module docstring).

        Parameters
        ----------
        X_p, y_p : array-like or Tensor of shape (n_p, n_features), (n_p,)
        sample_weight : array-like of shape (n_p,) or None
            Weights of the poison rows (1 by default).
        weight_grad : bool, default=False
            Also return the gradient with respect to ``sample_weight``.

        Returns
        -------
        val_loss : Tensor, 0-d
        grad_X_p : Tensor of shape (n_p, n_features)
        grad_y_p : Tensor of shape (n_p,)
        grad_weight : Tensor of shape (n_p,)
            Only with ``weight_grad=True``.
        """
        X_p, y_p, s_p = self._numpy_poison(X_p, y_p, sample_weight)
        w, b, st = self._solve(X_p, y_p, s_p)
        A, x_bar, n_s = st["active"], st["x_bar"], st["n_s"]
        loss, g_w, g_b = self._validation_terms(w, b, A)
        v_w = _pinv_solve(st["C"], g_w - x_bar[A] * g_b)
        v_b = g_b / n_s - x_bar[A] @ v_w if self.fit_intercept else 0.0
        Xs = X_p - self._mu_x
        e = Xs @ w + b - (y_p - self._mu_y)
        q = Xs[:, A] @ v_w + v_b
        gX = np.zeros_like(X_p)
        gX[:, A] = -s_p[:, None] * (q[:, None] * w[A] + e[:, None] * v_w)
        out = (self._out(loss), self._out(gX), self._out(s_p * q))
        if not weight_grad:
            return out
        pi = self.l1_ * np.sign(w[A]) + self.l2_ * w[A] if self._scaled else 0 * w[A]
        return (*out, self._out(-(e * q + pi @ v_w)))
