"""Intervals, paired tests, Holm's adjustment and the best-defense decision."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skpoison.evaluation._stats import (
    MIN_REPETITIONS,
    best_defense,
    holm,
    mean_interval,
    paired_test,
)

pvals = arrays(
    np.float64,
    st.integers(1, 12),
    elements=st.floats(0.0, 1.0, allow_nan=False),
)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20])
def test_interval_covers_the_mean_95_percent_of_the_time(n):
    rng = np.random.default_rng(n)
    draws = 2000
    hits = 0
    for _ in range(draws):
        m = mean_interval(rng.normal(3.0, 2.0, size=n))
        hits += m.low <= 3.0 <= m.high
    # Binomial(2000, 0.95) has sd 0.005: +- 0.02 is four of them.
    assert abs(hits / draws - 0.95) < 0.02


@given(
    arrays(np.float64, st.integers(2, 30), elements=st.floats(-1e3, 1e3)),
    st.floats(-1e3, 1e3),
    st.floats(0.1, 10.0),
)
def test_interval_is_affine_equivariant(x, shift, scale):
    a, b = mean_interval(x), mean_interval(scale * x + shift)
    tol = 1e-7 * (1 + abs(shift) + scale * np.abs(x).max())
    assert b.mean == pytest.approx(scale * a.mean + shift, abs=tol)
    assert b.low == pytest.approx(scale * a.low + shift, abs=tol)
    assert b.high == pytest.approx(scale * a.high + shift, abs=tol)
    assert a.low <= a.mean <= a.high


def test_interval_edge_cases():
    assert mean_interval([]).n == 0 and math.isnan(mean_interval([]).mean)
    one = mean_interval([2.0, np.nan])
    assert (one.mean, one.n) == (2.0, 1) and math.isnan(one.low)
    same = mean_interval([4.0, 4.0, 4.0])
    assert same.low == same.high == 4.0
    nan = mean_interval([np.nan, np.nan])
    assert nan.n == 0 and math.isnan(nan.high)
    wide, narrow = mean_interval([0.0, 1.0]), mean_interval([0.0, 1.0] * 5)
    assert wide.high - wide.low > narrow.high - narrow.low


@pytest.mark.parametrize(
    "bad, match",
    [([[1.0, 2.0]], "one-dimensional"), ([1.0, np.inf], "infinite")],
)
def test_interval_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        mean_interval(bad)
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 2.0], confidence=1.5)


def test_paired_test_pairs_and_drops_diverged_pairs():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0])
    b = np.array([0.0, 0.5, 1.0, np.nan, 1.0, 2.0, 3.0])
    t = paired_test(a, b)
    assert t.n == 5 and t.mean_difference == pytest.approx(np.mean([1, 1.5, 4, 4, 4]))
    assert paired_test(b, a).pvalue == pytest.approx(t.pvalue)
    with pytest.raises(ValueError, match="pair the same repetitions"):
        paired_test([1.0, 2.0], [1.0])


def test_paired_test_edge_cases():
    assert paired_test([1.0, 2.0], [1.0, 2.0]) == (1.0, 0.0, 2)
    assert math.isnan(paired_test([np.nan], [1.0]).pvalue)
    assert paired_test([3.0], [1.0]).pvalue == 1.0
    # Ties among the differences: scipy's normal approximation, still in [0, 1].
    t = paired_test([2.0, 2.0, 2.0, 3.0, 0.0, 2.0], [1.0] * 6)
    assert 0.0 < t.pvalue <= 1.0


@pytest.mark.parametrize("n", range(1, 10))
def test_smallest_wilcoxon_pvalue_is_two_to_the_one_minus_n(n):
    t = paired_test(np.arange(1.0, n + 1) + 10, np.zeros(n))
    assert t.pvalue == pytest.approx(2.0 ** (1 - n))
    assert (t.pvalue < 0.05) == (n >= MIN_REPETITIONS)


@given(pvals)
def test_holm_properties(p):
    adj = holm(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)  # keeps the order of the raw values
    assert adj.min() == pytest.approx(min(1.0, p.size * p.min()))  # Bonferroni's first
    assert np.all(adj <= np.minimum(1.0, p.size * p) + 1e-15)  # never worse than it
    perm = np.random.default_rng(0).permutation(p.size)
    np.testing.assert_allclose(holm(p[perm]), adj[perm])


def test_holm_one_test_and_nan():
    assert holm([0.03]).tolist() == [0.03]
    adj = holm([0.01, np.nan, 0.02])
    assert math.isnan(adj[1]) and adj[[0, 2]].tolist() == [0.02, 0.02]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([-1.0, 1.0]))
def test_a_clear_winner_wins_and_equal_defenses_do_not(seed, sign):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=12)
    scores = {"a": base + 3.0 * sign, "b": base, "c": base + rng.normal(0, 0.1, 12)}
    best = best_defense(scores, higher_is_better=sign > 0)
    assert best.winner == "a" and best.pvalue < 0.05 and best.n == 12
    same = best_defense({"a": base, "b": base.copy()})
    assert same.winner is None and same.pvalue == 1.0


def test_best_defense_needs_enough_repetitions():
    base = np.arange(8.0)
    for n in (1, 2, MIN_REPETITIONS - 1):
        best = best_defense({"a": base[:n] + 5, "b": base[:n]})
        assert best.leader == "a" and best.winner is None and best.n == n


def test_best_defense_drops_a_repetition_where_any_defense_diverged():
    base = np.arange(10.0)
    b = base.copy()
    b[3] = np.nan
    best = best_defense({"a": base + 1, "b": b, "c": base})
    assert best.n == 9 and set(best.pvalues) == {"b", "c"}
    nothing = best_defense({"a": [np.nan, 1.0], "b": [1.0, np.nan]})
    assert nothing.n == 0 and nothing.leader is None and nothing.winner is None
    with pytest.raises(ValueError, match="two or more"):
        best_defense({"a": base})


@given(
    arrays(np.float64, st.integers(2, 8), elements=st.floats(0.0, 1.0)),
    st.sampled_from([(0.0, 1.0), (0.0, np.inf), (-np.inf, 1.0)]),
)
def test_a_bounded_interval_is_clipped_to_its_range_and_loses_no_coverage(x, bounds):
    free, clipped = mean_interval(x), mean_interval(x, bounds=bounds)
    assert clipped.mean == free.mean and clipped.n == free.n
    assert bounds[0] <= clipped.low <= clipped.mean <= clipped.high <= bounds[1]
    # Clipping only cuts off what lies outside the range.
    assert clipped.low == max(free.low, bounds[0])
    assert clipped.high == min(free.high, bounds[1])


def test_a_rate_of_two_runs_stays_within_0_and_100():
    rate = mean_interval([98.0, 100.0], bounds=(0.0, 100.0))
    assert mean_interval([98.0, 100.0]).high > 100.0  # the t interval runs past it
    assert rate.high == 100.0 and rate.low < 99.0
    nmse = mean_interval([0.01, 0.5], bounds=(0.0, np.inf))
    assert nmse.low == 0.0 and nmse.high == mean_interval([0.01, 0.5]).high
    with pytest.raises(ValueError, match="bounds"):
        mean_interval([1.0, 2.0], bounds=(1.0, 0.0))
