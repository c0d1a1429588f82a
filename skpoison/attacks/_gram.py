"""Least-squares statistics of a large training set, updated by the rows that change.

The linear victims' engines (:class:`~skpoison.attacks.LinearSpectralEngine`,
:class:`~skpoison.attacks.ImplicitLinearEngine` for ``LinearRegression`` and
``Ridge``) need the fixed rows only through their Gram statistics. Between two
batches of :class:`~skpoison.attacks.StealthyPoisoner` the fixed set changes by
``2 B_p`` rows (the batch crafted last is fixed in place of the clean rows it
replaced, the next batch's rows leave), so at large ``n`` the attack keeps one
:class:`RowGram` of its current training set and updates it in ``O(B_p d^2)``
instead of recomputing ``O(n d^2)`` statistics (and copying the fixed rows) once
per batch.

The statistics are sums around a fixed shift (the clean rows' column means), as
:func:`~skpoison.defenses._linear.gram_statistics` accumulates them, so a
column with a large offset is centred before anything is squared and the
centred statistics the scikit-learn victims need cancel no digits. The rows
that are added and removed are points of the data's box, of the size of the
rows around them, so the updates do not cancel either; a removal that would
(rows that outweigh the rest) recomputes from the rows left
(:func:`~skpoison.defenses._linear.gram_statistics_without`).
"""

from __future__ import annotations

import numpy as np

from ..defenses._linear import gram_statistics, gram_statistics_without

__all__ = ["RowGram"]


class RowGram:
    """``ZtZ``, ``Zty``, ``yty`` of rows ``z = [x - shift_x, 1]``, ``y - shift_y``.

    Parameters
    ----------
    stats : tuple
        ``(ZtZ, Zty, yty, n)`` as returned by
        :func:`~skpoison.defenses._linear.gram_statistics` with
        ``offset=shift``.
    shift : (ndarray of shape (n_features,), float)
        The offset the rows were shifted by.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(6, 2)) + 1e6, rng.normal(size=6)
    >>> gram = RowGram.of(X, y)
    >>> part = gram.without(X, y, np.array([0, 1]))
    >>> ref = RowGram.of(X[2:], y[2:], shift=gram.shift)
    >>> bool(np.allclose(part.ZtZ, ref.ZtZ, rtol=1e-12)), part.n
    (True, 4)
    """

    __slots__ = ("ZtZ", "Zty", "yty", "n", "shift")

    def __init__(self, stats, shift):
        ZtZ, Zty, yty, n = stats
        self.ZtZ = np.array(ZtZ, dtype=np.float64)
        self.Zty = np.array(Zty, dtype=np.float64)
        self.yty = float(yty)
        self.n = int(n)
        self.shift = (np.asarray(shift[0], dtype=np.float64), float(shift[1]))

    @classmethod
    def of(cls, X, y, *, shift=None):
        """The statistics of all rows of ``X``, ``y`` (in row blocks: no copy of ``X``).

        ``shift`` defaults to the column means of ``X`` and the mean of ``y``.
        """
        if shift is None:
            shift = (X.mean(axis=0), float(y.mean()))
        return cls(gram_statistics(X, y, offset=shift), shift)

    @property
    def n_features(self) -> int:
        return self.ZtZ.shape[0] - 1

    def copy(self) -> RowGram:
        return RowGram((self.ZtZ, self.Zty, self.yty, self.n), self.shift)

    def _rows(self, X, y):
        return gram_statistics(X, y, offset=self.shift)

    def without(self, X, y, rows) -> RowGram:
        """The statistics less the rows ``rows`` of ``X``, ``y`` (the arrays these are of)."""
        keep = np.ones(X.shape[0], dtype=bool)
        keep[rows] = False
        stats = gram_statistics_without(
            (self.ZtZ, self.Zty, self.yty, self.n), X, y, rows, keep, offset=self.shift
        )
        return RowGram(stats, self.shift)

    def replace(self, X_old, y_old, X_new, y_new) -> None:
        """Update in place: rows ``X_old``, ``y_old`` became ``X_new``, ``y_new``."""
        old, new = self._rows(X_old, y_old), self._rows(X_new, y_new)
        self.ZtZ += new[0] - old[0]
        self.Zty += new[1] - old[1]
        self.yty += new[2] - old[2]
        self.n += new[3] - old[3]

    def around(self, shift_x, shift_y):
        """``(ZtZ, Zty, yty)`` of the same rows shifted by ``(shift_x, shift_y)`` instead.

        ``around(0, 0)`` gives the raw statistics of ``Z = [X, 1]`` and ``y``.
        With ``delta = shift - new_shift``, ``z' = E z`` for
        ``E = [[I, delta_x], [0, 1]]`` and ``y' = y + delta_y``.
        """
        d = self.n_features
        dx = self.shift[0] - np.asarray(shift_x, dtype=np.float64)
        dy = self.shift[1] - float(shift_y)
        if not dx.any() and dy == 0.0:
            return self.ZtZ.copy(), self.Zty.copy(), self.yty
        E = np.eye(d + 1)
        E[:d, d] = dx
        ZtZ = E @ self.ZtZ @ E.T
        Zty = E @ (self.Zty + dy * self.ZtZ[:, d])
        yty = self.yty + 2.0 * dy * self.Zty[d] + self.n * dy * dy
        return ZtZ, Zty, yty
