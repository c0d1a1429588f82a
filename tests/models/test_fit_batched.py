"""fit_batched: k victims of one shape trained at once, as k separate fits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skpoison.exceptions import DivergenceError
from skpoison.models import TorchLinearRegressor, TorchMLPRegressor
from skpoison.models._batched import fit_batched

TOL = 1e-12

MAKERS = {
    "mlp": lambda seed, l2: TorchMLPRegressor(
        hidden_layer_sizes=(5, 3), n_epochs=15, l2=l2, random_state=seed
    ),
    "linear": lambda seed, l2: TorchLinearRegressor(
        n_epochs=15, learning_rate=0.1, l2=l2, random_state=seed
    ),
}


def _data(k, seed, n=25, d=3):
    g = np.random.default_rng(seed)
    return g.normal(size=(k, n, d)), g.normal(size=(k, n))


@settings(max_examples=10, deadline=None)
@given(
    model=st.sampled_from(sorted(MAKERS)),
    k=st.integers(1, 4),
    l2=st.sampled_from([0.0, 0.03]),
    seed=st.integers(0, 2**16),
)
def test_matches_separate_fits(model, k, l2, seed):
    X, y = _data(k, seed)
    batched = fit_batched([MAKERS[model](seed + i, l2) for i in range(k)], X, y)
    for i, est in enumerate(batched):
        one = MAKERS[model](seed + i, l2).fit(X[i], y[i])
        assert np.abs(est.predict(X[i]) - one.predict(X[i])).max() <= TOL
        assert np.abs(np.subtract(est.loss_curve_, one.loss_curve_)).max() <= TOL
        assert est.n_iter_ == one.n_iter_
        assert est.n_features_in_ == one.n_features_in_


def test_inputs_not_modified():
    X, y = _data(2, 0)
    copies = X.copy(), y.copy()
    fit_batched([MAKERS["mlp"](i, 0.0) for i in range(2)], X, y)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(y, copies[1])


def test_rejects_different_parameters():
    X, y = _data(2, 0)
    ests = [MAKERS["mlp"](0, 0.0), MAKERS["mlp"](1, 0.1)]
    with pytest.raises(ValueError, match=r"estimators\[1\] differs"):
        fit_batched(ests, X, y)
    with pytest.raises(ValueError, match=r"estimators\[1\] differs"):
        fit_batched([MAKERS["mlp"](0, 0.0), MAKERS["linear"](0, 0.0)], X, y)


def test_rejects_different_shapes_and_counts():
    g = np.random.default_rng(0)
    X = [g.normal(size=(10, 3)), g.normal(size=(11, 3))]
    y = [g.normal(size=10), g.normal(size=11)]
    ests = [MAKERS["mlp"](i, 0.0) for i in range(2)]
    with pytest.raises(ValueError, match="same shape"):
        fit_batched(ests, X, y)
    with pytest.raises(ValueError, match="one training set per estimator"):
        fit_batched(ests, X[:1], y[:1])
    with pytest.raises(ValueError, match="estimators is empty"):
        fit_batched([], [], [])


def test_divergence_names_the_problem_and_keeps_state():
    X, y = _data(2, 0)
    ests = [
        TorchMLPRegressor(n_epochs=30, learning_rate=0.1, random_state=i)
        for i in range(2)
    ]
    fit_batched(ests, X, y)
    before = [e.predict(X[0]) for e in ests]
    X_bad = X.copy()
    X_bad[1] *= 1e6
    with pytest.raises(DivergenceError, match=r"estimators\[1\]"):
        fit_batched(ests, X_bad, y)
    for e, b in zip(ests, before):
        np.testing.assert_array_equal(e.predict(X[0]), b)
