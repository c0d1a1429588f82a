"""Summaries of a poisoning study: means with 95 % intervals, medians, best defenses.

Diverged rows (``diverged=True``) carry no NMSE; they are counted, and left
out of the means, intervals and medians. Medians sit next to means because
one near-divergent run (a finite but huge NMSE) can move a mean of ten
repetitions by orders of magnitude while the median shows the typical run.
Intervals are Student t over repetitions, clipped to the range of their
quantity (:data:`~skpoison.evaluation._stats.VALUE_BOUNDS`: NMSE >= 0, gain
<= 100 %, fractions rejected in [0, 1]), and "best" is a paired Wilcoxon
test with Holm's correction (:mod:`skpoison.evaluation._stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ._stats import CONFIDENCE, VALUE_BOUNDS, best_defense, mean_interval

__all__ = ["summarize", "write_report"]

_KEYS = ["dataset", "model", "attack", "alpha", "ratio", "defense"]
_VALUES = ["test_nmse", "defense_gain", "poison_rejected", "clean_rejected"]


def _keys(results) -> list[str]:
    # Tables written before the evaluation took several attacks have no
    # ``attack`` column: they hold the stealthy attack only. An adaptive
    # study's rows are grouped by whether their attack knew the defense.
    keys = [k for k in _KEYS if k != "attack" or "attack" in results.columns]
    if "adaptive" in results.columns:
        keys.insert(keys.index("alpha") + 1, "adaptive")
    return keys


def low(values):  # the names become the summary's column suffixes
    return mean_interval(values.to_numpy(dtype=float)).low


def high(values):
    return mean_interval(values.to_numpy(dtype=float)).high


def curves(results, *, alpha_name: str = "alpha"):
    """The curves of a study: ``(label, rows)`` per attack and alpha, in order.

    With one attack the label is ``"alpha = 1"`` (the paper's figures); with
    several, ``"stealthy, alpha = 1"``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(attack=["stealthy", "stealthy", "flip"],
    ...                        alpha=[1.0, 0.1, 1.0]))
    >>> [label for label, _ in curves(df)]
    ['stealthy, alpha = 1', 'stealthy, alpha = 0.1', 'flip, alpha = 1']
    """
    keys = [k for k in ("attack", "alpha") if k in results.columns]
    several = "attack" in keys and results["attack"].nunique() > 1
    out = []
    for key, part in results.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        label = f"{alpha_name} = {key[-1]:g}"
        out.append((f"{key[0]}, {label}" if several else label, part))
    return out


def summarize(results):
    """Aggregate a :func:`poisoning_curve` table over repetitions.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`~skpoison.evaluation.poisoning_curve`.

    Returns
    -------
    summary : pandas.DataFrame
        One row per dataset x model x attack x alpha x ratio x defense (and
        ``adaptive``, for a table that has the column) with ``n_runs``,
        ``n_diverged`` and, for ``test_nmse``, ``defense_gain``,
        ``poison_rejected`` and ``clean_rejected``, the ``_mean``, ``_std``
        (sample standard deviation; NaN for a single run), ``_median`` and the
        bounds ``_low``, ``_high`` of the 95 % Student t interval of the mean
        (NaN for a single run; clipped to the quantity's range,
        :data:`~skpoison.evaluation._stats.VALUE_BOUNDS`) over the runs that
        did not diverge.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(dataset="d", model="linear", alpha=1.0, ratio=0.1,
    ...     defense="none", test_nmse=[1.0, 3.0, float("nan")],
    ...     defense_gain=0.0, poison_rejected=float("nan"),
    ...     clean_rejected=float("nan"), diverged=[False, False, True]))
    >>> s = summarize(df)
    >>> row = s.iloc[0]
    >>> int(row.n_runs), int(row.n_diverged), float(row.test_nmse_mean)
    (3, 1, 2.0)
    >>> float(row.test_nmse_median), round(float(row.test_nmse_high), 2)
    (2.0, 14.71)
    """
    keys = _keys(results)
    ok = results[~results["diverged"].astype(bool)]
    grouped = ok.groupby(keys, sort=False, observed=True)
    stats = grouped[_VALUES].agg(["mean", "std", "median", low, high])
    stats.columns = [f"{col}_{stat}" for col, stat in stats.columns]
    for col in _VALUES:
        lo, hi = VALUE_BOUNDS[col]
        for stat in ("low", "high"):
            stats[f"{col}_{stat}"] = stats[f"{col}_{stat}"].clip(lo, hi)
    counts = results.groupby(keys, sort=False, observed=True).agg(
        n_runs=("diverged", "size"), n_diverged=("diverged", "sum")
    )
    out = counts.join(stats, how="left").reset_index()
    out["n_diverged"] = out["n_diverged"].astype(int)
    return out


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.2e}"


def _cell(row, col, digits=3, percent=False) -> str:
    scale = 100.0 if percent else 1.0
    mean, low, high, med = (
        scale * row[f"{col}_{s}"] for s in ("mean", "low", "high", "median")
    )
    if mean is None or math.isnan(mean):
        return "-"
    text = (
        f"{_fmt(mean, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}] "
        f"({_fmt(med, digits)})"
    )
    if row["n_diverged"]:
        text += f" [{row['n_diverged']} div.]"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table.

    Examples
    --------
    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _pivot_table(
    summary, column, *, row_key, col_key, percent=False, digits=3, best=None
):
    cols = list(dict.fromkeys(summary[col_key]))
    rows = []
    for rv, part in summary.groupby(row_key, sort=True):
        by_col = {r[col_key]: r for _, r in part.iterrows()}
        label = f"{100 * rv:g}%" if row_key == "ratio" else f"{rv:g}"
        rows.append(
            [label]
            + [
                _cell(by_col[c], column, digits, percent) if c in by_col else "-"
                for c in cols
            ]
            + ([best.get(rv, "-")] if best is not None else [])
        )
    header = [row_key] + [
        f"{col_key}={c}" if col_key == "alpha" else str(c) for c in cols
    ]
    if best is not None:
        header.append("best (paired test)")
    return markdown_table(header, rows)


def format_best(best) -> str:
    """A :class:`~skpoison.evaluation._stats.BestDefense` as a table cell.

    Examples
    --------
    >>> from skpoison.evaluation._stats import BestDefense
    >>> format_best(BestDefense("trim", "trim", {}, {}, 0.0123, 10))
    'trim (p = 0.012, n = 10)'
    >>> format_best(BestDefense(None, "trim", {}, {}, 0.3, 10))
    'no winner (leader trim, p = 0.3, n = 10)'
    """
    if best.leader is None:
        return "no complete repetition"
    p = f"p = {best.pvalue:.2g}, n = {best.n}"
    return (
        f"{best.winner} ({p})"
        if best.winner
        else f"no winner (leader {best.leader}, {p})"
    )


def _same_curve(results, part):
    # The rows of ``results`` on the curve (attack and alpha) of ``part``.
    mask = results["alpha"] == part["alpha"].iloc[0]
    if "attack" in part.columns and "attack" in results.columns:
        mask &= results["attack"] == part["attack"].iloc[0]
    return results[mask]


def best_by_ratio(results, column: str = "defense_gain") -> dict:
    """Per ratio, the best defense of one curve's rows by :func:`best_defense`.

    ``results`` holds one dataset, model, attack and alpha; ``"none"`` (the
    reference of the gain) takes no part. Scores are paired by repetition.
    """
    defended = results[results["defense"] != "none"]
    out = {}
    for ratio, part in defended.groupby("ratio", sort=True):
        wide = part.pivot_table(
            index="repetition", columns="defense", values=column, dropna=False
        )
        if wide.shape[1] >= 2:
            best = best_defense({d: wide[d].to_numpy() for d in wide.columns})
            out[ratio] = format_best(best)
    return out


def write_report(
    results,
    path,
    *,
    title: str = "Poisoning study",
    command: str | None = None,
    wall_time: float | None = None,
    figures: Sequence[str] = (),
    notes: str | None = None,
) -> str:
    """Write a Markdown report of a :func:`poisoning_curve` table.

    Tables: the undefended test NMSE per ratio and alpha (the paper's Fig. 5;
    per attack and alpha when the study compares attacks), the defense gain
    per ratio and defense for each attack and alpha (Figs. 6, 7, 10), and the
    fraction of poison points each defense rejected. Each cell is
    ``mean [low, high] (median)`` over repetitions, the bracket a 95 % Student
    t interval, with ``[k div.]`` when ``k`` runs diverged; each gain table
    ends with the best defense per ratio by a paired test
    (:func:`best_by_ratio`), within its attack and alpha. A study with
    ``adaptive=True`` gets these from its non-adaptive rows (the same tables as
    without ``adaptive``), then a section per study comparing each defense
    against the non-adaptive and the adaptive attack
    (:mod:`skpoison.evaluation._adaptive`).

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`~skpoison.evaluation.poisoning_curve`.
    path : path-like
        Where to write the report.
    title : str, default="Poisoning study"
        The report's heading.
    command : str, default=None
        The command that produced the results, quoted in the report.
    wall_time : float, default=None
        Seconds the study took, reported if given.
    figures : sequence of str, default=()
        Image paths (relative to the report) to embed.
    notes : str, default=None
        Free text added after the summary.

    Returns
    -------
    text : str
        The Markdown written.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> df = pd.DataFrame(dict(dataset="d", model="linear", repetition=0, alpha=1.0,
    ...     ratio=[0.0, 0.0, 0.1, 0.1], defense=["none", "trim"] * 2,
    ...     test_nmse=[0.3, 0.35, 0.9, 0.4], defense_gain=[0.0, -16.7, 0.0, 55.6],
    ...     poison_rejected=[float("nan")] * 3 + [0.8], clean_rejected=0.4,
    ...     diverged=False))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "report.md"
    >>> text = write_report(df, path, title="Demo")
    >>> print(text.splitlines()[0])
    # Demo
    >>> "| 10% | 55.6 [-, -] (55.6) | no winner (leader trim, p = nan, n = 1) |" in text
    False
    >>> "| 10% | 55.6 [-, -] (55.6) | - |" in text
    True
    """
    from ._adaptive import adaptive_markdown, split_adaptive

    results, adaptive = split_adaptive(results)
    summary = summarize(results)
    n_rows = len(results)
    n_div = int(results["diverged"].astype(bool).sum())
    reps = results["repetition"].nunique()
    parts = [f"# {title}", ""]
    if command:
        parts += ["Produced by:", "", "```", command, "```", ""]
    meta = [
        f"- dataset(s): {', '.join(map(str, results['dataset'].unique()))}; "
        f"model: {', '.join(map(str, results['model'].unique()))}",
        *(
            [f"- attacks: {', '.join(map(str, results['attack'].unique()))}"]
            if "attack" in results.columns
            else []
        ),
        f"- repetitions: {reps}; alphas: {', '.join(f'{a:g}' for a in results['alpha'].unique())}; "
        f"ratios: {', '.join(f'{100 * r:g}%' for r in sorted(results['ratio'].unique()))}",
        f"- rows: {n_rows}; diverged runs: {n_div}",
    ]
    if adaptive is not None:
        meta.append(
            f"- adaptive attack against: {', '.join(map(str, adaptive['defense'].unique()))}"
            f" ({len(adaptive)} more rows)"
        )
    if wall_time is not None:
        meta.append(f"- wall time: {wall_time:.1f} s")
    parts += meta + [""]
    if n_div:
        div = results[results["diverged"].astype(bool)]
        counts = div.groupby(["alpha", "defense"], observed=True).size()
        parts += ["Diverged runs per alpha and defense:", ""]
        parts += [
            markdown_table(
                ["alpha", "defense", "diverged"],
                [[f"{a:g}", d, str(n)] for (a, d), n in counts.items()],
            ),
            "",
        ]
    if notes:
        parts += [notes, ""]
    parts += [
        f"Cells: mean [{100 * CONFIDENCE:g}% confidence interval] (median) over "
        f"the {reps} repetitions (Student t interval); diverged runs are counted "
        "(`[k div.]`) and left out of the statistics. NMSE on the standardised "
        "targets (Eq. 7); defense gain in percent against no defense (Eq. 8). "
        "'best (paired test)': the defense with the highest mean gain, named a "
        "winner only when a two-sided Wilcoxon signed-rank test over the same "
        "repetitions finds it better than every other defense at 5% after "
        "Holm's correction (p: the largest adjusted p-value; n: the repetitions "
        "in which no defense diverged).",
        "",
    ]
    for fig in figures:
        parts += [f"![{Path(fig).stem}]({fig})", ""]
    for (dataset, model), sub in summary.groupby(["dataset", "model"], sort=False):
        parts += [f"## {dataset} ({model})", ""]
        none = sub[sub["defense"] == "none"]
        parts += ["### Test NMSE without defense (Fig. 5)", ""]
        table, col_key = none, "alpha"
        if "attack" in sub.columns and sub["attack"].nunique() > 1:
            import pandas as pd

            labelled = [part.assign(curve=label) for label, part in curves(none)]
            table, col_key = pd.concat(labelled), "curve"
        parts += [
            _pivot_table(table, "test_nmse", row_key="ratio", col_key=col_key),
            "",
        ]
        defended = sub[sub["defense"] != "none"]
        if defended.empty:
            continue
        raw = results[(results["dataset"] == dataset) & (results["model"] == model)]
        adapted = None
        if adaptive is not None:
            adapted = adaptive[
                (adaptive["dataset"] == dataset) & (adaptive["model"] == model)
            ]
        for label, part in curves(defended):
            best = best_by_ratio(_same_curve(raw, part))
            parts += [f"### Defense gain [%], {label} (Figs. 6, 7, 10)", ""]
            parts += [
                _pivot_table(
                    part,
                    "defense_gain",
                    row_key="ratio",
                    col_key="defense",
                    best=best,
                ),
                "",
            ]
        for label, part in curves(defended):
            part = part[part["ratio"] > 0]
            if part["poison_rejected_mean"].notna().any():
                parts += [f"### Poison points rejected [%], {label}", ""]
                parts += [
                    _pivot_table(
                        part,
                        "poison_rejected",
                        row_key="ratio",
                        col_key="defense",
                        percent=True,
                    ),
                    "",
                ]
        if adapted is not None and not adapted.empty:
            parts += adaptive_markdown(
                raw,
                adapted,
                all_defenses=list(dict.fromkeys(raw["defense"])),
                all_attacks=list(dict.fromkeys(raw.get("attack", []))),
            )
    text = "\n".join(parts)
    Path(path).write_text(text, encoding="utf-8")
    return text
