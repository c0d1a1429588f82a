"""The defenses' relaxations (skpoison.defenses._relaxation): gradients and limits."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from skpoison.defenses import (
    BayesCleanFilter,
    DutiFilter,
    ITrimRegressor,
    ProdaRegressor,
    SeverFilter,
    TrimRegressor,
)
from skpoison.defenses._relaxation import (
    relaxed_acceptance,
    relaxed_log_acceptance,
    spread,
)
from skpoison.models import TorchLinearRegressor

DEFENSES = {
    "bayesclean": lambda: BayesCleanFilter(),
    "bayesclean_keep": lambda: BayesCleanFilter(flagged="keep"),
    "bayesclean_paper": lambda: BayesCleanFilter(rule="paper"),
    "bayesclean_paper_keep": lambda: BayesCleanFilter(rule="paper", flagged="keep"),
    "bayesclean_raw": lambda: BayesCleanFilter(standardize=False),
    "bayesclean_no_intercept": lambda: BayesCleanFilter(fit_intercept=False),
    "trim": lambda: TrimRegressor(reject_fraction=0.2),
    "trim_ridge": lambda: TrimRegressor(Ridge(alpha=0.5), reject_fraction=0.2),
    # The paper's GD victim (the evaluation's TRIM) and a TRIM stopped by its
    # tolerance before its kept set settled.
    "trim_gd": lambda: TrimRegressor(
        TorchLinearRegressor(learning_rate=0.1, n_epochs=20), reject_fraction=0.2
    ),
    "trim_tol": lambda: TrimRegressor(Ridge(alpha=3.0), reject_fraction=0.2, tol=0.5),
    "sever": lambda: SeverFilter(reject_fraction=0.2),
    "sever_one_round": lambda: SeverFilter(reject_fraction=0.2, n_rounds=1),
    "sever_gd": lambda: SeverFilter(
        TorchLinearRegressor(learning_rate=0.1, n_epochs=20), reject_fraction=0.2
    ),
    "proda": lambda: ProdaRegressor(reject_fraction=0.2, random_state=0),
    "duti": lambda: DutiFilter(reject_fraction=0.2),
}


def problem(n=40, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    y[: n // 10] += 4.0  # some rows to reject
    return X, y


def fitted(name, X, y, **fit_params):
    return DEFENSES[name]().fit(X, y, **fit_params)


@pytest.fixture(params=sorted(DEFENSES))
def name(request):
    return request.param


def fit_params_for(name, X, y):
    if not name.startswith("duti"):
        return {}
    # Trusted items: clean rows of the same model.
    rng = np.random.default_rng(5)
    X_t = rng.normal(size=(8, X.shape[1]))
    coef = np.linalg.lstsq(X[X.shape[0] // 10 :], y[X.shape[0] // 10 :], rcond=None)[0]
    return dict(X_trusted=X_t, y_trusted=X_t @ coef)


def test_gradient_matches_central_finite_differences(name):
    X, y = problem(n=30)
    fit_params = fit_params_for(name, X, y)
    defense = fitted(name, X, y, **fit_params)
    weights = torch.linspace(-1.0, 2.0, X.shape[0], dtype=torch.float64)

    def f(A, b):
        return (relaxed_acceptance(defense, A, b, 0.7, **fit_params) * weights).sum()

    Xt = torch.tensor(X, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    gX, gy = torch.autograd.grad(f(Xt, yt), (Xt, yt))
    rng = np.random.default_rng(1)
    eps = 1e-6
    # Directional derivatives along random directions of (X, y), each a
    # central difference of the relaxation itself.
    for _ in range(3):
        vX, vy = rng.normal(size=X.shape), rng.normal(size=y.shape)
        up = float(f(torch.tensor(X + eps * vX), torch.tensor(y + eps * vy)))
        down = float(f(torch.tensor(X - eps * vX), torch.tensor(y - eps * vy)))
        analytic = float((gX.numpy() * vX).sum() + (gy.numpy() @ vy))
        assert (up - down) / (2 * eps) == pytest.approx(analytic, rel=1e-5, abs=1e-7)


def test_relaxation_tends_to_the_hard_defense(name):
    X, y = problem()
    fit_params = fit_params_for(name, X, y)
    defense = fitted(name, X, y, **fit_params)
    mask = defense.inlier_mask_
    assert 0 < mask.sum() < mask.size  # the test problem rejects something
    gaps = []
    for t in (1.0, 0.1, 1e-2, 1e-4):
        s = relaxed_acceptance(defense, X, y, t, **fit_params).numpy()
        assert ((s >= 0) & (s <= 1)).all()
        gaps.append(np.abs(s - mask).mean())
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-2
    s = relaxed_acceptance(defense, X, y, 1e-4, **fit_params).numpy()
    np.testing.assert_array_equal(s > 0.5, mask)


def test_log_acceptance_keeps_a_gradient_far_from_the_threshold():
    X, y = problem()
    y[0] = 60.0  # rejected by far: its weight underflows at a low temperature
    bc = BayesCleanFilter().fit(X, y)
    yt = torch.tensor(y, requires_grad=True)
    log_s = relaxed_log_acceptance(bc, X, yt, 1e-3)
    assert float(torch.exp(log_s[0].detach())) == 0.0
    (grad,) = torch.autograd.grad(log_s[0], yt)
    # Lowering the outlier's target brings it towards acceptance.
    assert np.isfinite(grad.numpy()).all() and float(grad[0]) < 0


def test_bayesclean_relaxed_scores_are_the_fitted_scores():
    # The torch predictive moments (hyperparameters fixed) are BayesianRidge's.
    X, y = problem()
    bc = BayesCleanFilter(c1=1.0, c2=1.0).fit(X, y)
    log_s = bc._relaxed_acceptance(torch.tensor(X), torch.tensor(y), 1.0)
    margin = torch.logit(torch.exp(log_s))
    # margin / width = c1 - score: the fitted scores up to the common width.
    width = 1.0 / np.polyfit(bc.scores_, margin.numpy(), 1)[0]
    np.testing.assert_allclose(
        1.0 - margin.numpy() * -width, bc.scores_, rtol=1e-6, atol=1e-6
    )


def test_spread_falls_back_when_the_quantiles_coincide():
    v = torch.tensor([1.0] * 20 + [5.0], dtype=torch.float64)
    assert float(spread(v)) == pytest.approx(float(v.std()))
    assert float(spread(torch.ones(5, dtype=torch.float64))) == 1.0


def test_errors():
    X, y = problem()
    with pytest.raises(ValueError, match="fitted"):
        relaxed_acceptance(BayesCleanFilter(), X, y, 1.0)
    with pytest.raises(TypeError, match="no relaxation"):
        relaxed_acceptance(ITrimRegressor().fit(X, y), X, y, 1.0)
    bc = BayesCleanFilter().fit(X, y)
    with pytest.raises(ValueError, match="temperature"):
        relaxed_acceptance(bc, X, y, 0.0)
    with pytest.raises(ValueError, match="fitted on 40 rows"):
        relaxed_acceptance(bc, X[:10], y[:10], 1.0)


def test_gd_least_squares_is_the_gd_victim_on_the_kept_rows():
    from skpoison.defenses._relaxation import gd_least_squares

    X, y = problem()
    kept = np.arange(X.shape[0]) % 3 != 0
    victim = TorchLinearRegressor(learning_rate=0.1, n_epochs=20, l2=0.05)
    victim.fit(X[kept], y[kept])
    coef, intercept = gd_least_squares(
        torch.tensor(X), torch.tensor(y), torch.tensor(kept, dtype=torch.float64),
        victim.l2, victim.learning_rate, victim.n_epochs,
    )  # fmt: skip
    np.testing.assert_allclose(coef.numpy(), victim.coef_, rtol=1e-10, atol=1e-12)
    assert float(intercept) == pytest.approx(victim.intercept_, rel=1e-10, abs=1e-12)


def test_trim_relaxation_is_its_last_selection():
    # Stopped by its tolerance, TRIM's kept set is the selection under the
    # model of the kept set before (not a fixed point): the limit is that set.
    X, y = problem()
    trim = fitted("trim_tol", X, y)
    assert not np.array_equal(trim._selected_by_, trim.inlier_mask_)
    s = relaxed_acceptance(trim, X, y, 1e-6).numpy()
    np.testing.assert_array_equal(s > 0.5, trim.inlier_mask_)
