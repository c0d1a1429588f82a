"""StatPPoisoner: Gaussian draws rounded to the box corners, far-end targets."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, Ridge

from skpoison.attacks import StatPPoisoner
from skpoison.attacks._statp import _gaussian_fit


def _problem(seed, n=120, d=4):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal(0.0, 0.1, size=n)
    return X, y


@given(seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_features_on_corners_and_targets_at_the_far_end(seed):
    X, y = _problem(seed)
    att = StatPPoisoner(0.2, random_state=seed).fit(X, y)
    low, high = att.bounds_
    on_low = att.X_poison_ == low[:-1]
    assert np.all(on_low | (att.X_poison_ == high[:-1]))
    pred = LinearRegression().fit(X, y).predict(att.X_poison_)
    mid = (low[-1] + high[-1]) / 2
    expected = np.where(pred <= mid, high[-1], low[-1])
    assert np.array_equal(att.y_poison_, expected)


def test_gaussian_is_the_ml_estimate_of_the_box_coordinates_with_jitter():
    X, y = _problem(0)
    X[:, 2] = 0.7  # a constant feature: flat box, kept positive definite
    att = StatPPoisoner(0.1, random_state=0).fit(X, y)
    low, high = att.bounds_
    U = (X - low[:-1]) / np.where(high > low, high - low, 1.0)[:-1]
    centred = U - U.mean(axis=0)
    np.testing.assert_allclose(att.mean_, U.mean(axis=0))
    np.testing.assert_allclose(
        att.covariance_, centred.T @ centred / len(X) + 0.01 * np.eye(4)
    )
    assert np.all(att.X_poison_[:, 2] == 0.7)
    # One feature: still a 1 x 1 matrix.
    assert _gaussian_fit(U[:, :1])[1].shape == (1, 1)


def test_samples_follow_the_fitted_gaussian_before_rounding():
    # Corner frequencies match the Gaussian's mass on each side of the middle.
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    X = rng.normal(0.3, 0.2, size=(2000, 1)).clip(-1, 1)
    att = StatPPoisoner(0.45, bounds=(-1.0, 1.0), random_state=0).fit(X, X[:, 0])
    share_high = np.mean(att.X_poison_ == 1.0)
    # Box [-1, 1]: the middle 0 is u = 1/2.
    mean, sd = att.mean_[0], np.sqrt(att.covariance_[0, 0])
    expected = norm.sf(0.5, loc=mean, scale=sd)
    n = att.poison_indices_.size
    assert abs(share_high - expected) < 4 * np.sqrt(expected * (1 - expected) / n)


def test_the_attacker_queries_the_given_estimator():
    X, y = _problem(2)
    att = StatPPoisoner(0.1, estimator=Ridge(alpha=1.0), random_state=0).fit(X, y)
    assert isinstance(att.estimator_, Ridge)
    np.testing.assert_allclose(att.estimator_.coef_, Ridge(alpha=1.0).fit(X, y).coef_)


def test_decision_does_not_depend_on_units():
    X, y = _problem(3)
    ref = StatPPoisoner(0.2, random_state=4).fit(X, y)
    scale, offset = np.array([2.0, 1e3, 0.1, 5.0]), np.array([1.0, -3.0, 0.0, 8.0])
    att = StatPPoisoner(0.2, random_state=4).fit(X * scale + offset, 10 * y - 2)
    np.testing.assert_allclose(att.X_poison_, ref.X_poison_ * scale + offset)
    np.testing.assert_allclose(att.y_poison_, 10 * ref.y_poison_ - 2)


def test_broken_estimator_is_named():
    class NaNModel(LinearRegression):
        def predict(self, X):
            return np.full(len(X), np.nan)

    X, y = _problem(0)
    with pytest.raises(ValueError, match="NaNModel"):
        StatPPoisoner(0.1, estimator=NaNModel(), random_state=0).fit(X, y)
