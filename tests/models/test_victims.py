"""TorchLinearRegressor and TorchMLPRegressor: behaviour beyond the common checks."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skpoison.exceptions import DivergenceError
from skpoison.models import TorchLinearRegressor, TorchMLPRegressor, build_mlp

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def data(rng):
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=40)
    return X, y


def test_linear_one_epoch_from_zero_is_the_papers_step(data):
    X, y = data
    reg = TorchLinearRegressor(learning_rate=0.3, n_epochs=1).fit(X, y)
    Z = np.column_stack([X, np.ones(len(X))])
    w1 = 0.3 / len(X) * Z.T @ y  # w0 = 0, so w1 = (eta / n) Z^T y
    np.testing.assert_allclose(reg.coef_, w1[:3], rtol=1e-12)
    assert reg.intercept_ == pytest.approx(w1[3], rel=1e-12)
    assert reg.loss_curve_[0] == pytest.approx(0.5 * np.mean(y**2), rel=1e-12)


def test_linear_converges_to_least_squares(data):
    X, y = data
    reg = TorchLinearRegressor(learning_rate=0.5, n_epochs=2000).fit(X, y)
    Z = np.column_stack([X, np.ones(len(X))])
    w, *_ = np.linalg.lstsq(Z, y, rcond=None)
    np.testing.assert_allclose(np.r_[reg.coef_, reg.intercept_], w, rtol=1e-8)
    np.testing.assert_allclose(reg.predict(X), Z @ w, rtol=1e-7, atol=1e-9)


def test_linear_divergence_raises_a_clear_error(data):
    X, y = data
    with pytest.raises(
        DivergenceError, match=r"learning_rate=50\.0 diverges.*Use learning_rate <"
    ):
        TorchLinearRegressor(learning_rate=50.0).fit(X, y)


def test_mlp_divergence_raises_instead_of_nan(data):
    X, y = data
    with pytest.raises(DivergenceError, match="diverged"):
        TorchMLPRegressor(learning_rate=50.0, n_epochs=200, random_state=0).fit(
            100 * X, y
        )


def test_mlp_architecture_and_rebuild(data):
    X, y = data
    reg = TorchMLPRegressor(n_epochs=20, random_state=0).fit(X, y)
    shapes = [tuple(p.shape) for p in reg.module_.parameters()]
    assert shapes == [(32, 3), (32,), (8, 32), (8,), (1, 8), (1,)]
    rebuilt = build_mlp(3, reg.hidden_layer_sizes, reg.negative_slope).double()
    rebuilt.load_state_dict(reg.module_.state_dict())
    with torch.no_grad():
        out = rebuilt(torch.tensor(X)).reshape(-1).numpy()
    np.testing.assert_array_equal(out, reg.predict(X))
    # torch.func works on the fitted module (SEVER's per-sample gradients).
    params = dict(reg.module_.named_parameters())
    grads = torch.func.vmap(
        torch.func.grad(
            lambda p, x: torch.func.functional_call(reg.module_, p, (x[None],)).sum()
        ),
        in_dims=(None, 0),
    )(params, torch.tensor(X))
    assert grads["0.weight"].shape == (40, 32, 3)


def test_mlp_reproducible_and_seed_dependent(data):
    X, y = data
    a = TorchMLPRegressor(n_epochs=10, random_state=1).fit(X, y).predict(X)
    b = TorchMLPRegressor(n_epochs=10, random_state=1).fit(X, y).predict(X)
    c = TorchMLPRegressor(n_epochs=10, random_state=2).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize(
    "est",
    [TorchLinearRegressor(n_epochs=5), TorchMLPRegressor(n_epochs=5, random_state=0)],
)
def test_clone_pickle_joblib_round_trip(est, data, tmp_path):
    X, y = data
    assert clone(est).get_params() == est.get_params()
    fitted = clone(est).fit(X, y)
    expected = fitted.predict(X)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(fitted)).predict(X), expected
    )
    joblib.dump(fitted, tmp_path / "m.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "m.joblib").predict(X), expected
    )


def test_grid_search_over_learning_rate(data):
    X, y = data
    search = GridSearchCV(
        TorchLinearRegressor(n_epochs=30), {"learning_rate": [0.01, 0.5]}, cv=3
    ).fit(X, y)
    assert search.best_params_ == {"learning_rate": 0.5}


def test_does_not_modify_inputs(data):
    X, y = data
    X0, y0 = X.copy(), y.copy()
    TorchMLPRegressor(n_epochs=3, random_state=0).fit(X, y).predict(X)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error(data):
    X, y = data
    with pytest.raises(ValueError, match="no CUDA GPU"):
        TorchLinearRegressor(device="cuda").fit(X, y)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", [TorchLinearRegressor, TorchMLPRegressor])
def test_devices_and_dtypes_agree(cls, device, data):
    X, y = data
    ref = cls(n_epochs=15, random_state=0).fit(X, y).predict(X)
    got = cls(n_epochs=15, random_state=0, device=device).fit(X, y)
    np.testing.assert_allclose(got.predict(X), ref, rtol=1e-10, atol=1e-12)
    assert next(got.module_.parameters()).device.type == "cpu"
    f32 = cls(n_epochs=15, random_state=0, device=device, dtype="float32").fit(X, y)
    np.testing.assert_allclose(f32.predict(X), ref, rtol=1e-4, atol=1e-4)
