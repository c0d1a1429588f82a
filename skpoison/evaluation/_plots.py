"""The paper's figures from a :func:`poisoning_curve` table.

- :func:`plot_nmse`: test NMSE without defense against the poisoning ratio,
  one line per alpha (Fig. 5 and 12), or per attack and alpha;
- :func:`plot_defense_gain`: test defense gain against the ratio, one panel per
  alpha (per attack and alpha) and one line per defense, negative gains shaded
  red (Figs. 6, 7, 10);
  DUTI, which uses a trusted set, is dashed as in the paper;
- :func:`plot_detection`: the fraction of poison points each defense rejected
  (how the stealth of the attack shows);
- :func:`plot_adaptive_gain` (studies with ``adaptive=True``): each defense's
  gain against the non-adaptive attack (solid) and against the attack adapted
  to it (dashed, same colour), a panel per attack and alpha. The other figures
  draw the non-adaptive rows of such a study only.

Error bars are 95 % Student t confidence intervals of the mean over
repetitions (:func:`~skpoison.evaluation.mean_interval`; diverged runs left
out; clipped to the quantity's range, e.g. an NMSE's bar stops at 0 and a
rate's at 100 %), computed in one place, :func:`_stats`, and drawn only from
:data:`MIN_INTERVAL_REPETITIONS` (3) repetitions up: with 2 the interval is
the mean +- 12.7 standard errors (``t_{0.975, 1} = 12.7``), hundreds of gain
points that would swamp the curves. The legend says which it is. The functions draw on
:class:`matplotlib.figure.Figure` objects, never on pyplot's global state, so
they work on any backend, headless included.

Sized for a paper or a screen: every figure is at least 7 inches wide, saved at
150 dpi (>= 1050 px), with 10-12 pt text; titles name the dataset, the victim
model and alpha; the panels of one figure share their y-axis by default
(``sharey=True``) so that alphas compare at a glance; ``plot_poisoning_curve``
writes a vector PDF next to each PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._report import _same_curve, curves
from ._stats import VALUE_BOUNDS, mean_interval

__all__ = [
    "plot_adaptive_gain",
    "plot_defense_gain",
    "plot_detection",
    "plot_nmse",
    "plot_poisoning_curve",
]

_DPI = 150
_MIN_WIDTH = 7.0  # inches: 1050 px at _DPI
#: Text sizes (points) readable at the figure's printed size.
_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 12,
}
_NEGATIVE_LABEL = "defense hurts (gain < 0)"

#: Fewest repetitions behind a drawn error bar (see the module docstring).
MIN_INTERVAL_REPETITIONS = 3


def _figure(n_panels: int, *, width=3.4, height=3.2, sharey=False):
    import matplotlib as mpl
    from matplotlib.figure import Figure

    with mpl.rc_context(_STYLE):
        fig = Figure(
            figsize=(max(_MIN_WIDTH, width * n_panels), height), layout="constrained"
        )
        axes = fig.subplots(1, n_panels, squeeze=False, sharey=sharey)[0]
    return fig, axes


def _styled(fn):
    """Run a drawing function under :data:`_STYLE` (fonts are set when drawn)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib as mpl

        with mpl.rc_context(_STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _study_name(results) -> str:
    """``"boston_housing (linear)"`` from the table's columns, if it has them."""
    parts = []
    for col in ("dataset", "model"):
        if col in results and results[col].nunique() == 1:
            parts.append(str(results[col].iloc[0]))
    if len(parts) == 2:
        return f"{parts[0]} ({parts[1]})"
    return parts[0] if parts else ""


def _stats(df, value):
    """Per ratio: the mean, its 95 % interval as error-bar lengths (2, n_ratios)
    (zero below :data:`MIN_INTERVAL_REPETITIONS` runs) and the runs ``n``."""
    ok = df[~df["diverged"].astype(bool)]
    ratios = np.sort(ok["ratio"].unique())
    bounds = VALUE_BOUNDS.get(value)
    ci = [mean_interval(ok.loc[ok["ratio"] == r, value], bounds=bounds) for r in ratios]
    mean, low, high, n = np.array(ci, dtype=float).reshape(-1, 4).T
    err = np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)
    err[:, n < MIN_INTERVAL_REPETITIONS] = 0.0
    return {"ratio": ratios, "mean": mean, "err": err, "n": n.astype(int)}


