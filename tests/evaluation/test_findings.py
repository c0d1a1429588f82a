"""The findings table states each claim, the numbers, the test and a verdict."""

import numpy as np
import pandas as pd
import pytest

from skpoison.evaluation import MIN_REPETITIONS
from skpoison.evaluation._findings import evaluate_findings, paper_findings

DEFENSES = (
    "none",
    "bayesclean",
    "bayesclean_paper",
    "trim",
    "sever",
    "proda",
    "duti",
    "huber",
)
KEYS = {"fig9", "alpha01", "huber", "bayesclean", "stealth"}


def _study(gain_of, nmse_none, rejected, n_reps=8, noise=2.0, dataset="heart"):
    rng = np.random.default_rng(0)
    rows = []
    for rep in range(n_reps):
        for alpha in (1.0, 0.3, 0.1):
            for ratio in (0.0, 0.15, 0.3, 0.45):
                base = nmse_none(alpha, ratio) * (1 + 0.02 * rng.normal())
                for d in DEFENSES:
                    g = (
                        0.0
                        if d == "none"
                        else gain_of(d, alpha, ratio) + noise * rng.normal()
                    )
                    rows.append(dict(dataset=dataset, model="linear", repetition=rep,
                                     alpha=alpha, ratio=ratio, defense=d,
                                     test_nmse=base * (1 - g / 100), defense_gain=g,
                                     diverged=False,
                                     poison_rejected=np.nan if d == "none" or ratio == 0
                                     else rejected(alpha) + 0.02 * rng.normal(),
                                     clean_rejected=0.1))  # fmt: skip
    return pd.DataFrame(rows)


def _fig9(trim_30, n_seeds=8):
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(n_seeds):
        for ratio, trim in ((0.2, 0.25), (0.24, 0.26), (0.3, trim_30)):
            for d, v in (("none", 1.0), ("bayesclean", 0.25), ("trim", trim)):
                rows.append(dict(random_state=seed, ratio=ratio, defense=d,
                                 test_nmse=v * (1 + 0.05 * rng.normal()),
                                 poison_rejected=0.9, clean_test_nmse=0.2))  # fmt: skip
    return pd.DataFrame(rows)


def _paper_like(d, alpha, ratio):
    if d == "bayesclean":
        return 40.0
    if d == "huber":
        return -20.0
    return 30.0 if alpha == 1.0 and ratio < 0.3 else -10.0


def _paper_like_inputs(n_reps=8):
    study = _study(_paper_like, lambda a, r: 0.3 + a * r, lambda a: 0.5 + 0.4 * a,
                   n_reps=n_reps)  # fmt: skip
    return {("heart", "linear"): study}, _fig9(trim_30=0.6, n_seeds=n_reps)


def _contrary_inputs(n_reps=8):
    gains = {"bayesclean": 0.0, "huber": 60.0}
    study = _study(lambda d, a, r: gains.get(d, 50.0),
                   lambda a, r: 0.3 + (1 - a) * r, lambda a: 0.9 - 0.4 * a,
                   n_reps=n_reps)  # fmt: skip
    return {("heart", "linear"): study}, _fig9(trim_30=0.26, n_seeds=n_reps)


def test_paper_like_results_agree():
    findings = evaluate_findings(*_paper_like_inputs())
    assert {f.key for f in findings} == KEYS
    assert {f.key: f.verdict for f in findings} == dict.fromkeys(KEYS, "agree")
    assert all("n = 8" in f.evidence and "p = " in f.evidence or "interval" in
               f.evidence for f in findings)  # fmt: skip
    text = paper_findings(*_paper_like_inputs())
    assert "gain % (Alg. 5 literal)" in text and text.count("| agree |") == 5


def test_contrary_results_disagree():
    findings = evaluate_findings(*_contrary_inputs())
    assert {f.key: f.verdict for f in findings} == dict.fromkeys(KEYS, "disagree")


