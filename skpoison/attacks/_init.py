"""Jagielski et al.'s starting points for the poison points, shared by the attacks.

Jagielski et al. (IEEE S&P 2018, code ``jagielski/manip-ml``, ported to
holisticai) start their optimisation attack OptP from copies of training
points whose targets are flipped. Their code works in the unit box ``[0, 1]``
(every feature and the target scaled by the feasible box), and so do these
functions: :func:`unit_start` draws in the unit box, :func:`start_points`
maps data to it and back. :class:`~skpoison.attacks.OptPPoisoner` and
:class:`~skpoison.attacks.StealthyPoisoner` (``init=``) both use them.

``"inverse_flip"`` (their ``inf_flip``)
    Rows drawn with replacement, with probability proportional to the row sum
    of the hat matrix ``X (0.01 I + X^T X)^{-1} X^T`` times ``1/2 + |y - 1/2|``
    (negative weights count as zero; uniform if all are): points of high
    leverage whose targets are far from the middle. Their targets are flipped
    to the far end of the box (``1 - round(y)``).
``"boundary_flip"`` (their ``randflip``)
    Rows drawn uniformly (without replacement while there are enough),
    targets flipped to the far end of the box.
``"random"`` (their ``randflipnobd``)
    Rows drawn uniformly, targets mirrored inside the box (``1 - y``, that
    is ``low + high - y`` in the data's units).
"""

from __future__ import annotations

import numpy as np

__all__ = ["JAGIELSKI_INITS", "start_points", "unit_start"]

#: The starts of Jagielski et al., in the order of their code.
JAGIELSKI_INITS = ("inverse_flip", "boundary_flip", "random")


def _hat_row_sums(X):
    """Row sums of ``X (0.01 I + X^T X)^{-1} X^T`` (their ``inf_flip`` score)."""
    G = X.T @ X + 0.01 * np.eye(X.shape[1])
    return X @ np.linalg.solve(G, X.sum(axis=0))


def unit_start(init: str, U, n_p: int, rng):
    """``n_p`` starting points drawn from the rows of ``U`` (module docstring).

    Parameters
    ----------
    init : {"inverse_flip", "boundary_flip", "random"}
        Which start.
    U : ndarray of shape (n, n_features + 1)
        The pool of points in the unit box, the target last.
    n_p : int
        Number of starting points.
    rng : numpy.random.RandomState
        Source of the draws.

    Returns
    -------
    start : ndarray of shape (n_p, n_features + 1)
        New array, in the unit box when ``U`` is.

    Examples
    --------
    >>> import numpy as np
    >>> U = np.array([[0.0, 0.2], [0.5, 0.9], [1.0, 0.4]])
    >>> unit_start("random", U, 2, np.random.RandomState(0))
    array([[1. , 0.6],
           [0.5, 0.1]])
    """
    if init not in JAGIELSKI_INITS:
        raise ValueError(f"init must be one of {JAGIELSKI_INITS}, got {init!r}.")
    n = U.shape[0]
    if init == "inverse_flip":
        score = _hat_row_sums(U[:, :-1]) * (0.5 + np.abs(U[:, -1] - 0.5))
        score = np.maximum(score, 0)
        total = score.sum()
        prob = score / total if total > 0 else None
        rows = rng.choice(n, size=n_p, replace=True, p=prob)
    else:
        rows = rng.choice(n, size=n_p, replace=n_p > n)
    start = U[rows].copy()
    y = start[:, -1]
    start[:, -1] = 1.0 - (np.floor(0.5 + y) if init != "random" else y)
    return start


def start_points(init: str, X, y, n_p: int, bounds, rng):
    """:func:`unit_start` in the data's units: the pool ``(X, y)``, the box ``bounds``.

    Parameters
    ----------
    init : {"inverse_flip", "boundary_flip", "random"}
        Which start.
    X : ndarray of shape (n, n_features)
        Pool of points to draw from (inside the box).
    y : ndarray of shape (n,)
        Their targets.
    n_p : int
        Number of starting points.
    bounds : (low, high)
        Arrays of shape (n_features + 1,), the feasible box (target last).
    rng : numpy.random.RandomState
        Source of the draws.

    Returns
    -------
    X0 : ndarray of shape (n_p, n_features)
    y0 : ndarray of shape (n_p,)
        Inside the box (clipped against rounding of the affine map).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [4.0]]); y = np.array([1.0, 2.0, 3.0])
    >>> bounds = (np.array([0.0, 1.0]), np.array([4.0, 3.0]))
    >>> X0, y0 = start_points("boundary_flip", X, y, 2, bounds, np.random.RandomState(0))
    >>> X0.ravel().tolist(), y0.tolist()  # rows 2 and 1, targets flipped to the bottom
    ([4.0, 1.0], [1.0, 1.0])
    """
    low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
    # A constant column has zero width: keep it at its value.
    width = np.where(high > low, high - low, 1.0)
    U = (np.column_stack([X, y]) - low) / width
    Z = np.clip(unit_start(init, U, n_p, rng) * width + low, low, high)
    return Z[:, :-1], Z[:, -1]
