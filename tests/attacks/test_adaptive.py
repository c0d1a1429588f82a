"""StealthyPoisoner(defense=...): the adaptive attack (skpoison.attacks._adaptive)."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, Ridge

from skpoison.attacks import StealthyPoisoner
from skpoison.defenses import (
    BayesCleanFilter,
    DefendedRegressor,
    ITrimRegressor,
    ProdaRegressor,
    SeverFilter,
    TrimRegressor,
)


def problem(seed=0, d=3):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)

    def draw(n):
        X = rng.normal(size=(n, d))
        return X, X @ w + 0.5 * rng.normal(size=n)

    (X, y), (Xv, yv), (Xt, yt) = draw(100), draw(50), draw(400)
    return X, y, Xv, yv, Xt, yt


def defended_test_mse(defense, Xp, yp, Xt, yt):
    """The defended learner: the defense's kept rows, then least squares."""
    if isinstance(defense, (TrimRegressor, ProdaRegressor)):
        model = clone(defense).fit(Xp, yp)
    else:
        model = DefendedRegressor(defense, LinearRegression()).fit(Xp, yp)
    return float(np.mean((model.predict(Xt) - yt) ** 2))


ADAPTED = {
    "bayesclean": BayesCleanFilter(),
    "trim": TrimRegressor(reject_fraction=0.2),
    "proda": ProdaRegressor(reject_fraction=0.2, random_state=0),
    "sever": SeverFilter(reject_fraction=0.2),
}


@pytest.mark.parametrize("name", sorted(ADAPTED))
def test_adaptive_attack_beats_the_non_adaptive_one_on_its_defense(name):
    defense = ADAPTED[name]
    X, y, Xv, yv, Xt, yt = problem()
    common = dict(n_outer_steps=10, batch_size=20, random_state=0)
    damage = {}
    for adaptive in (False, True):
        attack = StealthyPoisoner(0.2, defense=defense if adaptive else None, **common)
        Xp, yp = attack.fit_resample(X, y, X_val=Xv, y_val=yv)
        damage[adaptive] = defended_test_mse(defense, Xp, yp, Xt, yt)
    assert damage[True] > 1.1 * damage[False]


def test_no_defense_is_the_stored_non_adaptive_attack(
    reference_script, assert_reference
):
    # defense=None is today's attack: the numbers main's code stored
    # (tests/attacks/data/make_stealthy_reference.py), with defense=None passed.
    here = Path(__file__).parent / "data"
    script = reference_script(here / "make_stealthy_reference.py")
    stored = np.load(here / "stealthy_reference.npz")
    X, y, X_val, y_val = script.data()
    for case, params in script.CASES.items():
        att = StealthyPoisoner(**params, **script.COMMON, defense=None)
        att.fit(X, y, X_val, y_val)
        assert_reference(att.X_poison_, stored[f"{case}__X_poison"], case)
        assert_reference(att.y_poison_, stored[f"{case}__y_poison"], case)
        assert att.defense_ is None
        np.testing.assert_array_equal(att.best_step_, script.COMMON["n_outer_steps"])


def test_fitted_attributes_and_the_kept_best_iterate():
    X, y, Xv, yv, _, _ = problem()
    attack = StealthyPoisoner(
        0.2, n_outer_steps=6, batch_size=10, random_state=0, defense=BayesCleanFilter()
    ).fit(X, y, X_val=Xv, y_val=yv)
    assert attack.n_batches_ == 2 and attack.best_step_.shape == (2,)
    for step, h in zip(attack.best_step_, attack.history_):
        assert 0 <= step <= 6
        # The returned iterate is the best by the true (hard-defense) objective.
        assert h["objective"][step] == pytest.approx(h["objective"].max())
    Xp, yp = attack.resample_at()
    refit = BayesCleanFilter().fit(Xp, yp)
    np.testing.assert_array_equal(attack.defense_.inlier_mask_, refit.inlier_mask_)
    assert attack.n_iter_ == 2 * 3 * 6  # the plain ascent and two adaptive starts


def test_alpha_below_one_and_a_sklearn_victim():
    X, y, Xv, yv, _, _ = problem()
    attack = StealthyPoisoner(
        0.1, 0.5, model=Ridge(alpha=1.0), n_outer_steps=3, batch_size=10,
        random_state=0, defense=TrimRegressor(reject_fraction=0.2),
    ).fit(X, y, X_val=Xv, y_val=yv)  # fmt: skip
    assert np.isfinite(attack.risk_ref_) and np.isfinite(attack.X_poison_).all()


