"""BatchedUnrolledEngine: k problems in one call agree with k separate calls."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skpoison.attacks._batched import BatchedUnrolledEngine
from skpoison.attacks._hypergradient import UnrolledEngine
from skpoison.exceptions import DivergenceError

TOL = 1e-12


def _problems(k, *, n=30, m=8, d=3, n_p=4, hidden=(5, 3), l2=0.0, T=6, seed=0):
    """k engines on different data and initialisations, and their poison batches."""
    g = np.random.default_rng(seed)
    engines, Xp, yp = [], [], []
    for i in range(k):
        X, y = g.normal(size=(n, d)), g.normal(size=n)
        Xv, yv = g.normal(size=(m, d)), g.normal(size=m)
        engines.append(
            UnrolledEngine(
                "mlp", X, y, Xv, yv, n_steps=T, lr=0.1, l2=l2,
                hidden_layer_sizes=hidden, random_state=seed + i,
            )
        )  # fmt: skip
        Xp.append(g.normal(size=(n_p, d)))
        yp.append(g.normal(size=n_p))
    return engines, np.stack(Xp), np.stack(yp)


def _max_diff(a, b):
    diff = (torch.as_tensor(a) - torch.as_tensor(b)).abs()
    return float(diff.max()) if diff.numel() else 0.0


@settings(max_examples=12, deadline=None)
@given(
    k=st.integers(1, 4),
    hidden=st.sampled_from([(4,), (5, 3), (6, 4, 2)]),
    l2=st.sampled_from([0.0, 0.05]),
    n_p=st.sampled_from([0, 1, 5]),
    seed=st.integers(0, 2**16),
)
def test_value_and_grad_matches_one_at_a_time(k, hidden, l2, n_p, seed):
    engines, Xp, yp = _problems(k, hidden=hidden, l2=l2, n_p=n_p, seed=seed)
    val, gX, gy = BatchedUnrolledEngine(engines).value_and_grad(Xp, yp)
    assert val.shape == (k,) and gX.shape == Xp.shape and gy.shape == yp.shape
    for i, e in enumerate(engines):
        v1, gX1, gy1 = e.value_and_grad(Xp[i], yp[i])
        assert _max_diff(val[i], v1) <= TOL
        assert _max_diff(gX[i], gX1) <= TOL
        assert _max_diff(gy[i], gy1) <= TOL


def test_problems_are_independent():
    """Changing one problem's poison points changes only its own results."""
    engines, Xp, yp = _problems(3)
    batched = BatchedUnrolledEngine(engines)
    before = batched.value_and_grad(Xp, yp)
    Xp2 = Xp.copy()
    Xp2[1] += 1.0
    after = batched.value_and_grad(Xp2, yp)
    for i in (0, 2):
        assert _max_diff(before[1][i], after[1][i]) == 0
    assert _max_diff(before[1][1], after[1][1]) > 0


@pytest.mark.parametrize("k", [1, 3])
def test_value_and_train_match_one_at_a_time(k):
    engines, Xp, yp = _problems(k, l2=0.01)
    batched = BatchedUnrolledEngine(engines)
    vals = batched.value(Xp, yp)
    params = batched.train(Xp, yp)
    for i, e in enumerate(engines):
        assert _max_diff(vals[i], e.value(Xp[i], yp[i])) <= TOL
        for p, q in zip(params, e.train(Xp[i], yp[i])):
            assert _max_diff(p[i], q) <= TOL


def test_inputs_not_modified():
    engines, Xp, yp = _problems(2)
    Xp_t, yp_t = torch.tensor(Xp), torch.tensor(yp)
    copies = Xp_t.clone(), yp_t.clone()
    BatchedUnrolledEngine(engines).value_and_grad(Xp_t, yp_t)
    assert torch.equal(Xp_t, copies[0]) and torch.equal(yp_t, copies[1])


def test_rejects_mismatched_shapes():
    a, _, _ = _problems(1, n=30)
    b, _, _ = _problems(1, n=31)
    with pytest.raises(ValueError, match=r"engines\[1\] does not have the shape"):
        BatchedUnrolledEngine(a + b)
    with pytest.raises(ValueError, match="engines is empty"):
        BatchedUnrolledEngine([])


def test_rejects_engines_without_the_reverse_pass():
    X, y = np.ones((6, 2)), np.zeros(6)
    linear = UnrolledEngine("linear", X, y, X, y, n_steps=2, lr=0.1)
    with pytest.raises(TypeError, match="Linear/LeakyReLU chain"):
        BatchedUnrolledEngine([linear])


def test_rejects_wrong_number_of_batches():
    engines, Xp, yp = _problems(2)
    with pytest.raises(ValueError, match="one batch per problem"):
        BatchedUnrolledEngine(engines).value_and_grad(Xp[:1], yp[:1])


def test_divergence_raises():
    engines, Xp, yp = _problems(2, T=40)
    with pytest.raises(DivergenceError):
        BatchedUnrolledEngine(engines).value_and_grad(Xp * 1e80, yp * 1e80)


# ------------------------------------------------- torch threads per problem size
@pytest.mark.parametrize("batched", [False, True])
def test_engine_runs_small_problems_on_one_thread_and_restores(
    two_threads, monkeypatch, batched
):
    import skpoison.attacks._hypergradient as hg

    seen = []
    real = hg._chain_value_and_grad

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(hg, "_chain_value_and_grad", spy)
    engines, Xp, yp = _problems(2)
    if batched:
        BatchedUnrolledEngine(engines).value_and_grad(Xp, yp)
    else:
        engines[0].value_and_grad(Xp[0], yp[0])
    assert seen == [1]
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("batched", [False, True])
def test_thread_count_restored_on_error(two_threads, batched):
    engines, Xp, yp = _problems(2, T=40)
    with pytest.raises(DivergenceError):
        if batched:
            BatchedUnrolledEngine(engines).value_and_grad(Xp * 1e80, yp * 1e80)
        else:
            engines[0].value_and_grad(Xp[0] * 1e80, yp[0] * 1e80)
    assert torch.get_num_threads() == 2


def test_generic_path_restores_threads(two_threads):
    X, y = np.random.default_rng(0).normal(size=(10, 2)), np.zeros(10)
    eng = UnrolledEngine("linear", X, y, X, y, n_steps=3, lr=0.1)
    eng.value_and_grad(X[:2], y[:2])
    eng.train(X[:2], y[:2])
    assert torch.get_num_threads() == 2
