"""poisoning_curve's ratio conventions: replacement (ours) and injection (the paper's)."""

import numpy as np
import pytest

from skpoison.attacks import StealthyPoisoner
from skpoison.evaluation import poisoning_curve
from skpoison.evaluation._curve import (
    _batch_plan,
    _injecting,
    _injection_plan,
    _make_study,
    _poisoned_prefixes,
)

TINY = dict(alphas=[1.0], ratios=[0.0, 0.1, 0.2], defenses=["none", "trim"],
            n_repetitions=1, attack_params={"n_outer_steps": 2})  # fmt: skip


def _study(**kw):
    args = dict(model="linear", ratios=[0.0, 0.1, 0.3], alphas=[1.0],
                defenses=["none"], attacks=["stealthy"], n_repetitions=1,
                attack_params=None, victim_params=None, random_state=0,
                device="cpu", divergence_threshold=1e6, threads_per_unit=1)  # fmt: skip
    return _make_study("synthetic", **{**args, **kw})


def test_injection_plan_adds_r_over_1_minus_r_points():
    # 100 clean points: r = n_p / (100 + n_p)  ->  n_p = 100 r / (1 - r)
    assert _injection_plan([0.0, 0.1, 0.2, 0.5], 100, None) == (10, (0, 11, 25, 100))
    # the batch is the replacement convention's (Table II's for 7.5 % steps)
    ratios = (0.0, 0.075, 0.15, 0.45)
    assert (
        _injection_plan(ratios, 253, "boston")[0]
        == _batch_plan((0.0, 0.075, 0.15), 253, "boston")[0]
    )
    with pytest.raises(ValueError, match="at most 0.5"):
        _injection_plan([0.0, 0.6], 100, None)
    with pytest.raises(ValueError, match="injects no poison point"):
        _injection_plan([0.0, 0.001], 100, None)
    with pytest.raises(ValueError, match="same number of poison points"):
        _injection_plan([0.01, 0.012], 100, None)


def test_the_default_convention_leaves_the_study_and_its_hash_alone():
    study, _, _, config = _study()
    assert study.ratio_convention == "replacement" and "ratio_convention" not in config
    assert study.n_poisons == (0, 10, 30)
    inj, _, _, inj_config = _study(ratio_convention="injection")
    assert inj_config["ratio_convention"] == "injection"
    assert inj.n_poisons == (0, 11, 43) and inj.batch_size == 10
    with pytest.raises(ValueError, match="'replacement' or 'injection'"):
        _study(ratio_convention="added")


def test_injected_prefixes_keep_every_clean_point():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = X @ [1.0, -0.5] + 0.1 * rng.normal(size=40)
    copies = rng.choice(40, 12, replace=False)
    Xa, ya = np.vstack([X, X[copies]]), np.concatenate([y, y[copies]])
    attack = StealthyPoisoner(12 / 52, batch_size=5, n_outer_steps=2, random_state=0)
    attack = _injecting(attack, 40)
    assert type(attack).__name__ == "StealthyPoisoner"
    out = _poisoned_prefixes(attack, Xa, ya, X[:10], y[:10], (0, 5, 12), n_clean=40)
    assert sorted(out) == [5, 12]
    for n, (Xp, yp, idx) in out.items():
        assert Xp.shape == (40 + n, 2) and yp.shape == (40 + n,)
        np.testing.assert_array_equal(Xp[:40], X)  # the clean set, untouched
        np.testing.assert_array_equal(idx, np.arange(40, 40 + n))
    assert set(attack.poison_indices_) <= set(range(40, 52))
    # the 5-point prefix is the first 5 poison points of the 12-point run
    np.testing.assert_array_equal(out[5][0][40:], out[12][0][40:45])


def test_injection_study_rows():
    df = poisoning_curve("synthetic", ratio_convention="injection", **TINY)
    rows = df[df["ratio"] > 0]
    # 100 clean training points: 11 and 25 poison points are added
    assert rows.groupby("ratio")["n_poison"].first().tolist() == [11, 25]
    np.testing.assert_allclose(rows["poison_fraction"], rows["ratio"], atol=1e-3)
    trim = rows[rows["defense"] == "trim"]
    # TRIM keeps 60 % of what it gets: 100 + n_p points, not 100
    assert trim["n_kept"].tolist() == [round(0.6 * (100 + n)) for n in trim["n_poison"]]
    clean = df[df["ratio"] == 0]
    same = poisoning_curve("synthetic", **TINY)
    np.testing.assert_array_equal(
        clean["test_nmse"], same[same["ratio"] == 0]["test_nmse"]
    )


def test_injection_needs_base_poisoners():
    class Other:
        def fit(self, X, y):
            return self

        def resample_at(self, n=None):
            return None

        def get_params(self, deep=True):
            return {}

    with pytest.raises(ValueError, match="BasePoisoner"):
        _injecting(Other(), 10)
