"""The hypergradient engines: exactness (finite differences), agreement, devices."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from skpoison.attacks._hypergradient import (
    LinearSpectralEngine,
    UnrolledEngine,
    make_engine,
)
from skpoison.exceptions import DivergenceError
from skpoison.models import TorchLinearRegressor, TorchMLPRegressor

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _problem(seed, n=25, d=3, m=9, n_p=4):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d))
    y = X @ g.normal(size=d) + 0.3 * g.normal(size=n)
    Xv = g.normal(size=(m, d))
    yv = Xv @ g.normal(size=d) + 0.3 * g.normal(size=m)
    return X, y, Xv, yv, g.normal(size=(n_p, d)), g.normal(size=n_p)


def _rel(a, b):
    a, b = torch.as_tensor(a).double().cpu(), torch.as_tensor(b).double().cpu()
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def _finite_differences(engine, Xp, yp, eps=1e-6):
    """Central differences of the validation loss in every poison coordinate."""
    f = lambda a, b: float(engine.value(a, b))  # noqa: E731
    gX, gy = np.zeros_like(Xp), np.zeros_like(yp)
    for idx in np.ndindex(*Xp.shape):
        hi, lo = Xp.copy(), Xp.copy()
        hi[idx] += eps
        lo[idx] -= eps
        gX[idx] = (f(hi, yp) - f(lo, yp)) / (2 * eps)
    for i in range(len(yp)):
        hi, lo = yp.copy(), yp.copy()
        hi[i] += eps
        lo[i] -= eps
        gy[i] = (f(Xp, hi) - f(Xp, lo)) / (2 * eps)
    return gX, gy


def _tanh_net(d):
    return nn.Sequential(nn.Linear(d, 4), nn.Tanh(), nn.Linear(4, 1))


ENGINES = {
    "spectral": lambda *a, **k: LinearSpectralEngine(*a, method="eigh", **k),
    "spectral-krylov": lambda *a, **k: LinearSpectralEngine(*a, method="krylov", **k),
    "spectral-torch": lambda *a, **k: LinearSpectralEngine(
        *a, method="eigh", backend="torch", **k
    ),
    "spectral-krylov-torch": lambda *a, **k: LinearSpectralEngine(
        *a, method="krylov", backend="torch", **k
    ),
    "unrolled-linear": lambda *a, **k: UnrolledEngine("linear", *a, **k),
    "unrolled-mlp": lambda *a, **k: UnrolledEngine(
        "mlp", *a, hidden_layer_sizes=(5, 3), random_state=0, **k
    ),
    "unrolled-callable": lambda *a, **k: UnrolledEngine(
        _tanh_net, *a, random_state=0, **k
    ),
}


@pytest.mark.parametrize(
    "name, l2",
    [(name, 0.0) for name in ENGINES]
    + [("spectral", 0.05), ("spectral-krylov", 0.05), ("unrolled-mlp", 0.05)],
)
def test_hypergradient_matches_finite_differences(name, l2):
    X, y, Xv, yv, Xp, yp = _problem(0, n_p=3)
    engine = ENGINES[name](X, y, Xv, yv, n_steps=12, lr=0.2, l2=l2)
    val, gX, gy = engine.value_and_grad(Xp, yp)
    fX, fy = _finite_differences(engine, Xp, yp)
    assert _rel(gX, fX) < 1e-5
    assert _rel(gy, fy) < 1e-5
    assert float(val) == pytest.approx(float(engine.value(Xp, yp)), rel=1e-12)


@st.composite
def linear_problems(draw):
    n = draw(st.integers(1, 30))
    d = draw(st.integers(1, 6))
    n_p = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    g = np.random.default_rng(seed)
    X = g.normal(size=(n + n_p, d))
    # Ill-conditioning: columns on very different scales.
    X *= 10.0 ** g.uniform(-draw(st.integers(0, 4)), 0, size=d)
    kind = draw(st.sampled_from(["plain", "duplicate", "constant", "zero"]))
    if kind == "duplicate" and d > 1:
        X[:, 1] = X[:, 0]  # repeated eigenvalue 0 of Z^T Z (exactly collinear)
    elif kind == "constant":
        X[:, 0] = 1.0  # collinear with the intercept
    elif kind == "zero":
        X[:, -1] = 0.0
    y = g.normal(size=n + n_p)
    Xv, yv = g.normal(size=(7, d)), g.normal(size=7)
    Z = np.column_stack([X, np.ones(n + n_p)])
    lam_max = np.linalg.eigvalsh(Z.T @ Z / (n + n_p))[-1]
    lr = draw(st.floats(0.05, 0.95)) * 2.0 / lam_max
    T = draw(st.integers(1, 60))
    l2 = draw(st.sampled_from([0.0, 0.0, 1e-3]))
    return (X[n_p:], y[n_p:], Xv, yv), (X[:n_p], y[:n_p]), dict(n_steps=T, lr=lr, l2=l2)


@given(
    linear_problems(),
    st.sampled_from(["eigh", "krylov"]),
    st.sampled_from(["numpy", "torch"]),
)
def test_spectral_equals_unrolled(problem, method, backend):
    data, (Xp, yp), kw = problem
    if kw["l2"]:
        # Keep the penalised problem stable too.
        kw["lr"] /= 1.0 + kw["l2"] * kw["lr"]
    engine = LinearSpectralEngine(*data, method=method, backend=backend, **kw)
    fast = engine.value_and_grad(Xp, yp)
    slow = UnrolledEngine("linear", *data, **kw).value_and_grad(Xp, yp)
    assert float(fast[0]) == pytest.approx(float(slow[0]), rel=1e-8, abs=1e-300)
    for a, b in zip(fast[1:], slow[1:]):
        if float(torch.linalg.norm(b)) == 0.0:
            assert float(torch.linalg.norm(a)) <= 1e-12
        else:
            assert _rel(a, b) < 1e-8
    trained = engine.train(Xp, yp)
    np.testing.assert_allclose(
        engine.predict(trained, data[2]).numpy(),
        UnrolledEngine("linear", *data, **kw)
        .predict(UnrolledEngine("linear", *data, **kw).train(Xp, yp), data[2])
        .numpy(),
        rtol=1e-8,
        atol=1e-10,
    )


@pytest.mark.parametrize(
    "engine_cls", ["spectral", "spectral-krylov", "unrolled-linear"]
)
def test_engine_trains_what_the_linear_victim_learns(engine_cls):
    X, y, Xv, yv, Xp, yp = _problem(1)
    engine = ENGINES[engine_cls](X, y, Xv, yv, n_steps=17, lr=0.3)
    params = engine.train(Xp, yp)
    victim = TorchLinearRegressor(learning_rate=0.3, n_epochs=17).fit(
        np.vstack([X, Xp]), np.r_[y, yp]
    )
    pred = engine.predict(params, Xv).cpu().numpy()
    np.testing.assert_allclose(pred, victim.predict(Xv), rtol=1e-10, atol=1e-12)


def test_engine_trains_what_the_mlp_victim_learns():
    # The same integer random_state draws the same paper initialisation in both.
    X, y, Xv, yv, Xp, yp = _problem(2)
    victim = TorchMLPRegressor(
        hidden_layer_sizes=(5, 3), learning_rate=0.1, n_epochs=20, random_state=3
    ).fit(np.vstack([X, Xp]), np.r_[y, yp])
    engine = UnrolledEngine(
        "mlp",
        X,
        y,
        Xv,
        yv,
        n_steps=20,
        lr=0.1,
        hidden_layer_sizes=(5, 3),
        random_state=3,
    )
    pred = engine.predict(engine.train(Xp, yp), Xv).cpu().numpy()
    np.testing.assert_allclose(pred, victim.predict(Xv), rtol=1e-10, atol=1e-12)
    # init_params overrides the draw.
    zeros = [torch.zeros_like(p) for p in engine.init_params]
    other = UnrolledEngine("mlp", X, y, Xv, yv, n_steps=1, lr=0.1, hidden_layer_sizes=(5, 3),
                           init_params=zeros)  # fmt: skip
    assert all(torch.equal(p, q) for p, q in zip(other.init_params, zeros))
    with pytest.raises(ValueError, match="init_params"):
        UnrolledEngine("mlp", X, y, Xv, yv, n_steps=1, lr=0.1, init_params=zeros)


def test_unrolled_objective_is_deterministic():
    X, y, Xv, yv, Xp, yp = _problem(3)
    kw = dict(n_steps=8, lr=0.1, random_state=5)
    a = UnrolledEngine("mlp", X, y, Xv, yv, **kw)
    first = a.value_and_grad(Xp, yp)
    again = a.value_and_grad(Xp, yp)
    other = UnrolledEngine("mlp", X, y, Xv, yv, **kw).value_and_grad(Xp, yp)
    for u, v, w in zip(first, again, other):
        assert torch.equal(u, v) and torch.equal(u, w)
    seed6 = UnrolledEngine("mlp", X, y, Xv, yv, n_steps=8, lr=0.1, random_state=6)
    assert not torch.equal(seed6.value_and_grad(Xp, yp)[1], first[1])


@pytest.mark.parametrize(
    "hidden, l2, slope",
    [((32, 8), 0.0, 0.01), ((5,), 0.05, 0.0), ((6, 4, 3), 0.02, 0.3)],
)
def test_fast_mlp_gradient_equals_plain_autograd(hidden, l2, slope):
    X, y, Xv, yv, Xp, yp = _problem(4)
    kw = dict(
        n_steps=15, lr=0.1, l2=l2, hidden_layer_sizes=hidden,
        negative_slope=slope, random_state=0,
    )  # fmt: skip
    engine = UnrolledEngine("mlp", X, y, Xv, yv, **kw)
    assert engine._slopes is not None  # the hand-written reverse pass runs
    plain = UnrolledEngine("mlp", X, y, Xv, yv, force_autograd=True, **kw)
    # Twice: the second call reuses the engine's tape buffers.
    for _ in range(2):
        for a, b in zip(engine.value_and_grad(Xp, yp), plain.value_and_grad(Xp, yp)):
            assert _rel(a, b) < 1e-10
    # No poison points: the value is still right, the gradients empty.
    a, b = engine.value_and_grad(Xp[:0], yp[:0]), plain.value_and_grad(Xp[:0], yp[:0])
    assert _rel(a[0], b[0]) < 1e-10 and a[1].shape == (0, X.shape[1])


def test_reused_workspace_follows_the_batch_size():
    # The reverse pass keeps its tape (and the poison rows of delta_1) in the
    # engine's workspace: batches of other sizes, in any order, must give what
    # an engine that never saw another batch gives.
    X, y, Xv, yv, Xp, yp = _problem(5, n_p=6)
    kw = dict(n_steps=6, lr=0.1, hidden_layer_sizes=(5, 3), random_state=1)
    engine = UnrolledEngine("mlp", X, y, Xv, yv, **kw)
    for n_p in (6, 2, 0, 6, 3):
        got = engine.value_and_grad(Xp[:n_p], yp[:n_p])
        fresh = UnrolledEngine("mlp", X, y, Xv, yv, **kw)
        want = fresh.value_and_grad(Xp[:n_p], yp[:n_p])
        assert got[1].shape == (n_p, X.shape[1])
        for a, b in zip(got, want):
            assert torch.equal(a, b)
            # The sweeps run in inference mode; the results are ordinary
            # tensors, which the caller may change in place.
            assert not a.is_inference()
            a.mul_(2.0)


def test_negative_leaky_slope_uses_autograd():
    # The reverse pass reads the slope mask off the activation's sign, which
    # needs slope >= 0; other slopes must take the (exact) autograd path.
    X, y, Xv, yv, Xp, yp = _problem(4)
    kw = dict(n_steps=5, lr=0.1, negative_slope=-0.2, random_state=0)
    engine = UnrolledEngine("mlp", X, y, Xv, yv, **kw)
    assert engine._slopes is None
    plain = UnrolledEngine("mlp", X, y, Xv, yv, force_autograd=True, **kw)
    for a, b in zip(engine.value_and_grad(Xp, yp), plain.value_and_grad(Xp, yp)):
        assert _rel(a, b) < 1e-12


def test_divergence_is_an_error_not_nan():
    X, y, Xv, yv, Xp, yp = _problem(5)
    for method, backend in [
        (m, b) for m in ("eigh", "krylov") for b in ("numpy", "torch")
    ]:
        engine = LinearSpectralEngine(
            X, y, Xv, yv, n_steps=10, lr=50.0, method=method, backend=backend
        )
        with pytest.raises(DivergenceError, match="lambda_max"):
            engine.value_and_grad(Xp, yp)
        with pytest.raises(DivergenceError, match="lambda_max"):
            engine.train(Xp, yp)
    with pytest.raises(DivergenceError, match="diverged"):
        UnrolledEngine("linear", X, y, Xv, yv, n_steps=2000, lr=50.0).value_and_grad(
            Xp, yp
        )


def test_make_engine_choices_and_errors():
    X, y, Xv, yv, Xp, yp = _problem(6)
    kw = dict(n_steps=3, lr=0.1)
    assert isinstance(make_engine("linear", X, y, Xv, yv, **kw), LinearSpectralEngine)
    assert isinstance(
        make_engine("linear", X, y, Xv, yv, engine="unrolled", **kw), UnrolledEngine
    )
    assert isinstance(make_engine("mlp", X, y, Xv, yv, **kw), UnrolledEngine)
    with pytest.raises(ValueError, match="spectral"):
        make_engine("mlp", X, y, Xv, yv, engine="spectral", **kw)
    with pytest.raises(ValueError, match="engine"):
        make_engine("linear", X, y, Xv, yv, engine="fast", **kw)
    with pytest.raises(ValueError, match="model"):
        make_engine("svm", X, y, Xv, yv, **kw)
    with pytest.raises(ValueError, match="method"):
        LinearSpectralEngine(X, y, Xv, yv, method="qr", **kw)
    with pytest.raises(ValueError, match="backend"):
        LinearSpectralEngine(X, y, Xv, yv, backend="jax", **kw)
    engine = make_engine("linear", X, y, Xv, yv, **kw)
    with pytest.raises(ValueError, match="X_p"):
        engine.value_and_grad(Xp[:, :2], yp)
    with pytest.raises(ValueError, match="X_val"):
        make_engine("linear", X, y, Xv[:, :2], yv, **kw)
    with pytest.raises(ValueError, match="empty"):
        make_engine("linear", X[:0], y[:0], Xv, yv, **kw).value_and_grad(Xp[:0], yp[:0])
    with pytest.raises(ValueError, match="NaN"):
        make_engine("linear", X, np.r_[np.nan, y[1:]], Xv, yv, **kw)


@pytest.mark.parametrize("name", ["spectral", "unrolled-mlp"])
def test_inputs_untouched_and_predict_differentiable(name):
    X, y, Xv, yv, Xp, yp = _problem(7)
    copies = [a.copy() for a in (X, y, Xv, yv, Xp, yp)]
    engine = ENGINES[name](X, y, Xv, yv, n_steps=5, lr=0.1)
    Xt = torch.tensor(Xp, requires_grad=True)
    engine.value_and_grad(Xt, torch.tensor(yp))
    assert Xt.grad is None
    params = engine.train(Xp, yp)
    engine.predict(params, Xt).sum().backward()
    assert Xt.grad is not None and Xt.grad.shape == Xp.shape
    for a, b in zip(copies, (X, y, Xv, yv, Xp, yp)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(ENGINES))
def test_devices_agree(name, device):
    X, y, Xv, yv, Xp, yp = _problem(8)
    ref = ENGINES[name](X, y, Xv, yv, n_steps=10, lr=0.2).value_and_grad(Xp, yp)
    got = ENGINES[name](X, y, Xv, yv, n_steps=10, lr=0.2, device=device)
    out = got.value_and_grad(torch.tensor(Xp, device=device), yp)
    assert all(t.device.type == device for t in out)
    assert out[0].shape == () and out[1].shape == Xp.shape and out[2].shape == yp.shape
    for a, b in zip(out, ref):
        assert _rel(a, b) < 1e-10
    f32 = ENGINES[name](
        X, y, Xv, yv, n_steps=10, lr=0.2, device=device, dtype=torch.float32
    )
    out32 = f32.value_and_grad(Xp, yp)
    assert all(t.dtype == torch.float32 for t in out32)
    assert _rel(out32[1], ref[1]) < 1e-3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error():
    X, y, Xv, yv, _, _ = _problem(9)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        LinearSpectralEngine(X, y, Xv, yv, n_steps=3, lr=0.1, device="cuda")


def test_host_algebra_with_device_data_path():
    # On CUDA the p x p algebra runs in NumPy on the host while the poison
    # products stay in torch on the device; emulate that split on the CPU.
    from skpoison.attacks._hypergradient import _TorchOps

    X, y, Xv, yv, Xp, yp = _problem(10)
    kw = dict(n_steps=9, lr=0.2, l2=0.01)
    ref = LinearSpectralEngine(X, y, Xv, yv, backend="torch", **kw)
    for method in ("eigh", "krylov"):
        split = LinearSpectralEngine(X, y, Xv, yv, backend="numpy", method=method, **kw)
        split._data_ops = _TorchOps
        split._Ab0 = torch.as_tensor(split._Ab0)
        got, want = split.value_and_grad(Xp, yp), ref.value_and_grad(Xp, yp)
        assert all(isinstance(t, torch.Tensor) for t in got)
        for a, b in zip(got, want):
            assert _rel(a, b) < 1e-12
        w = split.train(Xp, yp)
        torch.testing.assert_close(w["weight"], ref.train(Xp, yp)["weight"])


def test_small_cpu_threads_limits_and_restores_blas_threads():
    # The spectral engine runs NumPy's BLAS on one thread within a call and
    # must leave the caller's setting as it was, from the main thread (direct
    # OpenBLAS calls) and from another thread (threadpoolctl's safe path).
    import threading

    from threadpoolctl import threadpool_info

    from skpoison.attacks._hypergradient import _small_cpu_threads

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    seen = {}

    def run(key):
        with _small_cpu_threads(torch.device("cpu"), blas=True, torch_=False):
            seen[key] = blas_threads()
        seen[key + "_after"] = blas_threads()

    run("main")
    worker = threading.Thread(target=run, args=("worker",))
    worker.start()
    worker.join()
    assert all(n == 1 for n in seen["main"])
    assert seen["main_after"] == before and blas_threads() == before
    assert seen["worker_after"] == before


# ------------------------------------------------- spectral engine for any T
def _exact_sums(x, T):
    """phi(mu) and its divided differences by exact rational arithmetic."""
    from fractions import Fraction

    mu = [1 - Fraction(float(v)) for v in x]
    phi = np.array([float(sum(m**k for k in range(T))) for m in mu])
    D = np.array(
        [
            [float(sum(a**s * b ** (k - 1 - s) for k in range(1, T) for s in range(k)))
             for b in mu]
            for a in mu
        ]
    )  # fmt: skip
    return phi, D


@pytest.mark.parametrize("T", [1, 2, 3, 7, 40])
def test_closed_form_sums_are_exact(T):
    from skpoison.attacks._hypergradient import _geometric_sums

    # Zero, equal, nearly equal, tiny, near-one (mu ~ 0) and negative-mu steps.
    x = np.array([0.0, 1e-12, 1e-12 + 1e-20, 1e-9, 3e-3, 0.01, 0.0101, 0.3,
                  0.30000001, 0.9999, 1.0, 1.0001, 1.5, 1.5 + 1e-9, 1.99, -1e-15])  # fmt: skip
    phi, D = _geometric_sums(x, T)
    phi_e, D_e = _exact_sums(x, T)
    np.testing.assert_allclose(phi, phi_e, rtol=1e-13)
    assert np.abs(D - D_e).max() <= 1e-13 * max(np.abs(D_e).max(), 1.0)


@given(st.lists(st.floats(0, 1.999), min_size=1, max_size=6), st.integers(1, 600))
def test_closed_form_sums_equal_the_power_sums(x, T):
    from skpoison.attacks._hypergradient import _geometric_sums

    x = np.asarray(x)
    V = np.cumprod(np.vstack([np.ones_like(x), np.tile(1 - x, (T - 1, 1))]), axis=0)
    idx = np.arange(T - 1)
    K = (idx[:, None] + idx[None, :] <= T - 2).astype(float)
    phi, D = _geometric_sums(x, T)
    D_ref = V[:-1].T @ K @ V[:-1]
    np.testing.assert_allclose(phi, V.sum(0), rtol=1e-10)
    assert np.abs(D - D_ref).max() <= 1e-10 * max(np.abs(D_ref).max(), 1.0)


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("T", [1, 2, 40, 1000])
def test_spectral_any_T_equals_unrolled(T, closed, monkeypatch):
    from skpoison.attacks import _hypergradient

    if closed:
        monkeypatch.setattr(_hypergradient, "_POWER_SUMS_MAX_T", 0)
    X, y, Xv, yv, Xp, yp = _problem(3, d=3)
    X[:, 1] = X[:, 0]  # a zero eigenvalue
    Xp[:, 1] = Xp[:, 0]
    args = (X, y, Xv, yv)
    fast = LinearSpectralEngine(*args, n_steps=T, lr=0.1, method="eigh")
    slow = UnrolledEngine("linear", *args, n_steps=T, lr=0.1)
    a, b = fast.value_and_grad(Xp, yp), slow.value_and_grad(Xp, yp)
    for u, v in zip(a, b):
        assert _rel(u, v) < 1e-8


def test_spectral_a_million_steps_equals_krylov_sums():
    X, y, Xv, yv, Xp, yp = _problem(4, d=2)
    args = (X, y, Xv, yv)
    kw = dict(n_steps=10**6, lr=0.1)
    eigh = LinearSpectralEngine(*args, method="eigh", **kw)
    assert "K" not in eigh._stats  # nothing of size T
    krylov = LinearSpectralEngine(*args, method="krylov", **kw)
    a, b = eigh.value_and_grad(Xp, yp), krylov.value_and_grad(Xp, yp)
    for u, v in zip(a, b):
        assert _rel(u, v) < 1e-8
    # A million steps from zero reach the least-squares solution.
    Z = np.column_stack([np.vstack([X, Xp]), np.ones(len(y) + len(yp))])
    w_ls = np.linalg.lstsq(Z, np.r_[y, yp], rcond=None)[0]
    p = eigh.train(Xp, yp)
    w = np.r_[p["weight"].numpy().ravel(), p["bias"].numpy()]
    np.testing.assert_allclose(w, w_ls, rtol=1e-9)
