"""poisoning_curve: the paper's protocol as a tidy table."""

import numpy as np
import pandas as pd
import pytest

from skpoison.attacks import BasePoisoner, StealthyPoisoner
from skpoison.evaluation import poisoning_curve
from skpoison.evaluation._curve import (
    RESULT_COLUMNS,
    TIME_COLUMNS,
    _batch_plan,
    _unit_seeds,
)

# Tiny attacks: the protocol is what is tested here, not the attack's strength.
FAST = dict(
    ratios=[0.0, 0.1, 0.2],
    alphas=[1.0, 0.5],
    defenses=["none", "bayesclean", "huber"],
    n_repetitions=2,
    attack_params={"n_outer_steps": 3},
)


@pytest.fixture(scope="module")
def curve():
    return poisoning_curve("synthetic", **FAST)


def _without_times(df):
    return df.drop(columns=list(TIME_COLUMNS))


def test_columns_and_one_row_per_combination(curve):
    assert list(curve.columns) == [*RESULT_COLUMNS, *TIME_COLUMNS]
    assert len(curve) == 2 * 2 * 3 * 3
    keys = curve[["repetition", "alpha", "ratio", "defense"]]
    assert not keys.duplicated().any()
    assert set(curve["defense"]) == {"none", "bayesclean", "huber"}
    assert set(curve["ratio"]) == {0.0, 0.1, 0.2}


def test_values(curve):
    ok = curve[~curve["diverged"]]
    assert np.all(ok["test_nmse"] >= 0) and np.isfinite(ok["test_nmse"]).all()
    # synthetic: 200 points -> 100 for training; batches of 10% are 10 points
    assert curve.groupby("ratio")["n_poison"].unique().map(list).to_dict() == {
        0.0: [0],
        0.1: [10],
        0.2: [20],
    }
    np.testing.assert_allclose(curve["poison_fraction"], curve["ratio"])
    none = curve[curve["defense"] == "none"]
    np.testing.assert_array_equal(none["defense_gain"], 0.0)
    # Eq. (8) against the undefended row of the same repetition, alpha and ratio
    ref = none.set_index(["repetition", "alpha", "ratio"])["test_nmse"]
    for _, row in curve.iterrows():
        base = ref[(row["repetition"], row["alpha"], row["ratio"])]
        expected = 100 * (base - row["test_nmse"]) / base
        assert row["defense_gain"] == pytest.approx(expected, rel=1e-12)
    filters = curve[curve["defense"] == "bayesclean"]
    assert filters["clean_rejected"].between(0, 1).all()
    poisoned = filters[filters["ratio"] > 0]
    assert poisoned["poison_rejected"].between(0, 1).all()
    assert filters[filters["ratio"] == 0]["poison_rejected"].isna().all()
    assert (filters["n_kept"] <= 100).all()


def test_clean_rows_do_not_depend_on_alpha(curve):
    clean = curve[curve["ratio"] == 0].set_index(["repetition", "defense", "alpha"])
    a1 = clean.xs(1.0, level="alpha")["test_nmse"]
    a05 = clean.xs(0.5, level="alpha")["test_nmse"]
    pd.testing.assert_series_equal(a1, a05)


def test_stealthy_attacks_reuse_the_reference_risk(curve):
    # Alg. 1: alpha < 1 is normalised by the alpha = 1 run's R_ref of the same split.
    per_rep = curve.groupby("repetition")["risk_ref"].nunique()
    assert (per_rep == 1).all()
    assert curve.groupby("repetition")["risk_ref"].first().nunique() == 2


def test_seeds_depend_on_the_repetition_only(curve):
    seeds = ["split_seed", "attack_seed", "victim_seed", "trusted_seed"]
    per_rep = curve.groupby("repetition")[seeds].nunique()
    assert (per_rep == 1).all().all()
    first = curve.groupby("repetition")[seeds].first()
    assert first.iloc[0].tolist() != first.iloc[1].tolist()
    assert first.iloc[1].tolist() == list(_unit_seeds(0, 1).values())


