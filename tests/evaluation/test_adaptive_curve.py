"""poisoning_curve(adaptive=True): the attack adapted to each defense, evaluated on it.

The plumbing is tested with a stand-in attack (a StealthyPoisoner that takes
``defense=`` and records what it was told), so these tests do not depend on
the adaptive attack itself: the evaluation's job is to tell the attack the
right defense, seed and trusted items, and to score its poison on that defense.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from adaptive_stand_in import TOLD, KnowsDefense, WeakerWhenAdaptive

from skpoison.evaluation import poisoning_curve
from skpoison.evaluation._curve import (
    ADAPTIVE_COLUMNS,
    RESULT_COLUMNS,
    TIME_COLUMNS,
    _defense_seed,
)
from skpoison.evaluation._registry import n_trusted_items

SMALL = dict(
    ratios=[0.0, 0.1, 0.2],
    alphas=[1.0, 0.5],
    defenses=["none", "trim", "duti", "huber"],
    n_repetitions=2,
    attack_params={"n_outer_steps": 2},
)
TARGETS = ["trim", "duti"]


def _curve(attack, **kwargs):
    TOLD.clear()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # huber is skipped with a warning (tested below)
        return poisoning_curve(
            "synthetic", attacks=[attack], **{**SMALL, "adaptive": True, **kwargs}
        )


@pytest.fixture(scope="module")
def ordinary():
    return poisoning_curve("synthetic", attacks=[KnowsDefense()], **SMALL)


@pytest.fixture(scope="module")
def same_poison():
    return _curve(KnowsDefense()), list(TOLD)


@pytest.fixture(scope="module")
def weaker():
    return _curve(WeakerWhenAdaptive())


def _values(df):
    return df[list(RESULT_COLUMNS)].reset_index(drop=True)


def test_columns_and_one_adaptive_row_per_target(same_poison):
    df, _ = same_poison
    assert list(df.columns) == [*RESULT_COLUMNS, *ADAPTIVE_COLUMNS, *TIME_COLUMNS]
    adaptive = df[df["adaptive"]]
    # The defended learner of an adaptive unit is the defense its attack knew.
    assert sorted(set(adaptive["defense"])) == sorted(TARGETS)
    keys = ["repetition", "alpha", "ratio", "defense"]
    assert not adaptive[keys].duplicated().any()
    assert len(adaptive) == 2 * 2 * 3 * len(TARGETS)  # reps x alphas x ratios x targets


def test_ordinary_rows_are_those_of_the_ordinary_study(same_poison, ordinary):
    df, _ = same_poison
    pd.testing.assert_frame_equal(_values(df[~df["adaptive"]]), _values(ordinary))
    assert "adaptive" not in ordinary.columns  # the table of today, unchanged
    # Their reference is the "none" row of the same repetition, alpha and ratio.
    none = df[df["defense"] == "none"]
    np.testing.assert_array_equal(
        df.loc[~df["adaptive"], "undefended_nmse"].to_numpy(),
        none.set_index(["repetition", "alpha", "ratio"])["test_nmse"]
        .reindex(pd.MultiIndex.from_frame(df.loc[~df["adaptive"], ["repetition", "alpha", "ratio"]]))
        .to_numpy(),
    )  # fmt: skip


def test_an_attack_that_ignores_the_defense_gives_the_ordinary_numbers(same_poison):
    # Same split, attack seed, victim, defense seed and trusted items: an attack
    # that does nothing with what it is told poisons exactly as the ordinary one.
    df, _ = same_poison
    keys = ["repetition", "alpha", "ratio", "defense"]
    adaptive = df[df["adaptive"]].set_index(keys)
    plain = df[~df["adaptive"]].set_index(keys).loc[adaptive.index]
    cols = ["test_nmse", "defense_gain", "poison_rejected", "n_kept", "defense_seed"]
    pd.testing.assert_frame_equal(adaptive[cols], plain[cols])
    assert (adaptive["undefended_nmse"] == plain["undefended_nmse"]).all()


def test_the_attack_is_told_the_defense_its_seed_and_the_trusted_items(same_poison):
    df, told = same_poison
    adaptive = [(d, n) for d, n in told if d is not None]
    assert len(adaptive) == 2 * 2 * len(TARGETS)  # reps x alphas x targets
    assert {type(d).__name__ for d, _ in adaptive} == {"TrimRegressor", "DutiFilter"}
    trims = [d for d, _ in adaptive if type(d).__name__ == "TrimRegressor"]
    # TRIM's seed in every unit (DUTI draws nothing at random).
    assert {d.random_state for d in trims} == {
        _defense_seed(0, r, "trim") for r in (0, 1)
    }
    assert all(d.reject_fraction == 0.4 for d, _ in adaptive)  # the registry's settings
    # The trusted items of the split (the defense's), for the DUTI route.
    n_train = int(df["n_poison"].max() / 0.2)
    assert {n for _, n in adaptive} == {n_trusted_items(None, n_train, 30)}
    assert all(
        n is None for d, n in told if d is None
    )  # the ordinary attack: D_val only
    assert not any(hasattr(d, "inlier_mask_") for d, _ in adaptive)  # unfitted


def test_adaptive_gain_is_against_the_undefended_model_on_the_same_poison(weaker):
    df = weaker
    adaptive = df[df["adaptive"] & (df["ratio"] > 0)]
    expected = (
        100
        * (adaptive["undefended_nmse"] - adaptive["test_nmse"])
        / adaptive["undefended_nmse"]
    )
    np.testing.assert_allclose(adaptive["defense_gain"], expected, rtol=1e-12)
    # A different poison: its own undefended reference, not the ordinary one.
    plain = df[~df["adaptive"] & (df["defense"] == "none") & (df["ratio"] > 0)]
    assert not set(adaptive["undefended_nmse"]) & set(plain["test_nmse"])
    # Ratio 0 is the clean set for both.
    clean = df[df["ratio"] == 0].set_index(
        ["repetition", "alpha", "defense", "adaptive"]
    )
    for d in TARGETS:
        a = clean.xs((d, True), level=("defense", "adaptive"))["test_nmse"]
        b = clean.xs((d, False), level=("defense", "adaptive"))["test_nmse"]
        pd.testing.assert_series_equal(a, b)


def test_skipped_attacks_and_defenses_are_named():
    with pytest.warns(UserWarning, match=r"defenses \['huber'\] have no relaxation"):
        df = poisoning_curve(
            "synthetic", attacks=[KnowsDefense()], adaptive=True,
            **{**SMALL, "n_repetitions": 1, "alphas": [1.0]},
        )  # fmt: skip
    assert "huber" not in set(df.loc[df["adaptive"], "defense"])
    with pytest.warns(UserWarning, match=r"attacks \['flip'\] take no defense"):
        df = poisoning_curve(
            "synthetic", attacks=["flip"], adaptive=True,
            **{**SMALL, "n_repetitions": 1, "alphas": [1.0], "defenses": ["trim"]},
        )  # fmt: skip
    assert not df["adaptive"].any() and "undefended_nmse" in df.columns
    with pytest.warns(UserWarning, match="needs a linear victim"):
        df = poisoning_curve(
            "synthetic", attacks=[KnowsDefense()], adaptive=True, model="mlp",
            **{**SMALL, "n_repetitions": 1, "alphas": [1.0], "defenses": ["trim"],
               "ratios": [0.0, 0.1], "victim_params": {"n_epochs": 2}},
        )  # fmt: skip
    assert not df["adaptive"].any()


def test_adaptive_must_be_a_bool():
    with pytest.raises(TypeError, match="adaptive must be True or False"):
        poisoning_curve("synthetic", adaptive="yes", **SMALL)


def test_units_are_checkpointed_per_defense_and_resume(weaker, tmp_path):
    kwargs = dict(out_dir=tmp_path, n_repetitions=1)
    first = _curve(WeakerWhenAdaptive(), **kwargs)
    names = sorted(p.stem for p in (tmp_path / "units").glob("*.json"))
    assert names == [
        "rep000_WeakerWhenAdaptive_alpha0.5",
        "rep000_WeakerWhenAdaptive_alpha0.5_adaptive-duti",
        "rep000_WeakerWhenAdaptive_alpha0.5_adaptive-trim",
        "rep000_WeakerWhenAdaptive_alpha1.0",
        "rep000_WeakerWhenAdaptive_alpha1.0_adaptive-duti",
        "rep000_WeakerWhenAdaptive_alpha1.0_adaptive-trim",
    ]
    (tmp_path / "units" / f"{names[2]}.json").unlink()  # as if killed
    resumed = _curve(WeakerWhenAdaptive(), **kwargs)
    assert len([d for d, _ in TOLD if d is not None]) == 1  # only the lost unit ran
    drop = list(TIME_COLUMNS)
    pd.testing.assert_frame_equal(first.drop(columns=drop), resumed.drop(columns=drop))
    one = weaker[weaker["repetition"] == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first.drop(columns=drop), one.drop(columns=drop))
    # The ordinary study is another study: its folder is refused.
    with pytest.raises(ValueError, match="adaptive"):
        poisoning_curve(
            "synthetic", attacks=[WeakerWhenAdaptive()], out_dir=tmp_path,
            **{**SMALL, "n_repetitions": 1},
        )  # fmt: skip


# ------------------------------------------------------- report, figure, findings
def test_report_adds_the_side_by_side_section_and_keeps_the_rest(
    same_poison, ordinary, tmp_path
):
    from skpoison.evaluation import write_report

    df, _ = same_poison
    text = write_report(df, tmp_path / "a.md", title="t")
    plain = write_report(ordinary, tmp_path / "p.md", title="t")
    head, _, section = text.partition("### Adaptive attack")
    meta = "- adaptive attack against: trim, duti (24 more rows)\n"
    assert meta in head
    assert head.replace(meta, "") == plain + "\n"  # the ordinary report, unchanged
    assert "Faced the non-adaptive attack only (no relaxation to follow): huber." in (
        section
    )
    for what in ("Defense gain [%]", "Defended test NMSE"):
        assert f"#### {what}, alpha = 0.5: non-adaptive vs adaptive" in section
    assert "| ratio | trim | trim (adaptive) | duti | duti (adaptive) |" in section
    # The same poison: every damage ratio is exactly 1.
    assert section.count("| 1 [1, 1] |") == 2 * len(TARGETS)


def test_summaries_and_figures_keep_the_two_attacks_apart(weaker):
    from skpoison.evaluation import plot_defense_gain, summarize

    s = summarize(weaker)
    assert (s["n_runs"] == 2).all()  # one row per repetition in every cell
    trim = s[(s["defense"] == "trim") & (s["ratio"] == 0.2) & (s["alpha"] == 1.0)]
    assert sorted(trim["adaptive"]) == [False, True]
    # The ordinary figure draws the non-adaptive rows only.
    fig = plot_defense_gain(weaker)
    plain = weaker[~weaker["adaptive"] & (weaker["alpha"] == 1.0)]
    lines = {c.get_label(): c for c in fig.axes[0].containers}
    expected = plain[plain["defense"] == "trim"].groupby("ratio")["defense_gain"]
    np.testing.assert_allclose(
        lines["trim"].lines[0].get_ydata(), expected.mean().to_numpy()
    )


def test_damage_ratio_is_paired_by_repetition(weaker):
    from skpoison.evaluation._adaptive import damage_ratios, split_adaptive
    from skpoison.evaluation._stats import mean_interval

    plain, adaptive = split_adaptive(weaker)
    rows = {(c, d): r for c, d, *_, r in damage_ratios(plain, adaptive)}
    assert set(rows) == {(f"alpha = {a:g}", d) for a in (1, 0.5) for d in TARGETS}

    def per_rep(df):
        ok = df[(df["alpha"] == 0.5) & (df["defense"] == "trim") & (df["ratio"] > 0)]
        return ok.groupby("repetition")["test_nmse"].mean()

    ratio = (per_rep(adaptive) / per_rep(plain)).to_numpy()
    m = mean_interval(ratio, bounds=(0.0, np.inf))  # a ratio of NMSEs is >= 0
    assert rows[("alpha = 0.5", "trim")] == f"{m.mean:.3g} [{m.low:.3g}, {m.high:.3g}]"


def test_nmse_and_damage_ratio_intervals_stop_at_zero():
    from skpoison.evaluation._adaptive import damage_ratios

    def rows(nmse):
        return pd.DataFrame(dict(alpha=1.0, defense="trim", ratio=0.1,
                                 repetition=[0, 1], diverged=False,
                                 test_nmse=nmse))  # fmt: skip

    # Two repetitions far apart: the unclipped t intervals reach below 0.
    [(_, _, plain, adaptive, ratio)] = damage_ratios(
        rows([0.02, 1.0]), rows([0.01, 2.0])
    )
    for cell in (plain, adaptive, ratio):
        assert cell.split("[")[1].startswith("0, "), cell


def test_figure_draws_both_attacks_per_defense(weaker, tmp_path):
    from skpoison.evaluation import plot_adaptive_gain, plot_poisoning_curve

    written = plot_poisoning_curve(weaker, tmp_path)
    assert written == [
        "nmse.png",
        "defense_gain.png",
        "detection.png",
        "adaptive_gain.png",
    ]
    assert (tmp_path / "adaptive_gain.pdf").exists()
    fig = plot_adaptive_gain(weaker)
    assert [ax.get_title() for ax in fig.axes] == ["α = 1", "α = 0.5"]
    lines = {c.get_label(): c for c in fig.axes[1].containers}
    assert set(lines) == {f"{d}{t}" for d in TARGETS for t in ("", " (adaptive)")}
    adaptive = weaker[weaker["adaptive"] & (weaker["alpha"] == 0.5)]
    expected = adaptive[adaptive["defense"] == "duti"].groupby("ratio")["defense_gain"]
    y = lines["duti (adaptive)"].lines[0].get_ydata()
    np.testing.assert_allclose(y, expected.mean().to_numpy())
    with pytest.raises(ValueError, match="no adaptive rows"):
        plot_adaptive_gain(weaker[~weaker["adaptive"]])


def test_findings_ignore_the_adaptive_rows(weaker):
    from skpoison.evaluation._adaptive import split_adaptive
    from skpoison.evaluation._findings import paper_findings

    table = weaker.assign(attack="stealthy")  # the paper's attack, by its name
    plain, _ = split_adaptive(table)
    text = paper_findings({("synthetic", "linear"): table})
    assert "stealthier" in text.lower()  # there are findings to compare
    assert text == paper_findings({("synthetic", "linear"): plain})


# ------------------------------------------------- with the real adaptive attack
def test_an_adaptive_row_can_be_recomputed_with_the_public_api():
    from sklearn.base import clone

    from skpoison.attacks import StealthyPoisoner
    from skpoison.datasets import split_and_standardize
    from skpoison.defenses import TrimRegressor
    from skpoison.evaluation import load_dataset
    from skpoison.metrics import nmse
    from skpoison.models import TorchLinearRegressor

    df = poisoning_curve(
        "synthetic", alphas=[1.0], ratios=[0.0, 0.1], defenses=["none", "trim"],
        n_repetitions=1, attack_params={"n_outer_steps": 3}, adaptive=True,
    )  # fmt: skip
    row = df[df["adaptive"] & (df["ratio"] == 0.1)].iloc[0]
    assert row["defense"] == "trim" and row["attack"] == "stealthy"
    X, y = load_dataset("synthetic", random_state=0)
    split = split_and_standardize(X, y, random_state=int(row["split_seed"]))
    victim = TorchLinearRegressor(
        learning_rate=0.1, n_epochs=40, random_state=int(row["victim_seed"])
    )
    trim = TrimRegressor(
        estimator=victim, reject_fraction=0.4, random_state=int(row["defense_seed"])
    )
    attack = StealthyPoisoner.from_preset(
        "boston", poison_fraction=0.1, batch_size=10, n_outer_steps=3, device="cpu",
        random_state=int(row["attack_seed"]), defense=clone(trim),
    )  # fmt: skip
    Xp, yp = attack.fit_resample(
        split.X_train, split.y_train, X_val=split.X_val, y_val=split.y_val
    )
    defended = nmse(split.y_test, clone(trim).fit(Xp, yp).predict(split.X_test))
    undefended = nmse(split.y_test, clone(victim).fit(Xp, yp).predict(split.X_test))
    assert defended == pytest.approx(row["test_nmse"], rel=1e-9)
    assert undefended == pytest.approx(row["undefended_nmse"], rel=1e-9)
    # The adaptive attack's poison is not the ordinary attack's.
    plain = df[~df["adaptive"] & (df["ratio"] == 0.1) & (df["defense"] == "none")]
    assert plain["test_nmse"].iloc[0] != pytest.approx(undefended, rel=1e-9)


def test_the_real_adaptive_attack_gets_the_splits_trusted_items():
    # StealthyPoisoner.fit takes X_trusted, so the evaluation hands it DUTI's
    # trusted items and the attacker models the DUTI that runs.
    from sklearn.base import clone

    from skpoison.attacks import StealthyPoisoner
    from skpoison.defenses import DutiFilter
    from skpoison.evaluation._curve import _poisoned_prefixes

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, -1.0] + 0.3 * rng.normal(size=60)
    Xv, yv = X[:20] + 0.1, y[:20]
    trusted = {"X_trusted": Xv[:5], "y_trusted": yv[:5]}
    duti = DutiFilter(reject_fraction=0.2)
    attack = StealthyPoisoner(
        0.1, n_outer_steps=1, batch_size=6, random_state=0, defense=duti
    )
    _poisoned_prefixes(attack, X, y, Xv, yv, [6], trusted=trusted)
    Xp, yp = attack.resample_at()
    runs = clone(duti).fit(Xp, yp, **trusted)
    np.testing.assert_array_equal(attack.defense_.scores_, runs.scores_)
