"""Least squares on Gram statistics, shared by the linear fast paths of the defenses.

With the design ``Z = [X, 1]`` (the features plus a column of ones for the
intercept) and a subset ``S`` of the rows, the least-squares fit on ``S`` only
needs the sufficient statistics

    ZtZ = sum_{i in S} z_i z_i^T,   Zty = sum_{i in S} z_i y_i,   yty = sum_{i in S} y_i^2,

a ``(d+1) x (d+1)`` matrix and two small vectors. They are additive over rows, so
a defense that changes its kept set by a few points (TRIM, SEVER, Proda) updates
them in ``O(m d^2)`` for ``m`` changed points instead of recomputing them in
``O(n d^2)``.

Centring, as scikit-learn does. :class:`~sklearn.linear_model.LinearRegression`
and :class:`~sklearn.linear_model.Ridge` centre ``X`` and ``y`` by the means of
the rows used, solve for the coefficients on the centred data (minimum-norm when
rank deficient) and set ``intercept = y_mean - x_mean . coef``. :func:`solve_gram`
does the same from the additive statistics: with ``n = ZtZ[d, d]`` and the means
``m_x = ZtZ[:d, d] / n``, ``m_y = Zty[d] / n``,

    C = ZtZ[:d, :d] - n m_x m_x^T,   c = Zty[:d] - n m_x m_y,
    (C + ridge I) w = c,             b = m_y - m_x . w.

A constant column of the kept rows has ``C_jj = 0`` and gets ``w_j = 0``, as in
scikit-learn (on uncentred ``Z`` it is collinear with the ones and the
minimum-norm solution gives it weight).

Cancellation and the reference frame. ``C`` is a difference of two terms of
size ``n (s^2 + m^2)`` (``s`` the spread, ``m`` the mean of a column), so it loses
about ``log10(1 + m^2 / s^2)`` digits: a timestamp-like column with an offset of
1e6 times its spread loses all sixteen. :class:`LinearFrame` therefore moves the
data, once, into a frame where every column has median 0 and largest absolute
value 1 (``(X - median) / scale``; the same for ``y``). Sums are accumulated
there: the offset is gone before anything is squared, no square can overflow
or underflow (data at 1e-170 or 1e+170 scale work), and the kept set of a
defense, which holds most clean points, has a mean of the order of its spread
(the median lies among the clean points as long as fewer than half are
poisoned). A column whose median is already within 16 median absolute
deviations of 0 keeps its origin (centring on 0 then costs about 2 digits,
which the final refits recover), and when every column does and its largest
magnitude is within ``2**+-12`` of 1 (standardised data), the data is its own
frame and is not copied; otherwise scales are powers of two when no offset is
taken, so the division is exact.

Final models. Every returned model is as accurate as a refit from scratch on
the kept rows by :func:`fit_least_squares`, which centres them by their own
mean first (two passes, as scikit-learn), so that the accuracy does not depend
on how far the kept set is from the frame's origin. The defenses get there from
the Gram solution they already have (:func:`refit_least_squares`): one step of
iterative refinement against the data (two products with ``X``) checks it and
corrects it, and the two-pass refit runs where that check shows more than 6
digits lost or the system is not regular (a column constant on the kept rows,
rank deficiency: the minimum-norm choice is the two-pass fit's). The frame maps
solutions back to the original units (:meth:`LinearFrame.to_original`); it
changes nothing else: a ridge penalty is given in the original units and
translated, and the minimum-norm solution is the one of the original
coefficients, as scikit-learn's. Where a choice among solutions is made in the
frame itself (Proda's minimum-norm fits of small groups), it is made in
``LinearFrame.median_frame``, which always centres on the medians.

Solving. The centred system is solved by Cholesky after scaling it to unit
diagonal (so the condition test does not depend on the units of the features);
when that fails or the scaled system is ill-conditioned, by a symmetric
eigendecomposition of the same unit-diagonal matrix whose small eigenvalues are
cut, so that collinear features never give NaN. Among the solutions left, the
one of minimum norm of the coefficients in the original units is returned (as
:func:`scipy.linalg.lstsq` gives on the centred data). The rank is decided
before the units come in: a copy of a column scaled by 1e6 is the same column
in the frame, and weighting the Gram matrix by the units first would square
that 1e6 to 1e12 and cut the other columns' directions as noise.

``theta`` has shape ``(d + 1,)``: the ``d`` coefficients, then the intercept.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

__all__ = [
    "add_intercept",
    "LinearFrame",
    "fit_least_squares",
    "refit_least_squares",
    "gram_statistics",
    "gram_statistics_without",
    "solve_gram",
    "predict_linear",
    "squared_residuals",
    "trimmed_sum_of_squares",
]

_CHUNK_ROWS = 65536
# Elements of a row block that an elementwise pass keeps in cache (1 MiB).
_BLOCK_ELEMENTS = 1 << 17
_EPS = np.finfo(np.float64).eps
_POTRF, _POTRS = scipy.linalg.lapack.dpotrf, scipy.linalg.lapack.dpotrs


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


def _partitioned_medians(S: np.ndarray):
    """The column medians of finite ``S`` (``np.median``'s, bit for bit) and the
    partitioned transposed copy they were selected from.

    One selection per column on a transposed copy (``np.median`` selects two
    order statistics on the strided columns and a third to look for NaN); for
    an even count the lower middle value is the largest below the upper one.
    Row ``j`` of the copy holds column ``j`` with its values below the median
    position first, so its extremes are those of the lower and upper parts.
    """
    m = S.shape[0]
    k = m // 2
    # Always a copy (partitioned in place), transposed 256 rows at a time: a
    # block stays in cache while its columns are scattered (a whole strided
    # sample transposed at once runs at a fifth of the speed).
    T = np.empty((S.shape[1], m))
    for start in range(0, m, 256):
        T[:, start : start + 256] = S[start : start + 256].T
    T.partition(k, axis=1)
    if m % 2:
        return T[:, k].copy(), T
    return (T[:, :k].max(axis=1) + T[:, k]) / 2, T


def _column_medians(S: np.ndarray) -> np.ndarray:
    """``np.median(S, axis=0)`` for finite ``S``, bit for bit, about 4x faster."""
    return _partitioned_medians(S)[0]


# A column whose median lies within this many median absolute deviations of 0
# keeps the origin: centring on 0 then loses at most about 2 digits (log10 of
# 1 + (16 * 0.7)^2 for normal data), which the final refits recover.
_ORIGIN_MADS = 16.0
# Columns (and y) whose largest magnitude is within these powers of two of 1
# keep their units: sums of squares cannot overflow or underflow, and no unit
# dominates the size of a row by more than 2**24 (TRIM's update bound).
_UNIT_RANGE = (2.0**-12, 2.0**12)


def _keeps_origin(T: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Per column: is 0 within ``_ORIGIN_MADS`` median absolute deviations of the median?

    ``T`` is the partitioned sample behind ``median`` (one column per row,
    from :func:`_partitioned_medians`). The deviation is not computed: it is at
    least ``delta`` when at most half of the values lie closer than ``delta``
    to the median, and the partition says on which side each value lies (two
    comparisons, no array of deviations).
    """
    k = T.shape[1] // 2
    delta = (np.abs(median) / _ORIGIN_MADS)[:, None]
    near = np.count_nonzero(T[:, :k] > median[:, None] - delta, axis=1)
    near += np.count_nonzero(T[:, k:] < median[:, None] + delta, axis=1)
    return near <= k


def _column_extremes(A: np.ndarray, fold: int = 16):
    """``(A.max(axis=0), A.min(axis=0))`` (``-inf`` and ``inf`` without rows), in one read.

    The max and min of each row block are taken while it is in cache, on the
    block seen as ``fold`` rows side by side (a reduction over rows costs a
    call per row: ``fold`` times fewer calls), then folded back.
    """
    n, d = A.shape
    if not (d and A.flags.c_contiguous):
        return A.max(axis=0, initial=-np.inf), A.min(axis=0, initial=np.inf)
    top, bottom = np.full(fold * d, -np.inf), np.full(fold * d, np.inf)
    whole = n - n % fold
    step = fold * max(1, _BLOCK_ELEMENTS // (fold * d))
    for start in range(0, whole, step):
        block = A[start : min(start + step, whole)].reshape(-1, fold * d)
        np.maximum(top, block.max(axis=0), out=top)
        np.minimum(bottom, block.min(axis=0), out=bottom)
    top = top.reshape(fold, d).max(axis=0)
    bottom = bottom.reshape(fold, d).min(axis=0)
    if whole < n:
        np.maximum(top, A[whole:].max(axis=0), out=top)
        np.minimum(bottom, A[whole:].min(axis=0), out=bottom)
    return top, bottom


def _centre_and_scale(A: np.ndarray, name: str, sample_rows: int = 8192):
    """The frame of the columns of ``A``: ``((A - offset) / scale, offset, scale,
    median, deviation)``.

    The offset of a column is its median (of every ``n // sample_rows``-th row),
    or 0 when the median is within ``_ORIGIN_MADS`` deviations of 0; the scale
    is the largest absolute deviation from the offset. When every offset is 0
    the scales are rounded up to powers of two (the division is then exact),
    and when they are also all within ``_UNIT_RANGE`` of 1 the frame is the
    identity and ``A`` itself is returned, not a copy (standardised data: no
    pass that writes ``n x d`` values). ``median`` and ``deviation`` (the
    largest absolute deviation from it, 1 where 0) are the frame that always
    centres on the median, at no extra cost.
    """
    n = A.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        # The origin only has to lie among the bulk of the data: the median of
        # evenly spaced rows is as good, and costs no full sort.
        stride = max(1, n // sample_rows)
        if n:
            median, T = _partitioned_medians(A[::stride])
            offset = np.where(_keeps_origin(T, median), 0.0, median)
        else:
            median = offset = np.zeros(A.shape[1])
        if stride == 1 and n:
            # The sample is every row: its partition holds the extremes, the
            # smallest values below the median position and the largest above.
            k = n // 2
            top, bottom = T[:, k:].max(axis=1), T[:, : k + 1].min(axis=1)
        else:
            # Rounding is monotone, so the extremes of A - offset are those of
            # A, shifted: one read of A.
            top, bottom = _column_extremes(A)
        # The largest absolute deviations, at least 0 (also without rows).
        scale, deviation = (
            np.maximum(np.maximum(top - o, 0.0), -np.minimum(bottom - o, 0.0))
            for o in (offset, median)
        )
    # max and min propagate NaN and inf: a finite scale is a finite frame (no
    # pass over the whole array for it).
    if not (
        np.isfinite(median).all()
        and np.isfinite(scale).all()
        and np.isfinite(deviation).all()
    ):
        raise ValueError(
            f"{name} is too large for float64 least squares: its spread overflows. "
            "Rescale it first."
        )
    scale = np.where(scale > 0, scale, 1.0)
    median_frame = (median, np.where(deviation > 0, deviation, 1.0))
    if not offset.any():
        low, high = _UNIT_RANGE
        if ((scale >= low) & (scale <= high)).all():
            return A, offset, np.ones_like(scale), *median_frame
        # A power of two at least the scale: X / scale is exact (bar underflow).
        mantissa, exponent = np.frexp(scale)
        scale = np.ldexp(1.0, exponent - (mantissa == 0.5))
        return _shifted_and_scaled(A, None, scale), offset, scale, *median_frame
    return _shifted_and_scaled(A, offset, scale), offset, scale, *median_frame


def _power_of_two_near(magnitude: np.ndarray) -> np.ndarray:
    """``2**e`` with ``magnitude / 2**e`` in ``[0.5, 1)`` (1 for 0): dividing by
    it is exact, and brings the magnitude near 1."""
    _, exponent = np.frexp(magnitude)
    return np.ldexp(1.0, exponent)


def _shifted_and_scaled(A, offset, scale, *, reciprocal=False):
    """``(A - offset) / scale`` (``offset=None``: ``A / scale``), a new array
    written a row block at a time (in cache).

    ``reciprocal=True`` multiplies by ``1 / scale`` instead, cheaper than a
    division and within an ulp of it, unless a reciprocal overflows (subnormal
    scales: then it divides).
    """
    out = np.empty_like(A, dtype=np.float64)
    if reciprocal:
        with np.errstate(over="ignore"):
            inv_scale = 1.0 / scale
        reciprocal = bool(np.isfinite(inv_scale).all())
    step = max(1, _BLOCK_ELEMENTS // max(A.shape[1], 1))
    for start in range(0, A.shape[0], step):
        rows = slice(start, start + step)
        if offset is None:
            np.divide(A[rows], scale, out=out[rows])
            continue
        np.subtract(A[rows], offset, out=out[rows])
        if reciprocal:
            out[rows] *= inv_scale
        else:
            out[rows] /= scale
    return out


class LinearFrame(NamedTuple):
    """The frame ``X' = (X - x_offset) / x_scale``, ``y' = (y - y_offset) / y_scale``.

    Offsets are the medians of the columns (of every ``n // 8192``-th row by default),
    or 0 for a column whose median is already near 0 (within 16 median absolute
    deviations), and scales the largest absolute deviations from them, so every
    column of the frame lies in ``[-1, 1]`` (see the module docstring for why the
    defenses accumulate sums there); data that needs neither (standardised
    data) is its own frame, not copied (see :func:`_centre_and_scale`). A ridge
    penalty in the original units is the same number on the frame when
    :func:`solve_gram` gets ``column_scale=x_scale`` (the scale of ``y`` cancels).

    Examples
    --------
    >>> X = np.array([[1e6 + 1.0], [1e6 + 2.0], [1e6 + 4.0]])
    >>> y = np.array([2.0, 4.0, 8.0])
    >>> frame, Xf, yf = LinearFrame.from_data(X, y)
    >>> Xf.ravel(), yf  # y is near 0 against its spread: its own frame
    (array([-0.5,  0. ,  1. ]), array([2., 4., 8.]))
    >>> frame.to_original(fit_least_squares(Xf, yf)).round(6) + 0.0
    array([ 2.e+00, -2.e+06])
    """

    x_offset: np.ndarray
    x_scale: np.ndarray
    y_offset: float
    y_scale: float
    #: The frame centred on the medians and scaled by the largest deviations
    #: from them, always (no data in it): where a choice among solutions is
    #: made in the frame (Proda's minimum-norm group fits), it is made there.
    median_frame: LinearFrame | None = None

    @classmethod
    def from_data(cls, X: np.ndarray, y: np.ndarray, sample_rows: int = 8192):
        """The frame of ``(X, y)`` and the data in it: ``(frame, X', y')``.

        The medians are those of every ``n // sample_rows``-th row. A fit
        whose result does not depend on the frame (only its rounding does)
        can take a smaller sample than one that makes a choice in
        ``median_frame``: any origin among the bulk of the data will do.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        Xf, x_offset, x_scale, x_median, x_dev = _centre_and_scale(X, "X", sample_rows)
        yf, y_offset, y_scale, y_median, y_dev = _centre_and_scale(
            y[:, None], "y", sample_rows
        )
        median = cls(x_median, x_dev, float(y_median[0]), float(y_dev[0]))
        frame = cls(x_offset, x_scale, float(y_offset[0]), float(y_scale[0]), median)
        return frame, Xf, yf[:, 0]

    def convert(self, theta: np.ndarray, frame: LinearFrame) -> np.ndarray:
        """Fits in this frame (along the last axis), the same models in ``frame``.

        Offsets enter as their differences, exactly 0 where the two frames
        share them: no large offset is added and taken away again.
        """
        theta = np.asarray(theta, dtype=np.float64)
        coef = theta[..., :-1] * (self.y_scale / self.x_scale)
        intercept = (
            self.y_scale * theta[..., -1]
            + (self.y_offset - frame.y_offset)
            + coef @ (frame.x_offset - self.x_offset)
        ) / frame.y_scale
        return np.concatenate(
            [coef * (frame.x_scale / frame.y_scale), intercept[..., None]], axis=-1
        )

    def squared_scale(self) -> float:
        """``y_scale ** 2``, the unit of squared residuals; ``ValueError`` if it overflows."""
        if not self.y_scale < 1e154:
            raise ValueError(
                "y is too large for least squares in float64: its squared "
                "residuals overflow. Standardise (or rescale) the data first."
            )
        return self.y_scale * self.y_scale

    def to_original(self, theta: np.ndarray) -> np.ndarray:
        """Coefficients and intercept of a fit in the frame, in the original units."""
        theta = np.asarray(theta, dtype=np.float64)
        coef = theta[:-1] * (self.y_scale / self.x_scale)
        intercept = self.y_offset + self.y_scale * theta[-1] - self.x_offset @ coef
        return np.append(coef, intercept)


def gram_statistics(
    X: np.ndarray,
    y: np.ndarray,
    sample_mask: np.ndarray | None = None,
    *,
    offset: tuple[np.ndarray, float] | None = None,
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
    offset : (ndarray of shape (n_features,), float), default=None
        ``(x_offset, y_offset)`` subtracted from the rows before they are
        accumulated (block by block: ``X`` is not copied whole).

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
    step = X.shape[0] if sample_mask is None and offset is None else _CHUNK_ROWS
    # Overflow is checked once, below, with a message that says what to do.
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, max(X.shape[0], 1), step):
            Xb, yb = X[start : start + step], y[start : start + step]
            if sample_mask is not None:
                keep = sample_mask[start : start + step]
                if offset is not None:
                    Xb, yb = _shifted_rows(Xb, keep, offset[0]), yb[keep]
                    yb -= offset[1]
                else:
                    Xb, yb = Xb[keep], yb[keep]
            elif offset is not None:
                Xb, yb = Xb - offset[0], yb - offset[1]
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


def _shifted_rows(A: np.ndarray, keep: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``A[keep] - shift`` (C-contiguous, as ``A[keep]``), written once.

    The kept rows of each row block are gathered and shifted while in cache,
    not copied whole and then shifted in a second pass.
    """
    out = np.empty((np.count_nonzero(keep), A.shape[1]))
    step = max(1, _BLOCK_ELEMENTS // max(A.shape[1], 1))
    at = 0
    for start in range(0, A.shape[0], step):
        part = A[start : start + step][keep[start : start + step]]
        np.subtract(part, shift, out=out[at : at + part.shape[0]])
        at += part.shape[0]
    return out


def gram_statistics_without(
    full: tuple[np.ndarray, np.ndarray, float, int],
    X: np.ndarray,
    y: np.ndarray,
    removed: np.ndarray,
    keep: np.ndarray,
    *,
    offset: tuple[np.ndarray, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """The Gram statistics of ``full`` less the rows ``removed``, accurately.

    Subtracting the removed rows' statistics costs ``O(m d^2)`` for ``m`` rows
    but cancels digits when those rows outweigh the ones that stay (far-away
    poison, exactly what the defenses remove); then, and when ``m`` is not
    smaller than the rows left, the statistics are recomputed from the rows that
    stay.

    Parameters
    ----------
    full : tuple
        :func:`gram_statistics` of a set of rows of ``X`` (all, or a subset that
        contains ``removed``).
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    removed : ndarray of int
        Indices of the rows to take out (distinct, all among the rows of ``full``).
    keep : ndarray of shape (n_samples,), bool
        The rows that are left (those of ``full`` without ``removed``).
    offset : (ndarray of shape (n_features,), float), default=None
        The ``offset`` of :func:`gram_statistics` that ``full`` was computed
        with (the same is used for the rows removed).

    Returns
    -------
    stats : tuple
        ``(ZtZ, Zty, yty, n)`` of the rows of ``full`` without ``removed``.

    Examples
    --------
    >>> X = np.array([[1.0], [2.0], [3.0]]); y = np.array([1.0, 2.0, 1e9])
    >>> keep = np.array([True, True, False])
    >>> stats = gram_statistics_without(gram_statistics(X, y), X, y, [2], keep)
    >>> stats[0], stats[1], stats[2], stats[3]
    (array([[5., 3.],
           [3., 2.]]), array([5., 3.]), 5.0, 2)
    """
    ZtZ, Zty, yty, n = full
    removed = np.asarray(removed, dtype=np.intp)
    n_left = int(n) - removed.size
    if removed.size < n_left:
        dZtZ, dZty, dyty, dn = gram_statistics(X[removed], y[removed], offset=offset)
        left = (ZtZ - dZtZ, Zty - dZty, yty - dyty, int(n) - dn)
        size_removed = float(np.trace(dZtZ)) + dyty
        size_left = float(np.trace(left[0])) + max(left[2], 0.0)
        # The subtraction's error is about eps * size_removed: keep it below
        # about 1e-13 of what is left.
        if size_removed <= 1e3 * size_left:
            return left
    return gram_statistics(X, y, keep, offset=offset)


def _check_ridge(ridge) -> float:
    ridge = float(ridge)
    if not (np.isfinite(ridge) and ridge >= 0):
        # An infinite penalty reaches LAPACK as inf - inf = NaN, where some
        # routines never return: refuse it before any solver runs.
        raise ValueError(
            f"The ridge penalty must be a finite number >= 0, got {ridge!r}."
        )
    return ridge


def _column_penalty(ridge, column_scale, d):
    """The columns' scales (1 if ``None``) and the ridge penalty on each column of ZtZ.

    The penalty is inf where a feature is so small in its units that any
    penalty wins: its weight is then 0.
    """
    scale = np.ones(d) if column_scale is None else np.asarray(column_scale, float)
    with np.errstate(over="ignore", divide="ignore"):
        ridge_f = ridge / (scale * scale) if ridge else np.zeros(d)
    return scale, ridge_f


def _solve_normal(ZtZ, Zty, ridge, column_scale, column_noise):
    """Centre the normal equations by the ones row and solve (see the module docstring).

    ``column_noise`` is the rounding noise of each centred diagonal entry: a
    column whose centred diagonal is not above it is constant on the rows and
    gets no weight. Returns the solution and whether the system was regular
    (every column varying and a well-conditioned Cholesky factor): then the
    solution is the unique one, and a linear function of ``Zty``.
    """
    A = np.asarray(ZtZ, dtype=np.float64)
    b = np.asarray(Zty, dtype=np.float64)
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise ValueError("solve_gram: the Gram statistics contain NaN or inf.")
    p = A.shape[0]
    d = p - 1
    n = A[d, d]
    if not n > 0:
        raise ValueError("solve_gram: the Gram statistics have no rows (n = 0).")
    mean = A[:d, d] / n
    C = A[:d, :d] - np.outer(A[:d, d], mean)
    C = 0.5 * (C + C.T)
    c = b[:d] - np.multiply.outer(mean, b[d])
    varying = np.diag(C) > np.asarray(column_noise, dtype=np.float64)
    scale, ridge_f = _column_penalty(ridge, column_scale, d)
    w = np.zeros((d,) + b.shape[1:])
    solvable = varying & np.isfinite(ridge_f)
    regular = bool(solvable.all())
    if regular:
        # C is a new array: penalised in place, no selected copy.
        C[np.diag_indices_from(C)] += ridge_f
        w, regular = _solve_psd(C, c, scale)
    elif solvable.any():
        idx = np.flatnonzero(solvable)
        Ck = C[np.ix_(idx, idx)]
        Ck[np.diag_indices_from(Ck)] += ridge_f[idx]
        # Minimum norm (if singular) in the original units of the coefficients.
        w[idx] = _solve_psd(Ck, c[idx], scale[idx])[0]
    intercept = (b[d] - A[d, :d] @ w) / n
    return np.concatenate([w, intercept[None]], axis=0), regular


def _solve_psd(A, b, scale):
    """``A^+ b`` for symmetric PSD ``A``: Cholesky when well-conditioned, else the
    solution of minimum norm of ``x / scale``; and whether Cholesky gave it."""
    p = A.shape[0]
    col = (lambda v: v[:, None]) if b.ndim == 2 else (lambda v: v)
    # The condition test on the matrix scaled to unit diagonal is unit free; the
    # solution, when unique, does not depend on that scaling.
    s = 1.0 / np.sqrt(np.diag(A))
    As = A * s[:, None] * s[None, :]
    # LAPACK directly (scipy's cho_factor and cho_solve call the same routines,
    # with validation that costs more than the factorisation at this size).
    c, info = _POTRF(As, lower=1, clean=0)
    if info == 0:
        # Cholesky succeeds on barely-positive matrices; reject a bad conditioning
        # (the squared ratio of the factor's diagonal bounds the condition number).
        d_c = np.abs(np.diag(c))
        if d_c.min() > 0 and (d_c.max() / d_c.min()) ** 2 < 1.0 / (p * 1e3 * _EPS):
            x, info = _POTRS(c, b * col(s), lower=1)
            x *= col(s)
            if info == 0 and np.isfinite(x).all():
                return x, True
    # The rank is decided on the unit-diagonal matrix, where it does not depend
    # on the units of the columns. (Deciding it on A weighted by ``scale`` cut
    # well-determined directions: a column a million times larger than the
    # others squares to 1e12 and pushed them below the cutoff.)
    w, V = scipy.linalg.eigh(As, check_finite=False)
    keep = w > max(w.max(), 0.0) * p * _EPS * 1e3
    Vk = V[:, keep]
    x = Vk @ ((Vk.T @ (b * col(s))) / col(w[keep])) * col(s)
    if keep.all():
        return x, False
    # Every x + s * (N z), N the cut directions, fits as well: the one of minimum
    # norm of x / scale (of the coefficients in the original units, as
    # scikit-learn's minimum-norm solution).
    weight = scale.max() / scale
    M = (weight * s)[:, None] * V[:, ~keep]
    z = scipy.linalg.lstsq(M, -(x * col(weight)), check_finite=False)[0]
    return x + col(s) * (V[:, ~keep] @ z), False


def solve_gram(
    ZtZ: np.ndarray,
    Zty: np.ndarray,
    ridge: float = 0.0,
    *,
    column_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Solve the normal equations ``(ZtZ + ridge * I') theta = Zty``, centred.

    ``I'`` is the identity with a zero in the last (intercept) entry, so the
    intercept is never penalised (as in :class:`~sklearn.linear_model.Ridge`).
    The system is centred by the means that the ones row of ``ZtZ`` holds and
    solved for the coefficients as scikit-learn does (see the module
    docstring): a column constant on the rows gets weight 0, a singular system
    the minimum-norm coefficients. Forming the Gram matrix squares the condition
    number of the design, so for nearly collinear designs (condition number
    above about 1e5 after scaling the columns to unit norm) the answer is a
    truncated solution and can differ from :func:`scipy.linalg.lstsq`. The result
    is always finite for finite input.

    Parameters
    ----------
    ZtZ : ndarray of shape (p, p)
        Symmetric positive semi-definite Gram matrix of ``[X', 1]`` (see
        :func:`gram_statistics`), ``X'`` the features in any frame
        ``(X - offset) / column_scale``.
    Zty : ndarray of shape (p,) or (p, k)
        One right-hand side, or ``k`` of them (e.g. the identity, for the
        inverse).
    ridge : float, default=0.0
        L2 penalty on the coefficients (not on the intercept), in the units of
        ``X' * column_scale``. Must be finite.
    column_scale : ndarray of shape (p - 1,), default=None
        The scale of each column of ``X'`` in the original units (``None``: 1).
        It only sets the units of ``ridge`` and the norm that the minimum-norm
        solution minimises.

    Returns
    -------
    theta : ndarray of shape (p,) or (p, k)
        Coefficients of ``X'`` followed by the intercept (one column per
        right-hand side).

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [2.0]]); y = 2 * X.ravel() + 1
    >>> ZtZ, Zty, _, _ = gram_statistics(X, y)
    >>> solve_gram(ZtZ, Zty).round(8)
    array([2., 1.])

    A duplicated feature makes ``ZtZ`` singular; the minimum-norm solution splits
    the weight evenly, and a constant feature gets none:

    >>> ZtZ, Zty, _, _ = gram_statistics(np.hstack([X, X, np.ones((3, 1))]), y)
    >>> solve_gram(ZtZ, Zty).round(8) + 0.0
    array([1., 1., 0., 1.])
    """
    ridge = _check_ridge(ridge)
    ZtZ = np.asarray(ZtZ, dtype=np.float64)
    return _solve_normal(ZtZ, Zty, ridge, column_scale, _one_pass_noise(ZtZ))[0]


def _one_pass_noise(ZtZ):
    # One pass: the centred diagonal is a difference of sums of squares, whose
    # rounding error is of the order of eps times the sums themselves.
    return 1e3 * ZtZ.shape[0] * _EPS * np.diag(ZtZ)[:-1]


def fit_least_squares(
    X: np.ndarray,
    y: np.ndarray,
    sample_mask: np.ndarray | None = None,
    ridge: float = 0.0,
    *,
    column_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Least squares (or ridge) with intercept on the selected rows, from scratch.

    Two passes, as scikit-learn: the rows' means first, then the Gram statistics
    of the rows centred by them, solved by :func:`solve_gram`. Its accuracy does
    not depend on the offset of the data; use it for every result that is
    returned, and the additive statistics for the iterations in between.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    sample_mask : ndarray of shape (n_samples,), bool, default=None
        The rows to use; ``None`` uses all of them.
    ridge : float, default=0.0
        As in :func:`solve_gram`.
    column_scale : ndarray of shape (n_features,), default=None
        As in :func:`solve_gram`.

    Returns
    -------
    theta : ndarray of shape (n_features + 1,)
        Coefficients of ``X`` followed by the intercept.

    Examples
    --------
    >>> t = 1.7e9 + np.arange(5.0)  # a timestamp-like column
    >>> coef, intercept = fit_least_squares(t[:, None], 3.0 * (t - 1.7e9) + 2.0)
    >>> round(float(coef), 8), round(float(intercept) + 5.1e9, 3)
    (3.0, 2.0)
    """
    ridge = _check_ridge(ridge)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if sample_mask is None:
        weights = np.ones(X.shape[0])
    else:
        sample_mask = np.asarray(sample_mask, dtype=bool)
        weights = sample_mask.astype(np.float64)
    n = weights.sum()
    if not n > 0:
        raise ValueError("fit_least_squares: no rows are selected.")
    x_mean = (weights @ X) / n
    y_mean = float(weights @ y) / n
    ZtZ, Zty, _, _ = gram_statistics(X, y, sample_mask, offset=(x_mean, y_mean))
    # Two passes: each centred entry is off by about eps times the mean, so the
    # centred diagonal's noise is of the order of (eps * mean)^2 per row.
    size = np.diag(ZtZ)[:-1] + n * x_mean * x_mean
    noise = (1e2 * ZtZ.shape[0] * _EPS) ** 2 * size
    theta = _solve_normal(ZtZ, Zty, ridge, column_scale, noise)[0]
    theta[-1] += y_mean - x_mean @ theta[:-1]
    return theta


def refit_least_squares(
    X: np.ndarray,
    y: np.ndarray,
    sample_mask: np.ndarray,
    stats: tuple[np.ndarray, np.ndarray, float, int],
    theta: np.ndarray,
    ridge: float = 0.0,
    *,
    column_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fit of :func:`fit_least_squares` from a Gram solution, by iterative refinement.

    ``theta`` solves the Gram statistics ``stats`` of the rows of
    ``sample_mask`` (possibly updated, with their rounding). One step computes
    the residuals ``r = y - Z theta`` from the data, the residual of the normal
    equations ``Z_S^T r_S - ridge theta`` on the selected rows, and solves the
    same Gram system for the correction; the error of ``theta`` shrinks by
    about the factor it had, so one step (at most two) reaches the accuracy of
    the two-pass refit at the cost of two or three products with ``X``
    instead of a new Gram matrix. A correction that moves the fitted values by
    at most ``1e-13`` of the targets' size (``theta`` was accurate to rounding)
    is not applied, and the residuals already computed are returned (two
    products with ``X``). When the first correction moves them by more than
    ``1e-10`` (more than 6 digits lost) or the system is not regular (a column constant on the rows, a
    rank-deficient or ill-conditioned Gram matrix: the minimum-norm answer is
    decided there), it returns :func:`fit_least_squares` instead.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    sample_mask : ndarray of shape (n_samples,), bool
        The rows of the fit.
    stats : tuple
        ``(ZtZ, Zty, yty, n)`` of those rows (see :func:`gram_statistics`).
    theta : ndarray of shape (n_features + 1,)
        :func:`solve_gram` of ``stats`` with the same ``ridge`` and
        ``column_scale``.
    ridge, column_scale
        As in :func:`solve_gram`.

    Returns
    -------
    theta : ndarray of shape (n_features + 1,)
        Coefficients of ``X`` followed by the intercept.
    squared_residuals : ndarray of shape (n_samples,)
        ``(y - X @ theta[:-1] - theta[-1]) ** 2`` on every row.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = 1e4 + rng.normal(size=(50, 2)); y = X @ [1.0, 2.0] + 3.0
    >>> keep = np.arange(50) % 5 > 0
    >>> stats = gram_statistics(X, y, keep)
    >>> theta, r2 = refit_least_squares(X, y, keep, stats, solve_gram(*stats[:2]))
    >>> bool(np.allclose(theta, fit_least_squares(X, y, keep), rtol=1e-9))
    True
    """
    ridge = _check_ridge(ridge)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sample_mask = np.asarray(sample_mask, dtype=bool)
    ZtZ, _, yty, _ = stats
    ZtZ = np.asarray(ZtZ, dtype=np.float64)
    d = X.shape[1]
    noise = _one_pass_noise(ZtZ)
    ridge_f = _column_penalty(ridge, column_scale, d)[1]
    theta = np.array(theta, dtype=np.float64)

    def two_pass():
        fit = fit_least_squares(X, y, sample_mask, ridge, column_scale=column_scale)
        return fit, squared_residuals(X, y, fit)

    if not np.isfinite(ridge_f).all():
        # An infinite penalty (a feature tiny in its units) fixes a weight at
        # 0: not a regular system.
        return two_pass()
    residuals = None
    for _ in range(2):
        residuals = predict_linear(X, theta)
        np.subtract(y, residuals, out=residuals)
        r = np.where(sample_mask, residuals, 0.0)
        g = np.append(X.T @ r, r.sum())
        g[:d] -= ridge_f * theta[:d]
        delta, regular = _solve_normal(ZtZ, g, ridge, column_scale, noise)
        # How far the correction moves the fitted values, against the targets.
        moved = float(delta @ ZtZ @ delta) / max(float(yty), np.finfo(float).tiny)
        if not regular or not moved <= 1e-20:
            return two_pass()
        if moved <= 1e-26:
            break  # accurate to rounding: theta kept, its residuals at hand
        theta += delta
        residuals = None
        if moved <= 1e-24:
            break  # the error left is about the square of the one corrected
    if residuals is None:
        residuals = predict_linear(X, theta)
        np.subtract(y, residuals, out=residuals)
    residuals *= residuals
    return theta, residuals


def predict_linear(X: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Predictions ``X @ theta[:-1] + theta[-1]``.

    Examples
    --------
    >>> predict_linear(np.array([[1.0], [2.0]]), np.array([2.0, 1.0]))
    array([3., 5.])
    """
    theta = np.asarray(theta, dtype=np.float64)
    out = np.asarray(X, dtype=np.float64) @ theta[:-1]
    out += theta[-1]  # in place: no second array of n values
    return out


def squared_residuals(X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Squared residuals ``(y - X @ theta[:-1] - theta[-1]) ** 2``, one per row.

    Examples
    --------
    >>> squared_residuals(np.array([[1.0], [2.0]]), np.array([3.0, 7.0]),
    ...                   np.array([2.0, 1.0]))
    array([0., 4.])
    """
    r = predict_linear(X, theta)
    np.subtract(np.asarray(y, dtype=np.float64), r, out=r)
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