def test_a_row_can_be_recomputed_from_its_seeds(curve):
    from skpoison.attacks import StealthyPoisoner
    from skpoison.datasets import split_and_standardize
    from skpoison.evaluation import load_dataset
    from skpoison.metrics import nmse
    from skpoison.models import TorchLinearRegressor

    row = curve[
        (curve["repetition"] == 1)
        & (curve["alpha"] == 0.5)
        & (curve["ratio"] == 0.2)
        & (curve["defense"] == "none")
    ].iloc[0]
    X, y = load_dataset("synthetic", random_state=0)
    split = split_and_standardize(X, y, random_state=int(row["split_seed"]))
    attack = StealthyPoisoner.from_preset(
        "boston",
        alpha=0.5,
        poison_fraction=0.2,
        batch_size=10,
        n_outer_steps=3,
        risk_ref=row["risk_ref"],
        device="cpu",
        random_state=int(row["attack_seed"]),
    )
    Xp, yp = attack.fit_resample(
        split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val
    )
    victim = TorchLinearRegressor(learning_rate=0.1, n_epochs=40).fit(Xp, yp)
    score = nmse(split.y_test, victim.predict(split.X_test))
    assert score == pytest.approx(row["test_nmse"], rel=1e-9)


def test_n_jobs_does_not_change_the_results(curve, monkeypatch):
    from skpoison.evaluation import _curve

    # Workers forced (this small study would run in-process, see below).
    monkeypatch.setattr(_curve, "_workers_win", lambda *args, **kwargs: True)
    parallel = poisoning_curve("synthetic", n_jobs=2, **FAST)
    pd.testing.assert_frame_equal(_without_times(curve), _without_times(parallel))


@pytest.mark.parametrize(
    "n_units, unit_seconds, n_workers, start, win",
    [
        (6, 0.5, 2, 3.5, False),  # the quick study: start-up exceeds the gain
        (6, 4.0, 2, 3.5, True),  # 3.5 + 3 * 4 < 24
        (3, 1.0, 2, 0.0, True),  # free workers: 2 rounds < 3 units
        (2, 10.0, 4, 3.5, True),  # 3.5 + 10 < 20
        (1, 100.0, 8, 0.1, False),  # one unit: nothing to share
        (40, 1.0, 1, 0.0, False),  # one worker never wins
        (5, 1.0, 8, 0.0, True),
        (5, 1.0, 8, 4.0, False),  # 4 + 1 = 5: a tie is no win
    ],
)
def test_workers_are_used_only_when_the_projected_time_wins(
    n_units, unit_seconds, n_workers, start, win
):
    from skpoison.evaluation._curve import _workers_win

    assert _workers_win(n_units, unit_seconds, n_workers, start) is win


def test_a_small_study_with_n_jobs_runs_in_process(curve, monkeypatch):
    import joblib

    from skpoison.evaluation import _curve

    calls = []
    real = _curve._workers_win

    def spy(n_units, unit_seconds, n_workers):
        calls.append((n_units, unit_seconds, n_workers))
        # Start-up far above any unit time: the decision cannot flip under load.
        return real(n_units, unit_seconds, n_workers, start_seconds=1e9)

    def refuse(*args, **kwargs):
        raise AssertionError("workers started for a small study")

    monkeypatch.setattr(_curve, "_workers_win", spy)
    monkeypatch.setattr(joblib, "Parallel", refuse)
    monkeypatch.setattr(_curve, "warm_workers", lambda backend: 0)  # none running
    df = poisoning_curve("synthetic", n_jobs=2, **FAST)
    # Decided before each unit but the very first, from the measured unit times
    # and the units left for the workers: phase 1 (alpha = 1) leaves 1 unit and
    # phase 2's 2 (workers started then would run both phases), phase 2 has 2
    # then 1.
    assert [c[0] for c in calls] == [3, 2, 1]
    assert all(c[1] > 0 and c[2] == 2 for c in calls)
    pd.testing.assert_frame_equal(_without_times(curve), _without_times(df))


