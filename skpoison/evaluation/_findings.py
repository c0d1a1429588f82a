"""The paper's qualitative findings, checked against measured results, with a test.

:func:`evaluate_findings` takes the tables of a reproduction (one
:func:`poisoning_curve` table per dataset and model, and the Fig. 9 table of
:func:`figure_9`) and returns, for each finding the paper states and each
study it applies to, what we measured, the criterion, the statistic that
decided, and a verdict: ``agree``, ``disagree`` or ``inconclusive``.
:func:`paper_findings` renders them as Markdown.

The findings (Sections IV-C and V-D, Fig. 9):

1. TRIM fails above about 24 % poisoning on the synthetic set while BayesClean
   still filters at 30 % (Fig. 9).
2. Against the stealthiest attack (alpha = 0.1) most defenses have a negative
   defense gain.
3. Huber performs poorly for every alpha on every dataset except Appliances.
4. BayesClean is competitive at alpha = 1 and better than the other defenses
   beyond 20-30 % poisoning.
5. Stealthier attacks (smaller alpha) are less effective but less detected.

How a verdict is reached. The unit of evidence is the repetition (a random
split, or a seed of Fig. 9): each criterion is reduced to one number per
repetition (e.g. a defense's gain averaged over the ratios the claim is
about; diverged runs left out of that average), so repetitions are
independent and paired across defenses and alphas. A comparison ("A above
B", "NMSE grows by more than 1.5 x") is a two-sided Wilcoxon signed-rank test
of the per-repetition differences; it agrees when significant at 5 % in the
paper's direction, disagrees when significant the other way, and is
inconclusive otherwise. A sign ("the gain is negative") is decided by the 95 %
t interval of the mean: wholly below or above zero, or straddling it.
The intervals the table prints are clipped to the range of their quantity
(:data:`~skpoison.evaluation._stats.VALUE_BOUNDS`): an NMSE's low end at 0,
a defense gain's high end at 100 %, a percentage of points rejected to
[0, 100]; with few repetitions an unclipped t interval runs past them (a
detection rate of "99 [88, 110]" with 2 runs). A sign is decided on a gain's
unclipped interval; clipping its high end at 100 % could not change it. A
finding made of several parts is the three-valued AND of its parts: it
disagrees if any part does, agrees if all do, and is inconclusive otherwise.
Comparisons of one defense with several others are Holm-adjusted. With fewer
than :data:`~skpoison.evaluation.MIN_REPETITIONS` repetitions (6: below, no
paired test can reach 5 %) every verdict is inconclusive, whatever the means
say.

The findings are about the paper's attack: in a study that compares attacks
(an ``attack`` column), only the stealthy attack's rows (``"stealthy"`` or a
:class:`~skpoison.attacks.StealthyPoisoner` object) are judged and the other
attacks are ignored; a study without them has no findings. The rows of an
adaptive attack (``adaptive=True``) are left out too: the findings are the
same with and without ``adaptive``.

BayesClean's two accept rules (the text's ``|y - mu| <= c1 sigma`` and
Alg. 5's literal ``|y| <= |mu + c1 sigma|``) are compared side by side.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._report import markdown_table
from ._stats import (
    CONFIDENCE,
    MIN_REPETITIONS,
    VALUE_BOUNDS,
    holm,
    mean_interval,
    paired_test,
)

__all__ = ["Finding", "evaluate_findings", "paper_findings"]

# The defenses of the paper's comparison (Fig. 10), BayesClean's literal rule aside.
_OTHERS = ("trim", "sever", "proda", "duti", "huber")
_LEVEL = 1 - CONFIDENCE
AGREE, DISAGREE, INCONCLUSIVE = "agree", "disagree", "inconclusive"


class Finding(NamedTuple):
    """One of the paper's findings checked on one study."""

    key: str
    claim: str
    study: str
    measured: str
    criterion: str
    evidence: str
    verdict: str


def _f(x, digits=1):
    return (
        "n/a"
        if x is None or (isinstance(x, float) and math.isnan(x))
        else f"{x:.{digits}f}"
    )


def _p(p):
    return "n/a" if math.isnan(p) else f"{p:.2g}"


def _ci(values, value="defense_gain", digits=1, scale=1.0):
    """``mean [low, high]`` of ``scale * values``, clipped to the range of ``value``."""
    bounds = tuple(scale * b for b in VALUE_BOUNDS[value])
    m = mean_interval(np.asarray(values, dtype=float) * scale, bounds=bounds)
    return f"{_f(m.mean, digits)} [{_f(m.low, digits)}, {_f(m.high, digits)}]"


