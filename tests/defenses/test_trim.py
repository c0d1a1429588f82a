"""TrimRegressor: trimmed least squares, fast Gram path and generic path."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import HuberRegressor, LinearRegression, Ridge
from sklearn.metrics import mean_squared_error
from sklearn.neural_network import MLPRegressor

from skpoison.defenses import DefendedRegressor, TrimRegressor
from skpoison.defenses._base import mask_keep_lowest
from skpoison.exceptions import DivergenceError


class SlowOLS(LinearRegression):
    """OLS that TRIM does not recognise, so it takes the generic path."""


class SlowRidge(Ridge):
    """Ridge that TRIM does not recognise, so it takes the generic path."""


def _problem(seed, n=80, d=3, n_out=8, scale=20.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal(scale=0.5, size=n)
    idx = rng.choice(n, n_out, replace=False)
    y[idx] += scale * rng.choice([-1.0, 1.0], size=n_out)
    return X, y


@given(
    seed=st.integers(0, 10_000),
    reject=st.one_of(st.floats(0.0, 0.6), st.integers(0, 50)),
)
def test_keeps_exactly_the_requested_number(seed, reject):
    X, y = _problem(seed)
    trim = TrimRegressor(reject_fraction=reject).fit(X, y)
    k = reject if isinstance(reject, int) else int(np.floor(reject * len(y)))
    assert trim.n_reject_ == k
    assert trim.inlier_mask_.sum() == len(y) - k
    assert trim.scores_.shape == y.shape


@given(seed=st.integers(0, 10_000), generic=st.booleans())
def test_trimmed_loss_never_increases(seed, generic):
    X, y = _problem(seed, n_out=15, scale=5.0)
    trim = TrimRegressor(SlowOLS() if generic else None).fit(X, y)
    path = trim.trimmed_loss_path_
    assert len(path) == trim.n_iter_
    assert np.all(np.diff(path) <= 1e-9 * path[:-1])
    assert trim.trimmed_loss_ == pytest.approx(path[-1], rel=1e-9, abs=1e-12)


@given(seed=st.integers(0, 10_000))
def test_converged_set_is_the_lowest_residuals_of_the_final_model(seed):
    X, y = _problem(seed)
    trim = TrimRegressor(tol=0.0).fit(X, y)
    np.testing.assert_array_equal(
        trim.inlier_mask_, mask_keep_lowest(trim.scores_, trim.n_reject_)
    )
    np.testing.assert_allclose(trim.scores_, (y - trim.predict(X)) ** 2, atol=1e-10)
    # The final model is the least-squares fit on its kept set.
    ref = LinearRegression().fit(X[trim.inlier_mask_], y[trim.inlier_mask_])
    np.testing.assert_allclose(trim.estimator_.coef_, ref.coef_, atol=1e-8)


@given(
    seed=st.integers(0, 10_000),
    d=st.integers(1, 6),
    alpha=st.sampled_from([None, 0.0, 0.5, 10.0]),
    n_init=st.integers(1, 3),
)
def test_fast_path_matches_generic_path(seed, d, alpha, n_init):
    X, y = _problem(seed, n=60, d=d)
    if alpha is None:
        fast_est, slow_est = None, SlowOLS()
    else:
        fast_est, slow_est = Ridge(alpha=alpha), SlowRidge(alpha=alpha)
    fast = TrimRegressor(fast_est, n_init=n_init, random_state=seed).fit(X, y)
    slow = TrimRegressor(slow_est, n_init=n_init, random_state=seed).fit(X, y)
    np.testing.assert_array_equal(fast.inlier_mask_, slow.inlier_mask_)
    if n_init == 1:
        # (with restarts, two starts may reach the same set with losses equal up
        # to rounding, and either may be reported)
        assert fast.n_iter_ == slow.n_iter_
    np.testing.assert_allclose(
        fast.estimator_.coef_, slow.estimator_.coef_, rtol=1e-7, atol=1e-9
    )
    np.testing.assert_allclose(fast.predict(X), slow.predict(X), rtol=1e-7, atol=1e-8)
    assert type(fast.estimator_) is (LinearRegression if alpha is None else Ridge)


def test_fast_path_with_incremental_updates_matches_sklearn():
    # Large enough that many iterations run on updated (not recomputed) statistics.
    rng = np.random.default_rng(0)
    n, d = 3000, 8
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    y[: n // 5] = rng.normal(scale=3.0, size=n // 5)  # mild, overlapping poison
    fast = TrimRegressor(reject_fraction=0.3, tol=0.0).fit(X, y)
    slow = TrimRegressor(SlowOLS(), reject_fraction=0.3, tol=0.0).fit(X, y)
    assert fast.n_iter_ > 3
    np.testing.assert_array_equal(fast.inlier_mask_, slow.inlier_mask_)
    np.testing.assert_allclose(fast.estimator_.coef_, slow.estimator_.coef_, rtol=1e-9)
    np.testing.assert_allclose(
        fast.estimator_.singular_, slow.estimator_.singular_, rtol=1e-6
    )
    assert fast.estimator_.rank_ == slow.estimator_.rank_ == d


@given(seed=st.integers(0, 10_000))
def test_result_does_not_depend_on_sample_order(seed):
    X, y = _problem(seed)
    perm = np.random.default_rng(seed).permutation(len(y))
    a = TrimRegressor().fit(X, y)
    b = TrimRegressor().fit(X[perm], y[perm])
    np.testing.assert_array_equal(b.inlier_mask_[np.argsort(perm)], a.inlier_mask_)
    np.testing.assert_allclose(b.estimator_.coef_, a.estimator_.coef_, rtol=1e-8)


def test_more_starts_never_worse_and_reproducible():
    X, y = _problem(7, n=120, n_out=30, scale=4.0)
    one = TrimRegressor(n_init=1).fit(X, y)
    many = TrimRegressor(n_init=6, random_state=0).fit(X, y)
    again = TrimRegressor(n_init=6, random_state=0).fit(X, y)
    assert many.trimmed_loss_ <= one.trimmed_loss_ + 1e-12
    np.testing.assert_array_equal(many.inlier_mask_, again.inlier_mask_)
    np.testing.assert_array_equal(many.scores_, again.scores_)


@given(seed=st.integers(0, 10_000))
def test_single_start_is_the_reference_loop_from_all_points(seed):
    # The reference algorithm, written plainly: fit on all points, then keep the
    # n - k smallest squared residuals and refit until the kept set settles.
    # Starting from all points (never from index order) makes the result
    # independent of how the samples are ordered (see the permutation test).
    X, y = _problem(seed, n_out=12, scale=4.0)
    k = 20
    keep = np.ones(len(y), dtype=bool)
    for _ in range(400):
        model = LinearRegression().fit(X[keep], y[keep])
        new = mask_keep_lowest((y - model.predict(X)) ** 2, k)
        if np.array_equal(new, keep):
            break
        keep = new
    trim = TrimRegressor(reject_fraction=k, tol=0.0).fit(X, y)
    np.testing.assert_array_equal(trim.inlier_mask_, keep)


@pytest.mark.parametrize("estimator", [None, Ridge(alpha=1.0), SlowOLS()])
def test_rejects_gross_outliers(outlier_data, estimator):
    X, y, is_outlier = outlier_data
    trim = TrimRegressor(estimator).fit(X, y)
    assert (~trim.inlier_mask_[is_outlier]).mean() >= 0.9


def test_rejects_gross_outliers_with_mlp(outlier_data):
    X, y, is_outlier = outlier_data
    mlp = MLPRegressor(hidden_layer_sizes=(8,), max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        trim = TrimRegressor(mlp, max_iter=5).fit(X, y)
    assert isinstance(trim.estimator_, MLPRegressor)
    assert (~trim.inlier_mask_[is_outlier]).mean() >= 0.9
    assert trim.predict(X).shape == y.shape


def test_works_with_the_torch_victims(outlier_data):
    models = pytest.importorskip("skpoison.models")
    X, y, is_outlier = outlier_data
    lin = TrimRegressor(models.TorchLinearRegressor(n_epochs=40)).fit(X, y)
    assert (~lin.inlier_mask_[is_outlier]).mean() >= 0.9
    mlp = models.TorchMLPRegressor(hidden_layer_sizes=(8,), n_epochs=20, random_state=0)
    trim = TrimRegressor(mlp, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        trim.fit(X, y)
    assert np.isfinite(trim.predict(X)).all()


def test_model_error_near_ols_without_outliers(clean_data):
    X, y, X_test, y_test = clean_data
    ols = mean_squared_error(y_test, LinearRegression().fit(X, y).predict(X_test))
    trim = TrimRegressor().fit(X, y)
    assert mean_squared_error(y_test, trim.predict(X_test)) <= 1.1 * ols


def test_no_rejection_is_plain_least_squares():
    X, y = _problem(1)
    trim = TrimRegressor(reject_fraction=0).fit(X, y)
    assert trim.inlier_mask_.all() and trim.n_iter_ == 1
    np.testing.assert_allclose(
        trim.estimator_.coef_, LinearRegression().fit(X, y).coef_, rtol=1e-9
    )


def test_near_singular_design_gives_finite_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    X = np.hstack([x, x, x * (1 + 1e-13), np.full((200, 1), 3.0)])
    y = 2 * x.ravel() + rng.normal(scale=0.1, size=200)
    y[:20] += 30
    trim = TrimRegressor(reject_fraction=0.2).fit(X, y)
    assert np.isfinite(trim.estimator_.coef_).all()
    assert np.isfinite(trim.scores_).all()
    assert not trim.inlier_mask_[:20].any()
    np.testing.assert_allclose(trim.predict(X[20:]), 2 * x[20:].ravel(), atol=0.5)


def test_max_iter_warns():
    X, y = _problem(2, n_out=20, scale=3.0)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        TrimRegressor(max_iter=1).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"reject_fraction": 1.0}, "reject_fraction"),
        ({"reject_fraction": -0.1}, "reject_fraction"),
        ({"reject_fraction": 80}, "reject_fraction"),
        ({"max_iter": 0}, "max_iter"),
        ({"n_init": 0}, "n_init"),
        ({"estimator": object()}, "estimator"),
    ],
)
def test_bad_parameters_are_named(params, match):
    X, y = _problem(0)
    with pytest.raises(ValueError, match=match):
        TrimRegressor(**params).fit(X, y)


def test_bad_input_is_rejected():
    X, y = _problem(0)
    y_inf = y.copy()
    y_inf[3] = np.inf
    with pytest.raises(ValueError, match="[Ii]nf"):
        TrimRegressor().fit(X, y_inf)
    with pytest.raises(ValueError):
        TrimRegressor().fit(X[:, :, None], y)
    with pytest.raises(ValueError):
        TrimRegressor().fit(X[:1], y[:1])


def test_inputs_are_not_modified():
    X, y = _problem(0)
    X0, y0 = X.copy(), y.copy()
    TrimRegressor().fit(X, y)
    TrimRegressor(HuberRegressor()).fit_resample(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_as_defense_of_another_model(outlier_data):
    X, y, is_outlier = outlier_data
    model = DefendedRegressor(TrimRegressor(reject_fraction=0.2), Ridge()).fit(X, y)
    assert not model.inlier_mask_[is_outlier].any()


def test_blockwise_gram_updates_match(monkeypatch):
    # Small blocks so that the block-wise paths of the Gram statistics run.
    import skpoison.defenses._linear as linear
    import skpoison.defenses._trim as trim_module

    monkeypatch.setattr(linear, "_CHUNK_ROWS", 64)
    monkeypatch.setattr(trim_module, "_CHUNK_ROWS", 64)
    X, y = _problem(5, n=1000, d=4, n_out=150, scale=6.0)
    fast = TrimRegressor(tol=0.0).fit(X, y)
    slow = TrimRegressor(SlowOLS(), tol=0.0).fit(X, y)
    np.testing.assert_array_equal(fast.inlier_mask_, slow.inlier_mask_)
    np.testing.assert_allclose(fast.estimator_.coef_, slow.estimator_.coef_, rtol=1e-9)


@given(
    n=st.integers(12, 80),
    d=st.integers(1, 5),
    offset=st.floats(-2.0, 2.0),
    l2=st.sampled_from([0.0, 0.05]),
    seed=st.integers(0, 2**16),
)
def test_gd_victim_on_gram_statistics_is_the_refitted_victim(n, d, offset, l2, seed):
    # TRIM around the closed-form GD victim runs on the kept set's Gram
    # statistics; around solver="gd" it refits the victim's loop each time.
    from skpoison.models import TorchLinearRegressor

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + offset
    y = X @ rng.normal(size=d) + 1.0 + 0.3 * rng.normal(size=n)
    y[: n // 6] += 6.0 * rng.normal(size=n // 6)
    params = dict(learning_rate=0.05, n_epochs=30, l2=l2)
    fast = TrimRegressor(TorchLinearRegressor(**params), reject_fraction=0.25)
    slow = TrimRegressor(TorchLinearRegressor(solver="gd", **params),
                         reject_fraction=0.25)  # fmt: skip
    try:
        slow.fit(X, y)
    except DivergenceError as exc:
        with pytest.raises(DivergenceError, match="diverges on this data"):
            fast.fit(X, y)
        assert "diverges on this data" in str(exc)
        return
    fast.fit(X, y)
    assert fast.n_iter_ == slow.n_iter_
    np.testing.assert_array_equal(fast.inlier_mask_, slow.inlier_mask_)
    scale = slow.scores_.max()
    np.testing.assert_allclose(fast.scores_, slow.scores_, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(
        fast.trimmed_loss_path_, slow.trimmed_loss_path_, rtol=1e-10
    )
    assert type(fast.estimator_) is TorchLinearRegressor
    np.testing.assert_allclose(fast.estimator_.coef_, slow.estimator_.coef_,
                               rtol=1e-10, atol=1e-12)  # fmt: skip


def test_gd_victim_fast_path_never_refits_in_the_loop(monkeypatch, rng):
    from skpoison.defenses import _trim
    from skpoison.models import TorchLinearRegressor

    calls = []
    fit = TorchLinearRegressor.fit
    monkeypatch.setattr(
        TorchLinearRegressor,
        "fit",
        lambda self, X, y: calls.append(1) or fit(self, X, y),
    )
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, 2.0] + rng.normal(size=60)
    assert _trim._closed_form_victim(TorchLinearRegressor()) is not None
    trim = TrimRegressor(TorchLinearRegressor()).fit(X, y)
    assert trim.n_iter_ > 1 and len(calls) == 1  # the final model only