def test_running_workers_take_every_unit_of_the_next_study(curve, monkeypatch):
    from skpoison.evaluation import _curve

    with monkeypatch.context() as m:  # a first study starts the workers
        m.setattr(_curve, "_workers_win", lambda *args, **kwargs: True)
        poisoning_curve("synthetic", n_jobs=2, **FAST)
    assert _curve.warm_workers() >= 2 and _curve.warm_workers("threading") == 0

    def measure(*args, **kwargs):
        raise AssertionError("units measured in-process although workers run")

    monkeypatch.setattr(_curve, "_workers_win", measure)
    df = poisoning_curve("synthetic", n_jobs=2, **FAST)
    pd.testing.assert_frame_equal(_without_times(curve), _without_times(df))


def test_resume_skips_finished_units_and_gives_the_same_table(curve, tmp_path):
    first = poisoning_curve("synthetic", out_dir=tmp_path, **FAST)
    units = sorted((tmp_path / "units").glob("*.json"))
    assert len(units) == 4  # 2 repetitions x 2 alphas
    # Lose half the units, as if the run had been killed.
    for path in units[::2]:
        path.unlink()
    resumed = poisoning_curve("synthetic", out_dir=tmp_path, **FAST)
    pd.testing.assert_frame_equal(_without_times(first), _without_times(resumed))
    pd.testing.assert_frame_equal(_without_times(curve), _without_times(resumed))
    kept = units[1]
    assert kept.exists() and not list(tmp_path.glob("units/.*.tmp"))


def test_a_different_study_in_the_same_folder_is_refused(tmp_path):
    small = dict(FAST, alphas=[1.0], n_repetitions=1, defenses=["none"])
    poisoning_curve("synthetic", out_dir=tmp_path, **small)
    with pytest.raises(ValueError, match="different study"):
        poisoning_curve("synthetic", out_dir=tmp_path, **dict(small, random_state=1))
    df = poisoning_curve(
        "synthetic", out_dir=tmp_path, overwrite=True, **dict(small, random_state=1)
    )
    assert df["split_seed"].iloc[0] == _unit_seeds(1, 0)["split_seed"]
    assert len(list((tmp_path / "units").glob("*.json"))) == 1


def test_divergence_is_a_result_not_a_crash():
    # eta = 50 breaks the stability limit of gradient descent on any of these sets.
    df = poisoning_curve(
        "synthetic",
        **dict(FAST, alphas=[1.0], n_repetitions=1, defenses=["none", "bayesclean"]),
        victim_params={"learning_rate": 50.0},
    )
    assert df["diverged"].all()
    assert df["test_nmse"].isna().all() and df["defense_gain"].isna().all()
    assert df["error"].str.contains("DivergenceError").all()


def test_alpha_one_reference_runs_even_when_not_asked_for():
    df = poisoning_curve("synthetic", **dict(FAST, alphas=[0.5], n_repetitions=1))
    assert set(df["alpha"]) == {0.5}
    assert df["risk_ref"].notna().all()


def test_user_arrays_and_estimators():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=120)
    X_copy = X.copy()
    df = poisoning_curve(
        (X, y),
        **dict(FAST, alphas=[1.0], n_repetitions=1, defenses=["none", Ridge()]),
    )
    assert set(df["defense"]) == {"none", "Ridge"}
    assert set(df["dataset"]) == {"custom"}
    np.testing.assert_array_equal(X, X_copy)


