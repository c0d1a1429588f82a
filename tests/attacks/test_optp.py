"""OptPPoisoner: Jagielski et al.'s optimisation attack through the KKT conditions."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from skpoison.attacks import OptPPoisoner
from skpoison.attacks._implicit import ImplicitLinearEngine
from skpoison.datasets import load_boston_housing, split_and_standardize


@pytest.fixture(scope="module")
def boston():
    X, y = load_boston_housing(return_X_y=True)
    return split_and_standardize(X, y, random_state=0)


def _test_mse(s, X, y):
    return np.mean((LinearRegression().fit(X, y).predict(s.X_test) - s.y_test) ** 2)


@pytest.mark.parametrize("init", ["inverse_flip", "boundary_flip", "random"])
@pytest.mark.parametrize("objective", ["W", "V"])
def test_raises_the_ols_test_error_inside_the_box(init, objective, boston):
    s = boston
    attack = OptPPoisoner(0.15, init=init, objective=objective, random_state=0)
    X_p, y_p = attack.fit_resample(s.X_train, s.y_train, X_val=s.X_val, y_val=s.y_val)
    assert _test_mse(s, X_p, y_p) > 2 * _test_mse(s, s.X_train, s.y_train)
    low, high = attack.bounds_
    assert (attack.X_poison_ >= low[:-1]).all() and (
        attack.X_poison_ <= high[:-1]
    ).all()
    assert (attack.y_poison_ >= low[-1]).all() and (attack.y_poison_ <= high[-1]).all()
    # Rows not replaced are untouched.
    keep = np.setdiff1d(np.arange(len(s.y_train)), attack.poison_indices_)
    np.testing.assert_array_equal(X_p[keep], s.X_train[keep])
    assert np.all(np.diff(attack.history_) >= 0)  # the ascent never loses ground


@pytest.mark.parametrize(
    "model", [Ridge(alpha=5.0), Lasso(alpha=0.01), ElasticNet(alpha=0.01)], ids=repr
)
def test_regularised_victims(model, boston):
    s = boston
    attack = OptPPoisoner(0.1, model=model, max_iter=10, random_state=1)
    attack.fit(s.X_train, s.y_train, s.X_val, s.y_val)
    assert attack.history_[-1] > 1.5 * attack.history_[0]
    assert not hasattr(model, "coef_")


def test_same_random_state_gives_identical_points(boston):
    s = boston
    a = OptPPoisoner(0.1, max_iter=5, random_state=3).fit(s.X_train, s.y_train)
    b = OptPPoisoner(0.1, max_iter=5, random_state=3).fit(s.X_train, s.y_train)
    np.testing.assert_array_equal(a.X_poison_, b.X_poison_)
    np.testing.assert_array_equal(a.y_poison_, b.y_poison_)
    c = OptPPoisoner(0.1, max_iter=5, random_state=4).fit(s.X_train, s.y_train)
    assert not np.array_equal(a.X_poison_, c.X_poison_)


def test_units_do_not_change_the_attack(boston):
    s = boston
    a = OptPPoisoner(0.1, max_iter=5, random_state=0).fit(s.X_train, s.y_train)
    scale, shift = np.arange(1.0, s.X_train.shape[1] + 1), 7.0
    b = OptPPoisoner(0.1, max_iter=5, random_state=0).fit(
        s.X_train * scale + shift, 3.0 * s.y_train - 2.0
    )
    np.testing.assert_allclose(b.X_poison_, a.X_poison_ * scale + shift, atol=1e-6)
    np.testing.assert_allclose(
        b.y_poison_, 3.0 * a.y_poison_ - 2.0, rtol=1e-6, atol=1e-9
    )


def test_objective_gradient_matches_finite_differences(boston):
    # OptP's objective V (loss on the clean points) through the KKT conditions.
    s = boston
    X, y = s.X_train[:60], s.y_train[:60]
    eng = ImplicitLinearEngine(Ridge(alpha=1.0), X[5:], y[5:], X[5:], y[5:])
    Xp, yp = X[:5].copy(), y[:5] + 2.0
    _, gX, gy = eng.value_and_grad(Xp, yp)
    eps = 1e-6
    for i, j in [(0, 0), (2, 5), (4, 12)]:
        hi, lo = Xp.copy(), Xp.copy()
        hi[i, j] += eps
        lo[i, j] -= eps
        fd = (float(eng.value(hi, yp)) - float(eng.value(lo, yp))) / (2 * eps)
        assert float(gX[i, j]) == pytest.approx(fd, rel=1e-5, abs=1e-10)
    assert isinstance(gy, torch.Tensor)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"eta": -1.0}, "eta"),
        ({"model": Ridge(positive=True)}, "positive"),
    ],
)
def test_bad_parameters_are_named(params, match, boston):
    s = boston
    with pytest.raises(ValueError, match=match):
        OptPPoisoner(0.1, **params).fit(s.X_train, s.y_train)


@parametrize_with_checks([OptPPoisoner(0.1, max_iter=2, min_iter=1)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
