"""poisoning_curve with victims fitted by scikit-learn itself."""

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, LinearRegression, Ridge

from skpoison.defenses import TrimRegressor
from skpoison.evaluation import build_defense, poisoning_curve
from skpoison.evaluation._curve import _make_attacker, _make_victim, _presets
from skpoison.evaluation._registry import make_sklearn_victim


def test_names_map_to_estimators_with_their_parameters():
    assert isinstance(make_sklearn_victim("ols"), LinearRegression)
    enet = make_sklearn_victim("elasticnet", {"alpha": 0.2, "l1_ratio": 0.3})
    assert isinstance(enet, ElasticNet) and enet.l1_ratio == 0.3
    with pytest.raises(ValueError, match="unknown scikit-learn victim"):
        make_sklearn_victim("svr")


def test_the_study_attacks_and_trains_the_same_estimator():
    attack, victim = _presets("boston", "ridge")
    assert victim == {} and "n_inner_steps" not in attack and "inner_lr" not in attack
    df = poisoning_curve(
        "synthetic", model="ridge", victim_params={"alpha": 2.0}, alphas=[1.0],
        ratios=[0.0, 0.1], defenses=["none", "trim"], n_repetitions=1,
        attack_params={"n_outer_steps": 2},
    )  # fmt: skip
    assert set(df["model"]) == {"ridge"} and not df["diverged"].any()
    assert np.isfinite(df["test_nmse"]).all()


def test_victim_attacker_and_trim_use_the_estimator():
    from skpoison.evaluation._curve import _Study

    study = _Study(
        dataset="synthetic", preset_key=None, model="ridge", ratios=(0.0, 0.1),
        batch_counts=(0, 1), batch_size=5, attack_params={"n_outer_steps": 2},
        victim_params={"alpha": 3.0}, defenses=("none", "trim"),
        labels=("none", "trim"), attacks=("stealthy",), attack_labels=("stealthy",),
        attack_alphas=((1.0,),), random_state=0, device="cpu",
        divergence_threshold=1e6, threads_per_unit=None,
    )  # fmt: skip
    victim = _make_victim(study, 0)
    assert isinstance(victim, Ridge) and victim.alpha == 3.0
    attacker = _make_attacker(study, 0, 1.0, None, 50, 0)  # attack 0: "stealthy"
    assert isinstance(attacker.model, Ridge) and attacker.model.alpha == 3.0
    trim, _ = build_defense("trim", victim)
    assert isinstance(trim, TrimRegressor) and isinstance(trim.estimator, Ridge)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="elasticnet"):
        poisoning_curve("synthetic", model="svr", n_repetitions=1)
