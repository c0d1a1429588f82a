"""Implicit hypergradient engines for scikit-learn's linear victims."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.svm import SVR

from skpoison.attacks._hypergradient import make_engine
from skpoison.attacks._implicit import ImplicitLinearEngine


def _problem(seed, n=30, d=4, m=12, n_p=3, offset=0.0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d)) + offset
    y = X @ g.normal(size=d) + 0.5 * g.normal(size=n) + offset
    Xv = g.normal(size=(m, d)) + offset
    yv = Xv @ g.normal(size=d) + 0.5 * g.normal(size=m) + offset
    return X, y, Xv, yv, g.normal(size=(n_p, d)) + offset, g.normal(size=n_p) + offset


VICTIMS = [
    LinearRegression(),
    LinearRegression(fit_intercept=False),
    Ridge(alpha=0.7),
    Ridge(alpha=3.0, fit_intercept=False),
    Lasso(alpha=0.2),
    Lasso(alpha=0.05, fit_intercept=False),
    ElasticNet(alpha=0.1, l1_ratio=0.4),
    ElasticNet(alpha=0.3, l1_ratio=0.7, fit_intercept=False),
]
IDS = [repr(v) for v in VICTIMS]


def _refit(est, X, y, s=None):
    est = clone(est)
    if isinstance(est, (Lasso, ElasticNet)):
        est.set_params(tol=1e-14, max_iter=100_000)
    return est.fit(X, y, sample_weight=s)


def _fd(f, x, eps=1e-6):
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        hi, lo = x.copy(), x.copy()
        hi[idx] += eps
        lo[idx] -= eps
        out[idx] = (f(hi) - f(lo)) / (2 * eps)
    return out


def _rel(a, b):
    return np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("est", VICTIMS, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_central_differences(est, seed):
    X, y, Xv, yv, Xp, yp = _problem(seed)
    eng = ImplicitLinearEngine(est, X, y, Xv, yv)
    _, gX, gy = eng.value_and_grad(Xp, yp)
    fX = _fd(lambda a: float(eng.value(a, yp)), Xp)
    fy = _fd(lambda b: float(eng.value(Xp, b)), yp)
    assert _rel(gX.numpy(), fX) < 1e-5
    assert _rel(gy.numpy(), fy) < 1e-5


@pytest.mark.parametrize("est", VICTIMS, ids=IDS)
def test_weight_gradient_matches_central_differences(est):
    X, y, Xv, yv, Xp, yp = _problem(2)
    s_fixed = np.random.default_rng(3).uniform(0.5, 2, size=len(y))
    s_p = np.array([0.3, 1.0, 1.7])
    eng = ImplicitLinearEngine(est, X, y, Xv, yv, sample_weight=s_fixed)
    _, gX, gy, gs = eng.value_and_grad(Xp, yp, s_p, weight_grad=True)
    fs = _fd(lambda s: float(eng.value(Xp, yp, s)), s_p)
    fX = _fd(lambda a: float(eng.value(a, yp, s_p)), Xp)
    assert _rel(gs.numpy(), fs) < 1e-5
    assert _rel(gX.numpy(), fX) < 1e-5


@pytest.mark.parametrize("est", VICTIMS, ids=IDS)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_solution_is_sklearns(est, offset):
    if offset and not est.fit_intercept:
        pytest.skip("offsets are removed only by the intercept's centring")
    X, y, Xv, yv, Xp, yp = _problem(4, offset=offset)
    s = np.random.default_rng(5).uniform(0.5, 2, size=len(y) + len(yp))
    eng = ImplicitLinearEngine(est, X, y, Xv, yv, sample_weight=s[: len(y)])
    params = eng.train(Xp, yp, s[len(y) :])
    ref = _refit(est, np.vstack([X, Xp]), np.r_[y, yp], s)
    coef, bias = params["weight"].numpy().ravel(), float(params["bias"])
    scale = np.abs(ref.coef_).max() + 1.0
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-8 * scale, rtol=1e-7)
    np.testing.assert_allclose(bias, ref.intercept_, atol=1e-6 * (1 + abs(offset)))
    pred = eng.predict(params, torch.as_tensor(Xv)).numpy()
    val = 0.5 * np.mean((ref.predict(Xv) - yv) ** 2)
    assert float(eng.value(Xp, yp, s[len(y) :])) == pytest.approx(val, rel=1e-6)
    np.testing.assert_allclose(pred, ref.predict(Xv), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("case", ["duplicated", "constant", "wide"])
def test_rank_deficient_ols_is_sklearns_minimum_norm(case, fit_intercept):
    g = np.random.default_rng(6)
    n = 5 if case == "wide" else 30
    X = g.normal(size=(n, 6))
    Xp = g.normal(size=(2, 6))
    if case == "duplicated":
        X[:, 1], Xp[:, 1] = X[:, 0], Xp[:, 0]
    elif case == "constant":
        X[:, 2], Xp[:, 2] = 1.5, 1.5
    y, yp = g.normal(size=n), g.normal(size=2)
    Xv, yv = g.normal(size=(7, 6)), g.normal(size=7)
    est = LinearRegression(fit_intercept=fit_intercept)
    eng = ImplicitLinearEngine(est, X, y, Xv, yv)
    val, gX, gy = eng.value_and_grad(Xp, yp)
    ref = est.fit(np.vstack([X, Xp]), np.r_[y, yp])
    coef = eng.train(Xp, yp)["weight"].numpy().ravel()
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-8)
    assert float(val) == pytest.approx(0.5 * np.mean((ref.predict(Xv) - yv) ** 2))
    assert np.isfinite(gX.numpy()).all() and np.isfinite(gy.numpy()).all()
    # Along a rank-preserving direction (the poison targets and, for the
    # duplicated columns, the same move on both copies) the gradient is exact.
    fy = _fd(lambda b: float(eng.value(Xp, b)), yp)
    assert _rel(gy.numpy(), fy) < 1e-5
    if case == "duplicated" and fit_intercept:
        D = np.zeros_like(Xp)
        D[:, :2] = 1.0
        eps = 1e-6
        fd = (
            float(eng.value(Xp + eps * D, yp)) - float(eng.value(Xp - eps * D, yp))
        ) / (2 * eps)
        assert float((gX.numpy() * D).sum()) == pytest.approx(fd, rel=1e-5)


def test_singular_ridge_and_empty_lasso_are_finite():
    X, y, Xv, yv, Xp, yp = _problem(7)
    X[:] = 0.0
    Xp[:] = 0.0
    for est in (Ridge(alpha=0.0), Lasso(alpha=10.0)):
        eng = ImplicitLinearEngine(est, X, y, Xv, yv)
        val, gX, gy = eng.value_and_grad(Xp, yp)
        ref = _refit(est, np.vstack([X, Xp]), np.r_[y, yp])
        assert float(val) == pytest.approx(0.5 * np.mean((ref.predict(Xv) - yv) ** 2))
        assert np.isfinite(gX.numpy()).all() and np.isfinite(gy.numpy()).all()


def test_lasso_inactive_features_get_zero_gradient():
    X, y, Xv, yv, Xp, yp = _problem(0)
    eng = ImplicitLinearEngine(Lasso(alpha=0.4), X, y, Xv, yv)
    _, gX, _ = eng.value_and_grad(Xp, yp)
    coef = eng.train(Xp, yp)["weight"].numpy().ravel()
    assert (coef == 0).any(), "the test needs an inactive feature"
    assert (gX.numpy()[:, coef == 0] == 0).all()


def test_dtype_device_and_inputs_untouched():
    X, y, Xv, yv, Xp, yp = _problem(9)
    Xp0 = Xp.copy()
    est = Ridge(alpha=1.0)
    eng = ImplicitLinearEngine(est, X, y, Xv, yv, dtype="float32")
    val, gX, gy = eng.value_and_grad(torch.as_tensor(Xp), torch.as_tensor(yp))
    assert gX.dtype == torch.float32 and val.dtype == torch.float32
    assert gX.device.type == "cpu"
    np.testing.assert_array_equal(Xp, Xp0)
    assert not hasattr(est, "coef_")


@pytest.mark.parametrize(
    "bad, match",
    [
        (SVR(), "LinearRegression, Ridge, Lasso or ElasticNet"),
        (Ridge(positive=True), "positive=True"),
        (Ridge(alpha=np.ones(2)), "alpha"),
    ],
)
def test_unsupported_estimators_are_named(bad, match):
    X, y, Xv, yv, _, _ = _problem(0)
    with pytest.raises((TypeError, ValueError), match=match):
        ImplicitLinearEngine(bad, X, y, Xv, yv)


def test_bad_weights_are_named():
    X, y, Xv, yv, Xp, yp = _problem(0)
    with pytest.raises(ValueError, match="sample_weight"):
        ImplicitLinearEngine(Ridge(), X, y, Xv, yv, sample_weight=np.ones(3))
    eng = ImplicitLinearEngine(Ridge(), X, y, Xv, yv)
    with pytest.raises(ValueError, match="poison weights"):
        eng.value_and_grad(Xp, yp, -np.ones(len(yp)))


def test_make_engine_dispatches_sklearn_estimators():
    X, y, Xv, yv, _, _ = _problem(0)
    eng = make_engine(Ridge(), X, y, Xv, yv, n_steps=40, lr=0.1)
    assert isinstance(eng, ImplicitLinearEngine)
    with pytest.raises(ValueError, match="engine='auto'"):
        make_engine(Ridge(), X, y, Xv, yv, n_steps=40, lr=0.1, engine="spectral")
    with pytest.raises(TypeError, match="LinearRegression, Ridge"):
        make_engine(SVR(), X, y, Xv, yv, n_steps=40, lr=0.1)
