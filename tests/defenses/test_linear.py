"""Least squares on Gram statistics (skpoison.defenses._linear)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, Ridge

from skpoison.defenses._linear import (
    _column_medians,
    add_intercept,
    gram_statistics,
    predict_linear,
    solve_gram,
    squared_residuals,
    trimmed_sum_of_squares,
)


def _data(seed, n=40, d=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.01, 100, size=d)
    y = X @ rng.normal(size=d) + 3.0 + rng.normal(size=n)
    return X, y


@given(seed=st.integers(0, 10_000), d=st.integers(1, 5))
def test_gram_statistics_are_those_of_the_design_with_ones(seed, d):
    X, y = _data(seed, d=d)
    mask = np.random.default_rng(seed).random(len(y)) < 0.5
    ZtZ, Zty, yty, n = gram_statistics(X, y, mask)
    Z = add_intercept(X[mask])
    np.testing.assert_allclose(ZtZ, Z.T @ Z, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(Zty, Z.T @ y[mask], rtol=1e-12, atol=1e-9)
    assert np.isclose(yty, y[mask] @ y[mask], rtol=1e-12)
    assert n == mask.sum()
    # Additive over disjoint row sets: what the incremental updates rely on.
    rest = gram_statistics(X, y, ~mask)
    full = gram_statistics(X, y)
    np.testing.assert_allclose(ZtZ + rest[0], full[0], rtol=1e-12, atol=1e-9)


@given(seed=st.integers(0, 10_000), alpha=st.sampled_from([0.0, 0.1, 10.0]))
def test_solve_gram_matches_sklearn(seed, alpha):
    X, y = _data(seed)
    ZtZ, Zty, yty, _ = gram_statistics(X, y)
    theta = solve_gram(ZtZ, Zty, ridge=alpha)
    ref = (LinearRegression() if alpha == 0 else Ridge(alpha=alpha)).fit(X, y)
    np.testing.assert_allclose(predict_linear(X, theta), ref.predict(X), rtol=1e-7)
    sse = squared_residuals(X, y, theta).sum()
    assert np.isclose(trimmed_sum_of_squares(ZtZ, Zty, yty, theta), sse, rtol=1e-6)


@given(seed=st.integers(0, 10_000), n_copies=st.integers(2, 4))
def test_singular_gram_gives_the_minimum_norm_solution(seed, n_copies):
    X, y = _data(seed, d=1)
    Xs = np.hstack([X] * n_copies + [np.zeros((len(y), 1))])
    ZtZ, Zty, _, _ = gram_statistics(Xs, y)
    ZtZ_before = ZtZ.copy()
    theta = solve_gram(ZtZ, Zty)
    assert np.isfinite(theta).all()
    np.testing.assert_array_equal(ZtZ, ZtZ_before)
    ref = np.linalg.lstsq(add_intercept(Xs), y, rcond=None)[0]
    np.testing.assert_allclose(theta, ref, rtol=1e-6, atol=1e-8)


def test_non_finite_statistics_are_an_error():
    ZtZ = np.eye(2)
    ZtZ[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        solve_gram(ZtZ, np.ones(2))


@given(
    m=st.integers(1, 60),
    d=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_column_medians_are_numpys_bit_for_bit(m, d, seed, ties):
    # The frame's origin: a faster selection must not move it by one bit.
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(m, d)) * 10.0 ** rng.integers(-300, 300, size=d)
    if ties:
        S = np.round(S * 2) / 2  # many equal values
    before = S.copy()
    np.testing.assert_array_equal(_column_medians(S), np.median(S, axis=0))
    # A column view (y[:, None]) transposes to a contiguous row: never sorted in place.
    column = S[:, 0].copy()[:, None]
    np.testing.assert_array_equal(_column_medians(column), np.median(column, axis=0))
    np.testing.assert_array_equal(S, before)
