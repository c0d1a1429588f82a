"""Numerical faults: divergent gradient descent and near-singular X^T X.

Divergence. Fixed-step gradient descent diverges when the step is too large
for the data. Guarantee: the victims and the attack raise
:class:`~skpoison.exceptions.DivergenceError` (a ``ValueError``) naming the
learning rate, leave no half-fitted state behind, and never return NaN or inf
poison points; wherever they return, every poison point is finite and inside
the feasible box. ``poisoning_curve`` recovers: a diverging victim becomes a
row with ``diverged=True`` and NaN NMSE, and the study goes on.

Near-singular X^T X (duplicated columns, an all-zero column, nearly collinear
columns, fewer samples than features): every defense returns finite masks,
scores and predictions, rejects the number of points it promises, and the
least-squares ones (TRIM, Proda) fit the same values as on the de-duplicated
data (the minimum-norm solution).
"""

from __future__ import annotations

import numpy as np
import pytest
from reliability_helpers import assert_finite_outputs, record
from reliability_subjects import BY_NAME, make_data

from skpoison.exceptions import DivergenceError

LRS = [0.3, 1.5, 3.0, 30.0]  # converges, near the edge (per model), diverges


def _attack(model, lr, **kw):
    from skpoison.attacks import StealthyPoisoner

    params = dict(
        hidden_layer_sizes=(4,), n_inner_steps=10, n_outer_steps=5, batch_size=3,
        device="cpu", random_state=0,
    )  # fmt: skip
    return StealthyPoisoner(0.15, model=model, inner_lr=lr, **{**params, **kw})


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("lr", LRS)
def test_attack_diverges_loudly_or_returns_feasible_points(model, lr):
    from sklearn.exceptions import NotFittedError

    X, y = make_data(40)
    X[:, 0] *= 3.0  # a wider spectrum: some learning rates cross the edge
    attack = _attack(model, lr)
    try:
        attack.fit(X, y)
    except DivergenceError as exc:
        record("StealthyPoisoner", "inner learning rate", "DivergenceError")
        assert f"inner_lr (now {lr})" in str(exc)
        with pytest.raises(NotFittedError):
            attack.resample_at()
        return
    record("StealthyPoisoner", "inner learning rate", "finite")
    low, high = attack.bounds_
    Xp, yp = attack.X_poison_, attack.y_poison_
    assert np.isfinite(Xp).all() and np.isfinite(yp).all()
    assert ((Xp >= low[:-1]) & (Xp <= high[:-1])).all()
    assert ((yp >= low[-1]) & (yp <= high[-1])).all()
    for h in attack.history_:
        assert all(np.isfinite(v).all() for v in h.values())


def test_attack_divergence_boundary_is_the_stability_condition():
    """For the linear model, divergence is raised exactly when eta * lambda_max >= 2."""
    X, y = make_data(40)
    n_tr = X.shape[0]  # every row is a training row of the inner problem
    Z = np.column_stack([X, np.ones(n_tr)])
    lam = np.linalg.eigvalsh(Z.T @ Z / n_tr)[-1]
    # Poison points move within the box, so the bound is checked on the clean
    # set that the first batch starts from: just below it must not raise.
    _attack("linear", 0.9 * 2.0 / lam, n_outer_steps=0).fit(X, y)
    with pytest.raises(DivergenceError, match="inner_lr"):
        _attack("linear", 1.01 * 2.0 / lam, n_outer_steps=0).fit(X, y)


@pytest.mark.parametrize("name", ["TorchLinearRegressor", "TorchMLPRegressor"])
@pytest.mark.parametrize("lr", [5.0, 50.0])
def test_victim_divergence_is_an_error_and_leaves_no_model(name, lr):
    from sklearn.exceptions import NotFittedError

    from skpoison.models import TorchLinearRegressor, TorchMLPRegressor

    cls = {
        "TorchLinearRegressor": TorchLinearRegressor,
        "TorchMLPRegressor": TorchMLPRegressor,
    }[name]
    X, y = make_data(40)
    est = cls(learning_rate=lr, n_epochs=50, random_state=0)
    with pytest.raises(DivergenceError, match="learning_rate|Lower learning_rate"):
        est.fit(X, y)
    record(name, "learning rate", "DivergenceError")
    with pytest.raises(NotFittedError):
        est.predict(X)
    # A fitted model stays usable after a failed refit? No: sklearn semantics
    # refit from scratch; a failed refit must not leave a NaN model behind.
    good = cls(learning_rate=0.05, n_epochs=5, random_state=0).fit(X, y)
    pred = good.predict(X)
    with pytest.raises(DivergenceError):
        good.set_params(learning_rate=lr, n_epochs=50).fit(X, y)
    assert np.isfinite(good.predict(X)).all()
    assert np.array_equal(good.predict(X), pred)