def test_batch_plan_follows_the_paper_presets():
    ratios = (0.0, 0.075, 0.15, 0.225, 0.3, 0.375, 0.45)
    assert _batch_plan(ratios, 253, "boston") == (19, (0, 1, 2, 3, 4, 5, 6))
    assert _batch_plan(ratios, 9868, "appliances") == (740, (0, 1, 2, 3, 4, 5, 6))
    assert _batch_plan((0.0, 0.1, 0.3), 100, None) == (10, (0, 1, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alphas=[0.0]), "alphas"),
        (dict(alphas=[1.5]), "alphas"),
        (dict(ratios=[0.0, -0.1]), "ratios"),
        (dict(ratios=[0.1, 0.1]), "duplicates"),
        (
            dict(ratios=[0.1, 0.12], attack_params={"batch_size": 10}),
            "distinct whole batches",
        ),
        (dict(ratios=[0.001]), "below one poisoning batch"),
        (dict(defenses=["nope"]), "Unknown defense"),
        (dict(defenses=["none", "none"]), "unique"),
        (dict(model="tree"), "model"),
        (dict(n_repetitions=0), "n_repetitions"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    params = dict(FAST, **kwargs)
    with pytest.raises(ValueError, match=match):
        poisoning_curve("synthetic", **params)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Unknown dataset"):
        poisoning_curve("iris")


def test_constant_target_is_refused_before_any_unit(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 3))
    with pytest.raises(ValueError, match=r"y is constant.*NMSE"):
        poisoning_curve((X, np.full(40, 2.5)), out_dir=tmp_path / "out", **FAST)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ several attacks
class TopTargetPoisoner(BasePoisoner):
    """A baseline without a stealth factor: targets to the top of the box."""

    def __init__(self, poison_fraction=0.1, *, bounds=None, random_state=None):
        self.poison_fraction = poison_fraction
        self.bounds = bounds
        self.random_state = random_state

    def _craft(self, state, indices):
        return state["X_current"][indices], np.full(
            indices.size, state["bounds"][1][-1]
        )


TWO = dict(FAST, n_repetitions=1, defenses=["none", "trim"])


@pytest.fixture(scope="module")
def two_attacks():
    return poisoning_curve(
        "synthetic", attacks=["stealthy", TopTargetPoisoner()], **TWO
    )


def test_default_attack_numbers_are_unchanged(reference_script, assert_reference):
    # The stored table was computed before the evaluation took several attacks.
    from pathlib import Path

    here = Path(__file__).parent / "data"
    script = reference_script(here / "make_curve_reference.py")
    stored = pd.read_csv(here / "curve_reference.csv")
    computed = script.compute().reset_index(drop=True)
    assert list(computed.columns) == list(stored.columns)
    # The attack's own numbers (the undefended rows, risk_ref) are unchanged
    # (bit-identical on the fixture's CPU; up to last-bit rounding elsewhere).
    # The defended rows are not compared: TRIM's least-squares core and stopping
    # rule changed on purpose after the reference was written (issue #13).
    attack_rows = (stored["defense"] == "none").to_numpy()
    assert np.array_equal(computed["defense"].to_numpy(), stored["defense"].to_numpy())
    for col in computed.columns:
        assert_reference(
            computed[col].to_numpy()[attack_rows],
            stored[col].to_numpy()[attack_rows],
            col,
        )
    default = poisoning_curve("synthetic", **script.ARGS)
    assert set(default["attack"]) == {"stealthy"}


