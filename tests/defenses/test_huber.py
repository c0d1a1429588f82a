"""The Huber baseline helper: the paper's settings and a working search."""

import numpy as np
import pytest
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