def _nmse(values):
    return _ci(values, "test_nmse", 2)


def _rate(values, value="poison_rejected"):
    """A fraction of points rejected, in percent."""
    return _ci(values, value, 0, 100)


def _and(verdicts) -> str:
    verdicts = list(verdicts)
    if DISAGREE in verdicts:
        return DISAGREE
    return AGREE if verdicts and all(v == AGREE for v in verdicts) else INCONCLUSIVE


def _direction(diff, what: str):
    """Wilcoxon test of per-repetition differences expected to be positive."""
    t = paired_test(diff, np.zeros(len(diff)))
    verdict = INCONCLUSIVE
    if t.pvalue < _LEVEL:
        verdict = AGREE if t.mean_difference > 0 else DISAGREE
    evidence = f"{what}: mean {_f(t.mean_difference, 2)}, p = {_p(t.pvalue)}"
    return verdict, evidence


def _sign(values):
    """-1, +1 or 0: the 95 % interval of the mean below, above or around zero."""
    m = mean_interval(values)
    if m.high < 0:
        return -1
    return 1 if m.low > 0 else 0


def _versus(target, scores):
    """Holm-adjusted tests of ``target`` against each other entry of ``scores``.

    Returns {other: +1 (target significantly higher), -1 (lower) or 0} and the
    adjusted p-values.
    """
    others = [k for k in scores if k != target]
    tests = [paired_test(scores[target], scores[k]) for k in others]
    adjusted = holm([t.pvalue for t in tests]) if others else np.zeros(0)
    signs = {
        k: (int(np.sign(t.mean_difference)) if p < _LEVEL else 0)
        for k, t, p in zip(others, tests, adjusted)
    }
    return signs, dict(zip(others, adjusted.tolist()))


def _per_rep(df, value="defense_gain", unit="repetition", **where):
    """One number per repetition: the mean of ``value`` over the selected rows.

    Every repetition of ``df`` gets an entry (NaN if none of its selected rows
    is finite), so results of different selections stay aligned.
    """
    units = np.sort(df[unit].unique())
    sub = df[~df["diverged"].astype(bool)] if "diverged" in df else df
    for col, wanted in where.items():
        if callable(wanted):
            sub = sub[wanted(sub[col])]
        else:
            wanted = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
            sub = sub[sub[col].isin(list(wanted))]
    return sub.groupby(unit)[value].mean().reindex(units).to_numpy(dtype=float)


def _top(names, scores):
    """The name with the highest mean score (diverged-only names last)."""

    def mean(d):
        m = mean_interval(scores[d]).mean
        return -math.inf if math.isnan(m) else m

    return max(names, key=mean)


def _finding(key, claim, study, measured, criterion, parts, n):
    verdicts, evidence = zip(*parts) if parts else ((), ())
    evidence = "; ".join(evidence)
    verdict = _and(verdicts)
    if n < MIN_REPETITIONS:
        verdict = INCONCLUSIVE
        evidence = (
            f"only {n} repetition(s) (< {MIN_REPETITIONS}: no paired test can "
            f"reach 5%); {evidence}"
        )
    else:
        evidence = f"n = {n}; {evidence}"
    return Finding(key, claim, study, measured, criterion, evidence, verdict)


def _poisoned(col):
    return col > 0