def test_each_attack_gets_its_own_curves(two_attacks):
    df = two_attacks
    assert list(dict.fromkeys(df["attack"])) == ["stealthy", "TopTargetPoisoner"]
    keys = df[["repetition", "attack", "alpha", "ratio", "defense"]]
    assert not keys.duplicated().any()
    # the stealthy attack at every alpha, the baseline (no alpha) once
    per_attack = df.groupby("attack")["alpha"].unique().map(sorted).to_dict()
    assert per_attack == {"stealthy": [0.5, 1.0], "TopTargetPoisoner": [1.0]}
    assert len(df) == (2 + 1) * 3 * 2
    # the clean rows are shared; the poisoned ones are each attack's own
    clean = df[df["ratio"] == 0].groupby("defense")["test_nmse"].nunique()
    assert (clean == 1).all()
    top = df[(df["attack"] == "TopTargetPoisoner") & (df["defense"] == "none")]
    assert top["risk_ref"].isna().all()
    base = top.set_index("ratio")["test_nmse"]
    assert base[0.2] > base[0.1] > base[0.0]  # targets at the top of the box hurt
    # Eq. (8) against the undefended row of the same attack
    trim = df[(df["attack"] == "TopTargetPoisoner") & (df["defense"] == "trim")]
    gain = 100 * (base.to_numpy() - trim["test_nmse"].to_numpy()) / base.to_numpy()
    np.testing.assert_allclose(trim["defense_gain"], gain, rtol=1e-12)


def test_adding_an_attack_leaves_the_others_rows_unchanged(two_attacks):
    alone = poisoning_curve("synthetic", **TWO)
    both = two_attacks[two_attacks["attack"] == "stealthy"].reset_index(drop=True)
    pd.testing.assert_frame_equal(_without_times(alone), _without_times(both))


def test_checkpoints_are_keyed_per_attack(two_attacks, tmp_path):
    args = dict(attacks=["stealthy", TopTargetPoisoner()], out_dir=tmp_path, **TWO)
    first = poisoning_curve("synthetic", **args)
    names = sorted(p.stem for p in (tmp_path / "units").glob("*.json"))
    assert names == [
        "rep000_TopTargetPoisoner_alpha1.0",
        "rep000_stealthy_alpha0.5",
        "rep000_stealthy_alpha1.0",
    ]
    (tmp_path / "units" / "rep000_stealthy_alpha0.5.json").unlink()
    resumed = poisoning_curve("synthetic", **args)
    pd.testing.assert_frame_equal(_without_times(first), _without_times(resumed))
    pd.testing.assert_frame_equal(_without_times(first), _without_times(two_attacks))
    with pytest.raises(ValueError, match="different study"):
        poisoning_curve("synthetic", **dict(args, attacks=["stealthy"]))


@pytest.mark.parametrize(
    "attacks, error, match",
    [
        (["nope"], ValueError, "Unknown attack 'nope'"),
        (["stealthy", "stealthy"], ValueError, "attack names must be unique"),
        ([], ValueError, "attacks must not be empty"),
        ([object()], TypeError, "An attack must be a name or an attack object"),
    ],
)
def test_bad_attacks_are_refused_before_any_work(attacks, error, match, tmp_path):
    with pytest.raises(error, match=match):
        poisoning_curve("synthetic", attacks=attacks, out_dir=tmp_path / "o", **TWO)
    assert not (tmp_path / "o").exists()


def test_an_attack_object_keeps_its_settings_but_not_the_protocols():
    from skpoison.evaluation import build_attack
    from skpoison.evaluation._curve import _make_attacker, _make_study

    mine = StealthyPoisoner(n_outer_steps=1, alpha=0.2, poison_fraction=0.3)
    study = _make_study(
        "synthetic", model="linear", ratios=[0.0, 0.1], alphas=[1.0, 0.5],
        defenses=["none"], attacks=[mine], n_repetitions=1, attack_params=None,
        victim_params=None, random_state=0, device="cpu",
        divergence_threshold=1e6, threads_per_unit=1,
    )[0]  # fmt: skip
    att = _make_attacker(study, 0, 0.5, 3.0, 100, seed=7)
    assert att is not mine and att.n_outer_steps == 1  # its own setting
    assert (att.alpha, att.poison_fraction, att.risk_ref) == (0.5, 0.1, 3.0)
    assert (att.batch_size, att.random_state, att.device) == (10, 7, "cpu")
    assert build_attack(mine).get_params() == mine.get_params()
