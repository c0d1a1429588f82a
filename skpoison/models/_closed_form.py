r"""T steps of gradient descent on least squares, in closed form.

The paper's linear victim (and the attack's inner problem) is ``T`` full-batch
gradient-descent steps from ``w_0 = 0`` on Eq. (1). With ``Z = [X, 1]``,
``H = Z^T Z / n + l2 P`` (``P = diag(1, ..., 1, 0)``: the bias is not
penalised) and ``g = Z^T y / n``, a step is ``w <- w - eta (H w - g)``, so::

    w_T = sum_{k<T} (I - eta H)^k eta g = U diag(eta phi_T(mu)) U^T g,

with ``H = U diag(lam) U^T``, ``mu = 1 - x``, ``x = eta lam`` and
``phi_T(mu) = sum_{k<T} mu^k = (1 - mu^T) / x`` (``T`` when ``x = 0``). This
module evaluates ``phi`` and its first divided differences without
cancellation for every ``T`` (:func:`_geometric_phi`, :func:`_geometric_sums`;
the derivation is in :mod:`skpoison.attacks._hypergradient`, whose spectral
engine uses them for its exact hypergradients), and gives the victim its
weights from one eigendecomposition of the ``(d+1) x (d+1)`` matrix ``H``
(:func:`gd_closed_form`), the same model as the ``T``-step loop.

Loss curve. The loss ``L(w) = w^T H w / 2 - g^T w + y^T y / (2 n)`` is a
quadratic, and with ``w_T - w_k`` and ``grad L(w_T) = -U diag(mu^T) U^T g`` in
the eigenbasis, ``L(w_k) - L(w_T) = eta / 2 sum_i g^_i^2 (mu_i^(2k) -
mu_i^(2T)) / x_i``; with ``nu = mu^2`` and ``1 - nu = x (2 - x)`` each term is
``mu_i^(2k) (2 - x_i) phi_(T-k)(nu_i)``, non-negative for a stable step
(``0 <= x < 2``): a sum of positive terms, accurate to rounding relative to
itself (:func:`gd_loss_excess`). Added to ``L(w_T)`` (computed from the
residuals) it gives the curve of the loop, the loss before each step.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["gd_closed_form", "gd_loss_excess"]

# Eigenvalue steps ``c lam`` below ``_SERIES_TAU / T`` use the binomial series;
# the closed forms lose at most a factor ``2 / _SERIES_TAU`` to cancellation.
_SERIES_TAU = 0.5
_SERIES_TERMS = 20


def _geometric_phi(x, T):
    """``phi(mu) = sum_{k<T} mu^k`` with ``mu = 1 - x``, elementwise, no cancellation.

    ``T`` is an int or an array of ints broadcast against ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    if np.ndim(T):
        x, T = np.broadcast_arrays(x, np.asarray(T, dtype=np.float64))
    small = np.abs(T * x) < _SERIES_TAU
    with np.errstate(all="ignore"):
        pos = -np.expm1(T * np.log1p(-x)) / x  # mu > 0
        neg = (1.0 - np.power(1.0 - x, T)) / x  # mu <= 0: no cancellation
    out = np.where(x < 1.0, pos, neg)
    if small.any():
        out[small] = _phi_series(x[small], T[small] if np.ndim(T) else T)
    return out


def _phi_series(x, T):
    # phi = sum_j (-x)^j C(T, j + 1): terms ~ T (T x)^j / (j + 1)!. With an
    # array T a term becomes exactly 0 at j = T and stays 0.
    term = np.full_like(x, float(T)) if np.ndim(T) == 0 else T.astype(np.float64)
    out = term.copy()
    for j in range(1, min(_SERIES_TERMS, int(np.max(T)))):
        term = term * (-x) * (T - j) / (j + 1)
        out += term
    return out


def _power_quotient(mu, x, T):
    """``q_ij = (mu_i^T - mu_j^T) / (mu_i - mu_j)`` (``T mu^(T-1)`` when equal), stably.

    Same signs: with ``|mu_b| >= |mu_a|`` the larger of the pair and
    ``rho = mu_a / mu_b - 1`` (``(x_b - x_a) / mu_b``, from the exact
    difference), it is ``mu_b^(T-1) expm1(T log1p(rho)) / rho``. Opposite signs
    are far apart. Powers are taken per eigenvalue, not per pair.
    """
    pw, pw1 = np.power(mu, T), np.power(mu, T - 1)
    swap = np.abs(mu)[:, None] > np.abs(mu)[None, :]
    mb = np.where(swap, mu[:, None], mu[None, :])
    xa = np.where(swap, x[None, :], x[:, None])
    xb = np.where(swap, x[:, None], x[None, :])
    with np.errstate(all="ignore"):
        rho = (xb - xa) / mb
        ratio = np.where(rho == 0, float(T), np.expm1(T * np.log1p(rho)) / rho)
        same = np.where(swap, pw1[:, None], pw1[None, :]) * ratio
        direct = (pw[:, None] - pw[None, :]) / (mu[:, None] - mu[None, :])
    same = np.where(mb == 0, float(T == 1), same)
    return np.where(mu[:, None] * mu[None, :] >= 0, same, direct)


