"""SeverFilter: closed-form and torch per-sample gradients, scores, recovery."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skpoison.defenses import SeverFilter
from skpoison.defenses._base import mask_keep_lowest
from skpoison.defenses._sever import (
    _least_squares_frame,
    _linear_scores,
    _split_counts,
    _standard_coordinates,
    linear_per_sample_gradients,
    torch_per_sample_gradients,
)


class TorchLinearWrapper(RegressorMixin, BaseEstimator):
    """Least squares exposing its fit as a torch ``module_`` (the torch path of SEVER)."""

    def fit(self, X, y):
        lr = LinearRegression().fit(X, y)
        self.module_ = torch.nn.Linear(X.shape[1], 1).double()
        with torch.no_grad():
            self.module_.weight.copy_(torch.as_tensor(lr.coef_[None, :]))
            self.module_.bias.fill_(float(lr.intercept_))
        return self

    def predict(self, X):
        with torch.no_grad():
            return self.module_(torch.as_tensor(X)).numpy().ravel()


@given(
    n=st.integers(1, 30),
    d=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_torch_gradients_equal_closed_form(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10.0, size=d)
    y = rng.normal(size=n) * 5.0
    theta = rng.normal(size=d + 1)
    lin = torch.nn.Linear(d, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(theta[None, :d]))
        lin.bias.fill_(theta[d])
    G_torch = torch_per_sample_gradients(lin, X, y)
    G_closed = linear_per_sample_gradients(X, y, theta)
    np.testing.assert_allclose(G_torch, G_closed, rtol=0, atol=1e-10)


@given(n=st.integers(3, 40), d=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_closed_form_scores_equal_svd_of_materialised_gradients(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    theta = rng.normal(size=d + 1)
    active = rng.random(n) < 0.8
    active[:3] = True
    idx = np.flatnonzero(active)
    G = linear_per_sample_gradients(X[idx], y[idx], theta)
    G -= G.mean(axis=0)
    _, s, Vt = np.linalg.svd(G, full_matrices=False)
    if len(s) > 1 and s[0] - s[1] < 1e-6 * s[0]:
        return  # top singular vector not unique: nothing to compare
    expected = (G @ Vt[0]) ** 2
    got = _linear_scores(X, y, active, idx, theta)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9 * expected.max())


@given(total=st.integers(0, 1000), parts=st.integers(1, 10))
def test_round_counts_add_up(total, parts):
    counts = _split_counts(total, parts)
    assert counts.sum() == total
    assert counts.max() - counts.min() <= 1
    assert np.all(np.diff(counts) <= 0)


def test_removes_gross_outliers(outlier_data):
    X, y, is_outlier = outlier_data
    sever = SeverFilter().fit(X, y)
    assert (~sever.inlier_mask_[is_outlier]).mean() >= 0.9


def test_no_outliers_keeps_test_error(clean_data):
    X, y, X_test, y_test = clean_data
    base = np.mean((LinearRegression().fit(X, y).predict(X_test) - y_test) ** 2)
    mask = SeverFilter().fit(X, y).inlier_mask_
    err = np.mean(
        (LinearRegression().fit(X[mask], y[mask]).predict(X_test) - y_test) ** 2
    )
    assert err <= 1.05 * base


@pytest.mark.parametrize("n_rounds", [1, 3, 4])
def test_total_and_per_round_removal(outlier_data, n_rounds):
    X, y, _ = outlier_data
    n = len(y)
    sever = SeverFilter(n_rounds=n_rounds).fit(X, y)
    n_reject = int(np.floor(0.4 * n))
    assert sever.n_reject_ == n_reject == (~sever.inlier_mask_).sum()
    per_round = np.bincount(
        sever.removal_round_[sever.removal_round_ >= 0], minlength=n_rounds
    )
    np.testing.assert_array_equal(per_round, _split_counts(n_reject, n_rounds))
    # The scores rank exactly the removed points highest.
    np.testing.assert_array_equal(
        mask_keep_lowest(sever.scores_, n_reject), sever.inlier_mask_
    )


def test_estimator_paths_agree(outlier_data):
    X, y, _ = outlier_data
    fast = SeverFilter().fit(X, y)
    sk = SeverFilter(LinearRegression()).fit(X, y)
    np.testing.assert_array_equal(fast.inlier_mask_, sk.inlier_mask_)
    np.testing.assert_allclose(fast.scores_, sk.scores_, rtol=1e-6, atol=1e-9)
    # The torch path takes the gradients of the module's own parameters, in the
    # units of X; the linear paths in standard coordinates (mean 0, std 1 over
    # the training rows): the same on standardised data.
    Xs = StandardScaler().fit_transform(X)
    fast = SeverFilter().fit(Xs, y)
    torch_path = SeverFilter(TorchLinearWrapper()).fit(Xs, y)
    np.testing.assert_array_equal(fast.inlier_mask_, torch_path.inlier_mask_)
    np.testing.assert_allclose(fast.scores_, torch_path.scores_, rtol=1e-6, atol=1e-9)


def test_ridge_alpha_matches_ridge_estimator(outlier_data):
    X, y, _ = outlier_data
    fast = SeverFilter(alpha=50.0).fit(X, y)
    sk = SeverFilter(Ridge(alpha=50.0)).fit(X, y)
    np.testing.assert_array_equal(fast.inlier_mask_, sk.inlier_mask_)
    np.testing.assert_allclose(fast.scores_, sk.scores_, rtol=1e-6, atol=1e-9)


def test_torch_mlp_estimator_runs(outlier_data):
    models = pytest.importorskip("skpoison.models")
    if not hasattr(models, "TorchMLPRegressor"):
        pytest.skip("TorchMLPRegressor not available yet")
    X, y, is_outlier = outlier_data
    sever = SeverFilter(models.TorchMLPRegressor(), reject_fraction=0.2, n_rounds=2)
    sever.fit(X, y)
    assert sever.inlier_mask_.sum() == len(y) - int(0.2 * len(y))


def test_unsupported_estimator_is_a_clear_error(outlier_data):
    X, y, _ = outlier_data
    with pytest.raises(TypeError, match="per-sample gradients"):
        SeverFilter(DecisionTreeRegressor()).fit(X, y)


def test_bad_reject_fraction(outlier_data):
    X, y, _ = outlier_data
    with pytest.raises(ValueError, match="reject_fraction"):
        SeverFilter(reject_fraction=len(y)).fit(X, y)


def test_input_not_modified(outlier_data):
    X, y, _ = outlier_data
    X0, y0 = X.copy(), y.copy()
    SeverFilter().fit(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_gd_victim_takes_the_linear_closed_form(monkeypatch):
    # TorchLinearRegressor has a torch module_, but it is linear: SEVER takes
    # the closed-form gradients (standard coordinates), never torch.func.
    from skpoison.defenses import _sever
    from skpoison.models import TorchLinearRegressor

    def refuse(*args, **kwargs):
        raise AssertionError("per-sample autograd used for a linear model")

    monkeypatch.setattr(_sever, "torch_per_sample_gradients", refuse)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3)) * [1.0, 2.0, 0.5] + [0.5, -1.0, 2.0]
    y = X @ [1.0, -0.5, 2.0] + 0.1 * rng.normal(size=120)
    y[:10] += 8.0
    # Converged gradient descent is least squares: the same decisions and
    # scores as SEVER on LinearRegression, data not standardised.
    victim = TorchLinearRegressor(learning_rate=0.1, n_epochs=20_000)
    gd = SeverFilter(victim, reject_fraction=0.2).fit(X, y)
    ols = SeverFilter(LinearRegression(), reject_fraction=0.2).fit(X, y)
    np.testing.assert_array_equal(gd.inlier_mask_, ols.inlier_mask_)
    np.testing.assert_allclose(gd.scores_, ols.scores_, rtol=1e-6, atol=1e-9)


@given(
    n=st.integers(3, 3000),
    d=st.integers(1, 6),
    offset=st.floats(-4.0, 4.0),
    log_unit=st.floats(-100, 100),
    seed=st.integers(0, 2**16),
)
def test_scores_through_the_small_map_equal_standardised_blocks(
    n, d, offset, log_unit, seed
):
    # On columns with their means within a few standard deviations of 0, the
    # moments accumulated on X and mapped to standard coordinates give the
    # scores of the blocks standardised first (the path for any X). n up to
    # 3000 spans several row blocks.
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) + offset) * 10.0**log_unit
    y = rng.normal(size=n)
    theta = np.append(rng.normal(size=d) / 10.0**log_unit, rng.normal())
    active = rng.random(n) < 0.8
    active[:3] = True
    idx = np.flatnonzero(active)
    standard = _standard_coordinates(X)
    blocks = _linear_scores(X, y, active, idx, theta, standard)
    mapped = _linear_scores(X, y, active, idx, theta, standard, centred_near_zero=True)
    np.testing.assert_allclose(mapped, blocks, rtol=1e-7, atol=1e-9 * blocks.max())


@pytest.mark.parametrize(
    "shift, unit, copied",
    [
        (0.0, 1.0, False),
        (0.0, 1e100, False),
        (0.0, 1e-100, False),
        (1e3, 1.0, True),
        (0.0, 1e-170, True),
        (0.0, 1e150, True),
    ],
)
def test_least_squares_on_x_itself_only_where_accurate(shift, unit, copied):
    # X is used as it is (no copy) where its Gram statistics are accurate;
    # elsewhere (an offset, squares beyond float64) in LinearFrame's copy:
    # the decisions are the same either way.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ [1.0, 2.0, -1.0] + 0.1 * rng.normal(size=300)
    y[:30] += 20.0
    moved = X * unit + shift
    _, Xf, _, _ = _least_squares_frame(moved, y)
    assert (Xf is not moved) == copied
    base = SeverFilter(reject_fraction=0.2).fit(X, y)
    sever = SeverFilter(reject_fraction=0.2).fit(moved, y)
    np.testing.assert_array_equal(sever.inlier_mask_, base.inlier_mask_)
    np.testing.assert_allclose(sever.scores_, base.scores_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "x_unit, y_unit, y_shift",
    [
        (1.0, 1e-170, 0.0),
        (1.0, 1e-170, 1e-168),
        (1.0, 2.0**-900, 0.0),
        (1.0, 1e150, 0.0),
        (1.0, 1e200, 0.0),
        (1e-170, 1e-170, 0.0),
        (1e100, 1e100, 0.0),
    ],
)
def test_linear_estimator_decisions_do_not_depend_on_extreme_units(
    x_unit, y_unit, y_shift
):
    # LinearRegression is equivariant in the units and offsets of X and y, so
    # SEVER's decisions around it must be the same in any units. The moments of
    # r_i z_i underflowed at y in units of 1e-170 (every score was noise: another
    # kept set) and overflowed at 1e200 (LAPACK's eigh failed); the spread of
    # columns of X at 1e-170 squared to subnormals.
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ [1.0, 2.0, -1.0] + 0.1 * rng.normal(size=300)
    y[:30] += 20.0
    base = SeverFilter(estimator=LinearRegression(), reject_fraction=0.2).fit(X, y)
    moved = SeverFilter(estimator=LinearRegression(), reject_fraction=0.2).fit(
        X * x_unit, y * y_unit + y_shift
    )
    np.testing.assert_array_equal(moved.inlier_mask_, base.inlier_mask_)
    np.testing.assert_array_equal(moved.removal_round_, base.removal_round_)
    np.testing.assert_allclose(moved.scores_, base.scores_, rtol=1e-9, atol=1e-12)
    assert not base.inlier_mask_[:30].any()  # the far poison is found


def test_unit_near_one_is_a_power_of_two_only_far_from_one():
    from skpoison.defenses._sever import _unit_near_one

    for spread in (1.0, 3.7, 1e-70, 1e70, 0.0, np.inf, np.nan):
        assert _unit_near_one(spread) == 1.0
    for spread in (1e-170, 1e-300, 1e150, 1e300, 5e-324):
        unit = _unit_near_one(spread)
        mantissa, _ = np.frexp(unit)
        assert mantissa == 0.5  # a power of two: scaling by it is exact
        if spread > np.finfo(float).tiny:  # subnormals: at most 2**1023
            assert 0.5 <= unit * spread < 1.0
    assert _unit_near_one(5e-324) == 2.0**1023


@pytest.mark.parametrize("unit", [1e-170, 2.0**-1000, 1e200])
def test_torch_path_scores_do_not_depend_on_the_gradients_units(monkeypatch, unit):
    # Per-sample gradients of a network in units far from 1 (a target in units
    # of 1e-170) squared to subnormals inside the randomized SVD, and the
    # scores became noise; the same gradients in any units rank alike.
    from skpoison.defenses import _sever
    from skpoison.models import TorchMLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -0.5, 2.0] + 0.1 * rng.normal(size=80)
    y[:8] += 8.0
    victim = TorchMLPRegressor(hidden_layer_sizes=(4,), n_epochs=5, random_state=0)
    real = _sever.torch_per_sample_gradients

    def scores(factor):
        with monkeypatch.context() as m:
            m.setattr(
                _sever,
                "torch_per_sample_gradients",
                lambda *a: real(*a) * factor,
            )
            return SeverFilter(victim, reject_fraction=0.2, random_state=0).fit(X, y)

    base, moved = scores(1.0), scores(unit)
    np.testing.assert_array_equal(moved.inlier_mask_, base.inlier_mask_)
    np.testing.assert_allclose(moved.scores_, base.scores_, rtol=1e-7, atol=1e-9)
