"""The findings table states each claim, the numbers and a verdict."""

import numpy as np
import pandas as pd

from skpoison.evaluation._findings import paper_findings

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


def _study(gain_of, nmse_none, rejected, dataset="heart"):
    rows = []
    for rep in range(2):
        for alpha in (1.0, 0.3, 0.1):
            for ratio in (0.0, 0.15, 0.3, 0.45):
                base = nmse_none(alpha, ratio)
                for d in DEFENSES:
                    g = 0.0 if d == "none" else gain_of(d, alpha, ratio)
                    rows.append(dict(dataset=dataset, model="linear", repetition=rep,
                                     alpha=alpha, ratio=ratio, defense=d,
                                     test_nmse=base * (1 - g / 100), defense_gain=g,
                                     diverged=False,
                                     poison_rejected=np.nan if d == "none" or ratio == 0
                                     else rejected(alpha),
                                     clean_rejected=0.1))  # fmt: skip
    return pd.DataFrame(rows)


def _fig9(trim_30):
    rows = []
    for ratio, trim in ((0.2, 0.25), (0.24, 0.26), (0.3, trim_30)):
        for d, v in (("none", 1.0), ("bayesclean", 0.25), ("trim", trim)):
            rows.append(dict(random_state=0, ratio=ratio, defense=d, test_nmse=v,
                             poison_rejected=0.9, clean_test_nmse=0.2))  # fmt: skip
    return pd.DataFrame(rows)


def _paper_like(d, alpha, ratio):
    if d == "bayesclean":
        return 40.0
    if d == "huber":
        return -20.0
    return 30.0 if alpha == 1.0 and ratio < 0.3 else -10.0


def test_paper_like_results_agree():
    study = _study(_paper_like, lambda a, r: 0.3 + a * r, lambda a: 0.5 + 0.4 * a)
    text = paper_findings({("heart", "linear"): study}, _fig9(trim_30=0.6))
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and "verdict" not in line
    ]
    claims = [r for r in rows if r.count("|") == 5]
    assert len(claims) == 5
    assert all(r.rstrip(" |").endswith("agree") and "disagree" not in r for r in claims)
    assert "gain % (Alg. 5 literal)" in text


def test_contrary_results_disagree():
    gains = {"bayesclean": 0.0, "huber": 60.0}
    study = _study(lambda d, a, r: gains.get(d, 50.0),
                   lambda a, r: 0.3 + (1 - a) * r, lambda a: 0.9 - 0.4 * a)  # fmt: skip
    text = paper_findings({("heart", "linear"): study}, _fig9(trim_30=0.26))
    assert text.count("| disagree |") == 5


def test_few_repetitions_are_flagged_and_enough_are_not():
    study = _study(_paper_like, lambda a, r: 0.3 + a * r, lambda a: 0.5 + 0.4 * a)
    few = paper_findings({("heart", "linear"): study}, _fig9(trim_30=0.6))
    assert few.startswith("**Caveat: 2 repetition(s) settle nothing.**")
    many = pd.concat(
        [study.assign(repetition=study["repetition"] + 2 * k) for k in range(3)]
    )
    assert "Caveat" not in paper_findings({("heart", "linear"): many})