def _geometric_sums(x, T):
    """``phi_i = phi(mu_i)`` and ``D_ij = phi[mu_i, mu_j]`` in closed form (``O(p^2)``).

    ``phi(mu) = (1 - mu^T) / (1 - mu)`` and ``D`` its first divided difference
    (``phi'`` on the diagonal), for ``mu = 1 - x``, by three formulas chosen per
    pair so that none cancels digits (module docstring):

    * ``T max(|x_i|, |x_j|) < tau`` (both steps tiny): the series
      ``D = sum_{j>=1} (-1)^(j+1) C(T, j+1) h_j(x_i, x_j)``,
      ``h_j(a, b) = sum_{s+t=j-1} a^s b^t``;
    * far apart (``|x_i - x_j| >= max / 2``): ``(phi_i - phi_j) / (mu_i - mu_j)``;
    * close: ``(1 - mu_i^T - x_i q_T(mu_i, mu_j)) / (x_i x_j)`` with
      ``q_T = (mu_i^T - mu_j^T) / (mu_i - mu_j)`` from :func:`_power_quotient`.
    """
    x = np.asarray(x, dtype=np.float64)
    mu = 1.0 - x
    phi = _geometric_phi(x, T)
    xa, xb = x[:, None], x[None, :]
    top = np.maximum(np.abs(xa), np.abs(xb))
    far = np.abs(xa - xb) >= 0.5 * top
    with np.errstate(all="ignore"):
        D_far = (phi[:, None] - phi[None, :]) / (xb - xa)
        q = _power_quotient(mu, x, T)
        # 1 - mu^T per eigenvalue, without cancellation for small x (mu > 0).
        one_minus = np.where(
            x < 1.0, -np.expm1(T * np.log1p(-x)), 1.0 - np.power(mu, T)
        )
        D_close = (one_minus[:, None] - xa * q) / (xa * xb)
    D = np.where(far, D_far, D_close)
    small = T * top < _SERIES_TAU
    if small.any():
        i, j = np.nonzero(small)
        D[i, j] = _divided_series(x[i], x[j], T)
    return phi, D


def _divided_series(a, b, T):
    coef = T * (T - 1) / 2.0  # (-1)^(j+1) C(T, j+1) at j = 1
    h = np.ones_like(a)  # h_1
    b_pow = np.ones_like(b)
    out = coef * h
    for j in range(1, min(_SERIES_TERMS, T - 1)):
        coef = -coef * (T - j - 1) / (j + 2)
        b_pow = b_pow * b
        h = a * h + b_pow  # h_{j+1} = a h_j + b^j
        out += coef * h
    return out


def gd_closed_form(H: np.ndarray, g: np.ndarray, lr: float, n_steps: int):
    """Weights after ``n_steps`` gradient-descent steps from zero on ``w^T H w / 2 - g^T w``.

    Parameters
    ----------
    H : ndarray of shape (p, p)
        Symmetric positive semi-definite (``Z^T Z / n + l2 P``).
    g : ndarray of shape (p,)
        ``Z^T y / n``.
    lr : float
        The step ``eta``; the caller checks ``eta lambda_max(H) < 2``.
    n_steps : int
        ``T``.

    Returns
    -------
    w : ndarray of shape (p,)
        ``w_T``, the loop's result to rounding.
    spectrum : tuple of ndarray
        ``(x, g_hat)``: the steps ``eta lam`` and ``U^T g``, for
        :func:`gd_loss_excess`.

    Examples
    --------
    >>> H, g = np.array([[2.0, 0.0], [0.0, 0.5]]), np.array([1.0, 1.0])
    >>> w, _ = gd_closed_form(H, g, 0.1, 3)
    >>> v = np.zeros(2)
    >>> for _ in range(3):
    ...     v = v - 0.1 * (H @ v - g)
    >>> bool(np.allclose(w, v, rtol=1e-15, atol=0))
    True
    """
    H = np.asarray(H, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    lam, U = scipy.linalg.eigh(H, check_finite=False)
    x = lr * lam
    g_hat = U.T @ g
    w = U @ (lr * _geometric_phi(x, int(n_steps)) * g_hat)
    return w, (x, g_hat)


def gd_loss_excess(spectrum, lr: float, n_steps: int) -> np.ndarray:
    """``L(w_k) - L(w_T)`` for ``k = 0, ..., T - 1`` (see the module docstring).

    Examples
    --------
    >>> H, g = np.array([[1.0]]), np.array([1.0])
    >>> w, spectrum = gd_closed_form(H, g, 0.5, 2)  # w = 0, 0.5, 0.75
    >>> [0.5 * v * v - v + 0.5 for v in (0.0, 0.5, 0.75)]
    [0.5, 0.125, 0.03125]
    >>> (gd_loss_excess(spectrum, 0.5, 2) + 0.03125).tolist()
    [0.5, 0.125]
    """
    x, g_hat = spectrum
    T = int(n_steps)
    k = np.arange(T)[:, None]
    with np.errstate(all="ignore"):
        mu2k = np.power((1.0 - x) ** 2, k)
        terms = mu2k * (2.0 - x) * _geometric_phi(x * (2.0 - x), T - k)
        return 0.5 * lr * (terms @ (g_hat * g_hat))
