"""The least-squares core of the defenses, against scikit-learn (issue #13).

Silent wrong results. TRIM, Proda and SEVER fit least squares from additive
Gram statistics (:mod:`skpoison.defenses._linear`). Guarantee: on every class of
data below the fitted model is scikit-learn's (``LinearRegression`` or ``Ridge``
with the same ``alpha``, on the same kept rows), and the decisions of TRIM and
Proda do not depend on the units or the origins of ``X`` and ``y``:

- a feature with an offset of 1e6 to 1e9 times its spread (a timestamp);
- data at 1e-170 and 1e+150 scale (their squares under- or overflow);
- rank-deficient designs: a duplicated column, copies scaled by 1e4 and 1e-4,
  a zero column, a column constant on the kept rows (weight 0, as in
  scikit-learn), fewer rows than features.

Hangs and unbounded work. An infinite or overflowing penalty never reaches
LAPACK (``ValueError`` first), and Proda refuses a group count above
``max_groups`` with a message naming the count.

TRIM's stopping rule. With inexact inner fits (a gradient-descent victim) a
rise of the trimmed loss does not stop TRIM, and the returned model is the
best iterate by trimmed loss.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_helpers import in_other_units, poisoned_regression, record
from sklearn.linear_model import LinearRegression, Ridge

from skpoison.defenses import (
    DutiFilter,
    ProdaRegressor,
    SeverFilter,
    TrimRegressor,
    proda_n_groups,
)
from skpoison.defenses._linear import (
    LinearFrame,
    fit_least_squares,
    gram_statistics,
    solve_gram,
)


def _timestamp(X, y):
    return X + np.array([1.7e9, -3e7, 0.0])[: X.shape[1]], y


def _tiny(X, y):
    return X * 1e-170, y * 1e-170


def _huge(X, y):
    return X * 1e150, y * 1e150


def _mixed_units(X, y):
    return X * np.array([1e-8, 1.0, 1e6])[: X.shape[1]] + 1e3, 1e4 * y - 5e6


def _duplicated(X, y):
    return np.hstack([X, X[:, :1]]), y


def _scaled_copies(X, y):
    # Copies 1e4 times larger and smaller: identical columns in the frame (each
    # column is scaled to [-1, 1]), not in the original units. (At 1e6 the
    # singular values of the design span more than the default tol=1e-6 of
    # sklearn's LinearRegression, which then cuts a real direction.)
    return np.hstack([X, 1e4 * X[:, 2:], -1e-4 * X[:, :1]]), y


def _zero_column(X, y):
    return np.hstack([X, np.zeros((X.shape[0], 1))]), y


def _constant_on_kept(X, y):
    # A dummy that is 1 on the poisoned rows: constant on a clean kept set.
    dummy = np.zeros((X.shape[0], 1))
    dummy[:10] = 1.0
    return np.hstack([X, dummy]), y


# Features whose units differ by 1e14 (_mixed_units) are left to the invariance
# test: there sklearn's lstsq, on columns it does not scale, loses the small one.
CASES = {
    "timestamp offset": _timestamp,
    "tiny 1e-170": _tiny,
    "huge 1e150": _huge,
    "duplicated column": _duplicated,
    "scaled copies": _scaled_copies,
    "zero column": _zero_column,
    "constant on kept rows": _constant_on_kept,
}


def _assert_same_model(coef, intercept, ref, X):
    # Relative to the largest coefficient, plus what rounding the data itself
    # costs: a column with offset m and spread s is known to eps * m / s.
    top = np.abs(ref.coef_).max() or 1.0
    digits_lost = np.abs(X).max(axis=0) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1)
    atol = top * (1e-7 + 1e2 * np.finfo(float).eps * digits_lost)
    np.testing.assert_array_less(np.abs(coef - ref.coef_), atol + 1e-300)
    # Predictions on centred data (the intercept cancels the offsets).
    centre = X.mean(axis=0)
    pred = (X - centre) @ coef + (intercept + centre @ coef)
    ref_pred = (X - centre) @ ref.coef_ + (ref.intercept_ + centre @ ref.coef_)
    spread = np.ptp(ref_pred) or 1.0
    np.testing.assert_allclose(pred, ref_pred, rtol=0, atol=1e-6 * spread)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_fit_least_squares_is_sklearns(case, alpha):
    X, y = CASES[case](*poisoned_regression(0))
    mask = np.ones(len(y), dtype=bool)
    mask[:10] = False
    frame, Xf, yf = LinearFrame.from_data(X, y)
    theta = frame.to_original(
        fit_least_squares(Xf, yf, mask, alpha, column_scale=frame.x_scale)
    )
    ref = (Ridge(alpha=alpha) if alpha else LinearRegression()).fit(X[mask], y[mask])
    record("fit_least_squares", f"numerics: {case}", "finite")
    _assert_same_model(theta[:-1], theta[-1], ref, X[mask])


@pytest.mark.parametrize("case", list(CASES))
def test_solve_gram_from_additive_statistics_is_sklearns(case):
    # The iterations' path: sums in the frame, downdated, then the centred solve.
    X, y = CASES[case](*poisoned_regression(1))
    frame, Xf, yf = LinearFrame.from_data(X, y)
    full = gram_statistics(Xf, yf)
    removed = gram_statistics(Xf[:10], yf[:10])
    ZtZ, Zty = full[0] - removed[0], full[1] - removed[1]
    theta = frame.to_original(solve_gram(ZtZ, Zty, column_scale=frame.x_scale))
    ref = LinearRegression().fit(X[10:], y[10:])
    record("solve_gram", f"numerics: {case}", "finite")
    pred, ref_pred = X[10:] @ theta[:-1] + theta[-1], ref.predict(X[10:])
    np.testing.assert_allclose(pred, ref_pred, atol=1e-6 * np.ptp(ref_pred))


def _defense(name):
    return {
        "TrimRegressor": lambda: TrimRegressor(reject_fraction=10),
        "TrimRegressor(Ridge)": lambda: TrimRegressor(Ridge(1.0), reject_fraction=10),
        "ProdaRegressor": lambda: ProdaRegressor(
            reject_fraction=10, n_groups=30, random_state=0
        ),
    }[name]()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "name", ["TrimRegressor", "TrimRegressor(Ridge)", "ProdaRegressor"]
)
def test_defended_model_is_sklearns_on_the_kept_rows(case, name):
    X, y = CASES[case](*poisoned_regression(2))
    est = _defense(name).fit(X, y)
    model = est.estimator_
    keep = est.inlier_mask_
    ref = (Ridge(alpha=1.0) if "Ridge" in name else LinearRegression()).fit(
        X[keep], y[keep]
    )
    record(name, f"numerics: {case}", "finite")
    _assert_same_model(model.coef_, model.intercept_, ref, X[keep])
    if case != "constant on kept rows":
        # The far poison is found whatever the units (with the dummy column,
        # the poisoned row it marks can be fitted exactly and may be kept).
        assert not keep[:10].any()


@pytest.mark.parametrize("factor", [1e-8, -1e-6, 1e6, 1e8])
@pytest.mark.parametrize("how", ["fit_least_squares", "additive", "TrimRegressor"])
def test_a_scaled_copy_changes_no_fitted_value(factor, how):
    # In the frame a scaled copy is the same column as its original; the rank
    # is decided on the unit-diagonal Gram matrix and the minimum norm taken in
    # the original units, so the copy changes neither the fitted values (those
    # of the design without it) nor the minimum-norm coefficients.
    X, y = poisoned_regression(7)
    Xc = np.hstack([X, factor * X[:, 1:2]])
    mask = np.ones(len(y), dtype=bool)
    mask[:10] = False
    if how == "TrimRegressor":
        trim = TrimRegressor(reject_fraction=10).fit(Xc, y)
        np.testing.assert_array_equal(trim.inlier_mask_, mask)
        theta = np.append(trim.estimator_.coef_, trim.estimator_.intercept_)
    else:
        frame, Xf, yf = LinearFrame.from_data(Xc, y)
        if how == "fit_least_squares":
            theta_f = fit_least_squares(Xf, yf, mask, column_scale=frame.x_scale)
        else:
            stats = gram_statistics(Xf, yf)
            less = gram_statistics(Xf[:10], yf[:10])
            ZtZ, Zty = stats[0] - less[0], stats[1] - less[1]
            theta_f = solve_gram(ZtZ, Zty, column_scale=frame.x_scale)
        theta = frame.to_original(theta_f)
    record(
        "solve_gram" if how == "additive" else how, "numerics: scaled copy", "finite"
    )
    ref = LinearRegression().fit(X[mask], y[mask])
    pred = Xc[mask] @ theta[:-1] + theta[-1]
    np.testing.assert_allclose(pred, ref.predict(X[mask]), rtol=0, atol=1e-9)
    # Minimum norm: the weight of column 1 is split as c / (1 + f^2), f c / (1 + f^2).
    c = ref.coef_[1]
    expected = np.append(ref.coef_, 0.0)
    expected[1], expected[3] = c / (1 + factor**2), factor * c / (1 + factor**2)
    # Each column's contribution to the fit is exact to rounding (a share below
    # eps of the fit, as the copy's at 1e-8, is only known to rounding), and
    # the norm is the least among the exact fits: within 1e-8 of it puts the
    # coefficients within 1.5e-4 of the minimum-norm ones (Pythagoras).
    spread = Xc[mask].std(axis=0)
    np.testing.assert_allclose(
        theta[:-1] * spread, expected * spread, rtol=1e-8, atol=1e-12 * abs(c)
    )
    assert np.linalg.norm(theta[:-1]) <= np.linalg.norm(expected) * (1 + 1e-8)


@pytest.mark.parametrize("seed", range(3))
def test_column_constant_on_the_kept_rows_gets_no_weight(seed):
    X, y = _constant_on_kept(*poisoned_regression(seed))
    trim = TrimRegressor(reject_fraction=10).fit(X, y)
    if np.ptp(X[trim.inlier_mask_, -1]) == 0:
        assert trim.estimator_.coef_[-1] == 0.0
    ref = LinearRegression().fit(X[trim.inlier_mask_], y[trim.inlier_mask_])
    assert np.abs(ref.coef_[-1]) < 1e-8 or np.ptp(X[trim.inlier_mask_, -1]) > 0


def test_fewer_rows_than_features_is_sklearns_minimum_norm():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(8, 12)) + 1e4, rng.normal(size=8)
    trim = TrimRegressor(reject_fraction=2).fit(X, y)
    keep = trim.inlier_mask_
    ref = LinearRegression().fit(X[keep], y[keep])
    np.testing.assert_allclose(trim.estimator_.coef_, ref.coef_, atol=1e-8)
    np.testing.assert_allclose(trim.estimator_.intercept_, ref.intercept_, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 1000),
    log_a=st.floats(-150, 150),
    b=st.floats(-1e6, 1e6),
    log_d=st.lists(st.floats(-150, 150), min_size=3, max_size=3),
    offsets=st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3),
    name=st.sampled_from(["TrimRegressor", "TrimRegressor(Ridge)", "ProdaRegressor"]),
)
def test_decisions_do_not_depend_on_units_or_origins(
    seed, log_a, b, log_d, offsets, name
):
    X, y = poisoned_regression(seed)
    a, D = 10.0**log_a, 10.0 ** np.asarray(log_d)
    base = _defense(name).fit(X, y)
    moved = _defense(name).fit(*in_other_units(X, y, a, b, D, offsets))
    record(name, "numerics: units and origins", "finite")
    np.testing.assert_array_equal(moved.inlier_mask_, base.inlier_mask_)
    if "Ridge" not in name:  # a fixed penalty is not unit free
        np.testing.assert_allclose(
            moved.estimator_.coef_ * D / a, base.estimator_.coef_, rtol=1e-6
        )


def test_sever_fits_sklearns_model_on_a_timestamp_column():
    X, y = poisoned_regression(5)
    base = SeverFilter(reject_fraction=10, n_rounds=2).fit(X, y)
    sever = SeverFilter(reject_fraction=10, n_rounds=2).fit(*_timestamp(X, y))
    record("SeverFilter", "numerics: timestamp offset", "finite")
    # Its fit is the one without offset (it once fitted a vanishing slope
    # here), and its gradients, in standard coordinates, give the same scores
    # (to 1e-5: adding 1.7e9 rounds the column to about 2e-7 of its spread).
    np.testing.assert_array_equal(sever.inlier_mask_, base.inlier_mask_)
    np.testing.assert_allclose(sever.scores_, base.scores_, rtol=1e-5, atol=1e-10)
    assert (~sever.inlier_mask_[:10]).sum() >= 9


def test_duti_is_unchanged_by_an_offset_of_x():
    X, y = poisoned_regression(6)
    Xt, yt = X[40:50], y[40:50]
    base = DutiFilter(reject_fraction=10).fit(X, y, X_trusted=Xt, y_trusted=yt)
    c = np.array([1.7e9, -3e7, 5.0])
    moved = DutiFilter(reject_fraction=10).fit(X + c, y, X_trusted=Xt + c, y_trusted=yt)
    record("DutiFilter", "numerics: timestamp offset", "finite")
    np.testing.assert_array_equal(moved.inlier_mask_, base.inlier_mask_)


# Hangs and unbounded work -------------------------------------------------------


@pytest.mark.parametrize("ridge", [np.inf, np.nan, -1.0])
def test_non_finite_penalty_never_reaches_lapack(ridge):
    X, y = poisoned_regression(7)
    ZtZ, Zty, _, _ = gram_statistics(X, y)
    with pytest.raises(ValueError, match="ridge penalty must be a finite"):
        solve_gram(ZtZ, Zty, ridge)
    record("solve_gram", "hang: non-finite penalty", "ValueError")


def test_trim_refuses_an_infinite_ridge():
    X, y = poisoned_regression(7)
    with pytest.raises(ValueError, match="alpha must be finite"):
        TrimRegressor(Ridge(alpha=np.inf)).fit(X, y)
    record("TrimRegressor", "hang: Ridge(alpha=inf)", "ValueError")


@pytest.mark.parametrize(
    "params, name",
    [
        ({"regularization": 1e307}, "regularization"),
        ({"confidence": 1e307}, "confidence"),
    ],
)
def test_duti_refuses_an_overflowing_penalty(params, name):
    X, y = poisoned_regression(8)
    duti = DutiFilter(**params)
    with pytest.raises(ValueError, match=f"{name}=.*overflows"):
        duti.fit(X, y, X_trusted=X[:5], y_trusted=y[:5])
    record("DutiFilter", f"hang: {name} overflows", "ValueError")


@pytest.mark.parametrize(
    "params", [{"reject_fraction": 0.9}, {"n_groups": 10**9}, {"group_size": 40}]
)
def test_proda_refuses_too_many_groups_naming_the_count(params):
    X, y = poisoned_regression(9, n=40)
    kw = {"reject_fraction": 0.5, **params}
    with pytest.raises(ValueError, match=r"would draw \d+ groups.*max_groups=100000"):
        ProdaRegressor(**kw).fit(X, y)
    record("ProdaRegressor", "unbounded: group count", "ValueError")


def test_proda_group_count_that_underflows_is_an_error():
    with pytest.raises(ValueError, match="underflows"):
        proda_n_groups(1e-5, 0.999, 200)


# TRIM's stopping rule ------------------------------------------------------------


def _gd_problem(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 3))
    w = rng.normal(size=3)
    y = X @ w + 0.1 * rng.normal(size=80)
    y[:16] = X[:16] @ -w + 0.5 * rng.normal(size=16)
    return X, y


@pytest.mark.parametrize("seed", [1, 5, 10])
def test_trim_with_a_gd_victim_goes_on_after_a_rise(seed):
    from skpoison.models import TorchLinearRegressor

    # Ten epochs of gradient descent: inexact fits, whose trimmed loss rises at
    # the second fit on these data; the rule "stop when the loss does not
    # improve" stopped there.
    X, y = _gd_problem(seed)
    victim = TorchLinearRegressor(learning_rate=0.1, n_epochs=10, random_state=0)
    trim = TrimRegressor(victim, reject_fraction=16).fit(X, y)
    path = trim.trimmed_loss_path_
    record("TrimRegressor", "numerics: inexact inner fits", "finite")
    assert path[1] > path[0]
    assert trim.n_iter_ > 2
    # The best iterate among the fits on n - k points is returned.
    np.testing.assert_allclose(trim.trimmed_loss_, path[1:].min(), rtol=1e-10)
    assert trim.inlier_mask_.sum() == 80 - 16