def _explodes_late():
    """Data and settings where the MLP's loss explodes in the last steps only.

    The loss before each of the 5 steps grows from 6.9 to 6e5 (a factor 1e5,
    under ``EXPLOSION_FACTOR``); the loss at the returned parameters is ~1e17.
    """
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, 2.0, 3.0]) + rng.normal(size=40)
    return X, y, dict(lr=1.5, steps=5)


def test_divergence_in_the_last_step_is_caught_by_victim_and_attack():
    """Regression: both returned a model ~1e9 off (the attack: sigma_ ~5e5,
    loss_ref ~8e12) because the loss at the result was never checked."""
    from skpoison.models import TorchMLPRegressor

    X, y, s = _explodes_late()
    victim = TorchMLPRegressor(
        hidden_layer_sizes=(4,), learning_rate=s["lr"], n_epochs=s["steps"],
        random_state=0,
    )  # fmt: skip
    with pytest.raises(DivergenceError, match="learning_rate"):
        victim.fit(X, y)
    record("TorchMLPRegressor", "learning rate", "DivergenceError")
    for engine in ("auto", "unrolled"):
        attack = _attack(
            "mlp", s["lr"], n_inner_steps=s["steps"], n_outer_steps=2,
            batch_size=2, engine=engine,
        )  # fmt: skip
        with pytest.raises(DivergenceError, match=r"inner_lr \(now 1.5\)"):
            attack.fit(X, y)
        record("StealthyPoisoner", "inner learning rate", "DivergenceError")


@pytest.mark.parametrize("lr", [0.5, 1.0, 1.3, 1.5, 2.0, 3.0, 10.0])
@pytest.mark.parametrize("steps", [1, 3, 5])
def test_engines_judge_divergence_as_the_victims_do(lr, steps):
    """The unrolled engine (fast reverse pass, autograd reference, and plain
    training) raises exactly when the victims' criterion, ``check_training``
    on the same run, does."""
    import torch

    from skpoison.attacks import UnrolledEngine
    from skpoison.models._training import (
        check_training,
        gradient_descent,
        loss_and_grad_fn,
    )

    X, y, _ = _explodes_late()
    kw = dict(n_steps=steps, lr=lr, hidden_layer_sizes=(4,), random_state=0)
    fixed, poison, val = slice(0, 30), slice(30, 34), slice(34, 40)
    engines = [
        UnrolledEngine("mlp", X[fixed], y[fixed], X[val], y[val], **kw),
        UnrolledEngine(
            "mlp", X[fixed], y[fixed], X[val], y[val], force_autograd=True, **kw
        ),
    ]
    eng = engines[0]
    Xt = torch.tensor(X[:34], dtype=torch.float64)
    yt = torch.tensor(y[:34], dtype=torch.float64)
    f = loss_and_grad_fn(eng.module, force_autograd=True)
    params, losses = gradient_descent(f, eng.init_params, Xt, yt, n_steps=steps, lr=lr)
    try:
        check_training(f, params, Xt, yt, losses)
        expected = False
    except DivergenceError:
        expected = True
    calls = [lambda e=e: e.value_and_grad(X[poison], y[poison])[0] for e in engines]
    calls.append(lambda: eng.value(X[poison], y[poison]))
    for call_ in calls:
        if expected:
            with pytest.raises(DivergenceError, match="inner learning rate"):
                call_()
        else:
            assert np.isfinite(float(call_()))
    record(
        "make_engine(mlp)",
        "inner learning rate",
        "DivergenceError" if expected else "finite",
    )