@pytest.mark.parametrize("n_reps", [1, 2, MIN_REPETITIONS - 1])
@pytest.mark.parametrize("inputs", [_paper_like_inputs, _contrary_inputs])
def test_too_few_repetitions_are_inconclusive(inputs, n_reps):
    findings = evaluate_findings(*inputs(n_reps))
    assert {f.key for f in findings} == KEYS
    assert all(f.verdict == "inconclusive" for f in findings)
    assert all(f"only {n_reps} repetition(s)" in f.evidence for f in findings)


def test_differences_within_the_noise_are_inconclusive():
    # Every defense has the same expected gain: no ordering claim can be decided.
    study = _study(lambda d, a, r: 0.0, lambda a, r: 0.3, lambda a: 0.5, noise=5.0)
    verdicts = {
        f.key: f.verdict for f in evaluate_findings({("heart", "linear"): study})
    }
    assert verdicts["alpha01"] == "inconclusive"
    assert verdicts["stealth"] == "inconclusive"
    assert verdicts["huber"] == "inconclusive"


def test_appliances_expects_huber_to_do_well():
    studies, _ = _paper_like_inputs()
    study = studies[("heart", "linear")].assign(dataset="appliances")
    verdicts = {
        f.key: f.verdict for f in evaluate_findings({("appliances", "linear"): study})
    }
    assert verdicts["huber"] == "disagree"


def test_diverged_runs_are_left_out_not_counted_as_numbers():
    studies, fig9 = _paper_like_inputs(n_reps=10)
    df = studies[("heart", "linear")]
    bad = (df.repetition == 3) & (df.defense == "trim") & (df.alpha == 0.1)
    df.loc[bad, ["test_nmse", "defense_gain"]] = np.nan
    df.loc[bad, "diverged"] = True
    df.loc[bad & (df.ratio == 0.45), "defense_gain"] = 1e9  # must not leak in
    findings = evaluate_findings(studies, fig9)
    assert all(f.verdict == "agree" for f in findings)
    assert "1000000000" not in paper_findings(studies, fig9)


def test_a_defense_that_always_diverged_decides_nothing():
    studies, fig9 = _paper_like_inputs()
    df = studies[("heart", "linear")]
    bad = df.defense.isin(["trim", "sever", "proda", "duti"])
    df.loc[bad, ["test_nmse", "defense_gain", "poison_rejected"]] = np.nan
    df.loc[bad, "diverged"] = True
    verdicts = {f.key: f.verdict for f in evaluate_findings(studies, fig9)}
    # Huber alone is left: its gain is still negative, so it is still poor.
    assert verdicts["huber"] == "agree" and verdicts["alpha01"] == "inconclusive"


def test_few_repetitions_are_flagged_and_enough_are_not():
    few = paper_findings(*_paper_like_inputs(n_reps=2))
    assert few.startswith(
        "**Caveat: 2 repetitions of heart (linear) and 2 seeds of Fig. 9 settle "
        "nothing.**"
    )
    assert "Caveat" not in paper_findings(*_paper_like_inputs(n_reps=MIN_REPETITIONS))
    studies, _ = _paper_like_inputs()
    one_seed = paper_findings(studies, _fig9(0.6, n_seeds=1))
    assert one_seed.startswith("**Caveat: 1 seed of Fig. 9 settles nothing.**")
    assert "the other studies' verdicts stand" in one_seed


