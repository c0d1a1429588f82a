"""The Huber baseline helper: the paper's settings and a working search."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import HuberRegressor, LinearRegression

from skpoison.defenses import make_huber_baseline


def test_paper_settings():
    search = make_huber_baseline()
    est = search.estimator
    assert isinstance(est, HuberRegressor)
    assert est.alpha == 1e-4 and est.max_iter == 10_000
    grid = np.asarray(search.param_grid["epsilon"])
    assert grid.min() == pytest.approx(1.1) and grid.max() == pytest.approx(10.0)


@pytest.mark.parametrize("grid", [[1.0, 2.0], [2.0, 11.0], [], [np.nan]])
def test_grid_outside_paper_range_is_an_error(grid):
    with pytest.raises(ValueError, match="epsilon_grid"):
        make_huber_baseline(grid)


def test_more_robust_than_least_squares(outlier_data):
    X, y, is_outlier = outlier_data
    search = make_huber_baseline([1.1, 1.35, 3.0, 10.0], cv=3).fit(X, y)
    assert search.best_params_["epsilon"] in (1.1, 1.35, 3.0, 10.0)
    huber_slope = search.best_estimator_.coef_[0]
    ls_slope = LinearRegression().fit(X, y).coef_[0]
    # The clean slope of the synthetic set is 0.8.
    assert abs(huber_slope - 0.8) < abs(ls_slope - 0.8)


def test_data_huber_cannot_fit_is_refused_before_the_search():
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    y = X @ [1.0, -2.0]
    search = make_huber_baseline([1.35], cv=2)
    assert isinstance(search, GridSearchCV)
    for X_bad, y_bad, name in ((X * 1e300, y, "X"), (X, y * 1e300, "y")):
        with pytest.raises(ValueError, match=rf"{name} is too large.*Standardise"):
            search.fit(X_bad, y_bad)
    y_str = y.astype(str)
    y_str[0] = "abc"
    with pytest.raises(ValueError, match="y must be numeric"):
        search.fit(X, y_str)
    assert search.fit(X, y.astype(str)).best_estimator_.coef_.round(6).tolist() == [
        1.0,
        -2.0,
    ]


@given(
    seed=st.integers(0, 10_000),
    fraction=st.sampled_from([0.0, 0.1, 0.2, 0.4]),
    big=st.floats(1e3, 1e12),
)
def test_trimmed_criterion_ignores_the_worst_errors_of_a_fold(seed, fraction, big):
    from skpoison.defenses._huber import _scorer

    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.normal(size=50), rng.normal(size=50)
    n_out = int(np.floor(fraction * 50))
    blown = y_pred.copy()
    order = np.argsort((y_true - y_pred) ** 2)
    blown[order[50 - n_out :]] += big  # the worst errors get much worse
    scorer = _scorer("trimmed", fraction)._score_func
    assert np.isclose(scorer(y_true, blown, trim_fraction=fraction),
                      scorer(y_true, y_pred, trim_fraction=fraction))  # fmt: skip
    r2 = np.sort((y_true - y_pred) ** 2)[: 50 - n_out]
    assert np.isclose(scorer(y_true, y_pred, trim_fraction=fraction), r2.mean())


@pytest.mark.parametrize("scoring", ["trimmed", "median"])
def test_robust_criteria_run_in_the_search(scoring):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, -2.0] + 0.1 * rng.normal(size=60)
    search = make_huber_baseline([1.35, 10.0], cv=3, scoring=scoring).fit(X, y)
    assert search.best_params_["epsilon"] in (1.35, 10.0)
    assert np.isfinite(search.best_score_)


def test_trim_fraction_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="trim_fraction"):
        make_huber_baseline(scoring="trimmed", trim_fraction=1.0)


@pytest.mark.parametrize("scoring", ["neg_mean_squared_error", "trimmed"])
def test_warm_started_search_chooses_like_the_cold_one(outlier_data, scoring):
    X, y, _ = outlier_data
    grid = [1.1, 1.35, 2.0, 3.0, 10.0]
    warm = make_huber_baseline(grid, cv=3, scoring=scoring, warm_start=True)
    warm.fit(X, y)
    cold = make_huber_baseline(grid, cv=3, scoring=scoring)
    cold.fit(X, y)
    assert warm.warm_start and not cold.warm_start
    assert warm.best_params_ == cold.best_params_
    assert warm.best_index_ == cold.best_index_
    # The chosen epsilon is refitted from zero: the same final model.
    np.testing.assert_array_equal(
        warm.best_estimator_.coef_, cold.best_estimator_.coef_
    )
    np.testing.assert_array_equal(warm.predict(X), cold.predict(X))
    for key in ("mean_test_score", "split0_test_score", "split2_test_score"):
        np.testing.assert_allclose(warm.cv_results_[key], cold.cv_results_[key],
                                   rtol=1e-3)  # fmt: skip
    np.testing.assert_array_equal(
        warm.cv_results_["rank_test_score"], cold.cv_results_["rank_test_score"]
    )
    assert warm.n_splits_ == 3 and warm.best_score_ == pytest.approx(
        cold.best_score_, rel=1e-3
    )


def test_warm_start_is_a_parameter_of_the_search():
    from sklearn.base import clone

    assert make_huber_baseline([1.35, 3.0]).warm_start is False  # the default
    search = make_huber_baseline([1.35, 3.0], warm_start=True)
    assert clone(search).get_params()["warm_start"] is True
