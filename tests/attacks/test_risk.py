"""The detectability risk of Eq. (5), its sigma and its gradient."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skpoison.attacks import detectability_risk, residual_std
from skpoison.attacks._risk import risk_and_grad

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def _loss(pred, y):
    return 0.5 * np.mean((pred - y) ** 2)


@settings(max_examples=30)
@given(
    X=arrays(np.float64, (5, 2), elements=finite),
    y=arrays(np.float64, 5, elements=finite),
    w=arrays(np.float64, 2, elements=finite),
    b=finite,
    sigma=st.floats(0.01, 5),
)
def test_risk_is_product_of_losses_under_shifted_bias(X, y, w, b, sigma):
    # Eq. (5) literally: the clean model with bias b + sigma and b - sigma.
    expected = _loss(X @ w + b + sigma, y) * _loss(X @ w + b - sigma, y)
    got = detectability_risk(X @ w + b - y, sigma)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=20)
@given(r=arrays(np.float64, 6, elements=finite), sigma=st.floats(0.01, 5))
def test_torch_and_numpy_risk_agree(r, sigma):
    t = detectability_risk(torch.as_tensor(r), sigma)
    assert float(t) == pytest.approx(detectability_risk(r, sigma), rel=1e-12, abs=1e-12)


def test_risk_vanishes_on_either_edge_of_the_band():
    assert detectability_risk(np.full(4, 0.7), 0.7) == 0.0
    assert detectability_risk(np.full(4, -0.7), 0.7) == 0.0
    assert detectability_risk(np.zeros(4), 0.7) > 0.0


def test_residual_std_uses_n_minus_p_minus_1_degrees_of_freedom(rng):
    r = rng.normal(size=30)
    assert residual_std(r, 4) == pytest.approx(np.sqrt(np.sum(r**2) / 25))


def test_residual_std_needs_enough_samples():
    with pytest.raises(ValueError, match="n_features \\+ 1"):
        residual_std(np.ones(3), 2)


def test_residual_std_ddof_sets_the_divisor(rng):
    r = rng.normal(size=30)
    assert residual_std(r, 4, ddof=0) == pytest.approx(np.sqrt(np.mean(r**2)))
    assert residual_std(r, 4, ddof=1) == pytest.approx(np.sqrt(np.sum(r**2) / 29))
    # ddof=p+1 is the default, bit for bit
    assert residual_std(r, 4, ddof=5) == residual_std(r, 4)
    with pytest.raises(ValueError, match="ddof = 30"):
        residual_std(r, 4, ddof=30)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="ddof must be"):
            residual_std(r, 4, ddof=bad)


def test_risk_gradient_matches_closed_form_for_a_linear_model(rng):
    X, y = rng.normal(size=(7, 3)), rng.normal(size=7)
    w, b, sigma = rng.normal(size=3), 0.3, 0.8
    r = X @ w + b - y
    B = r.size
    m_plus, m_minus = np.mean((r + sigma) ** 2), np.mean((r - sigma) ** 2)
    # dR/dr_k = 1/4 * [2 (r_k + s) / B * m_minus + m_plus * 2 (r_k - s) / B]
    dr = 0.5 * ((r + sigma) * m_minus + (r - sigma) * m_plus) / B
    wt = torch.as_tensor(w)
    risk, gX, gy = risk_and_grad(
        lambda Z: Z @ wt + b, torch.as_tensor(X), torch.as_tensor(y), sigma
    )
    assert risk == pytest.approx(0.25 * m_plus * m_minus, rel=1e-12)
    np.testing.assert_allclose(gX.numpy(), dr[:, None] * w[None, :], rtol=1e-10)
    np.testing.assert_allclose(gy.numpy(), -dr, rtol=1e-10)


def test_risk_gradient_matches_finite_differences_for_a_network(rng):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
    ).double()
    X, y = torch.as_tensor(rng.normal(size=(5, 2))), torch.as_tensor(rng.normal(size=5))
    sigma = 0.5

    def f(Xa, ya):
        with torch.no_grad():
            return detectability_risk(net(Xa).reshape(-1) - ya, sigma).item()

    _, gX, gy = risk_and_grad(lambda Z: net(Z).reshape(-1), X, y, sigma)
    eps = 1e-6
    for i, j in [(0, 0), (3, 1)]:
        E = torch.zeros_like(X)
        E[i, j] = eps
        fd = (f(X + E, y) - f(X - E, y)) / (2 * eps)
        assert gX[i, j].item() == pytest.approx(fd, rel=1e-6)
    e = torch.zeros_like(y)
    e[2] = eps
    assert gy[2].item() == pytest.approx(
        (f(X, y + e) - f(X, y - e)) / (2 * eps), rel=1e-6
    )


def test_risk_and_grad_leaves_inputs_untouched(rng):
    X, y = torch.as_tensor(rng.normal(size=(3, 2))), torch.as_tensor(rng.normal(size=3))
    X0, y0 = X.clone(), y.clone()
    risk_and_grad(lambda Z: Z.sum(1), X, y, 1.0)
    assert torch.equal(X, X0) and torch.equal(y, y0)
    assert not X.requires_grad and not y.requires_grad