def _finding_fig9(fig9):
    if fig9 is None or fig9.empty:
        return []
    unit = "random_state" if "random_state" in fig9 else "ratio_unit"
    if unit == "ratio_unit":
        fig9 = fig9.assign(ratio_unit=0)
    ratios = sorted(fig9["ratio"].unique())
    lo, hi = ratios[0], ratios[-1]

    def nmse(defense, ratio):
        return _per_rep(fig9, "test_nmse", unit, defense=defense, ratio=ratio)

    clean = _per_rep(fig9, "clean_test_nmse", unit, defense="none", ratio=lo)
    trim_lo, trim_hi = nmse("trim", lo), nmse("trim", hi)
    bc_lo, bc_hi = nmse("bayesclean", lo), nmse("bayesclean", hi)
    parts = [
        _direction(trim_hi - 1.5 * np.maximum(trim_lo, clean), "TRIM breaks"),
        _direction(1.5 * bc_lo - bc_hi, "BayesClean holds"),
    ]
    measured = (
        f"test NMSE at {100 * lo:g}% / {100 * hi:g}% (clean model {_nmse(clean)}): "
        f"TRIM {_nmse(trim_lo)} / {_nmse(trim_hi)}; BayesClean {_nmse(bc_lo)} / "
        f"{_nmse(bc_hi)}"
    )
    criterion = (
        f"per seed, TRIM's NMSE at {100 * hi:g}% above 1.5 x max(its NMSE at "
        f"{100 * lo:g}%, the clean model's), and BayesClean's at {100 * hi:g}% "
        f"below 1.5 x its NMSE at {100 * lo:g}% (Wilcoxon on the differences)"
    )
    return [
        _finding(
            "fig9",
            "TRIM breaks above ~24% on the synthetic set, BayesClean holds to 30% "
            "(Fig. 9)",
            "synthetic (Fig. 9)",
            measured,
            criterion,
            parts,
            fig9[unit].nunique(),
        )
    ]


def _names(df):
    return [d for d in _OTHERS if d in set(df["defense"])]


def _finding_alpha01(label, df):
    if 0.1 not in set(df["alpha"]):
        return []
    names = _names(df)
    gains = {d: _per_rep(df, alpha=0.1, defense=d, ratio=_poisoned) for d in names}
    signs = {d: _sign(g) for d, g in gains.items()}
    negative = sum(s < 0 for s in signs.values())
    positive = sum(s > 0 for s in signs.values())
    if negative > len(names) / 2:
        verdict = AGREE
    elif positive >= len(names) / 2:  # a majority of negatives is out of reach
        verdict = DISAGREE
    else:
        verdict = INCONCLUSIVE
    evidence = (
        f"95% intervals: {negative} below 0, {positive} above 0, "
        f"{len(names) - negative - positive} around 0"
    )
    return [
        _finding(
            "alpha01",
            "At alpha = 0.1 most defenses have a negative defense gain",
            label,
            "mean gain % over ratios 7.5-45%: "
            + ", ".join(f"{d} {_ci(g)}" for d, g in gains.items()),
            "more than half of TRIM, SEVER, Proda, DUTI, Huber have a 95% interval "
            "of the mean gain below 0 (disagree: half or more above 0)",
            [(verdict, evidence)],
            len(gains[names[0]]) if names else 0,
        )
    ]


def _finding_huber(label, dataset, df):
    names = _names(df)
    if "huber" not in names or len(names) < 2:
        return []
    gains = {d: _per_rep(df, defense=d, ratio=_poisoned) for d in names}
    signs, pvalues = _versus("huber", gains)
    sign = _sign(gains["huber"])
    lowest = all(s < 0 for s in signs.values())
    poor = sign < 0 or lowest
    not_poor = sign > 0 and any(s > 0 for s in signs.values())
    if dataset == "appliances":
        poor, not_poor = not_poor, poor
    verdict = AGREE if poor else DISAGREE if not_poor else INCONCLUSIVE
    evidence = (
        f"Huber's interval {'below' if sign < 0 else 'above' if sign > 0 else 'around'}"
        " 0; Huber vs others (Holm): "
        + ", ".join(f"{d} p = {_p(p)}" for d, p in pvalues.items())
    )
    return [
        _finding(
            "huber",
            "Huber performs poorly except on Appliances",
            label,
            "mean gain % over all alphas and ratios 7.5-45%: "
            + ", ".join(f"{d} {_ci(g)}" for d, g in gains.items()),
            "poor: Huber's mean gain significantly below 0 or below each of the "
            "others (paired); not poor: above 0 and significantly above one other; "
            "Appliances expects not poor",
            [(verdict, evidence)],
            len(gains["huber"]),
        )
    ]


