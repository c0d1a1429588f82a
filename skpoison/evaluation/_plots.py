"""The paper's figures from a :func:`poisoning_curve` table.

- :func:`plot_nmse`: test NMSE without defense against the poisoning ratio,
  one line per alpha (Fig. 5 and 12);
- :func:`plot_defense_gain`: test defense gain against the ratio, one panel per
  alpha and one line per defense, negative gains shaded red (Figs. 6, 7, 10);
  DUTI, which uses a trusted set, is dashed as in the paper;
- :func:`plot_detection`: the fraction of poison points each defense rejected
  (how the stealth of the attack shows).

Error bars are one standard deviation over repetitions (diverged runs left
out). The functions draw on :class:`matplotlib.figure.Figure` objects, never on
pyplot's global state, so they work on any backend, headless included.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "plot_defense_gain",
    "plot_detection",
    "plot_nmse",
    "plot_poisoning_curve",
]

_DPI = 80


def _figure(n_panels: int, *, width=3.6, height=2.8):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def _stats(df, value):
    ok = df[~df["diverged"].astype(bool)]
    return ok.groupby("ratio")[value].agg(["mean", "std"]).reset_index()


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
    if ax is None:
        fig, (ax,) = _figure(1)
    else:
        fig = ax.figure
    none = results[results["defense"] == "none"]
    for alpha, part in none.groupby("alpha", sort=False):
        s = _stats(part, "test_nmse")
        ax.errorbar(
            100 * s["ratio"],
            s["mean"],
            yerr=s["std"].fillna(0.0),
            marker="o",
            ms=3,
            capsize=2,
            label=f"α = {alpha:g}",
        )
    ax.set_xlabel("poisoning points [%]")
    ax.set_ylabel("test NMSE (no defense)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _per_alpha(results, value, ylabel, *, shade_negative, percent):
    defended = results[results["defense"] != "none"]
    alphas = list(dict.fromkeys(defended["alpha"]))
    fig, axes = _figure(max(1, len(alphas)))
    scale = 100.0 if percent else 1.0
    for ax, alpha in zip(axes, alphas):
        part = defended[defended["alpha"] == alpha]
        for name, sub in part.groupby("defense", sort=False):
            s = _stats(sub, value)
            if s["mean"].isna().all():
                continue
            ax.errorbar(
                100 * s["ratio"],
                scale * s["mean"],
                yerr=scale * s["std"].fillna(0.0),
                marker="o",
                ms=3,
                capsize=2,
                label=name,
                linestyle="--" if name == "duti" else "-",
            )
        if shade_negative:
            ax.axhspan(min(ax.get_ylim()[0], -1.0), 0.0, color="red", alpha=0.08)
            ax.axhline(0.0, color="k", lw=0.6)
        ax.set_title(f"α = {alpha:g}")
        ax.set_xlabel("poisoning points [%]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    return fig


def plot_defense_gain(results):
    """Test defense gain [%] against the poisoning ratio: a panel per alpha.

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
    )


def plot_detection(results):
    """Fraction of poison points rejected by each defense: a panel per alpha.

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
    )


def plot_poisoning_curve(results, out_dir, *, prefix: str = "") -> list[str]:
    """Write the three figures of a study as small PNG files.

    Parameters
    ----------
    results : pandas.DataFrame
        Output of :func:`~skpoison.evaluation.poisoning_curve`.
    out_dir : path-like
        Folder to write into.
    prefix : str, default=""
        Prepended to the file names.

    Returns
    -------
    paths : list of str
        File names written (relative to ``out_dir``): ``nmse.png``,
        ``defense_gain.png``, ``detection.png``.

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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    figures = {"nmse": plot_nmse(results)}
    if (results["defense"] != "none").any():
        figures["defense_gain"] = plot_defense_gain(results)
        if (results["ratio"] > 0).any():
            figures["detection"] = plot_detection(results)
    for name, fig in figures.items():
        fname = f"{prefix}{name}.png"
        save_small_png(fig, out_dir / fname)
        written.append(fname)
    return written


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
