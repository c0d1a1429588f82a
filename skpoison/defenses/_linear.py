"""Least squares on Gram statistics, shared by the linear fast paths of the defenses.

With the design ``Z = [X, 1]`` (the features plus a column of ones for the
intercept) and a subset ``S`` of the rows, the least-squares fit on ``S`` only
needs the sufficient statistics

    ZtZ = sum_{i in S} z_i z_i^T,   Zty = sum_{i in S} z_i y_i,   yty = sum_{i in S} y_i^2,

a ``(d+1) x (d+1)`` matrix and two small vectors. They are additive over rows, so
a defense that changes its kept set by a few points (TRIM, SEVER, Proda) updates
them in ``O(m d^2)`` for ``m`` changed points instead of recomputing them in
``O(n d^2)``. The normal equations ``(ZtZ + ridge * I') theta = Zty`` (``I'`` the
identity without the intercept entry) are solved by Cholesky; when ``ZtZ`` is
singular or too ill-conditioned for it, by a symmetric eigendecomposition whose
small eigenvalues are cut (the minimum-norm least-squares solution, as
``numpy.linalg.lstsq`` would give), so that collinear features never give NaN.

``theta`` has shape ``(d + 1,)``: the ``d`` coefficients, then the intercept.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = [
    "add_intercept",
    "gram_statistics",
    "solve_gram",
    "predict_linear",
    "squared_residuals",
    "trimmed_sum_of_squares",
]

_CHUNK_ROWS = 65536


def add_intercept(X: np.ndarray) -> np.ndarray:
    """Return ``Z = [X, 1]``, a new float64 array with a column of ones appended.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Z : ndarray of shape (n_samples, n_features + 1)

    Examples
    --------
    >>> add_intercept(np.array([[2.0], [3.0]]))
    array([[2., 1.],
           [3., 1.]])
    """
    X = np.asarray(X, dtype=np.float64)
    Z = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float64)
    Z[:, :-1] = X
    Z[:, -1] = 1.0
    return Z


def gram_statistics(
    X: np.ndarray, y: np.ndarray, sample_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Sufficient statistics of least squares with intercept on (a subset of) the rows.

    ``Z = [X, 1]`` is never formed: the ones column is handled by row and
    column sums, so the memory used is that of ``X[sample_mask]`` at most.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    sample_mask : ndarray of shape (n_samples,), bool, default=None
        The rows to use; ``None`` uses all of them.

    Returns
    -------
    ZtZ : ndarray of shape (n_features + 1, n_features + 1)
        ``Z^T Z`` over the selected rows.
    Zty : ndarray of shape (n_features + 1,)
        ``Z^T y`` over the selected rows.
    yty : float
        ``y^T y`` over the selected rows.
    n : int
        Number of selected rows.

    Examples
    --------
    >>> X = np.array([[1.0], [2.0], [3.0]]); y = np.array([1.0, 2.0, 4.0])
    >>> ZtZ, Zty, yty, n = gram_statistics(X, y, np.array([True, True, False]))
    >>> ZtZ, Zty, yty, n
    (array([[5., 3.],
           [3., 2.]]), array([5., 3.]), 5.0, 2)
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = X.shape[1]
    ZtZ = np.zeros((d + 1, d + 1), dtype=np.float64)
    Zty = np.zeros(d + 1, dtype=np.float64)
    yty, n = 0.0, 0
    if sample_mask is not None:
        sample_mask = np.asarray(sample_mask, dtype=bool)
        if sample_mask.all():
            sample_mask = None
    # Row blocks bound the extra memory of X[sample_mask] to one block.
    step = X.shape[0] if sample_mask is None else _CHUNK_ROWS
    # Overflow is checked once, below, with a message that says what to do.
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, max(X.shape[0], 1), step):
            Xb, yb = X[start : start + step], y[start : start + step]
            if sample_mask is not None:
                keep = sample_mask[start : start + step]
                Xb, yb = Xb[keep], yb[keep]
            col_sum = Xb.sum(axis=0)
            ZtZ[:d, :d] += Xb.T @ Xb
            ZtZ[:d, d] += col_sum
            ZtZ[d, :d] += col_sum
            ZtZ[d, d] += Xb.shape[0]
            Zty[:d] += Xb.T @ yb
            Zty[d] += yb.sum()
            yty += float(yb @ yb)
            n += int(Xb.shape[0])
    if not (np.isfinite(ZtZ).all() and np.isfinite(Zty).all() and np.isfinite(yty)):
        # Finite inputs whose squares overflow (|values| beyond ~1e154): every
        # least-squares quantity downstream would be inf or NaN.
        raise ValueError(
            "X and y are too large for least squares in float64: their sums of "
            "squares overflow. Standardise (or rescale) the data first."
        )
    return ZtZ, Zty, yty, n


def solve_gram(ZtZ: np.ndarray, Zty: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Solve the normal equations ``(ZtZ + ridge * I') theta = Zty``.

    ``I'`` is the identity with a zero in the last (intercept) entry, so the
    intercept is never penalised (as in :class:`~sklearn.linear_model.Ridge`).
    Both steps work on the Gram matrix scaled to unit diagonal (so the units of
    the features do not matter). Cholesky is tried first; when it fails or the
    scaled system is ill-conditioned, the minimum-norm solution (in the scaled
    coordinates) from a symmetric eigendecomposition is returned, with
    eigenvalues below ``1e3 * p * eps * max_eig`` treated as zero: a margin
    above the rounding noise of an exactly singular matrix. Forming the Gram
    matrix squares the condition number of the design, so for designs with a
    scaled condition number above about 1e5 the answer is this truncated
    solution and can differ from ``numpy.linalg.lstsq`` on ``[X, 1]``. The
    result is always finite for finite input.

    Parameters
    ----------
    ZtZ : ndarray of shape (p, p)
        Symmetric positive semi-definite Gram matrix (see :func:`gram_statistics`).
    Zty : ndarray of shape (p,) or (p, k)
        One right-hand side, or ``k`` of them (e.g. the identity, for the
        inverse).
    ridge : float, default=0.0
        L2 penalty on the coefficients (not on the intercept).

    Returns
    -------
    theta : ndarray of shape (p,) or (p, k)
        Coefficients followed by the intercept (one column per right-hand side).

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [2.0]]); y = 2 * X.ravel() + 1
    >>> ZtZ, Zty, _, _ = gram_statistics(X, y)
    >>> solve_gram(ZtZ, Zty).round(8)
    array([2., 1.])

    A duplicated feature makes ``ZtZ`` singular; the minimum-norm solution splits
    the weight evenly:

    >>> ZtZ, Zty, _, _ = gram_statistics(np.hstack([X, X]), y)
    >>> solve_gram(ZtZ, Zty).round(8)
    array([1., 1., 1.])
    """
    A = np.array(ZtZ, dtype=np.float64)  # a copy: the caller's matrix is kept
    b = np.asarray(Zty, dtype=np.float64)
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise ValueError("solve_gram: the Gram statistics contain NaN or inf.")
    p = A.shape[0]
    if ridge:
        idx = np.arange(p - 1)
        A[idx, idx] += ridge
    A = 0.5 * (A + A.T)
    # Equilibrate so the condition test is scale free (features of any unit).
    diag = np.diag(A).copy()
    scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)
    As = A * scale[:, None] * scale[None, :]
    if b.ndim == 2:
        scale = scale[:, None]  # the unknowns' scaling, applied row-wise
    bs = b * scale
    eps = np.finfo(np.float64).eps
    try:
        c, low = scipy.linalg.cho_factor(As, lower=True, check_finite=False)
        # Cholesky succeeds on barely-positive matrices; reject a bad conditioning
        # (the squared ratio of the factor's diagonal bounds the condition number).
        d_c = np.abs(np.diag(c))
        if d_c.min() > 0 and (d_c.max() / d_c.min()) ** 2 < 1.0 / (p * 1e3 * eps):
            theta = scipy.linalg.cho_solve((c, low), bs, check_finite=False)
            if np.isfinite(theta).all():
                return theta * scale
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        pass
    w, V = scipy.linalg.eigh(As, check_finite=False)
    cutoff = max(w.max(), 0.0) * p * eps * 1e3
    inv = np.zeros_like(w)
    keep = w > cutoff
    inv[keep] = 1.0 / w[keep]
    theta = V @ (inv.reshape(-1, *(1,) * (bs.ndim - 1)) * (V.T @ bs))
    return theta * scale


