"""Defenses by name: what each builds, seeds, trusted items."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, Ridge

from skpoison.attacks import FlipPoisoner, NoisePoisoner, StatPPoisoner
from skpoison.defenses import BayesCleanFilter, DefendedRegressor, TrimRegressor
from skpoison.evaluation import (
    DEFENSE_NAMES,
    build_attack,
    build_defense,
    n_trusted_items,
    poisoning_curve,
)
from skpoison.evaluation._registry import inlier_mask
from skpoison.models import TorchLinearRegressor

VICTIM = TorchLinearRegressor(learning_rate=0.1, n_epochs=40)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=120)
    y[:10] += 8.0  # gross outliers
    X_t = rng.normal(size=(10, 3))
    return X, y, X_t, X_t @ [1.0, -1.0, 0.5]


@pytest.mark.parametrize("name", DEFENSE_NAMES)
def test_every_name_builds_a_regressor_that_fits(name, data):
    X, y, X_t, y_t = data
    est, wants_trusted = build_defense(name, VICTIM, random_state=0)
    assert wants_trusted == (name == "duti")
    fit_params = {"X_trusted": X_t, "y_trusted": y_t} if wants_trusted else {}
    est.fit(X, y, **fit_params)
    assert est.predict(X).shape == (120,)
    mask = inlier_mask(est, 120)
    if name == "none":
        assert mask is None
    else:
        assert mask is not None and mask.dtype == bool
    if name in {"trim", "sever", "proda", "duti"}:
        assert mask.sum() == 120 - 48  # 40% rejected, as in the paper
    if name == "itrim":  # estimates the fraction: all 10 outliers, few others
        assert not mask[:10].any() and mask.sum() >= 120 - 48


def test_the_victim_is_what_is_trained_on_the_kept_points(data):
    X, y, *_ = data
    est, _ = build_defense("bayesclean", VICTIM)
    assert isinstance(est, DefendedRegressor)
    assert isinstance(est.defense, BayesCleanFilter) and est.defense.rule == "residual"
    assert est.estimator.get_params() == VICTIM.get_params()
    paper, _ = build_defense("bayesclean_paper", VICTIM)
    assert paper.defense.rule == "paper"
    trim, _ = build_defense("trim", VICTIM)
    assert isinstance(trim, TrimRegressor)
    assert trim.estimator.get_params() == VICTIM.get_params()


def test_seeds_go_to_the_defense_not_to_the_victim():
    victim = clone(VICTIM).set_params(random_state=7)
    trim, _ = build_defense("trim", victim, random_state=3)
    assert trim.random_state == 3 and trim.estimator.random_state == 7
    proda, _ = build_defense("proda", victim, random_state=3)
    assert proda.defense.random_state == 3 and proda.estimator.random_state == 7
    none, _ = build_defense("none", victim, random_state=3)
    assert none.random_state == 7


def test_user_objects(data):
    X, y, *_ = data
    est, trusted = build_defense(Ridge(alpha=2.0), VICTIM)
    assert isinstance(est, Ridge) and est.alpha == 2.0 and not trusted
    est, _ = build_defense(BayesCleanFilter(c1=1.0, c2=2.0), VICTIM)
    assert isinstance(est, DefendedRegressor) and est.defense.c1 == 1.0
    # a defense that also predicts is used as a filter before the victim
    est, _ = build_defense(TrimRegressor(LinearRegression()), VICTIM)
    assert isinstance(est, DefendedRegressor)
    with pytest.raises(ValueError, match="Unknown defense 'magic'"):
        build_defense("magic", VICTIM)
    with pytest.raises(TypeError, match="name, a regressor or a defense"):
        build_defense(42, VICTIM)


def test_trusted_items_follow_the_paper():
    assert n_trusted_items("loan", 3361, 1008) == 101
    assert n_trusted_items("heart", 1599, 480) == 48
    assert n_trusted_items("boston", 253, 76) == 8
    assert n_trusted_items("appliances", 9868, 2960) == 296
    # other data: the paper's ratio (about 3% of the training set)
    assert n_trusted_items(None, 10_000, 3000) == 300
    assert n_trusted_items(None, 10, 3) == 2
    assert n_trusted_items(None, 100_000, 50) == 50


@pytest.mark.parametrize(
    "name, cls",
    [("statp", StatPPoisoner), ("flip", FlipPoisoner), ("noise", NoisePoisoner)],
)
def test_baseline_attacks_by_name(name, cls):
    # The stealthy attack's Table II settings do not apply to them.
    attack = build_attack(name, attack_params={"n_outer_steps": 5})
    assert type(attack) is cls and attack.get_params() == cls().get_params()


def test_baseline_attacks_and_itrim_in_a_curve():
    df = poisoning_curve(
        "synthetic", attacks=["flip", "statp", "noise"], ratios=[0.0, 0.2],
        defenses=["none", "itrim"], n_repetitions=1,
    )  # fmt: skip
    assert set(df["attack"]) == {"flip", "statp", "noise"} and set(df["alpha"]) == {1}
    nmse = df.set_index(["attack", "ratio", "defense"])["test_nmse"]
    for attack in ("flip", "statp", "noise"):
        assert nmse[attack, 0.2, "none"] > nmse[attack, 0.0, "none"]
    for attack in ("flip", "statp"):  # far-end targets: iTrim removes them
        assert nmse[attack, 0.2, "itrim"] < nmse[attack, 0.2, "none"]
        assert nmse[attack, 0.2, "none"] > nmse["noise", 0.2, "none"]


def test_optp_by_name_attacks_the_study_victim():
    from sklearn.linear_model import LinearRegression, Ridge

    from skpoison.attacks import OptPPoisoner

    ols = build_attack("optp", attack_params={"n_outer_steps": 5})
    assert type(ols) is OptPPoisoner and ols.model is None  # OLS, OptP's own
    ridge = build_attack("optp", model="ridge")
    assert isinstance(ridge.model, Ridge) and not isinstance(
        ridge.model, LinearRegression
    )


def test_optp_in_a_curve_raises_the_undefended_error():
    df = poisoning_curve(
        "synthetic", attacks=["optp"], ratios=[0.0, 0.2], defenses=["none"],
        n_repetitions=1,
    )  # fmt: skip
    nmse = df.set_index(["ratio", "defense"])["test_nmse"]
    assert set(df["attack"]) == {"optp"}
    assert nmse[0.2, "none"] > nmse[0.0, "none"]


@pytest.mark.parametrize(
    "spec, path, value",
    [
        (("trim", {"max_iter": 3}), "max_iter", 3),
        (("bayesclean", {"defense__c1": 1.0}), "defense__c1", 1.0),
        (("bayesclean_paper", {"defense__c2": 2.0}), "defense__rule", "paper"),
    ],
)
def test_a_named_variant_is_the_named_defense_with_its_parameters(spec, path, value):
    from skpoison.evaluation._registry import defense_label

    est, _ = build_defense(spec, VICTIM, random_state=3)
    plain, _ = build_defense(spec[0], VICTIM, random_state=3)
    assert defense_label(spec) == spec[0] and type(est) is type(plain)
    assert est.get_params()[path] == value
    params, before = est.get_params(), plain.get_params()
    leaves = [k for k in params if not any(j.startswith(k + "__") for j in params)]
    changed = {k for k in leaves if repr(params[k]) != repr(before[k])}
    assert changed == set(spec[1])


def test_a_named_variant_rejects_what_it_cannot_set():
    with pytest.raises(ValueError, match="Invalid parameter"):
        build_defense(("trim", {"no_such": 1}), VICTIM)
    with pytest.raises(ValueError, match="'none' takes no parameters"):
        build_defense(("none", {"a": 1}), VICTIM)