def _curve(ax, s, *, scale=1.0, **style):
    """One line from a :func:`_stats` table, with error bars where it has them."""
    ax.errorbar(
        100 * s["ratio"],
        scale * s["mean"],
        yerr=scale * s["err"] if s["err"].any() else None,
        marker="o",
        ms=4,
        capsize=2.5,
        **style,
    )


def _interval_note(stats) -> str:
    """What the error bars of these curves are (a line of the legend's title)."""
    n = np.concatenate([s["n"] for s in stats]) if stats else np.zeros(0, int)
    n = n[n > 0]
    if n.size and n.min() >= MIN_INTERVAL_REPETITIONS:
        return "bars: 95 % t interval"
    few = f"{n.max()} repetition{'s' if n.max() > 1 else ''}" if n.size else "no runs"
    if not n.size or n.max() < MIN_INTERVAL_REPETITIONS:
        return f"means of {few}\n(95 % bars from {MIN_INTERVAL_REPETITIONS} up)"
    return f"bars: 95 % t interval\n(none below {MIN_INTERVAL_REPETITIONS} runs)"


@_styled
def plot_nmse(results, ax=None):
    """Test NMSE of the undefended victim against the poisoning ratio, per alpha.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`~skpoison.evaluation.poisoning_curve`.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure if None.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(alpha=1.0, ratio=[0.0, 0.0, 0.1, 0.1],
    ...     defense=["none", "trim"] * 2, test_nmse=[0.3, 0.35, 0.9, 0.4],
    ...     defense_gain=[0.0, -16.7, 0.0, 55.6],
    ...     poison_rejected=[float("nan")] * 3 + [0.8], diverged=False))
    >>> fig = plot_nmse(df)
    >>> fig.axes[0].get_ylabel()
    'test NMSE (no defense)'
    """
    from ._adaptive import split_adaptive

    if ax is None:
        fig, (ax,) = _figure(1, height=4.0)
    else:
        fig = ax.figure
    none = split_adaptive(results)[0]
    none = none[none["defense"] == "none"]
    drawn = []
    for label, part in curves(none, alpha_name="α"):
        drawn.append(_stats(part, "test_nmse"))
        _curve(ax, drawn[-1], label=label)
    ax.set_xlabel("poisoning points [%]")
    ax.set_ylabel("test NMSE (no defense)")
    name = _study_name(results)
    ax.set_title(f"{name + ': ' if name else ''}test NMSE without defense")
    ax.legend(title=f"attack\n{_interval_note(drawn)}")
    ax.grid(alpha=0.3)
    return fig


def _per_alpha(results, value, ylabel, *, shade_negative, percent, sharey, what):
    from ._adaptive import split_adaptive

    results, _ = split_adaptive(results)  # the non-adaptive attack's curves
    defended = results[results["defense"] != "none"]
    panels = curves(defended, alpha_name="α")
    fig, axes = _figure(max(1, len(panels)), sharey=sharey)
    scale = 100.0 if percent else 1.0
    drawn = []
    for ax, (title, part) in zip(axes, panels):
        for name, sub in part.groupby("defense", sort=False):
            s = _stats(sub, value)
            if np.isnan(s["mean"]).all():
                continue
            drawn.append(s)
            _curve(
                ax,
                s,
                scale=scale,
                label=name,
                linestyle="--" if name == "duti" else "-",
            )
        ax.set_title(title)
        ax.set_xlabel("poisoning points [%]")
        ax.grid(alpha=0.3)
    if shade_negative:
        # After every curve (and, shared or not, on every panel's final limits):
        # the band reaches the bottom of the axes without widening them.
        for ax in axes:
            low = min(ax.get_ylim()[0], -1.0)
            ax.axhspan(low, 0.0, color="red", alpha=0.08, label=_NEGATIVE_LABEL)
            ax.axhline(0.0, color="k", lw=0.6)
            ax.set_ylim(bottom=low)
    if percent:  # a fraction: error bars must not stretch the axis past 0-100 %
        for ax in axes:
            ax.set_ylim(max(ax.get_ylim()[0], -3.0), min(ax.get_ylim()[1], 103.0))
    for ax in axes if not sharey else axes[:1]:
        ax.set_ylabel(ylabel)
    return _titled(fig, axes, results, what, f"defense\n{_interval_note(drawn)}")


