"""The baseline attacks (Flip, StatP, noise) under the shared sampler contract.

One set of properties, parametrised over the three attacks: feasibility,
effect, determinism, every row returned, prefixes, clone/pickle, pipelines and
grid search. The DataFrame round trip is in tests/test_samplers.py;
algorithm-specific checks live in test_flip.py, test_statp.py and
test_noise.py.
"""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imblearn.pipeline import Pipeline
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.utils.estimator_checks import parametrize_with_checks

from skpoison.attacks import FlipPoisoner, NoisePoisoner, StatPPoisoner

ATTACKS = [FlipPoisoner, StatPPoisoner, NoisePoisoner]
ids = [a.__name__ for a in ATTACKS]


def _problem(seed=0, n_train=160, n_test=100, d=5):
    """A small fixed linear problem with features in [0, 1]."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(n_train + n_test, d))
    y = X @ rng.normal(size=d) + rng.normal(0.0, 0.1, size=n_train + n_test)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _ols_test_mse(X, y, X_test, y_test):
    pred = LinearRegression().fit(X, y).predict(X_test)
    return float(np.mean((pred - y_test) ** 2))


@pytest.fixture(scope="module")
def data():
    return _problem()


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
def test_every_row_is_returned_and_only_poison_rows_change(attack, data):
    X, y = data[0], data[1]
    X0, y0 = X.copy(), y.copy()
    att = attack(0.15, random_state=0)
    Xp, yp = att.fit_resample(X, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)  # inputs untouched
    assert Xp.shape == X.shape and yp.shape == y.shape
    n_p = round(0.15 * len(y))
    assert att.poison_indices_.size == n_p == np.unique(att.poison_indices_).size
    clean = np.setdiff1d(np.arange(len(y)), att.poison_indices_)
    assert np.array_equal(Xp[clean], X[clean]) and np.array_equal(yp[clean], y[clean])
    assert np.array_equal(Xp[att.poison_indices_], att.X_poison_)
    assert np.array_equal(yp[att.poison_indices_], att.y_poison_)


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
@given(
    seed=st.integers(0, 2**16),
    shrink=st.floats(0.0, 0.45),
)
@settings(max_examples=15, deadline=None)
def test_poison_points_stay_in_the_feasible_box(attack, seed, shrink):
    X, y, _, _ = _problem(seed, n_train=60, n_test=0, d=3)
    Xy = np.column_stack([X, y])
    lo, hi = Xy.min(axis=0), Xy.max(axis=0)
    # A box narrower than the data (shrink > 0) as well as the default one.
    low, high = lo + shrink * (hi - lo), hi - shrink * (hi - lo)
    for bounds in (None, (low, high)):
        att = attack(0.2, bounds=bounds, random_state=seed).fit(X, y)
        box_low, box_high = att.bounds_
        assert np.all(att.X_poison_ >= box_low[:-1])
        assert np.all(att.X_poison_ <= box_high[:-1])
        assert np.all(att.y_poison_ >= box_low[-1])
        assert np.all(att.y_poison_ <= box_high[-1])


@pytest.mark.parametrize("seed", range(3))
def test_every_attack_raises_the_ols_test_error_and_beats_noise(seed):
    X, y, X_test, y_test = _problem(seed)
    clean = _ols_test_mse(X, y, X_test, y_test)
    mse = {
        a.__name__: _ols_test_mse(
            *a(0.2, random_state=seed).fit_resample(X, y), X_test, y_test
        )
        for a in ATTACKS
    }
    assert all(v > clean for v in mse.values()), (clean, mse)
    # Flip and StatP aim their targets; noise does not.
    assert mse["FlipPoisoner"] > mse["NoisePoisoner"]
    assert mse["StatPPoisoner"] > mse["NoisePoisoner"]


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
def test_same_random_state_gives_identical_bits(attack, data):
    X, y = data[0], data[1]
    a = attack(0.2, random_state=7).fit_resample(X, y)
    b = attack(0.2, random_state=7).fit_resample(X, y)
    for u, v in zip(a, b):
        assert u.tobytes() == v.tobytes()
    other = attack(0.2, random_state=8).fit(X, y)
    assert not np.array_equal(
        other.poison_indices_, attack(0.2, random_state=7).fit(X, y).poison_indices_
    )


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
def test_a_smaller_ratio_is_a_prefix_of_a_larger_one(attack, data):
    X, y = data[0], data[1]
    big = attack(0.3, random_state=0).fit(X, y)
    for fraction in (0.0, 0.1, 0.2):
        small = attack(fraction, random_state=0).fit(X, y)
        for u, v in zip(big.resample_at(fraction), small.resample_at()):
            assert np.array_equal(u, v)
        n = small.poison_indices_.size
        assert np.array_equal(small.X_poison_, big.X_poison_[:n])
    sets = big.poisoned_sets()
    assert [n for n, _, _ in sets] == [0, big.poison_indices_.size]
    assert np.array_equal(sets[0][1], X)


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
def test_clone_and_pickle(attack, data):
    X, y = data[0], data[1]
    att = attack(0.1, random_state=3)
    fitted = clone(att).fit(X, y)
    assert clone(att).get_params() == att.get_params()
    restored = pickle.loads(pickle.dumps(fitted))
    for u, v in zip(restored.resample_at(), fitted.resample_at()):
        assert np.array_equal(u, v)


class _Recorder(LinearRegression):
    """OLS that remembers what it was trained and asked on."""

    def fit(self, X, y):
        self.X_fit_ = np.asarray(X).copy()
        return super().fit(X, y)

    def predict(self, X):
        self.X_predict_ = np.asarray(X).copy()
        return super().predict(X)


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
def test_pipeline_poisons_only_the_training_folds(attack, data):
    X, y = data[0], data[1]
    pipe = Pipeline([("attack", attack(0.2, random_state=0)), ("model", _Recorder())])
    cv = KFold(4, shuffle=True, random_state=0)
    out = cross_validate(pipe, X, y, cv=cv, return_estimator=True, return_indices=True)
    for est, train, test in zip(
        out["estimator"], out["indices"]["train"], out["indices"]["test"]
    ):
        att, model = est.named_steps["attack"], est.named_steps["model"]
        expected = X[train].copy()
        expected[att.poison_indices_] = att.X_poison_
        assert np.array_equal(model.X_fit_, expected)
        assert np.array_equal(model.X_predict_, X[test])  # scoring sees clean data


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
def test_grid_search_over_poison_fraction(attack, data):
    X, y = data[0], data[1]
    pipe = Pipeline([("attack", attack(random_state=0)), ("model", LinearRegression())])
    grid = {"attack__poison_fraction": [0.0, 0.2]}
    search = GridSearchCV(pipe, grid, cv=2, scoring="neg_mean_squared_error")
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert list(search.cv_results_["param_attack__poison_fraction"]) == [0.0, 0.2]
    assert scores[0] > scores[1]  # poisoning the folds lowers the score
    assert search.best_params_ == {"attack__poison_fraction": 0.0}


@pytest.mark.parametrize("attack", ATTACKS, ids=ids)
@pytest.mark.parametrize(
    "params, match",
    [
        ({"poison_fraction": 1.0}, "poison_fraction"),
        ({"poison_fraction": -0.1}, "poison_fraction"),
        ({"bounds": (0.0, -1.0)}, "bounds"),
        ({"bounds": ([0.0, 0.0], 1.0)}, "bounds"),
    ],
)
def test_bad_parameters_are_named(attack, params, match, data):
    X, y = data[0], data[1]
    with pytest.raises(ValueError, match=match):
        attack(**params).fit(X, y)


@parametrize_with_checks(
    [FlipPoisoner(random_state=0), StatPPoisoner(random_state=0), NoisePoisoner()]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("attack", [FlipPoisoner, StatPPoisoner], ids=str)
@pytest.mark.parametrize("fraction", [0.1, 0.2])
@pytest.mark.parametrize("seed", range(3))
def test_itrim_estimates_the_fraction_of_far_end_targets(attack, fraction, seed):
    # Müller et al.'s pairing: Flip's (and StatP's) targets sit at the ends of
    # the range, so TRIM's loss has a knee at the poisoned fraction (within one
    # 2% grid step) and iTrim rejects every poison point.
    from skpoison.defenses import ITrimRegressor

    X, y, _, _ = _problem(seed, n_train=300, n_test=0)
    att = attack(fraction, random_state=seed)
    itrim = ITrimRegressor().fit(*att.fit_resample(X, y))
    assert abs(itrim.estimated_poison_fraction_ - fraction) <= 0.02 + 1e-12
    assert not itrim.inlier_mask_[att.poison_indices_].any()
