"""StealthyPoisoner(init=...): the paper's copies or Jagielski et al.'s starts."""

import numpy as np
import pytest
from imblearn.pipeline import Pipeline
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skpoison.attacks import OptPPoisoner, StealthyPoisoner
from skpoison.attacks._init import JAGIELSKI_INITS, start_points, unit_start

FAST = dict(n_outer_steps=3, device="cpu")
INITS = ("copy", *JAGIELSKI_INITS)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    X[:4] *= 4.0  # a few points of high leverage
    y = X @ [1.0, -0.5, 0.25] + 0.3 * rng.normal(size=80)
    return X, y


def _start(init, X, y, fraction=0.1, **kw):
    """The starting points: no ascent step, one batch (the pool is clean)."""
    kw = {**FAST, "batch_size": 1.0, **kw, "n_outer_steps": 0}
    return StealthyPoisoner(fraction, init=init, random_state=0, **kw).fit(X, y)


def test_copy_is_the_default_and_keeps_the_stored_reference(
    reference_script, assert_reference
):
    from pathlib import Path

    assert StealthyPoisoner().init == "copy"
    here = Path(__file__).parent / "data"
    script = reference_script(here / "make_stealthy_reference.py")
    stored = np.load(here / "stealthy_reference.npz")
    X, y, X_val, y_val = script.data()
    for name, params in script.CASES.items():
        att = StealthyPoisoner(**params, **script.COMMON, init="copy")
        att.fit(X, y, X_val, y_val)
        assert_reference(att.X_poison_, stored[f"{name}__X_poison"], name)
        assert_reference(att.y_poison_, stored[f"{name}__y_poison"], name)


def test_copy_starts_from_the_replaced_points(data):
    X, y = data
    att = _start("copy", X, y)
    np.testing.assert_array_equal(att.X_poison_, X[att.poison_indices_])
    np.testing.assert_array_equal(att.y_poison_, y[att.poison_indices_])


def _sources(att, X, y):
    """For each starting point, the pool row (not replaced) it was drawn from."""
    pool = np.setdiff1d(np.arange(len(y)), att.poison_indices_)
    low, high = att.bounds_
    width = high[:-1] - low[:-1]
    # The affine map to the unit box and back may round in the last bit.
    dist = np.abs(att.X_poison_[:, None, :] - X[pool][None]) / width
    match = dist.max(axis=2) < 1e-12
    assert match.any(axis=1).all(), "every start copies the features of a pool row"
    return pool[match.argmax(axis=1)]


@pytest.mark.parametrize("init", ["inverse_flip", "boundary_flip"])
def test_flip_starts_copy_features_and_flip_targets_to_the_far_end(init, data):
    X, y = data
    att = _start(init, X, y, 0.2)
    low, high = att.bounds_
    src = _sources(att, X, y)
    far = np.where(y[src] < (low[-1] + high[-1]) / 2, high[-1], low[-1])
    np.testing.assert_allclose(att.y_poison_, far, rtol=0, atol=1e-12)
    assert not np.array_equal(att.X_poison_, X[att.poison_indices_])
    if init == "boundary_flip":  # uniform draws without replacement
        assert np.unique(src).size == src.size


def test_random_start_mirrors_targets_in_the_box(data):
    X, y = data
    att = _start("random", X, y, 0.2)
    low, high = att.bounds_
    src = _sources(att, X, y)
    np.testing.assert_allclose(
        att.y_poison_, low[-1] + high[-1] - y[src], rtol=0, atol=1e-12
    )


def test_inverse_flip_prefers_points_of_high_leverage(data):
    X, y = data
    Xc = np.column_stack([X, np.ones(len(y))])
    leverage = np.einsum("ij,ji->i", Xc, np.linalg.solve(Xc.T @ Xc, Xc.T))
    picks = {
        init: _sources(_start(init, X, y, 0.4), X, y)
        for init in ("inverse_flip", "boundary_flip")
    }
    assert (
        leverage[picks["inverse_flip"]].mean() > leverage[picks["boundary_flip"]].mean()
    )


@pytest.mark.parametrize("init", INITS)
def test_poison_points_stay_in_the_box(init, data):
    X, y = data
    bounds = (-1.5, 1.0)
    att = StealthyPoisoner(0.2, init=init, bounds=bounds, outer_lr=2.0, **FAST)
    att.set_params(random_state=1, batch_size=0.1).fit(X, y)
    assert att.n_batches_ == 2
    assert att.X_poison_.min() >= -1.5 and att.X_poison_.max() <= 1.0
    assert att.y_poison_.min() >= -1.5 and att.y_poison_.max() <= 1.0


