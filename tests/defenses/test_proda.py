"""ProdaRegressor: number of groups, reproducibility, refits, recovery."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

from skpoison.defenses import ProdaRegressor, proda_n_groups
from skpoison.defenses._proda import _group_fits


@given(
    epsilon=st.floats(1e-12, 0.5),
    a=st.floats(0.0, 0.9),
    g=st.integers(1, 10),
)
def test_n_groups_is_the_smallest_meeting_the_bound(epsilon, a, g):
    n = proda_n_groups(epsilon, a, g)
    p_clean = (1.0 - a) ** g
    if p_clean >= 1.0:
        assert n == 1
        return
    log_dirty = math.log1p(-p_clean)
    # N groups are all dirty with probability p_dirty ** N <= epsilon, and N is minimal.
    assert n * log_dirty <= math.log(epsilon) * (1 - 1e-9)
    if n > 1:
        assert (n - 1) * log_dirty > math.log(epsilon) * (1 + 1e-9)


def test_paper_setting_gives_its_formula(outlier_data):
    X, y, _ = outlier_data
    proda = ProdaRegressor(random_state=0).fit(X, y)
    a = np.floor(0.4 * len(y)) / len(y)
    expected = math.ceil(math.log(1e-5) / math.log(1 - (1 - a) ** 5))
    assert proda.n_groups_ == expected == proda.groups_.shape[0]
    assert proda.groups_.shape[1] == 5
    assert ProdaRegressor(n_groups=7, random_state=0).fit(X, y).n_groups_ == 7


def test_reproducible_with_random_state(outlier_data):
    X, y, _ = outlier_data
    a = ProdaRegressor(random_state=3).fit(X, y)
    b = ProdaRegressor(random_state=3).fit(X, y)
    c = ProdaRegressor(random_state=4).fit(X, y)
    np.testing.assert_array_equal(a.groups_, b.groups_)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.inlier_mask_, b.inlier_mask_)
    assert not np.array_equal(a.groups_, c.groups_)


def test_groups_have_distinct_points(outlier_data):
    X, y, _ = outlier_data
    groups = ProdaRegressor(random_state=0).fit(X, y).groups_
    assert all(len(set(g)) == len(g) for g in groups)


def test_model_is_least_squares_on_its_inliers(outlier_data):
    X, y, _ = outlier_data
    proda = ProdaRegressor(random_state=0).fit(X, y)
    m = proda.inlier_mask_
    assert m.sum() == len(y) - int(0.4 * len(y))
    ref = LinearRegression().fit(X[m], y[m])
    np.testing.assert_allclose(proda.coef_, ref.coef_, rtol=1e-8)
    np.testing.assert_allclose(proda.intercept_, ref.intercept_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(proda.predict(X), ref.predict(X), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(proda.estimator_.predict(X), ref.predict(X), atol=1e-8)
    # The returned refit is the one with the lowest loss among all groups.
    assert proda.best_group_ == int(np.nanargmin(proda.group_losses_))
    np.testing.assert_allclose(proda.scores_, (y - ref.predict(X)) ** 2, atol=1e-8)


def test_underdetermined_groups_use_min_norm_fits():
    # d + 1 > group_size: every group's fit is underdetermined and must still work.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    y = X @ rng.normal(size=8) + 0.1 * rng.normal(size=200)
    y[:20] += 50.0
    proda = ProdaRegressor(random_state=0).fit(X, y)
    assert np.isfinite(proda.coef_).all()
    assert (~proda.inlier_mask_[:20]).mean() >= 0.9


def test_n_refits_refits_only_the_best_groups(outlier_data):
    X, y, _ = outlier_data
    literal = ProdaRegressor(random_state=0).fit(X, y)
    fast = ProdaRegressor(random_state=0, n_refits=5).fit(X, y)
    assert np.isfinite(fast.group_losses_).sum() == 5
    # Same groups, a subset of the refits: never better than the literal algorithm.
    np.testing.assert_array_equal(literal.groups_, fast.groups_)
    assert np.nanmin(fast.group_losses_) >= np.nanmin(literal.group_losses_) - 1e-12
    np.testing.assert_allclose(
        fast.group_losses_[np.isfinite(fast.group_losses_)],
        literal.group_losses_[np.isfinite(fast.group_losses_)],
    )


@pytest.mark.parametrize("n_refits", [None, 5])
def test_removes_gross_outliers(outlier_data, n_refits):
    X, y, is_outlier = outlier_data
    proda = ProdaRegressor(random_state=0, n_refits=n_refits).fit(X, y)
    assert (~proda.inlier_mask_[is_outlier]).mean() >= 0.9


def test_no_outliers_keeps_test_error(clean_data):
    X, y, X_test, y_test = clean_data
    base = np.mean((LinearRegression().fit(X, y).predict(X_test) - y_test) ** 2)
    err = np.mean(
        (ProdaRegressor(random_state=0).fit(X, y).predict(X_test) - y_test) ** 2
    )
    assert err <= 1.05 * base


def test_group_larger_than_data_is_an_error():
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match="group_size"):
        ProdaRegressor(group_size=5).fit(X, np.arange(4.0))


@given(
    n_groups=st.integers(1, 6),
    size=st.integers(1, 8),
    d=st.integers(1, 8),
    seed=st.integers(0, 999),
)
def test_batched_group_fits_equal_lstsq(n_groups, size, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, d))
    y = rng.normal(size=30)
    groups = np.stack([rng.choice(30, size, replace=False) for _ in range(n_groups)])
    thetas = _group_fits(X, y, groups)
    for g, theta in zip(groups, thetas):
        Z = np.c_[X[g], np.ones(size)]
        expected = np.linalg.lstsq(Z, y[g], rcond=None)[0]
        np.testing.assert_allclose(theta, expected, atol=1e-8)
