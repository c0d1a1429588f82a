"""The training convention: Eq. (1), full-batch steps, paper init, divergence."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from skpoison.exceptions import DivergenceError
from skpoison.models._training import (
    THREAD_WORK,
    build_mlp,
    chain_thread_count,
    check_linear_stability,
    check_loss_curve,
    gradient_descent,
    init_paper_params,
    loss_and_grad_fn,
    squared_loss,
    torch_threads,
)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_squared_loss_has_the_half():
    pred, y = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    assert float(squared_loss(pred, y)) == pytest.approx(1.0)  # (4 + 0) / (2 * 2)


def test_linear_step_is_the_papers_update(rng):
    X = torch.tensor(rng.normal(size=(12, 3)))
    y = torch.tensor(rng.normal(size=12))
    w0 = torch.tensor(rng.normal(size=4))
    module = build_mlp(3, ()).double()
    params = [w0[:3].reshape(1, 3), w0[3:]]
    (W, b), _ = gradient_descent(
        loss_and_grad_fn(module), params, X, y, n_steps=1, lr=0.3
    )
    Z = torch.cat([X, torch.ones(12, 1, dtype=X.dtype)], dim=1)
    expected = w0 - 0.3 / 12 * Z.T @ (Z @ w0 - y)
    torch.testing.assert_close(
        torch.cat([W.reshape(-1), b]), expected, rtol=1e-12, atol=1e-14
    )


@given(
    hidden=st.lists(st.integers(1, 5), min_size=0, max_size=2),
    n=st.integers(1, 15),
    l2=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_hand_written_gradient_equals_autograd(hidden, n, l2, seed):
    g = np.random.default_rng(seed)
    module = build_mlp(3, hidden, 0.05).double()
    init_paper_params(module, generator=torch.Generator().manual_seed(seed))
    params = [p + 0.1 * torch.tensor(g.normal(size=p.shape)) for p in _params(module)]
    X, y = torch.tensor(g.normal(size=(n, 3))), torch.tensor(g.normal(size=n))
    fast = loss_and_grad_fn(module)(params, X, y, l2)
    ref = loss_and_grad_fn(module, force_autograd=True)(params, X, y, l2)
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-12, atol=1e-14)
    for a, b in zip(fast[1], ref[1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_paper_initialisation():
    lin = init_paper_params(build_mlp(5, ()))
    assert all(float(p.detach().abs().sum()) == 0.0 for p in lin.parameters())
    mlp = init_paper_params(
        build_mlp(5, (32, 8)), generator=torch.Generator().manual_seed(0)
    )
    for layer in (mlp[0], mlp[2], mlp[4]):
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert float(layer.weight.detach().abs().max()) <= bound
        assert float(layer.weight.detach().abs().max()) > 0.5 * bound
        assert torch.all(layer.bias.detach() == 1e-2)
    again = init_paper_params(
        build_mlp(5, (32, 8)), generator=torch.Generator().manual_seed(0)
    )
    for a, b in zip(mlp.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_stability_condition_is_exact():
    # Z^T Z / n = I for these points: GD diverges iff lr >= 2.
    X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    assert check_linear_stability(X, 1.99) == pytest.approx(1.0)
    with pytest.raises(DivergenceError, match="learning_rate"):
        check_linear_stability(X, 2.0)


def test_loss_curve_checks():
    check_loss_curve(torch.tensor([3.0, 2.0, 2.5]))
    with pytest.raises(DivergenceError, match="non-finite at step 1"):
        check_loss_curve(torch.tensor([1.0, float("inf")]))
    with pytest.raises(DivergenceError, match="grew"):
        check_loss_curve(torch.tensor([1.0, 1e12]))


def test_gradient_descent_does_not_modify_inputs(rng):
    module = build_mlp(2, (3,)).double()
    params = _params(module)
    before = [p.clone() for p in params]
    X, y = torch.tensor(rng.normal(size=(5, 2))), torch.tensor(rng.normal(size=5))
    gradient_descent(loss_and_grad_fn(module), params, X, y, n_steps=3, lr=0.1)
    for a, b in zip(params, before):
        assert torch.equal(a, b)


# ------------------------------------------------------ k trainings at once
@given(
    hidden=st.lists(st.integers(1, 5), min_size=0, max_size=2),
    k=st.integers(1, 4),
    l2=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_batched_gradient_descent_matches_separate_runs(hidden, k, l2, seed):
    g = torch.Generator().manual_seed(seed)
    module = build_mlp(3, hidden).double()
    f = loss_and_grad_fn(module)
    X = torch.randn(k, 9, 3, generator=g, dtype=torch.float64)
    y = torch.randn(k, 9, generator=g, dtype=torch.float64)
    inits = [
        _params(init_paper_params(build_mlp(3, hidden).double(), generator=g))
        for _ in range(k)
    ]
    stacked = [torch.stack(ps) for ps in zip(*inits)]
    params, losses = gradient_descent(f, stacked, X, y, n_steps=5, lr=0.1, l2=l2)
    assert losses.shape == (5, k)
    for i in range(k):
        one, curve = gradient_descent(f, inits[i], X[i], y[i], n_steps=5, lr=0.1, l2=l2)
        torch.testing.assert_close(losses[:, i], curve, rtol=0, atol=1e-12)
        for p, q in zip(params, one):
            torch.testing.assert_close(p[i], q, rtol=0, atol=1e-12)


def test_check_loss_curve_checks_every_column():
    good = torch.tensor([1.0, 0.5, 0.25])
    check_loss_curve(torch.stack([good, good], dim=1))
    bad = torch.tensor([1.0, float("nan"), 0.25])
    with pytest.raises(DivergenceError, match="non-finite"):
        check_loss_curve(torch.stack([good, bad], dim=1))


# ------------------------------------------------------------- torch threads
def test_torch_threads_sets_and_restores(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2


def test_torch_threads_restores_on_error(two_threads):
    with pytest.raises(RuntimeError, match="boom"):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_chain_thread_count(two_threads):
    # The paper's shapes (Heart, Loan) are small: one thread.
    assert chain_thread_count(1599, 28, 32) == 1
    assert chain_thread_count(3361, 88, 32) == 1
    # Large products earn threads, never more than torch has.
    n = int(4 * THREAD_WORK / (2 * 29 * 32))
    assert chain_thread_count(n, 28, 32) == 2
    assert chain_thread_count(n, 28, 32, "meta") is None


def test_victim_fit_restores_threads(two_threads):
    from skpoison.models import TorchMLPRegressor

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.zeros(20)
    TorchMLPRegressor(n_epochs=3).fit(X, y)
    assert torch.get_num_threads() == 2
