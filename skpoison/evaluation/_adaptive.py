"""Each defense against the non-adaptive and the adaptive attack, side by side.

A study run with ``poisoning_curve(..., adaptive=True)`` has, for each defense
an adaptive attack can follow, two sets of rows: ``adaptive=False`` (the
paper's attack, which ignores the defense) and ``adaptive=True`` (the attack
told that defense; see :mod:`._curve`). :func:`split_adaptive` separates them,
so that every table and figure of the ordinary report is drawn from the
ordinary rows alone, exactly as in a study without ``adaptive``;
:func:`adaptive_markdown` adds, per study and per attack and alpha:

- the defense gain (Eq. 8, each against the undefended model on the same
  poison) and the defended test NMSE per ratio, non-adaptive next to adaptive,
  as ``mean [95% t interval] (median)`` over repetitions;
- the damage ratio: per repetition, the defended test NMSE averaged over the
  poisoned ratios under the adaptive attack divided by the same average under
  the non-adaptive attack (the measure of issue #15's goal), with its 95 % t
  interval over repetitions (:func:`~skpoison.evaluation.mean_interval`).
  Above 1: knowing the defense made the attack more damaging to it.

The unit of evidence is the repetition (paired: the same split, seeds and
trusted items for both attacks), as everywhere in the evaluation.
"""

from __future__ import annotations

import numpy as np

from ._stats import VALUE_BOUNDS, mean_interval

__all__ = ["adaptive_markdown", "split_adaptive"]

_COLUMNS = ("adaptive", "undefended_nmse")


def split_adaptive(results):
    """``(ordinary rows, adaptive rows)``; the adaptive part is None without any.

    The ordinary part loses the adaptive columns: it is the table the same
    study without ``adaptive`` gives.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(defense=["none", "trim", "trim"],
    ...                        adaptive=[False, False, True], undefended_nmse=1.0))
    >>> plain, adaptive = split_adaptive(df)
    >>> list(plain.columns), adaptive["defense"].tolist()
    (['defense'], ['trim'])
    """
    if "adaptive" not in results.columns:
        return results, None
    flag = results["adaptive"].astype(bool)
    plain = results[~flag].drop(columns=[c for c in _COLUMNS if c in results])
    return plain, (results[flag] if flag.any() else None)


def _fmt(m) -> str:
    def f(x):
        return "-" if np.isnan(x) else f"{x:.3g}"

    return f"{f(m.mean)} [{f(m.low)}, {f(m.high)}]"


def _per_repetition(rows, value):
    """Per repetition, the mean of ``value`` over poisoned, non-diverged rows."""
    ok = rows[(rows["ratio"] > 0) & ~rows["diverged"].astype(bool)]
    return ok.groupby("repetition")[value].mean()


def damage_ratios(plain, adaptive) -> list[tuple[str, str, str, str, str]]:
    """Rows ``(curve, defense, NMSE non-adaptive, NMSE adaptive, ratio)``.

    ``plain`` and ``adaptive`` hold one dataset and model. Each cell is a mean
    over repetitions with its 95 % t interval (clipped at 0: NMSEs and their
    ratios are not negative); the ratio is taken per repetition (paired) and
    then averaged.
    """
    from ._report import _same_curve, curves

    nmse = VALUE_BOUNDS["test_nmse"]
    out = []
    for label, part in curves(adaptive):
        same = _same_curve(plain, part)
        for defense in dict.fromkeys(part["defense"]):
            mine = _per_repetition(part[part["defense"] == defense], "test_nmse")
            base = _per_repetition(same[same["defense"] == defense], "test_nmse")
            mine, base = mine.align(base, join="inner")
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = (mine / base).to_numpy(dtype=float)
            out.append(
                (
                    label,
                    defense,
                    _fmt(mean_interval(base.to_numpy(dtype=float), bounds=nmse)),
                    _fmt(mean_interval(mine.to_numpy(dtype=float), bounds=nmse)),
                    # A ratio of two NMSEs is >= 0 too.
                    _fmt(mean_interval(ratio[np.isfinite(ratio)], bounds=nmse)),
                )
            )
    return out


def _side_by_side(plain, adaptive, value, label):
    """Summary rows of one curve, labelled ``defense`` and ``defense (adaptive)``."""
    import pandas as pd

    from ._report import _same_curve, summarize

    defenses = list(dict.fromkeys(adaptive["defense"]))
    same = _same_curve(plain, adaptive)
    parts = []
    for defense in defenses:
        for rows, tag in ((same, ""), (adaptive, " (adaptive)")):
            s = summarize(rows[rows["defense"] == defense])
            parts.append(s.assign(column=f"{defense}{tag}"))
    return pd.concat(parts, ignore_index=True)


def adaptive_markdown(plain, adaptive, *, all_defenses=(), all_attacks=()) -> list[str]:
    """Markdown lines of the adaptive section of one dataset and model.

    ``all_defenses`` and ``all_attacks``: those of the whole study, so that the
    ones that faced the non-adaptive attack only are named.
    """
    from ._report import _pivot_table, curves, markdown_table

    lines = ["### Adaptive attack: each defense against the attack that knows it", ""]
    targets = set(adaptive["defense"])
    untouched = [d for d in all_defenses if d != "none" and d not in targets]
    if untouched:
        lines += [
            f"Faced the non-adaptive attack only (no relaxation to follow): "
            f"{', '.join(untouched)}.",
            "",
        ]
    attacks = set(adaptive["attack"]) if "attack" in adaptive.columns else set()
    plain_only = [a for a in all_attacks if attacks and a not in attacks]
    if plain_only:
        lines += [
            f"Attacks without a `defense` parameter, run non-adaptively only: "
            f"{', '.join(plain_only)}.",
            "",
        ]
    lines += [
        "Damage ratio: per repetition, the defended test NMSE averaged over the "
        "poisoned ratios under the adaptive attack over the same under the "
        "non-adaptive attack; mean [95% t interval] over repetitions (above 1: "
        "knowing the defense hurt it more).",
        "",
        markdown_table(
            [
                "curve",
                "defense",
                "test NMSE, non-adaptive",
                "test NMSE, adaptive",
                "damage ratio",
            ],
            damage_ratios(plain, adaptive),
        ),
        "",
    ]
    for label, part in curves(adaptive):
        for value, what in (
            ("defense_gain", "Defense gain [%]"),
            ("test_nmse", "Defended test NMSE"),
        ):
            table = _side_by_side(plain, part, value, label)
            lines += [f"#### {what}, {label}: non-adaptive vs adaptive", ""]
            lines += [
                _pivot_table(table, value, row_key="ratio", col_key="column"),
                "",
            ]
    return lines
