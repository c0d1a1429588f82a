"""Uncertainty over repetitions: confidence intervals, paired tests, a best defense.

A study repeats the whole protocol on ``n`` random splits (Appendix E); every
number a report gives is a statistic of those ``n`` runs, and every claim
("defense A is best", "the gain is negative") is a statement about that
statistic. This module holds the few tools that make such claims defensible.

Confidence intervals: Student t
    ``mean +- t_{1 - a/2, n-1} s / sqrt(n)`` (:data:`scipy.stats.t`). We use
    t rather than the bootstrap because the studies are small (2 to 20
    repetitions): a percentile or BCa bootstrap of ``n`` values can only
    resample those values, so below about 20 it is too narrow (it ignores
    that ``s`` itself is estimated) and with ``n = 2`` it is degenerate. The t
    interval is exact for normal runs and, by the central limit theorem, close
    for the averages over ratios the findings use; its width grows as it should
    when ``n`` is small (``t_{0.975, 1} = 12.7``). One run has no interval
    (NaN bounds); identical runs have a zero-width one.

Intervals of bounded quantities are clipped to their range
    The t interval is symmetric around the mean and knows nothing of the
    range of what is averaged: with 2 repetitions a detection rate of 99 %
    gets ``[88, 110]``. Given ``bounds``, :func:`mean_interval` clips the
    interval to them (:data:`VALUE_BOUNDS` holds those of the columns of a
    study's table: an NMSE is >= 0, a defense gain, Eq. 8, is <= 100 % since
    the defended NMSE is >= 0, a fraction of points rejected lies in [0, 1]).
    Clipping loses no coverage: the true mean lies in the range, so it is in
    the clipped interval whenever it is in the unclipped one.

Paired comparisons: Wilcoxon signed-rank
    Two defenses evaluated on the same repetitions (same split, same attack)
    are compared on the per-repetition differences with
    :func:`scipy.stats.wilcoxon` (two-sided; the exact distribution without
    zeros or ties, the tie-corrected normal approximation with them). Pairing removes the split-to-split variation that dominates
    a cell's standard deviation; ranks make one near-divergent run harmless.
    Runs that diverged carry no score: a pair with a NaN side is dropped.
    All-zero differences give ``p = 1`` (no evidence of any difference).

Multiple comparisons: Holm
    Declaring one defense best compares it with every other one: ``m`` tests.
    :func:`holm` adjusts their p-values (Holm's step-down procedure, which
    controls the family-wise error rate like Bonferroni and is uniformly more
    powerful). :func:`scipy.stats.false_discovery_control` implements
    Benjamini-Hochberg, a false-discovery rate, which is not the guarantee a
    "winner" claim needs.

How many repetitions a decision needs
    With ``n`` non-zero differences, the two-sided Wilcoxon p-value is at
    least ``2^(1-n)``: below ``n = 6`` no paired test can reach 5 %
    (:data:`MIN_REPETITIONS`), and claims made with fewer repetitions are
    inconclusive. A winner among ``k`` defenses needs ``(k - 1) 2^(1-n) <
    0.05`` after Holm's correction: 8 repetitions for the paper's 7 defenses,
    hence 10 or 20 for a reproduction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

__all__ = [
    "CONFIDENCE",
    "MIN_REPETITIONS",
    "VALUE_BOUNDS",
    "BestDefense",
    "MeanInterval",
    "PairedTest",
    "best_defense",
    "holm",
    "mean_interval",
    "paired_test",
]

#: Level of every interval and test: 95 % intervals, tests at 5 %.
CONFIDENCE = 0.95

#: Fewest repetitions a claim needs: the smallest ``n`` with ``2^(1-n) < 0.05``,
#: the smallest p-value a two-sided Wilcoxon signed-rank test of ``n`` pairs can give.
MIN_REPETITIONS = 6

#: The range ``(low, high)`` of each quantity of a study's table, to which its
#: intervals are clipped: an NMSE (Eq. 7) is >= 0; a defense gain (Eq. 8) is at
#: most 100 %, reached by a defended NMSE of 0; a fraction rejected is in [0, 1].
VALUE_BOUNDS = {
    "test_nmse": (0.0, math.inf),
    "clean_test_nmse": (0.0, math.inf),
    "undefended_nmse": (0.0, math.inf),
    "defense_gain": (-math.inf, 100.0),
    "poison_rejected": (0.0, 1.0),
    "clean_rejected": (0.0, 1.0),
}


class MeanInterval(NamedTuple):
    """A mean over repetitions and its confidence interval."""

    mean: float
    low: float
    high: float
    n: int


class PairedTest(NamedTuple):
    """A Wilcoxon signed-rank test of ``a - b`` over paired repetitions."""

    pvalue: float
    mean_difference: float
    n: int


class BestDefense(NamedTuple):
    """The outcome of :func:`best_defense`.

    ``leader`` has the best mean; ``winner`` is the leader when every paired
    test against it rejects at the chosen level after Holm's correction, else
    None. ``pvalues`` maps each other defense to its Holm-adjusted p-value
    against the leader; ``pvalue`` is the largest of them (the one that
    decides); ``n`` is the number of repetitions with a score for every
    defense.
    """

    winner: str | None
    leader: str | None
    means: dict
    pvalues: dict
    pvalue: float
    n: int


def _finite_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    if np.isinf(arr).any():
        raise ValueError(
            f"{name} holds infinite values; mark diverged runs as NaN instead."
        )
    return arr


def _check_confidence(confidence) -> float:
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    return float(confidence)


def mean_interval(
    values, *, confidence: float = CONFIDENCE, bounds=None
) -> MeanInterval:
    """Mean of the runs and its Student t confidence interval.

    Parameters
    ----------
    values : array-like of shape (n_repetitions,)
        One value per repetition; NaN (a diverged run) is left out.
    confidence : float, default=0.95
        Coverage of the interval.
    bounds : tuple of (float, float), default=None
        The range ``(low, high)`` of the quantity (``-inf`` or ``inf`` for an
        open side), e.g. ``(0, 100)`` for a percentage or ``(0, inf)`` for an
        NMSE (:data:`VALUE_BOUNDS`): the interval is clipped to it. The values
        are not checked against it.

    Returns
    -------
    interval : MeanInterval
        ``(mean, low, high, n)`` with ``n`` the number of finite values; the
        bounds are NaN when ``n < 2`` and everything is NaN when ``n = 0``.
        With ``bounds``, ``low`` and ``high`` are clipped to them.

    Examples
    --------
    >>> m = mean_interval([1.0, 2.0, 3.0, float("nan")])
    >>> m.n, m.mean, round(m.low, 3), round(m.high, 3)
    (3, 2.0, -0.484, 4.484)
    >>> mean_interval([5.0]).low
    nan

    A rate of two runs, clipped to its range:

    >>> r = mean_interval([98.0, 100.0], bounds=(0.0, 100.0))
    >>> r.mean, round(r.low, 2), r.high
    (99.0, 86.29, 100.0)
    """
    confidence = _check_confidence(confidence)
    if bounds is not None:
        lo, hi = (float(b) for b in bounds)
        if not lo < hi:
            raise ValueError(
                f"bounds must be (low, high) with low < high, got {bounds!r}."
            )
    arr = _finite_1d(values, "values")
    arr = arr[~np.isnan(arr)]
    n = arr.size
    if n == 0:
        return MeanInterval(math.nan, math.nan, math.nan, 0)
    mean = float(arr.mean())
    if n == 1:
        return MeanInterval(mean, math.nan, math.nan, 1)
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, n - 1) * arr.std(ddof=1) / math.sqrt(n))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = min(max(low, lo), hi), max(min(high, hi), lo)
    return MeanInterval(mean, low, high, n)


def paired_test(a, b) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` over the same repetitions.

    Parameters
    ----------
    a, b : array-like of shape (n_repetitions,)
        Scores of two methods, position ``i`` from repetition ``i`` of both.
        A pair with a NaN on either side (a diverged run) is left out.

    Returns
    -------
    test : PairedTest
        ``(pvalue, mean_difference, n)``: p is NaN without any pair and 1 when
        every difference is zero; ``n`` counts the pairs used.

    Examples
    --------
    >>> t = paired_test([3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [1.0, 1.5, 2.0, 2.0, 2.5, 3.0])
    >>> t.n, round(t.pvalue, 5), t.mean_difference
    (6, 0.03125, 3.5)
    """
    a = _finite_1d(a, "a")
    b = _finite_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must pair the same repetitions, got {a.size} and {b.size} values."
        )
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if d.size == 0:
        return PairedTest(math.nan, math.nan, 0)
    if not np.any(d):
        return PairedTest(1.0, 0.0, int(d.size))
    from scipy.stats import wilcoxon

    nonzero = np.abs(d[d != 0])
    exact = nonzero.size == d.size and np.unique(nonzero).size == d.size
    # With zeros or ties scipy's "auto" falls back on a permutation test that
    # takes seconds; the normal approximation (tie-corrected) is instant.
    p = wilcoxon(d, method="exact" if exact else "approx").pvalue
    return PairedTest(float(p), float(d.mean()), int(d.size))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error rate).

    The ``k``-th smallest of ``m`` p-values becomes ``max_{j <= k} min(1, (m - j
    + 1) p_(j))``; rejecting the adjusted values below ``a`` keeps the
    probability of any false rejection at most ``a``.

    Parameters
    ----------
    pvalues : array-like of shape (m,)
        Raw p-values in [0, 1]; NaN entries are not tests and stay NaN.

    Returns
    -------
    adjusted : ndarray of shape (m,)
        In the input's order.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = _finite_1d(pvalues, "pvalues")
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"pvalues must lie in [0, 1], got {p[(p < 0) | (p > 1)]}.")
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def best_defense(
    scores: Mapping, *, higher_is_better: bool = True, level: float = 1 - CONFIDENCE
) -> BestDefense:
    """The defense with the best mean, declared a winner only if the tests say so.

    The leader (best mean over the repetitions every defense completed) is
    compared with each other defense by :func:`paired_test`; the ``m``
    p-values are adjusted by :func:`holm`. The leader wins when every adjusted
    p-value is below ``level``; with fewer than :data:`MIN_REPETITIONS`
    complete repetitions it never does.

    Parameters
    ----------
    scores : mapping of str to array-like of shape (n_repetitions,)
        Per defense, one score per repetition, aligned across defenses (NaN
        for a diverged run: that repetition is left out for every defense).
    higher_is_better : bool, default=True
        True for a defense gain, False for an NMSE.
    level : float, default=0.05
        Family-wise error rate of the claim.

    Returns
    -------
    best : BestDefense

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(size=10)
    >>> best = best_defense({"a": base + 2, "b": base, "c": base + 0.1})
    >>> best.winner, best.n, best.pvalue < 0.05
    ('a', 10, True)
    >>> best_defense({"a": base[:3] + 2, "b": base[:3]}).winner is None
    True
    """
    _check_confidence(1 - level)
    if len(scores) < 2:
        raise ValueError(
            f"best_defense compares two or more defenses, got {len(scores)}."
        )
    names = list(scores)
    table = np.vstack([_finite_1d(scores[k], f"scores[{k!r}]") for k in names])
    table = table[:, ~np.isnan(table).any(axis=0)]
    n = table.shape[1]
    if n == 0:
        nan = dict.fromkeys(names, math.nan)
        return BestDefense(None, None, nan, {}, math.nan, 0)
    means = dict(zip(names, table.mean(axis=1).tolist()))
    sign = 1.0 if higher_is_better else -1.0
    leader = names[int(np.argmax(sign * table.mean(axis=1)))]
    others = [k for k in names if k != leader]
    i = names.index(leader)
    raw = [paired_test(table[i], table[names.index(k)]).pvalue for k in others]
    adjusted = holm(raw)
    pvalues = dict(zip(others, adjusted.tolist()))
    worst = float(np.max(adjusted))
    won = n >= MIN_REPETITIONS and worst < level
    return BestDefense(leader if won else None, leader, means, pvalues, worst, n)
