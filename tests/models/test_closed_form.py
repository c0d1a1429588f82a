"""The T-step GD linear victim in closed form is the loop's model, errors included."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from skpoison.exceptions import DivergenceError
from skpoison.models import TorchLinearRegressor
from skpoison.models._closed_form import _geometric_phi, gd_closed_form


def _pair(**params):
    return (
        TorchLinearRegressor(solver="closed_form", **params),
        TorchLinearRegressor(solver="gd", **params),
    )


def _lam_max(X, l2):
    Z = np.column_stack([X, np.ones(len(X))])
    H = Z.T @ Z / len(X) + l2 * np.diag([1.0] * X.shape[1] + [0.0])
    return np.linalg.eigvalsh(H)[-1]


@given(
    n=st.integers(2, 50),
    d=st.integers(1, 8),
    n_epochs=st.integers(1, 300),
    step=st.floats(0.01, 0.99),
    l2=st.sampled_from([0.0, 0.1]),
    offset=st.floats(-3.0, 3.0),
    seed=st.integers(0, 2**16),
)
# 264 steps of the loop round to 1.0009e-13 from the closed form
@example(n=2, d=8, n_epochs=264, step=0.5, l2=0.0, offset=0.5, seed=2)
def test_closed_form_is_the_gradient_descent_loop(
    n, d, n_epochs, step, l2, offset, seed
):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + offset  # not centred: the intercept matters
    if d > 1 and seed % 3 == 0:
        X[:, 1] = X[:, 0]  # a zero eigenvalue
    y = X @ rng.normal(size=d) + 2.0 + rng.normal(size=n)
    lr = step * 2.0 / _lam_max(X, l2)
    fast, slow = _pair(learning_rate=lr, n_epochs=n_epochs, l2=l2)
    fast.fit(X, y)
    slow.fit(X, y)
    w_fast = np.r_[fast.coef_, fast.intercept_]
    w_slow = np.r_[slow.coef_, slow.intercept_]
    scale = max(np.abs(w_slow).max(), 1e-300)
    # The loop's rounding error grows with its number of steps (hypothesis
    # found 1.0009e-13 after 264 steps); the closed form's does not.
    tol = max(1e-13, 1e-15 * n_epochs)
    assert np.abs(w_fast - w_slow).max() <= tol * max(scale, 1.0)
    curve_fast, curve_slow = np.array(fast.loss_curve_), np.array(slow.loss_curve_)
    assert curve_fast.shape == curve_slow.shape == (n_epochs,)
    assert curve_fast[0] == curve_slow[0]
    assert np.abs(curve_fast - curve_slow).max() <= tol * curve_slow[0]
    np.testing.assert_allclose(fast.predict(X), slow.predict(X), rtol=0, atol=1e-12 * (
        1.0 + np.abs(slow.predict(X)).max()))  # fmt: skip


def _error(est, X, y):
    with pytest.raises(DivergenceError) as info:
        est.fit(X, y)
    return str(info.value)


@pytest.mark.parametrize(
    "case",
    ["step", "huge_X", "huge_y", "step_with_l2"],
)
def test_closed_form_raises_the_loops_divergence_error(case, rng):
    X = rng.normal(size=(30, 3))
    y = rng.normal(size=30)
    params = {"learning_rate": 0.1, "n_epochs": 20}
    if case == "step":
        params["learning_rate"] = 2.0 / _lam_max(X, 0.0)  # exactly at the limit
    elif case == "huge_X":
        X = X * 1e160
    elif case == "huge_y":
        y = y * 1e160
    else:
        params.update(l2=50.0, learning_rate=0.05)
    fast, slow = _pair(**params)
    assert _error(fast, X, y) == _error(slow, X, y)


def test_closed_form_ok_where_the_loop_is(rng):
    X = rng.normal(size=(30, 3))
    y = rng.normal(size=30)
    lr = 1.999 * 2.0 / _lam_max(X, 0.0) / 2.0  # just inside the limit
    fast, slow = _pair(learning_rate=lr, n_epochs=500)
    np.testing.assert_allclose(
        fast.fit(X, y).coef_, slow.fit(X, y).coef_, rtol=1e-10, atol=1e-12
    )


def test_solver_is_validated(rng):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="solver"):
        TorchLinearRegressor(solver="lbfgs").fit(rng.normal(size=(5, 1)), np.ones(5))


@given(
    x=st.lists(st.floats(-1e-12, 1.999), min_size=1, max_size=5),
    T=st.lists(st.integers(1, 400), min_size=1, max_size=4),
)
def test_geometric_phi_with_an_array_of_steps_is_the_scalar_one(x, T):
    x = np.asarray(x)
    T = np.asarray(T)
    both = _geometric_phi(x[None, :], T[:, None])
    for i, t in enumerate(T):
        np.testing.assert_array_equal(both[i], _geometric_phi(x, int(t)))


def test_gd_closed_form_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(6, 4))
    H, g = A.T @ A / 6, rng.normal(size=4)
    lr = 1.5 / np.linalg.eigvalsh(H)[-1]
    w, _ = gd_closed_form(H, g, lr, 57)
    v = np.zeros(4)
    for _ in range(57):
        v = v - lr * (H @ v - g)
    np.testing.assert_allclose(w, v, rtol=1e-12, atol=1e-14)