def _finding_bayesclean(label, df):
    names = _names(df)
    if "bayesclean" not in set(df["defense"]) or not names:
        return []
    low = {
        d: _per_rep(df, alpha=1.0, defense=d, ratio=lambda r: (r > 0) & (r <= 0.15))
        for d in ["bayesclean", *names]
    }
    best_other = _top(names, low)
    parts = [
        _direction(
            low["bayesclean"] - low[best_other] + 10.0,
            f"alpha=1, 7.5-15%: BayesClean + 10 - {best_other}",
        )
    ]
    measured = [
        f"alpha=1, 7.5-15%: BayesClean {_ci(low['bayesclean'])} vs {best_other} "
        f"{_ci(low[best_other])}"
    ]
    for a in [a for a in (1.0, 0.3, 0.1) if a in set(df["alpha"])]:
        high = {
            d: _per_rep(df, alpha=a, defense=d, ratio=lambda r: r >= 0.3 - 1e-9)
            for d in ["bayesclean", *names]
        }
        signs, pvalues = _versus("bayesclean", high)
        verdict = (
            DISAGREE
            if any(s < 0 for s in signs.values())
            else AGREE
            if all(s > 0 for s in signs.values())
            else INCONCLUSIVE
        )
        worst = max(
            (p for p in pvalues.values() if not math.isnan(p)), default=math.nan
        )
        parts.append((verdict, f"a={a:g}, 30-45%: largest Holm p = {_p(worst)}"))
        top = _top(names, high)
        measured.append(
            f"a={a:g}, 30-45%: BayesClean {_ci(high['bayesclean'])} vs best other "
            f"{top} {_ci(high[top])}"
        )
    return [
        _finding(
            "bayesclean",
            "BayesClean is competitive at alpha = 1 and better than the others "
            "beyond 20-30%",
            label,
            "mean gain %: " + "; ".join(measured),
            "at alpha=1 and 7.5-15% BayesClean's gain + 10 points above the best "
            "other's (paired), and at 30-45% above each other defense (paired, Holm) "
            "for each alpha (1, 0.3, 0.1)",
            parts,
            len(low["bayesclean"]),
        )
    ]


def _finding_stealth(label, df):
    alphas = sorted(set(df["alpha"]), reverse=True)
    if len(alphas) < 2:
        return []
    big, small = alphas[0], alphas[-1]
    filters = [*_OTHERS, "bayesclean"]
    eff = {
        a: _per_rep(df, "test_nmse", alpha=a, defense="none", ratio=_poisoned)
        for a in (big, small)
    }
    det = {
        a: _per_rep(df, "poison_rejected", alpha=a, defense=filters, ratio=_poisoned)
        for a in (big, small)
    }
    parts = [
        _direction(eff[big] - eff[small], "NMSE drop"),
        _direction(det[big] - det[small], "detection drop"),
    ]
    return [
        _finding(
            "stealth",
            "Stealthier attacks (smaller alpha) are less effective but less detected",
            label,
            f"alpha {big:g} / {small:g}, ratios 7.5-45%: no-defense NMSE "
            f"{_nmse(eff[big])} / {_nmse(eff[small])}; poison rejected by the "
            f"filters % {_rate(det[big])} / {_rate(det[small])}",
            f"no-defense NMSE and fraction of poison rejected both lower at alpha "
            f"{small:g} than at {big:g} (paired by repetition)",
            parts,
            len(eff[big]),
        )
    ]


_STEALTHY = ("stealthy", "StealthyPoisoner")


def _stealthy(df):
    """The rows of the stealthy attack (all rows of a table without attacks).

    The paper's attack ignores the defense: the rows of the attack adapted to
    it (``adaptive=True``) are not its findings' evidence.
    """
    if "adaptive" in df.columns:
        df = df[~df["adaptive"].astype(bool)]
    if "attack" not in df.columns:
        return df
    return df[df["attack"].isin(_STEALTHY)]


def _stealthy_studies(studies: dict) -> dict:
    out = {key: _stealthy(df) for key, df in studies.items()}
    return {key: df for key, df in out.items() if not df.empty}


def evaluate_findings(studies: dict, fig9=None) -> list[Finding]:
    """Each of the paper's findings on each study it applies to, with a verdict.

    Parameters
    ----------
    studies : dict
        ``{(dataset, model): results}``, each ``results`` a
        :func:`~skpoison.evaluation.poisoning_curve` table; of a table with
        several attacks only the stealthy attack's rows are judged.
    fig9 : pandas.DataFrame, default=None
        The table of :func:`~skpoison.evaluation.figure_9` (one or more seeds,
        with a ``random_state`` column).

    Returns
    -------
    findings : list of Finding
        ``(key, claim, study, measured, criterion, evidence, verdict)``; the
        verdict is ``"agree"``, ``"disagree"`` or ``"inconclusive"`` (see the
        module docstring for how it is reached).
    """
    out = _finding_fig9(fig9)
    for (dataset, model), df in _stealthy_studies(studies).items():
        label = f"{dataset} ({model})"
        out += _finding_alpha01(label, df)
        out += _finding_huber(label, dataset, df)
        out += _finding_bayesclean(label, df)
        out += _finding_stealth(label, df)
    return out


