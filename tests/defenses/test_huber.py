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


def _assert_same_search(fast, slow):
    """Every attribute a user reads, bit for bit (the times aside)."""
    assert fast.best_params_ == slow.best_params_
    assert fast.best_index_ == slow.best_index_ and fast.n_splits_ == slow.n_splits_
    assert type(fast.best_index_) is type(slow.best_index_)
    assert type(fast.best_score_) is type(slow.best_score_)
    assert fast.best_score_ == slow.best_score_ or (
        np.isnan(fast.best_score_) and np.isnan(slow.best_score_)
    )
    for name in ("coef_", "intercept_", "scale_", "outliers_", "n_iter_"):
        np.testing.assert_array_equal(
            getattr(fast.best_estimator_, name), getattr(slow.best_estimator_, name)
        )
    assert sorted(fast.cv_results_) == sorted(slow.cv_results_)
    for key, value in slow.cv_results_.items():
        if key.endswith("_time"):
            continue
        got = fast.cv_results_[key]
        if isinstance(value, np.ndarray):
            assert type(got) is type(value) and got.dtype == value.dtype, key
            np.testing.assert_array_equal(got, value, err_msg=key)
        else:
            assert got == value, key
    assert fast.multimetric_ is slow.multimetric_ is False
    assert fast.n_features_in_ == slow.n_features_in_


@pytest.mark.parametrize(
    "scoring", ["neg_mean_squared_error", "trimmed", "median", "r2"]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sparse", [False, True])
def test_plain_loop_equals_gridsearchcv_fit(monkeypatch, scoring, seed, sparse):
    import scipy.sparse as sp
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(seed)
    n, d = (60, 1) if seed == 0 else (150, 6)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10.0, size=d)
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    y[: n // 5] += rng.normal(0.0, 10.0, size=n // 5)  # gross outliers
    X = sp.csr_matrix(X) if sparse else X
    cv = 3 if seed < 2 else 4
    grid = np.geomspace(1.1, 10.0, 5)
    slow = make_huber_baseline(grid, cv=cv, scoring=scoring)
    GridSearchCV.fit(slow, X, y)  # the path the plain loop replaces
    fast = make_huber_baseline(grid, cv=cv, scoring=scoring)
    # The plain loop is taken: GridSearchCV.fit is not called.
    with monkeypatch.context() as m:
        m.setattr(GridSearchCV, "fit", lambda *a, **k: pytest.fail("not the loop"))
        fast.fit(X, y)
    _assert_same_search(fast, slow)
    np.testing.assert_array_equal(fast.predict(X), slow.predict(X))


@pytest.mark.parametrize(
    "setting",
    [{"n_jobs": 2}, {"refit": False}, {"return_train_score": True}],
)
def test_search_goes_through_gridsearchcv_when_the_loop_differs(monkeypatch, setting):
    from sklearn.model_selection import GridSearchCV

    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40.0)
    calls = []
    original = GridSearchCV.fit

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GridSearchCV, "fit", spy)
    make_huber_baseline([1.35, 3.0], cv=2).set_params(**setting).fit(X, y)
    import pandas as pd

    make_huber_baseline([1.35, 3.0], cv=2).fit(pd.DataFrame(X), y)  # not float64 as is
    assert len(calls) == 2


def test_failing_fit_falls_back_to_gridsearchcv_error_handling():
    # An invalid estimator parameter: GridSearchCV's own "All the fits failed".
    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40.0)
    search = make_huber_baseline([1.35, 3.0], cv=2).set_params(estimator__alpha=-1.0)
    with pytest.raises(ValueError, match="All the 4 fits failed"):
        search.fit(X, y)
    assert not hasattr(search, "best_estimator_")


@pytest.mark.parametrize(
    ("bad", "message"), [(np.nan, "contains NaN"), (np.inf, "contains infinity")]
)
@pytest.mark.parametrize("name", ["X", "y"])
def test_non_finite_data_gets_its_own_message(bad, message, name):
    # sklearn checks finiteness itself unless told assume_finite=True; then
    # NaN and infinity must not be reported as squares that overflow.
    import sklearn

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 2)), rng.normal(size=20)
    (X if name == "X" else y).flat[3] = bad
    search = make_huber_baseline([1.35], cv=2)
    with sklearn.config_context(assume_finite=True):
        with pytest.raises(ValueError, match=rf"^{name} {message}") as info:
            search.fit(X, y)
    assert "too large" not in str(info.value)
    with pytest.raises(ValueError, match=f"Input {name} contains"):
        search.fit(X, y)  # sklearn's own check, as before