def test_the_caveat_names_each_small_study_with_its_own_count():
    # As in the reproduction: LR studies with enough repetitions, a DNN study
    # with 5; the caveat is about the DNN study alone, with its count.
    studies, fig9 = _paper_like_inputs(n_reps=MIN_REPETITIONS + 2)
    studies[("heart", "mlp")] = _paper_like_inputs(n_reps=MIN_REPETITIONS - 1)[0][
        ("heart", "linear")
    ].assign(model="mlp")
    studies[("loan", "mlp")] = _paper_like_inputs(n_reps=2)[0][
        ("heart", "linear")
    ].assign(dataset="loan", model="mlp")
    text = paper_findings(studies, fig9)
    caveat = text.splitlines()[0]
    assert caveat.startswith(
        f"**Caveat: {MIN_REPETITIONS - 1} repetitions of heart (mlp) and 2 "
        "repetitions of loan (mlp) settle nothing.**"
    )
    assert "heart (linear)" not in caveat and "Fig. 9" not in caveat.split("**")[1]
    assert "the other studies' verdicts stand" in caveat
    # Each row's evidence names its own study's count.
    for f in evaluate_findings(studies, fig9):
        if f.study == "heart (mlp)":
            assert f.evidence.startswith(f"only {MIN_REPETITIONS - 1} repetition(s)")
        elif f.study == "loan (mlp)":
            assert f.evidence.startswith("only 2 repetition(s)")
        else:
            assert f.evidence.startswith(f"n = {MIN_REPETITIONS + 2};")


def test_only_the_stealthy_attack_is_judged():
    (key, study), fig9 = next(iter(_paper_like_inputs()[0].items())), None
    other = study.assign(attack="flip", defense_gain=-study["defense_gain"])
    both = pd.concat([study.assign(attack="stealthy"), other], ignore_index=True)
    expected = evaluate_findings({key: study}, fig9)
    assert evaluate_findings({key: both}, fig9) == expected
    assert paper_findings({key: both}) == paper_findings({key: study})
    assert evaluate_findings({key: other}, fig9) == []  # no stealthy rows


def _intervals(text):
    """Every ``mean [low, high]`` of a findings text, as floats."""
    import re

    number = r"(-?\d+(?:\.\d+)?)"
    pattern = rf"{number} \[{number}, {number}\]"
    return [tuple(map(float, m)) for m in re.findall(pattern, text)]


def test_printed_intervals_stay_within_the_range_of_their_quantity():
    # Two repetitions (t_{0.975, 1} = 12.7): near-perfect detection, gains
    # near 100 % and NMSEs near 0, whose unclipped intervals run past 100 or 0.
    studies, fig9 = _paper_like_inputs(n_reps=2)
    df = studies[("heart", "linear")]
    filtered = df["poison_rejected"].notna()
    df.loc[filtered, "poison_rejected"] = np.where(
        df.loc[filtered, "repetition"] == 0, 0.97, 1.0
    )
    df.loc[filtered, "clean_rejected"] = np.where(
        df.loc[filtered, "repetition"] == 0, 0.0, 0.04
    )
    defended = df["defense"] != "none"
    df.loc[defended, "defense_gain"] = np.where(
        df.loc[defended, "repetition"] == 0, 99.0, 90.0
    )
    df.loc[df["defense"] == "none", "test_nmse"] = np.where(
        df.loc[df["defense"] == "none", "repetition"] == 0, 0.02, 0.3
    )
    fig9["test_nmse"] = np.where(fig9["random_state"] == 0, 0.01, 0.4)
    fig9["random_state"] = fig9["random_state"] % 2
    text = paper_findings(studies, fig9)
    rates = text.split("poison rejected by the filters % ")[1].split(" |")[0]
    rules = text[text.index("| study | alpha |") :]
    nmse = text.split("no-defense NMSE ")[1].split(";")[0]
    nmse += text.split("test NMSE at ")[1].split(" |")[0]
    gains = text.split("mean gain % over ratios 7.5-45%: ")[1].split(" |")[0]
    for part, low, high in (
        (rates, 0, 100),
        (rules, 0, 100),  # gains of 90-99 %, rates: all in [0, 100] here
        (nmse, 0, np.inf),
        (gains, -np.inf, 100),
    ):
        found = _intervals(part)
        assert found and all(low <= lo <= m <= hi <= high for m, lo, hi in found)
    # Each interval of a bounded quantity reaches its bound here.
    assert any(hi == 100 for _, _, hi in _intervals(rates))
    assert any(lo == 0 for _, lo, _ in _intervals(nmse))
    assert any(hi == 100 for _, _, hi in _intervals(gains))