def predict_linear(X: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Predictions ``X @ theta[:-1] + theta[-1]``.

    Examples
    --------
    >>> predict_linear(np.array([[1.0], [2.0]]), np.array([2.0, 1.0]))
    array([3., 5.])
    """
    theta = np.asarray(theta, dtype=np.float64)
    return np.asarray(X, dtype=np.float64) @ theta[:-1] + theta[-1]


def squared_residuals(X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Squared residuals ``(y - X @ theta[:-1] - theta[-1]) ** 2``, one per row.

    Examples
    --------
    >>> squared_residuals(np.array([[1.0], [2.0]]), np.array([3.0, 7.0]),
    ...                   np.array([2.0, 1.0]))
    array([0., 4.])
    """
    r = np.asarray(y, dtype=np.float64) - predict_linear(X, theta)
    r *= r
    return r


def trimmed_sum_of_squares(
    ZtZ: np.ndarray, Zty: np.ndarray, yty: float, theta: np.ndarray
) -> float:
    """Sum of squared residuals on the rows behind the Gram statistics.

    ``||y - Z theta||^2 = yty - 2 theta^T Zty + theta^T ZtZ theta``, clipped at 0
    (rounding can make it slightly negative for a perfect fit).

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [2.0]]); y = np.array([1.0, 3.0, 6.0])
    >>> ZtZ, Zty, yty, _ = gram_statistics(X, y)
    >>> round(trimmed_sum_of_squares(ZtZ, Zty, yty, np.array([2.0, 1.0])), 8)
    1.0
    """
    theta = np.asarray(theta, dtype=np.float64)
    value = yty - 2.0 * theta @ Zty + theta @ ZtZ @ theta
    return float(max(value, 0.0))
