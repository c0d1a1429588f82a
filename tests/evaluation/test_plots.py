"""The study figures are publication-ready: size, titles, labels, shared axes, PDF."""

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skpoison.evaluation import (
    plot_defense_gain,
    plot_detection,
    plot_nmse,
    plot_poisoning_curve,
)
from skpoison.evaluation._figure9 import figure_9
from skpoison.evaluation._plots import _DPI, _NEGATIVE_LABEL, save_figure

ALPHAS = (1.0, 0.3, 0.1)


def _results(n_alphas=3, seed=0):
    """A study-shaped table: gains that differ in scale between alphas."""
    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(2):
        for alpha in ALPHAS[:n_alphas]:
            for ratio in (0.0, 0.15, 0.3):
                for defense in ("none", "bayesclean", "trim", "duti"):
                    gain = 0.0 if defense == "none" else (50 - 120 * alpha) * ratio
                    rows.append(dict(dataset="heart", model="linear", repetition=rep,
                                     alpha=alpha, ratio=ratio, defense=defense,
                                     test_nmse=0.3 + ratio * alpha + 0.01 * rng.random(),
                                     defense_gain=gain + rng.normal(), diverged=False,
                                     poison_rejected=np.nan if defense == "none"
                                     or ratio == 0 else rng.random()))  # fmt: skip
    return pd.DataFrame(rows)


def _width_px(fig):
    return fig.get_size_inches()[0] * _DPI


@pytest.mark.parametrize("plot", [plot_nmse, plot_defense_gain, plot_detection])
@pytest.mark.parametrize("n_alphas", [1, 3])
def test_every_figure_is_wide_and_titled_with_dataset_model_and_alpha(plot, n_alphas):
    fig = plot(_results(n_alphas))
    assert _width_px(fig) >= 1000
    titles = [ax.get_title() for ax in fig.axes] + [
        fig._suptitle.get_text() if fig._suptitle else ""
    ]
    assert any("heart (linear)" in t for t in titles)
    if plot is plot_nmse:
        labels = fig.axes[0].get_legend_handles_labels()[1]
        assert labels == [f"α = {a:g}" for a in ALPHAS[:n_alphas]]
    else:
        assert [ax.get_title() for ax in fig.axes] == [
            f"α = {a:g}" for a in ALPHAS[:n_alphas]
        ]


def test_text_is_readable():
    fig = plot_defense_gain(_results())
    fig.canvas.draw()
    ax = fig.axes[0]
    sizes = [t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    sizes += [ax.xaxis.label.get_fontsize(), ax.title.get_fontsize()]
    assert min(sizes) >= 9
    # and the global matplotlib state is left as it was
    assert mpl.rcParams["font.size"] == mpl.rcParamsDefault["font.size"]


def test_the_negative_band_is_in_the_legend_once():
    fig = plot_defense_gain(_results())
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels.count(_NEGATIVE_LABEL) == 1
    assert {"bayesclean", "trim", "duti"} <= set(labels)
    for ax in fig.axes:  # the band covers every negative value drawn
        assert ax.get_ylim()[0] <= min(
            -1.0, *[np.min(ln.get_ydata()) for ln in ax.lines]
        )


@pytest.mark.parametrize("plot", [plot_defense_gain, plot_detection])
def test_sharey_shares_or_frees_the_y_axes(plot):
    shared = plot(_results(), sharey=True)
    limits = {ax.get_ylim() for ax in shared.axes}
    assert len(limits) == 1
    free = plot_defense_gain(_results(), sharey=False)
    assert len({ax.get_ylim() for ax in free.axes}) == 3


@pytest.mark.parametrize("vector, magic", [("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_each_png_has_a_vector_twin(vector, magic, tmp_path):
    names = plot_poisoning_curve(_results(), tmp_path, vector=vector)
    assert names == ["nmse.png", "defense_gain.png", "detection.png"]
    for name in names:
        with Image.open(tmp_path / name) as image:
            assert image.width >= 1000
        twin = (tmp_path / name).with_suffix(f".{vector}")
        assert twin.read_bytes().startswith(magic)


def test_vector_output_is_reproducible_and_optional(tmp_path):
    fig = plot_nmse(_results())
    save_figure(fig, tmp_path / "a.png")
    save_figure(fig, tmp_path / "b.png")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    plot_poisoning_curve(_results(), tmp_path / "png", vector=None)
    assert sorted(p.suffix for p in (tmp_path / "png").iterdir()) == [".png"] * 3
    with pytest.raises(ValueError, match="vector must be"):
        plot_poisoning_curve(_results(), tmp_path, vector="eps")


def test_figure_9_names_its_setting_and_each_legend_entry_once():
    _, fig = figure_9(n_outer_steps=2, random_state=3)
    assert _width_px(fig) >= 1000
    title = fig._suptitle.get_text()
    assert "α = 1" in title and "random_state = 3" in title and "synthetic" in title
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == len(set(labels)) == 6
    assert [ax.get_title() for ax in fig.axes[:1]] == ["BayesClean, 20% poisoning"]


def _noisy(n_reps):
    """Gains that differ by 60 points between repetitions (t intervals of +-400)."""
    rows = []
    for rep in range(n_reps):
        for ratio in (0.0, 0.15, 0.3):
            for defense in ("none", "trim"):
                gain = 0.0 if defense == "none" else 20.0 + 60.0 * (rep % 2)
                rows.append(dict(dataset="heart", model="linear", repetition=rep,
                                 alpha=1.0, ratio=ratio, defense=defense,
                                 test_nmse=0.3 + 0.2 * (rep % 2), defense_gain=gain,
                                 diverged=False, poison_rejected=0.5))  # fmt: skip
    return pd.DataFrame(rows)


def _bars(fig):
    return [c.has_yerr for ax in fig.axes for c in ax.containers]


def test_two_repetitions_draw_means_only_and_say_so():
    fig = plot_defense_gain(_noisy(2))
    assert _bars(fig) == [False]
    low, high = fig.axes[0].get_ylim()
    assert -10 < high < 100 and low > -10  # the means' range, not +-400
    title = fig.legends[0].get_title().get_text()
    assert "means of 2 repetitions\n(95 % bars from 3 up)" in title
    nmse = plot_nmse(_noisy(2))
    assert _bars(nmse) == [False]
    assert "95 % bars from 3 up" in nmse.axes[0].get_legend().get_title().get_text()


def test_three_repetitions_draw_t_intervals():
    fig = plot_defense_gain(_noisy(3))
    assert _bars(fig) == [True]
    assert fig.axes[0].get_ylim()[1] > 100  # the interval is drawn in full
    assert "bars: 95 % t interval" in fig.legends[0].get_title().get_text()
    # a diverged run leaves a ratio with 2: that ratio has no bar, and it says so
    df = _noisy(3)
    df.loc[(df.repetition == 0) & (df.ratio == 0.3), "diverged"] = True
    fig = plot_defense_gain(df)
    (bars,) = [c for c in fig.axes[0].containers]
    segments = bars.lines[2][0].get_segments()
    assert len(segments) == 3 and np.ptp(segments[2][:, 1]) == 0
    assert "(none below 3 runs)" in fig.legends[0].get_title().get_text()
