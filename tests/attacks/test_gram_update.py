"""The attack's row-updated Gram statistics at large n (issue #16).

From ``_GRAM_UPDATE_MIN_ROWS`` training rows on, StealthyPoisoner gives the
linear victims' engines the fixed rows' statistics by row updates
(:class:`~skpoison.attacks._gram.RowGram`) instead of rebuilding them from the
rows once per batch. Guarantees checked here:

- the updated statistics, and the engines built on them, agree with a full
  rebuild from the rows to 1e-12 relative, for data with columns offset by
  1e6 times their spread too (the statistics stay centred), where the
  scikit-learn victims still give scikit-learn's model;
- the attack on the update path agrees with the rebuild path;
- below the threshold nothing changes: no statistics are built and the result
  is bit for bit that of the engines rebuilt from the rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, Ridge

import skpoison.attacks._stealthy as stealthy
from skpoison.attacks import StealthyPoisoner
from skpoison.attacks._gram import RowGram
from skpoison.attacks._hypergradient import LinearSpectralEngine
from skpoison.attacks._implicit import ImplicitLinearEngine


def _problem(seed, n=400, d=3, offset=0.0):
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.5, 3.0, size=d)
    X = rng.normal(size=(n, d)) * spread
    X[:, 0] += offset * spread[0]  # a timestamp-like column
    y = (X - X.mean(0)) @ rng.normal(size=d) + rng.normal(size=n) + 7.0
    return rng, X, y


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _updated_gram(rng, X, y, n_batches=4, size=20):
    """A RowGram of ``X`` after ``n_batches`` row replacements, and the rows."""
    X, y = X.copy(), y.copy()
    gram = RowGram.of(X, y)
    order = rng.permutation(X.shape[0])
    lo, hi = X.min(0), X.max(0)
    for b in range(n_batches):
        rows = order[b * size : (b + 1) * size]
        X_new = rng.uniform(lo, hi, size=(size, X.shape[1]))
        y_new = rng.uniform(y.min(), y.max(), size=size)
        gram.replace(X[rows], y[rows], X_new, y_new)
        X[rows], y[rows] = X_new, y_new
    return gram, X, y, order[n_batches * size : (n_batches + 1) * size]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), offset=st.sampled_from([0.0, 1e3, 1e6]))
def test_updated_statistics_equal_a_rebuild(seed, offset):
    rng, X, y = _problem(seed, offset=offset)
    gram, X, y, batch = _updated_gram(rng, X, y)
    fixed = gram.without(X, y, batch)
    keep = np.ones(X.shape[0], dtype=bool)
    keep[batch] = False
    ref = RowGram.of(X[keep], y[keep], shift=gram.shift)
    assert fixed.n == ref.n == keep.sum()
    assert _rel(fixed.ZtZ, ref.ZtZ) < 1e-12
    assert _rel(fixed.Zty, ref.Zty) < 1e-12
    # Moved to another frame (the raw one for the spectral engine).
    for shift in ((np.zeros(X.shape[1]), 0.0), (X[keep].mean(0), y[keep].mean())):
        moved = fixed.around(*shift)
        direct = RowGram.of(X[keep], y[keep], shift=shift)
        assert _rel(moved[0], direct.ZtZ) < 1e-12
        assert _rel(moved[1], direct.Zty) < 1e-12


def _engines_agree(make, X, y, batch, gram, Xv, yv, val_gram, rtol=1e-12):
    keep = np.ones(X.shape[0], dtype=bool)
    keep[batch] = False
    Xp, yp = X[batch] + 0.1, y[batch] - 0.2
    rows = make(X[keep], y[keep], Xv, yv)
    stats = make(None, None, Xv, yv, fixed_gram=gram.without(X, y, batch),
                 val_gram=val_gram)  # fmt: skip
    a, b = rows.value_and_grad(Xp, yp), stats.value_and_grad(Xp, yp)
    for u, v in zip(a, b):
        assert _rel(v.numpy(), u.numpy()) < rtol
    assert _rel(stats.value(Xp, yp).numpy(), rows.value(Xp, yp).numpy()) < rtol
    w_rows, w_stats = rows.train(Xp, yp), stats.train(Xp, yp)
    for k in ("weight", "bias"):
        assert _rel(w_stats[k].numpy(), w_rows[k].numpy()) < rtol
    return stats, np.vstack([X[keep], Xp]), np.r_[y[keep], yp], Xp, yp


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_spectral_engine_on_updated_statistics_equals_rebuild(seed):
    rng, X, y = _problem(seed)
    gram, X, y, batch = _updated_gram(rng, X, y)
    Xv, yv = X[:100], y[:100]
    val_gram = RowGram.of(Xv, yv, shift=gram.shift)

    def make(*args, **kw):
        return LinearSpectralEngine(*args, n_steps=30, lr=0.05, **kw)

    _engines_agree(make, X, y, batch, gram, Xv, yv, val_gram)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    offset=st.sampled_from([0.0, 1e6]),
    est=st.sampled_from(
        [LinearRegression(), Ridge(alpha=2.0), Ridge(alpha=0.5, fit_intercept=False)]
    ),  # fmt: skip
    with_val_gram=st.booleans(),
)
def test_implicit_engine_on_updated_statistics_is_sklearns(
    seed, offset, est, with_val_gram
):
    rng, X, y = _problem(seed, offset=offset)
    if not est.fit_intercept:
        offset = 0.0  # without an intercept an offset column is a real feature
        X[:, 0] -= X[:, 0].mean()
    gram, X, y, batch = _updated_gram(rng, X, y)
    Xv, yv = X[:100], y[:100]
    val_gram = RowGram.of(Xv, yv, shift=gram.shift) if with_val_gram else None

    def make(*args, **kw):
        return ImplicitLinearEngine(est, *args, **kw)

    eng, X_tr, y_tr, Xp, yp = _engines_agree(make, X, y, batch, gram, Xv, yv, val_gram)
    ref = est.fit(X_tr, y_tr)
    coef = eng.train(Xp, yp)["weight"].numpy().ravel()
    # scikit-learn's model, to what rounding the offset column itself costs.
    top = np.abs(ref.coef_).max()
    lost = np.abs(X_tr).max(0) / X_tr.std(0)
    np.testing.assert_array_less(
        np.abs(coef - ref.coef_), top * (1e-9 + 1e2 * np.finfo(float).eps * lost)
    )


@pytest.fixture
def update_everywhere(monkeypatch):
    """The update path at any n (the threshold is only about cost)."""
    monkeypatch.setattr(stealthy, "_GRAM_UPDATE_MIN_ROWS", 1)


def _fit(data, *, separate_val=True, **kw):
    X, y, X_val, y_val = data
    params = dict(batch_size=0.05, n_outer_steps=2, random_state=0)
    attack = StealthyPoisoner(0.15, **{**params, **kw})
    if not separate_val:
        return attack.fit(X, y)
    return attack.fit(X, y, X_val, y_val)


# A separate D_val (the paper's protocol) or a held-out one: with D_val = the
# training set itself, the least-squares victims start at the optimum of the
# validation loss, where the hypergradient is rounding noise (~1e-18) that the
# per-point normalisation blows up into unit steps on either path.
CONFIGS = {
    "linear D_val=training set": dict(separate_val=False),
    "linear": dict(),
    "linear alpha=0.5 held-out D_val": dict(
        alpha=0.5, validation_fraction=0.2, separate_val=False
    ),
    "LinearRegression": dict(model=LinearRegression()),
    "Ridge alpha=0.5": dict(model=Ridge(alpha=3.0), alpha=0.5),
    "Ridge inverse_flip": dict(model=Ridge(alpha=3.0), init="inverse_flip"),
}


@pytest.fixture(scope="module")
def data():
    _, X, y = _problem(3, n=800, d=4)
    return X[:600], y[:600], X[600:], y[600:]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_attack_on_the_update_path_agrees_with_the_rebuild(name, data, monkeypatch):
    kw = CONFIGS[name]
    rebuilt = _fit(data, **kw)
    monkeypatch.setattr(stealthy, "_GRAM_UPDATE_MIN_ROWS", 1)
    built = []
    real = stealthy.make_engine
    monkeypatch.setattr(
        stealthy, "make_engine", lambda *a, **k: built.append(k) or real(*a, **k)
    )
    updated = _fit(data, **kw)
    # Every batch's engine came from statistics, none from a copy of the rows.
    assert built and all(k["X_fixed"] is None for k in built)
    assert updated.n_batches_ == rebuilt.n_batches_ == 3
    np.testing.assert_array_equal(updated.poison_indices_, rebuilt.poison_indices_)
    for attr in ("X_poison_", "y_poison_", "loss_ref_", "risk_"):
        assert _rel(getattr(updated, attr), getattr(rebuilt, attr)) < 1e-12, attr
    for a, b in zip(updated.history_, rebuilt.history_):
        assert _rel(a["objective"], b["objective"]) < 1e-12


def test_warm_start_on_the_update_path_extends_the_run(data, update_everywhere):
    # A warm start begins from batches already in place (the statistics of the
    # current set are then computed from its rows once).
    X, y, X_val, y_val = data
    once = _fit(data)
    warm = StealthyPoisoner(
        0.05, batch_size=0.05, n_outer_steps=2, random_state=0, warm_start=True
    ).fit(X, y, X_val, y_val)
    warm.set_params(poison_fraction=0.15).fit(X, y, X_val, y_val)
    assert _rel(warm.X_poison_, once.X_poison_) < 1e-12


@pytest.mark.parametrize("name", list(CONFIGS))
def test_small_n_never_builds_statistics_and_is_unchanged(name, data, monkeypatch):
    # Below the threshold the engines are rebuilt from the rows as before:
    # bit for bit the rebuild path, and RowGram is never used.
    assert data[0].shape[0] < stealthy._GRAM_UPDATE_MIN_ROWS
    monkeypatch.setattr(stealthy, "_GRAM_UPDATE_MIN_ROWS", np.inf)
    rebuilt = _fit(data, **CONFIGS[name])
    monkeypatch.undo()

    def refuse(*args, **kwargs):
        raise AssertionError("RowGram built below the threshold")

    monkeypatch.setattr(RowGram, "of", classmethod(refuse))
    default = _fit(data, **CONFIGS[name])
    for attr in ("X_poison_", "y_poison_", "loss_ref_", "risk_", "sigma_"):
        np.testing.assert_array_equal(getattr(default, attr), getattr(rebuilt, attr))


def test_the_unrolled_and_sparse_victims_keep_the_rows(data, update_everywhere):
    # Engines that need the rows (unrolled, Lasso's coordinate descent) never
    # take the update path.
    from sklearn.linear_model import Lasso

    for kw in (dict(engine="unrolled", n_inner_steps=5), dict(model=Lasso(0.01))):
        attack = StealthyPoisoner(**kw)
        assert not attack._updates_gram(10**9)
    with pytest.raises(ValueError, match="fixed_gram"):
        ImplicitLinearEngine(
            Lasso(0.01), None, None, data[0], data[1],
            fixed_gram=RowGram.of(*data[:2]),
        )  # fmt: skip
    assert torch.is_tensor(
        LinearSpectralEngine(
            None, None, data[0], data[1], n_steps=3, lr=0.1,
            fixed_gram=RowGram.of(*data[:2]),
        ).value(data[0][:2], data[1][:2])
    )  # fmt: skip