@pytest.mark.parametrize("init", JAGIELSKI_INITS)
def test_deterministic_and_seeded(init, data):
    X, y = data

    def fit(seed):
        return StealthyPoisoner(0.1, init=init, random_state=seed, **FAST).fit(X, y)

    a, b, c = fit(3), fit(3), fit(4)
    np.testing.assert_array_equal(a.X_poison_, b.X_poison_)
    np.testing.assert_array_equal(a.y_poison_, b.y_poison_)
    assert not np.array_equal(a.X_poison_, c.X_poison_)


@pytest.mark.parametrize("init", JAGIELSKI_INITS)
def test_smaller_ratio_is_a_prefix_and_warm_start_extends(init, data):
    X, y = data
    kw = dict(init=init, batch_size=0.1, random_state=0, **FAST)
    big = StealthyPoisoner(0.2, **kw).fit(X, y)
    small = StealthyPoisoner(0.1, **kw).fit(X, y)
    np.testing.assert_array_equal(big.X_poison_[:8], small.X_poison_)
    warm = StealthyPoisoner(0.1, warm_start=True, **kw).fit(X, y)
    warm.set_params(poison_fraction=0.2).fit(X, y)
    np.testing.assert_array_equal(warm.X_poison_, big.X_poison_)


def test_reference_run_of_alpha_below_one_starts_like_the_attack(data):
    # R_ref is the largest risk of the alpha = 1 attack from the same starts,
    # and the alpha < 1 attack that follows it starts from those points too.
    X, y = data
    kw = dict(init="inverse_flip", batch_size=0.1, random_state=0, **FAST)
    one = StealthyPoisoner(0.2, alpha=1.0, **kw).fit(X, y)
    half = StealthyPoisoner(0.2, alpha=0.5, **kw).fit(X, y)
    assert half.risk_ref_ == pytest.approx(one.risk_.max(), rel=1e-12)
    kw["n_outer_steps"] = 0
    one = StealthyPoisoner(0.2, alpha=1.0, **kw).fit(X, y)
    half = StealthyPoisoner(0.2, alpha=0.5, **kw).fit(X, y)
    np.testing.assert_array_equal(half.X_poison_, one.X_poison_)
    np.testing.assert_array_equal(half.y_poison_, one.y_poison_)


def test_start_points_match_the_unit_box_draw():
    # OptPPoisoner draws in the unit box, StealthyPoisoner in the data's units:
    # one draw, the same points.
    rng = np.random.default_rng(1)
    X, y = rng.uniform(2, 6, size=(30, 2)), rng.uniform(-1, 3, size=30)
    low, high = np.array([2.0, 2.0, -1.0]), np.array([6.0, 6.0, 3.0])
    for init in JAGIELSKI_INITS:
        X0, y0 = start_points(init, X, y, 7, (low, high), np.random.RandomState(5))
        U = (np.column_stack([X, y]) - low) / (high - low)
        U0 = unit_start(init, U, 7, np.random.RandomState(5))
        np.testing.assert_allclose(np.column_stack([X0, y0]), U0 * (high - low) + low)


def test_constant_column_keeps_its_value():
    X = np.column_stack([np.linspace(0, 1, 20), np.full(20, 3.0)])
    y = np.linspace(-1, 1, 20)
    bounds = (np.array([0.0, 3.0, -1.0]), np.array([1.0, 3.0, 1.0]))
    X0, _ = start_points("random", X, y, 5, bounds, np.random.RandomState(0))
    np.testing.assert_array_equal(X0[:, 1], 3.0)


def test_unknown_init_is_refused(data):
    with pytest.raises(InvalidParameterError, match="'init' parameter"):
        StealthyPoisoner(init="flip").fit(*data)
    with pytest.raises(ValueError, match="init must be one of"):
        unit_start("copy", np.zeros((3, 2)), 1, np.random.RandomState(0))


def test_clone_and_grid_search_over_init(data):
    X, y = data
    att = StealthyPoisoner(0.1, init="random", **FAST)
    assert clone(att).get_params()["init"] == "random"
    pipe = Pipeline([("attack", att), ("model", LinearRegression())])
    grid = GridSearchCV(pipe, {"attack__init": list(INITS)}, cv=2)
    grid.fit(X, y)
    assert [p["attack__init"] for p in grid.cv_results_["params"]] == list(INITS)
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


def test_optp_and_stealthy_accept_the_same_jagielski_starts():
    assert set(JAGIELSKI_INITS) <= set(
        OptPPoisoner._parameter_constraints["init"][0].options
    )
    assert set(INITS) == StealthyPoisoner._parameter_constraints["init"][0].options