def test_clone_pickle_and_grid_search_over_defense_params():
    from imblearn.pipeline import Pipeline
    from sklearn.model_selection import GridSearchCV

    attack = StealthyPoisoner(
        0.1, n_outer_steps=2, batch_size=8, random_state=0, defense=BayesCleanFilter()
    )
    params = attack.get_params()
    assert params["defense__c1"] == 0.5
    twin = clone(attack).set_params(defense__c1=0.8)
    assert twin.defense.c1 == 0.8 and attack.defense.c1 == 0.5
    X, y, Xv, yv, _, _ = problem()
    fitted = pickle.loads(pickle.dumps(attack.fit(X, y, X_val=Xv, y_val=yv)))
    np.testing.assert_array_equal(fitted.X_poison_, attack.X_poison_)
    pipe = Pipeline([("attack", attack), ("model", LinearRegression())])
    search = GridSearchCV(pipe, {"attack__defense__c1": [0.5, 1.0]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["attack__defense__c1"] in (0.5, 1.0)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(model="mlp"), ValueError, "linear victim"),
        (dict(adaptive_temperature=(1.0, 0.0)), ValueError, "adaptive_temperature"),
        (dict(adaptive_temperature=(1.0,)), ValueError, "adaptive_temperature"),
        (dict(engine="unrolled"), ValueError, "engine"),
        (dict(defense=ITrimRegressor()), TypeError, "no relaxation"),
    ],
)
def test_errors(params, error, match):
    X, y, Xv, yv, _, _ = problem()
    params = {"defense": BayesCleanFilter(), **params}
    attack = StealthyPoisoner(0.1, n_outer_steps=1, random_state=0, **params)
    with pytest.raises(error, match=match):
        attack.fit(X, y, X_val=Xv, y_val=yv)


def test_an_iterate_whose_defended_learner_diverges_is_never_kept():
    from sklearn.linear_model import LinearRegression as OLS

    from skpoison.attacks._adaptive import AdaptiveObjective
    from skpoison.exceptions import DivergenceError

    X, y, Xv, yv, _, _ = problem()
    idx = np.arange(10)
    calls = []

    def victim_value(X_, y_, mask):
        calls.append(mask.sum())
        if len(calls) > 1:
            raise DivergenceError("diverged")
        return 1.0

    import torch

    objective = AdaptiveObjective(
        BayesCleanFilter(), {}, X, y, idx, Xv, yv, victim_value, OLS(),
        np.array([1.0, 0.5]), torch.zeros(1, dtype=torch.float64),
    )  # fmt: skip
    assert objective(X[idx], y[idx], 0, True)[0] == 1.0
    val, gX, gy = objective(X[idx] + 1.0, y[idx], 1, True)
    assert np.isnan(val)  # no true objective, but still a direction
    assert np.isfinite(gX.numpy()).all() and np.isfinite(gy.numpy()).all()


def test_duti_attacker_models_the_defenders_trusted_items():
    # The attacker who knows the defense models the DUTI that runs: the
    # defender's trusted items (here a small subset of D_val), not all of D_val.
    from skpoison.defenses import DutiFilter

    X, y, Xv, yv, _, _ = problem()
    trusted = dict(X_trusted=Xv[:8], y_trusted=yv[:8])
    duti = DutiFilter(reject_fraction=0.2)
    attack = StealthyPoisoner(
        0.1, n_outer_steps=2, batch_size=10, random_state=0, defense=duti
    ).fit(X, y, X_val=Xv, y_val=yv, **trusted)
    Xp, yp = attack.resample_at()
    runs = clone(duti).fit(Xp, yp, **trusted)
    np.testing.assert_array_equal(attack.defense_.inlier_mask_, runs.inlier_mask_)
    np.testing.assert_array_equal(attack.defense_.scores_, runs.scores_)
    with pytest.raises(ValueError, match="X_trusted"):
        clone(attack).fit(X, y, X_val=Xv, y_val=yv, X_trusted=Xv[:8])


def test_trusted_items_do_not_change_the_non_adaptive_attack():
    X, y, Xv, yv, _, _ = problem()
    attack = StealthyPoisoner(0.1, n_outer_steps=2, batch_size=10, random_state=0)
    plain = clone(attack).fit(X, y, X_val=Xv, y_val=yv)
    given = attack.fit(X, y, X_val=Xv, y_val=yv, X_trusted=Xv[:8], y_trusted=yv[:8])
    np.testing.assert_array_equal(plain.X_poison_, given.X_poison_)
    np.testing.assert_array_equal(plain.y_poison_, given.y_poison_)
