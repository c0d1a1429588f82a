"""The paper's Table II (attack) and Table III (victim) settings."""

import numpy as np
import pytest

from skpoison.attacks import (
    ATTACK_PRESETS,
    VICTIM_PRESETS,
    StealthyPoisoner,
    get_preset,
    get_victim_preset,
)

# Table I: training-set sizes, for the batch-size check.
N_TRAIN = {"loan": 3361, "heart": 1599, "boston": 253, "appliances": 9868}

# Table II, row by row: (T_out, gamma, T, eta, batch).
TABLE_II = {
    ("loan", "linear"): (120, 0.9, 30, 0.1, 252),
    ("heart", "linear"): (50, 0.9, 40, 0.1, 120),
    ("boston", "linear"): (100, 0.9, 40, 0.1, 19),
    ("appliances", "linear"): (50, 0.9, 70, 0.2, 740),
    ("loan", "mlp"): (150, 0.9, 90, 0.1, 252),
    ("heart", "mlp"): (80, 0.9, 100, 0.1, 120),
}


@pytest.mark.parametrize("key", sorted(TABLE_II))
def test_attack_preset_is_table_ii(key):
    p = get_preset(*key)
    got = (p["n_outer_steps"], p["outer_lr"], p["n_inner_steps"], p["inner_lr"])
    assert (*got, p["batch_size"]) == TABLE_II[key]
    assert p["model"] == key[1]


@pytest.mark.parametrize("key", sorted(TABLE_II))
def test_victim_trains_like_the_inner_problem(key):
    # Table III equals Table II's (eta, T): the victim learns what was attacked.
    attack, victim = get_preset(*key), get_victim_preset(*key)
    assert victim == {
        "learning_rate": attack["inner_lr"],
        "n_epochs": attack["n_inner_steps"],
    }


@pytest.mark.parametrize("dataset", sorted(N_TRAIN))
def test_batches_are_the_cumulative_step_of_7_5_percent(dataset):
    assert get_preset(dataset)["batch_size"] == round(0.075 * N_TRAIN[dataset])


def test_tables_cover_the_same_settings():
    assert set(ATTACK_PRESETS) == set(VICTIM_PRESETS) == set(TABLE_II)


def test_aliases_and_fresh_copies():
    assert get_preset("Boston_Housing", "LR") == get_preset("boston")
    assert get_preset("heart_disease", "dnn") == get_preset("heart", "mlp")
    get_preset("boston")["batch_size"] = -1
    assert ATTACK_PRESETS["boston", "linear"]["batch_size"] == 19


@pytest.mark.parametrize(
    "args, match",
    [
        (("mnist",), "Unknown dataset"),
        (("boston", "svm"), "Unknown model"),
        (("boston", "mlp"), "no setting"),
    ],  # fmt: skip
)
def test_unknown_settings_raise(args, match):
    with pytest.raises(ValueError, match=match):
        get_preset(*args)
    with pytest.raises(ValueError, match=match):
        get_victim_preset(*args)


def test_from_preset_fills_the_table_and_keeps_overrides():
    att = StealthyPoisoner.from_preset("loan", "mlp", alpha=0.3, n_outer_steps=7)
    params = att.get_params()
    assert params["alpha"] == 0.3 and params["n_outer_steps"] == 7
    assert params["n_inner_steps"] == 90 and params["batch_size"] == 252
    assert params["model"] == "mlp"


def test_from_preset_with_an_estimator_takes_the_outer_settings_only():
    from sklearn.linear_model import Ridge

    ridge = Ridge(alpha=2.0)
    params = StealthyPoisoner.from_preset("heart", ridge).get_params()
    assert params["model"] is ridge
    assert (params["n_outer_steps"], params["batch_size"]) == (50, 120)
    # The GD settings do not apply to an estimator: they keep their defaults.
    defaults = StealthyPoisoner().get_params()
    assert params["n_inner_steps"] == defaults["n_inner_steps"]
    assert params["inner_lr"] == defaults["inner_lr"]


@pytest.mark.parametrize("model", ["linear", "dnn", "estimator"])
def test_optp_options_preset(model):
    from sklearn.linear_model import LinearRegression

    from skpoison.attacks import OPTP_OPTIONS

    victim = LinearRegression() if model == "estimator" else model
    before = dict(OPTP_OPTIONS)
    att = StealthyPoisoner.from_preset("OptP", victim, outer_lr=0.5)
    params = att.get_params()
    assert {k: params[k] for k in OPTP_OPTIONS} == {**OPTP_OPTIONS, "outer_lr": 0.5}
    assert OPTP_OPTIONS == before  # the override did not leak
    assert before["init"] == "inverse_flip" and before["batch_size"] == 1.0
    expected = {"linear": "linear", "dnn": "mlp"}.get(model, victim)
    assert params["model"] is expected or params["model"] == expected
    with pytest.raises(ValueError, match="Unknown model"):
        StealthyPoisoner.from_preset("optp", "svm")


def test_optp_options_attack_runs_on_the_training_objective():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, -1.0] + 0.1 * rng.normal(size=60)
    att = StealthyPoisoner.from_preset("optp", LinearRegression(), random_state=0)
    att.set_params(poison_fraction=0.15, device="cpu").fit(X, y)
    assert att.n_batches_ == 1 and att.validation_indices_.size == 0
    loss = att.history_[0]["val_loss"]
    assert loss[-1] > loss[0]  # the training loss of the victim climbs