def _bayesclean_rules(studies):
    lines = []
    for (dataset, model), df in _stealthy_studies(studies).items():
        if not {"bayesclean", "bayesclean_paper"} <= set(df["defense"]):
            continue
        for a in sorted(set(df["alpha"]), reverse=True):
            row = [f"{dataset} ({model})", f"{a:g}"]
            for d in ("bayesclean", "bayesclean_paper"):
                row += [
                    _ci(_per_rep(df, alpha=a, defense=d, ratio=_poisoned)),
                    *(
                        _rate(_per_rep(df, v, alpha=a, defense=d, ratio=_poisoned), v)
                        for v in ("poison_rejected", "clean_rejected")
                    ),
                ]
            lines.append(row)
    if not lines:
        return ""
    header = [
        "study",
        "alpha",
        "gain % (residual rule)",
        "poison rej. %",
        "clean rej. %",
        "gain % (Alg. 5 literal)",
        "poison rej. %",
        "clean rej. %",
    ]
    return markdown_table(header, lines)


def _count(n, unit):
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _few_repetitions_caveat(studies, fig9) -> str:
    """A caveat naming each study with too few repetitions and its own count."""
    counts = [
        (f"{dataset} ({model})", df["repetition"].nunique(), "repetition")
        for (dataset, model), df in _stealthy_studies(studies).items()
        if "repetition" in df
    ]
    if fig9 is not None and not fig9.empty:
        seeds = fig9["random_state"].nunique() if "random_state" in fig9 else 1
        counts.append(("Fig. 9", seeds, "seed"))
    few = [(label, n, unit) for label, n, unit in counts if n < MIN_REPETITIONS]
    if not few:
        return ""
    named = [f"{_count(n, unit)} of {label}" for label, n, unit in few]
    named = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    which = "that study's" if len(few) == 1 else "those studies'"
    others = " (the other studies' verdicts stand)" if len(few) < len(counts) else ""
    verb = "settles" if len(few) == 1 and few[0][1] == 1 else "settle"
    return (
        f"**Caveat: {named} {verb} nothing.** With fewer than {MIN_REPETITIONS} "
        "random splits (or Fig. 9 seeds) no paired test can reach 5%, so "
        f"{which} verdicts below are 'inconclusive' whatever the means say"
        f"{others}; rerun with 10 repetitions (the paper's protocol) or more."
    )


def paper_findings(studies: dict, fig9=None) -> str:
    """Markdown: each of the paper's findings, what was measured, the verdict.

    Parameters
    ----------
    studies, fig9
        As in :func:`evaluate_findings`.

    Returns
    -------
    text : str
        A caveat line first when a study (or Fig. 9) has fewer than
        :data:`~skpoison.evaluation.MIN_REPETITIONS` repetitions (seeds),
        naming each such study with its own count, then a
        findings table (one row per finding and study, see
        :func:`evaluate_findings`), then BayesClean's two accept rules side by
        side (mean gain, and poison and clean points rejected, over ratios
        7.5-45%, with 95% intervals over repetitions). Every interval is a 95%
        Student t interval clipped to the range of its quantity: NMSE >= 0,
        defense gain <= 100%, percentages of points rejected in [0, 100].
    """
    findings = evaluate_findings(studies, fig9)
    rows = [
        [f.claim, f.study, f.measured, f.criterion, f.evidence, f.verdict]
        for f in findings
    ]
    header = ["paper's finding", "study", "measured", "criterion", "decided by"]
    text = [
        "Means [95% t intervals, clipped to the quantity's range] over "
        "repetitions; verdicts from paired Wilcoxon "
        f"tests and intervals at 5%; fewer than {MIN_REPETITIONS} repetitions give "
        "'inconclusive'.",
        "",
        markdown_table([*header, "verdict"], rows),
        "",
    ]
    caveat = _few_repetitions_caveat(studies, fig9)
    if caveat:
        text = [caveat, "", *text]
    rules = _bayesclean_rules(studies)
    if rules:
        text += [
            "BayesClean's two accept rules, means [95% intervals] over ratios 7.5-45%:",
            "",
            rules,
            "",
        ]
    return "\n".join(text)
