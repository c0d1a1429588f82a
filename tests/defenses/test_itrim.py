"""ITrimRegressor: TRIM with the poisoning fraction read off its loss curve."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

from skpoison.defenses import ITrimRegressor, TrimRegressor
from skpoison.defenses._itrim import _knee, _reject_counts

STEP = 0.02


# The estimate is a grid point, so it cannot be closer than the grid spacing:
# the tolerance is one step. Outliers 25 units off a line with noise sd 1.2 are
# ~20 sd away, so TRIM removes exactly them once told their number.
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_the_outlier_fraction(fraction, seed, make_outliers):
    X, y, is_outlier = make_outliers(300, fraction, seed=seed)
    itrim = ITrimRegressor(step=STEP).fit(X, y)
    assert abs(itrim.estimated_poison_fraction_ - fraction) <= STEP + 1e-12
    # At (or just past) the knee every outlier is rejected.
    if itrim.estimated_poison_fraction_ >= fraction:
        assert not itrim.inlier_mask_[is_outlier].any()


@pytest.mark.parametrize("seed", range(5))
def test_clean_data_keeps_almost_everything(seed, make_outliers):
    X, y, _ = make_outliers(300, 0.0, seed=seed)
    itrim = ITrimRegressor().fit(X, y)
    # Trimming clean Gaussian residuals still lowers the loss a little at each
    # step; the threshold stops it within the first few steps.
    assert itrim.estimated_poison_fraction_ <= 0.06
    assert itrim.inlier_mask_.mean() >= 0.94


def test_matches_trim_at_the_estimated_fraction(outlier_data):
    X, y, _ = outlier_data
    itrim = ITrimRegressor().fit(X, y)
    trim = TrimRegressor(reject_fraction=itrim.n_reject_).fit(X, y)
    np.testing.assert_array_equal(itrim.inlier_mask_, trim.inlier_mask_)
    np.testing.assert_array_equal(itrim.scores_, trim.scores_)
    np.testing.assert_array_equal(itrim.predict(X), trim.predict(X))
    assert itrim.inlier_mask_.sum() == len(y) - itrim.n_reject_


def test_loss_curve_is_trims_trimmed_loss(outlier_data):
    X, y, _ = outlier_data
    itrim = ITrimRegressor(max_poison_fraction=0.1, step=0.05).fit(X, y)
    np.testing.assert_allclose(itrim.poison_fraction_grid_, [0.0, 0.05, 0.1])
    for frac, loss in zip(itrim.poison_fraction_grid_, itrim.trimmed_loss_curve_):
        k = int(round(frac * len(y)))
        assert loss == TrimRegressor(reject_fraction=k).fit(X, y).trimmed_loss_


@given(
    scale=st.floats(1e-3, 1e3),
    offset=st.floats(-1e3, 1e3),
    x_scale=st.floats(1e-2, 1e2),
)
# The fixture's arrays are only read, so sharing them across examples is safe.
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_decision_does_not_depend_on_units(scale, offset, x_scale, outlier_data):
    X, y, _ = outlier_data
    ref = ITrimRegressor().fit(X, y)
    other = ITrimRegressor().fit(X * x_scale - offset, y * scale + offset)
    assert other.n_reject_ == ref.n_reject_
    np.testing.assert_array_equal(other.inlier_mask_, ref.inlier_mask_)


def test_generic_estimator_path(outlier_data):
    class SlowOLS(LinearRegression):
        """Not recognised by TRIM's fast path."""

    X, y, _ = outlier_data
    fast = ITrimRegressor().fit(X, y)
    slow = ITrimRegressor(SlowOLS()).fit(X, y)
    assert slow.n_reject_ == fast.n_reject_
    np.testing.assert_array_equal(slow.inlier_mask_, fast.inlier_mask_)


def test_input_untouched_and_fit_resample(outlier_data):
    X, y, _ = outlier_data
    X0, y0 = X.copy(), y.copy()
    itrim = ITrimRegressor()
    X_kept, y_kept = itrim.fit_resample(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(X_kept, X[itrim.inlier_mask_])
    np.testing.assert_array_equal(y_kept, y[itrim.inlier_mask_])


def test_failed_fit_keeps_previous_state(outlier_data):
    X, y, _ = outlier_data
    itrim = ITrimRegressor().fit(X, y)
    mask = itrim.inlier_mask_.copy()
    y_bad = y.copy()
    y_bad[0] = np.nan
    with pytest.raises(ValueError):
        itrim.fit(X, y_bad)
    np.testing.assert_array_equal(itrim.inlier_mask_, mask)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_poison_fraction": 1.0}, "max_poison_fraction"),
        ({"max_poison_fraction": 0.0}, "max_poison_fraction"),
        ({"step": 0.0}, "step"),
        ({"threshold": -1.0}, "threshold"),
    ],
)
def test_bad_parameters_are_named(params, match, outlier_data):
    X, y, _ = outlier_data
    with pytest.raises(ValueError, match=match):
        ITrimRegressor(**params).fit(X, y)


@given(
    n=st.integers(2, 500),
    max_fraction=st.floats(0.01, 0.99),
    step=st.floats(0.005, 0.5),
)
def test_reject_counts_are_distinct_and_feasible(n, max_fraction, step):
    counts = _reject_counts(n, max_fraction, step)
    assert counts[0] == 0
    assert np.all(np.diff(counts) > 0)
    assert counts[-1] <= min(n - 1, np.floor(max_fraction * n + 1e-9))


def test_knee_rule():
    # Drops 10, 10, 0.5, 0.2, then the last point's drop to 0 is 1.
    losses = np.array([21.7, 11.7, 1.7, 1.2, 1.0])
    assert _knee(losses, 1.0) == 2
    assert _knee(losses, 0.1) == 4  # no drop qualifies: the largest fraction
    assert _knee(losses, 20.0) == 0