def _titled(fig, axes, results, what, legend):
    """The figure's title (study and ``what``) and its legend (titled ``legend``)."""
    name = _study_name(results)
    fig.suptitle(f"{name + ': ' if name else ''}{what}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title=legend)
    return fig


@_styled
def plot_defense_gain(results, *, sharey: bool = True):
    """Test defense gain [%] against the poisoning ratio: a panel per alpha.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`~skpoison.evaluation.poisoning_curve`.
    sharey : bool, default=True
        One y-axis for all panels (compare alphas at a glance); False scales
        each panel to its own curves.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(alpha=1.0, ratio=[0.0, 0.0, 0.1, 0.1],
    ...     defense=["none", "trim"] * 2, test_nmse=[0.3, 0.35, 0.9, 0.4],
    ...     defense_gain=[0.0, -16.7, 0.0, 55.6],
    ...     poison_rejected=[float("nan")] * 3 + [0.8], diverged=False))
    >>> fig = plot_defense_gain(df)
    >>> [ax.get_title() for ax in fig.axes]
    ['α = 1']
    """
    return _per_alpha(
        results,
        "defense_gain",
        "test defense gain [%]",
        shade_negative=True,
        percent=False,
        sharey=sharey,
        what="test defense gain against the poisoning ratio",
    )


@_styled
def plot_detection(results, *, sharey: bool = True):
    """Fraction of poison points rejected by each defense: a panel per alpha.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`~skpoison.evaluation.poisoning_curve`.
    sharey : bool, default=True
        One y-axis for all panels; False scales each panel on its own.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(alpha=1.0, ratio=[0.0, 0.0, 0.1, 0.1],
    ...     defense=["none", "trim"] * 2, test_nmse=[0.3, 0.35, 0.9, 0.4],
    ...     defense_gain=[0.0, -16.7, 0.0, 55.6],
    ...     poison_rejected=[float("nan")] * 3 + [0.8], diverged=False))
    >>> fig = plot_detection(df)
    >>> fig.axes[0].get_ylabel()
    'poison points rejected [%]'
    """
    poisoned = results[results["ratio"] > 0]
    return _per_alpha(
        poisoned,
        "poison_rejected",
        "poison points rejected [%]",
        shade_negative=False,
        percent=True,
        sharey=sharey,
        what="poison points rejected by each defense",
    )


@_styled
def plot_adaptive_gain(results, *, sharey: bool = True):
    """Each defense's gain [%] against the non-adaptive and the adaptive attack.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`~skpoison.evaluation.poisoning_curve` with
        ``adaptive=True``; only the defenses with adaptive rows are drawn.
    sharey : bool, default=True
        One y-axis for all panels.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(alpha=1.0, ratio=[0.0, 0.1, 0.0, 0.1],
    ...     defense="trim", adaptive=[False, False, True, True],
    ...     test_nmse=[0.35, 0.4, 0.35, 0.9], defense_gain=[-16.7, 55.6, -16.7, 10.0],
    ...     diverged=False))
    >>> fig = plot_adaptive_gain(df)
    >>> [line.get_label() for line in fig.axes[0].containers]
    ['trim', 'trim (adaptive)']
    """
    from ._adaptive import split_adaptive

    plain, adaptive = split_adaptive(results)
    if adaptive is None:
        raise ValueError(
            "results has no adaptive rows (poisoning_curve(adaptive=True))."
        )
    panels = curves(adaptive, alpha_name="α")
    # Wider panels: the legend holds two entries per defense.
    fig, axes = _figure(max(1, len(panels)), width=4.6, sharey=sharey)
    drawn = []
    for ax, (title, part) in zip(axes, panels):
        same = _same_curve(plain, part)
        for k, (name, sub) in enumerate(part.groupby("defense", sort=False)):
            color = f"C{k % 10}"
            base = same[same["defense"] == name]
            drawn += [_stats(base, "defense_gain"), _stats(sub, "defense_gain")]
            _curve(ax, drawn[-2], label=name, color=color)
            _curve(
                ax,
                drawn[-1],
                label=f"{name} (adaptive)",
                color=color,
                linestyle="--",
                mfc="white",
            )
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_title(title)
        ax.set_xlabel("poisoning points [%]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test defense gain [%]")
    what = "defense gain, non-adaptive vs adaptive"
    legend = f"defense (dashed: adaptive)\n{_interval_note(drawn)}"
    return _titled(fig, axes, results, what, legend)


def plot_poisoning_curve(
    results,
    out_dir,
    *,
    prefix: str = "",
    sharey: bool = True,
    vector: str | None = "pdf",
) -> list[str]:
    """Write the three figures of a study as PNG files, each with a vector twin.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`~skpoison.evaluation.poisoning_curve`.
    out_dir : path-like
        Folder to write into.
    prefix : str, default=""
        Prepended to the file names.
    sharey : bool, default=True
        Passed to :func:`plot_defense_gain` and :func:`plot_detection`.
    vector : {"pdf", "svg"} or None, default="pdf"
        Also save each figure in this vector format, same name, next to the
        PNG; None for PNG only.

    Returns
    -------
    paths : list of str
        The PNG files written (relative to ``out_dir``): ``nmse.png``,
        ``defense_gain.png``, ``detection.png`` (from the non-adaptive rows)
        and, for a study with adaptive rows, ``adaptive_gain.png``
        (:func:`plot_adaptive_gain`); their vector twins (``nmse.pdf``, ...)
        lie next to them.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(alpha=1.0, ratio=[0.0, 0.0, 0.1, 0.1],
    ...     defense=["none", "trim"] * 2, test_nmse=[0.3, 0.35, 0.9, 0.4],
    ...     defense_gain=[0.0, -16.7, 0.0, 55.6],
    ...     poison_rejected=[float("nan")] * 3 + [0.8], diverged=False))
    >>> import tempfile
    >>> plot_poisoning_curve(df, tempfile.mkdtemp())
    ['nmse.png', 'defense_gain.png', 'detection.png']
    """
    if vector not in (None, "pdf", "svg"):
        raise ValueError(f"vector must be 'pdf', 'svg' or None, got {vector!r}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from ._adaptive import split_adaptive

    written = []
    plain, adaptive = split_adaptive(results)
    figures = {"nmse": plot_nmse(plain)}
    if (plain["defense"] != "none").any():
        figures["defense_gain"] = plot_defense_gain(plain, sharey=sharey)
        if (plain["ratio"] > 0).any():
            figures["detection"] = plot_detection(plain, sharey=sharey)
    if adaptive is not None:
        figures["adaptive_gain"] = plot_adaptive_gain(results, sharey=sharey)
    for name, fig in figures.items():
        fname = f"{prefix}{name}.png"
        save_figure(fig, out_dir / fname, vector=vector)
        written.append(fname)
    return written


def save_figure(fig, path, *, vector: str | None = "pdf") -> None:
    """Save ``fig`` as a small PNG at ``path`` and, unless None, a ``vector`` twin."""
    path = Path(path)
    save_small_png(fig, path)
    if vector is not None:
        # No creation date in the file: the same study gives the same bytes.
        date = {"pdf": "CreationDate", "svg": "Date"}[vector]
        fig.savefig(
            path.with_suffix(f".{vector}"), format=vector, metadata={date: None}
        )


def save_small_png(fig, path, *, dpi: int = _DPI, colors: int = 128) -> None:
    """Save ``fig`` as a palette PNG (a third of the RGBA file for line plots).

    Line plots use few colours, so quantising to ``colors`` palette entries
    (with Pillow, which matplotlib depends on) loses nothing visible.
    """
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        small = image.convert("RGB").quantize(colors=colors)
        small.save(path, format="PNG", optimize=True)
