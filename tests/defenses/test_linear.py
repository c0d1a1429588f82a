"""Least squares on Gram statistics (skpoison.defenses._linear)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, Ridge

from skpoison.defenses._linear import (
    LinearFrame,
    _column_extremes,
    _column_medians,
    add_intercept,
    fit_least_squares,
    gram_statistics,
    predict_linear,
    refit_least_squares,
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


# --- The frame and the refit from a Gram solution (issue #13, speed) ---------


def test_standardised_data_is_its_own_frame_not_a_copy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    y = X @ rng.normal(size=4) + 0.1 * rng.normal(size=3000)
    frame, Xf, yf = LinearFrame.from_data(X, y)
    assert Xf is X and np.shares_memory(yf, y)
    np.testing.assert_array_equal(frame.x_offset, 0.0)
    np.testing.assert_array_equal(frame.x_scale, 1.0)


@pytest.mark.parametrize("n", [500, 20_000])
def test_offset_columns_are_centred_and_the_median_frame_is_always(n):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 3)) + np.array([0.01, 1e6, -50.0])
    y = rng.normal(size=n)
    frame, Xf, _ = LinearFrame.from_data(X, y)
    # Near 0 against its spread: kept at 0; far: centred on the median.
    assert frame.x_offset[0] == 0.0 and frame.x_offset[1] != 0.0
    assert np.abs(Xf).max() <= 1.0
    sample = X[:: max(1, n // 8192)]
    med = frame.median_frame
    np.testing.assert_array_equal(med.x_offset, np.median(sample, axis=0))
    np.testing.assert_array_equal(med.x_scale, np.abs(X - med.x_offset).max(axis=0))


@pytest.mark.parametrize("scale", [1e-170, 1e150])
def test_extreme_units_get_a_power_of_two_frame(scale):
    X, y = _data(2, n=200)
    X = (X - np.median(X, axis=0)) * scale
    frame, Xf, _ = LinearFrame.from_data(X, y)
    mantissa, _ = np.frexp(frame.x_scale)
    np.testing.assert_array_equal(mantissa, 0.5)  # exact division
    assert 0.5 < np.abs(Xf).max() <= 1.0


@given(seed=st.integers(0, 10_000))
def test_convert_between_frames_keeps_the_model(seed):
    X, y = _data(seed, n=60)
    X = X + np.array([1e5, 0.0, -3.0])
    frame, Xf, yf = LinearFrame.from_data(X, y)
    theta = fit_least_squares(Xf, yf)
    med = frame.median_frame
    moved = frame.convert(theta, med)
    np.testing.assert_allclose(
        med.to_original(moved), frame.to_original(theta), rtol=1e-9, atol=1e-9
    )


@given(
    seed=st.integers(0, 10_000),
    offset=st.sampled_from([0.0, 1e3, 1e8]),
    ridge=st.sampled_from([0.0, 0.5]),
)
def test_refit_from_a_gram_solution_equals_the_two_pass_fit(seed, offset, ridge):
    X, y = _data(seed, n=200)
    X = X + offset
    keep = np.random.default_rng(seed).random(200) < 0.7
    stats = gram_statistics(X, y, keep)
    theta0 = solve_gram(stats[0], stats[1], ridge)
    theta, r2 = refit_least_squares(X, y, keep, stats, theta0, ridge)
    ref = fit_least_squares(X, y, keep, ridge)
    np.testing.assert_allclose(
        predict_linear(X, theta), predict_linear(X, ref), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_array_equal(r2, squared_residuals(X, y, theta))


def test_refit_of_a_constant_or_duplicated_column_is_the_two_pass_fit():
    X, y = _data(3, n=100, d=2)
    keep = np.arange(100) < 80
    constant_on_kept = np.where(keep, 2.0, np.arange(100.0))[:, None]
    for Xs in (np.hstack([X, constant_on_kept]), np.hstack([X, X[:, :1]])):
        stats = gram_statistics(Xs, y, keep)
        theta, _ = refit_least_squares(
            Xs, y, keep, stats, solve_gram(stats[0], stats[1])
        )
        np.testing.assert_array_equal(theta, fit_least_squares(Xs, y, keep))


def test_column_extremes_are_max_and_min():
    rng = np.random.default_rng(4)
    for n in (0, 7, 16, 1297, 5000):
        A = rng.normal(size=(n, 3))
        top, bottom = _column_extremes(A)
        np.testing.assert_array_equal(top, A.max(axis=0, initial=-np.inf))
        np.testing.assert_array_equal(bottom, A.min(axis=0, initial=np.inf))