def test_poisoning_curve_records_divergence_and_goes_on():
    """The documented recovery: diverged rows are flagged, never NaN silently."""
    from skpoison.evaluation import poisoning_curve

    X, y = make_data(60)
    df = poisoning_curve(
        (X, y),
        alphas=[1.0],
        ratios=[0.0, 0.2],
        defenses=["none", "trim"],
        n_repetitions=1,
        attack_params={"n_outer_steps": 2, "n_inner_steps": 5},
        victim_params={"learning_rate": 50.0, "n_epochs": 20},
    )
    record("poisoning_curve", "victim learning rate", "diverged rows")
    assert df["diverged"].all()
    assert df["test_nmse"].isna().all() and df["defense_gain"].isna().all()
    assert df["error"].str.contains("DivergenceError").all()
    # And nothing is flagged on a well-posed study.
    ok = poisoning_curve(
        (X, y), alphas=[1.0], ratios=[0.0, 0.2], defenses=["none"], n_repetitions=1,
        attack_params={"n_outer_steps": 2, "n_inner_steps": 5},
        victim_params={"n_epochs": 5},
    )  # fmt: skip
    assert not ok["diverged"].any() and np.isfinite(ok["test_nmse"]).all()


# --------------------------------------------------------- near-singular X^T X
def _near_singular(kind):
    X, y = make_data(40)
    if kind == "duplicated_columns":
        return np.column_stack([X, X[:, 0], X[:, 0]]), y, [0, 1, 2]
    if kind == "zero_column":
        return np.column_stack([X, np.zeros(len(y))]), y, [0, 1, 2]
    if kind == "nearly_collinear":
        noise = 1e-12 * np.random.default_rng(1).normal(size=len(y))
        return np.column_stack([X, X[:, 1] + noise]), y, None
    if kind == "scaled_copy":
        return np.column_stack([X, 1e6 * X[:, 2]]), y, [0, 1, 2]
    if kind == "fewer_samples_than_features":
        X, y = make_data(12, 20)
        return X, y, None
    raise ValueError(kind)


KINDS = [
    "duplicated_columns",
    "zero_column",
    "nearly_collinear",
    "scaled_copy",
    "fewer_samples_than_features",
]
DEFENSES = [
    "BayesCleanFilter",
    "TrimRegressor",
    "SeverFilter",
    "ProdaRegressor",
    "DutiFilter",
    "DefendedRegressor",
    "make_huber_baseline",
    "StealthyPoisoner",
]


#: Not singularity failures: a 1e6-scaled column breaks the step-size condition
#: of gradient descent (the victims, the attack's inner problem), which says so;
#: the attack's risk (Eq. 5) needs n_tr >= n_features + 2.
EXPECTED_ERRORS = {
    ("DefendedRegressor", "scaled_copy"): (DivergenceError, "learning_rate"),
    ("StealthyPoisoner", "scaled_copy"): (DivergenceError, "inner_lr"),
    ("StealthyPoisoner", "fewer_samples_than_features"): (
        ValueError,
        r"n_features \+ 2",
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DEFENSES)
def test_near_singular_gram_gives_finite_results(name, kind):
    subject = BY_NAME[name]
    X, y, _ = _near_singular(kind)
    if (name, kind) in EXPECTED_ERRORS:
        exc, match = EXPECTED_ERRORS[name, kind]
        with pytest.raises(exc, match=match):
            subject.run(X, y)
        record(subject, "near-singular X^T X", exc.__name__)
        return
    out = subject.run(X, y)
    record(subject, "near-singular X^T X", "finite")
    assert_finite_outputs(subject, out)
    if "inlier_mask_" in out and name != "BayesCleanFilter":
        # reject_fraction=0.2 of the subjects (floor), whatever the conditioning
        assert (~out["inlier_mask_"]).sum() == int(np.floor(0.2 * len(y)))


@pytest.mark.parametrize("kind", ["duplicated_columns", "zero_column", "scaled_copy"])
@pytest.mark.parametrize("name", ["TrimRegressor", "ProdaRegressor"])
def test_least_squares_defenses_ignore_redundant_columns(name, kind):
    """Redundant columns change the coefficients, not the fitted values."""
    # A scaled copy is an identical column in the least-squares frame (columns
    # scaled to [-1, 1]); found and fixed in issue #13: the rank was decided on
    # the Gram matrix weighted by the columns' units, cutting real directions.
    subject = BY_NAME[name]
    X, y, keep = _near_singular(kind)
    y = y.copy()
    y[:5] += 8.0  # something to reject
    full = subject.fit(X, y)
    reduced = subject.fit(X[:, keep], y)
    assert np.array_equal(full.inlier_mask_, reduced.inlier_mask_)
    # The minimum-norm solve on the Gram matrix (squared condition number, small
    # eigenvalues cut at 1e3 p eps) leaves ~1e-6 of rounding in the fitted values.
    np.testing.assert_allclose(
        full.predict(X), reduced.predict(X[:, keep]), rtol=1e-5, atol=1e-9
    )
