"""Reports and figures of a study."""

import numpy as np
import pandas as pd
import pytest

from skpoison.evaluation import plot_poisoning_curve, summarize, write_report
from skpoison.evaluation._plots import _stats as error_bars
from skpoison.evaluation._stats import mean_interval


def _fake_results(seed=0, n_reps=3):
    """A study-shaped table with one diverged run."""
    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(n_reps):
        for alpha in (1.0, 0.1):
            for ratio in (0.0, 0.15):
                base = 0.3 + ratio * alpha * 5 + 0.01 * rng.normal()
                for defense in ("none", "bayesclean", "trim"):
                    nmse = base * (1 if defense == "none" else 0.8 + 0.4 * rng.random())
                    rows.append(dict(dataset="d", model="linear", repetition=rep,
                                     alpha=alpha, ratio=ratio, defense=defense,
                                     test_nmse=nmse, diverged=False,
                                     defense_gain=100 * (base - nmse) / base,
                                     poison_rejected=np.nan if ratio == 0 or defense == "none"
                                     else rng.random(),
                                     clean_rejected=rng.random()))  # fmt: skip
    df = pd.DataFrame(rows)
    bad = (
        (df.repetition == 2)
        & (df.alpha == 0.1)
        & (df.ratio == 0.15)
        & (df.defense == "trim")
    )
    df.loc[bad, ["test_nmse", "defense_gain"]] = np.nan
    df.loc[bad, "diverged"] = True
    return df


def test_summary_counts_divergence_and_leaves_it_out():
    df = _fake_results()
    s = summarize(df)
    assert len(s) == 2 * 2 * 3
    cell = s[(s.alpha == 0.1) & (s.ratio == 0.15) & (s.defense == "trim")].iloc[0]
    assert cell["n_runs"] == 3 and cell["n_diverged"] == 1
    ok = df[
        (df.alpha == 0.1) & (df.ratio == 0.15) & (df.defense == "trim") & ~df.diverged
    ]
    assert cell["test_nmse_mean"] == pytest.approx(ok["test_nmse"].mean())
    assert cell["test_nmse_median"] == pytest.approx(ok["test_nmse"].median())
    assert cell["test_nmse_std"] == pytest.approx(ok["test_nmse"].std())
    ci = mean_interval(ok["test_nmse"])
    assert (cell["test_nmse_low"], cell["test_nmse_high"]) == pytest.approx(
        (ci.low, ci.high)
    )
    assert s["n_diverged"].sum() == 1


def _with_winner(n_reps, winner="trim", margin=30.0):
    df = _fake_results(n_reps=n_reps)
    rows = (df.defense == winner) & (df.ratio > 0) & ~df.diverged
    df.loc[rows, "defense_gain"] += margin
    return df


@pytest.mark.parametrize("n_reps", [3, 8])
def test_best_is_claimed_only_when_the_paired_test_says_so(tmp_path, n_reps):
    text = write_report(_with_winner(n_reps), tmp_path / "r.md")
    best = [
        line
        for line in text.splitlines()
        if line.startswith("| 15% |") and line.count("|") == 5
    ][:2]
    assert len(best) == 2
    if n_reps >= 8:
        cell = best[0].rsplit("|", 2)[1].strip()
        assert cell.startswith("trim (p = ") and cell.endswith(f", n = {n_reps})")
        assert float(cell.split("p = ")[1].split(",")[0]) < 0.05
    else:
        assert all("| no winner (leader trim, p = " in line for line in best)
    assert f"over the {n_reps} repetitions" in text


def test_report_has_the_tables(tmp_path):
    df = _fake_results()
    text = write_report(df, tmp_path / "r.md", title="T", command="skpoison x",
                        wall_time=12.0, figures=["nmse.png"])  # fmt: skip
    assert (tmp_path / "r.md").read_text() == text
    assert text.startswith("# T")
    assert "skpoison x" in text and "12.0 s" in text and "![nmse](nmse.png)" in text
    assert "diverged runs: 1" in text and "[1 div.]" in text
    assert "Test NMSE without defense" in text
    assert text.count("### Defense gain") == 2
    assert "| ratio | bayesclean | trim | best (paired test) |" in text
    assert "| 15% |" in text


def test_figures_are_written(tmp_path):
    names = plot_poisoning_curve(_fake_results(), tmp_path)
    assert names == ["nmse.png", "defense_gain.png", "detection.png"]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) < 200_000


def _two_attacks():
    """The fake study with a second attack, which has no alpha (reported at 1)."""
    df = _fake_results().assign(attack="stealthy")
    other = _fake_results(seed=1).query("alpha == 1.0").assign(attack="flip")
    other["test_nmse"] *= 2.0
    return pd.concat([df, other], ignore_index=True)


def test_summary_and_report_are_grouped_by_attack(tmp_path):
    df = _two_attacks()
    s = summarize(df)
    assert len(s) == (2 + 1) * 2 * 3  # (attack, alpha) curves x ratios x defenses
    flip = s[(s.attack == "flip") & (s.ratio == 0.15) & (s.defense == "none")]
    part = df[(df.attack == "flip") & (df.ratio == 0.15) & (df.defense == "none")]
    assert flip["test_nmse_mean"].iloc[0] == pytest.approx(part["test_nmse"].mean())
    text = write_report(df, tmp_path / "r.md")
    assert "- attacks: stealthy, flip" in text
    header = "| ratio | stealthy, alpha = 1 | stealthy, alpha = 0.1 | flip, alpha = 1 |"
    assert header in text  # the undefended NMSE compares every curve
    assert text.count("### Defense gain") == 3
    assert "### Defense gain [%], flip, alpha = 1" in text
    # one attack: the paper's layout, no attack names
    single = write_report(df[df.attack == "stealthy"], tmp_path / "s.md")
    assert "### Defense gain [%], alpha = 0.1" in single
    assert "| ratio | alpha=1.0 | alpha=0.1 |" in single


def test_best_defense_is_decided_within_each_attack(tmp_path):
    stealthy = _with_winner(8, "trim").assign(attack="stealthy")
    flip = _with_winner(8, "bayesclean").query("alpha == 1.0").assign(attack="flip")
    text = write_report(pd.concat([stealthy, flip]), tmp_path / "r.md")
    sections = text.split("### Defense gain [%], ")[1:]
    best = {
        s.split(" (Figs.")[0]: [
            line.rsplit("|", 2)[1].strip()
            for line in s.splitlines()
            if line.startswith("| 15% |")
        ][0]
        for s in sections
    }
    assert best["stealthy, alpha = 1"].startswith("trim (p = ")
    assert best["flip, alpha = 1"].startswith("bayesclean (p = ")
    assert best["flip, alpha = 1"].endswith(", n = 8)")


def test_figures_have_a_panel_and_a_line_per_attack_and_alpha():
    from skpoison.evaluation import plot_defense_gain, plot_nmse

    df = _two_attacks()
    titles = [ax.get_title() for ax in plot_defense_gain(df).axes]
    assert titles == ["stealthy, α = 1", "stealthy, α = 0.1", "flip, α = 1"]
    labels = plot_nmse(df).axes[0].get_legend_handles_labels()[1]
    assert labels == titles


def test_error_bars_are_the_95_percent_intervals():
    df = _fake_results(n_reps=5)
    part = df[(df.defense == "trim") & (df.alpha == 0.1)]
    bars = error_bars(part, "defense_gain")
    for i, ratio in enumerate(bars["ratio"]):
        ok = part[(part.ratio == ratio) & ~part.diverged]["defense_gain"]
        ci = mean_interval(ok)
        assert bars["mean"][i] == pytest.approx(ci.mean)
        assert bars["err"][:, i] == pytest.approx([ci.mean - ci.low, ci.high - ci.mean])
    one = error_bars(part[part.repetition == 0], "defense_gain")
    assert np.all(one["err"] == 0.0)  # a single run: no bar, not NaN


def test_summary_intervals_are_clipped_to_each_quantity_range():
    df = _fake_results(n_reps=2)
    rep0 = df.repetition == 0
    df["poison_rejected"] = np.where(df["poison_rejected"].notna(), 1.0, np.nan)
    df.loc[rep0 & df["poison_rejected"].notna(), "poison_rejected"] = 0.9
    df["clean_rejected"] = np.where(rep0, 0.0, 0.1)
    df["defense_gain"] = np.where(rep0, 99.0, 80.0)
    df["test_nmse"] = np.where(rep0, 0.01, 0.5)
    s = summarize(df)
    for col, (lo, hi) in {
        "poison_rejected": (0, 1),
        "clean_rejected": (0, 1),
        "defense_gain": (-np.inf, 100),
        "test_nmse": (0, np.inf),
    }.items():
        low, high = s[f"{col}_low"].dropna(), s[f"{col}_high"].dropna()
        assert len(low) and (low >= lo).all() and (high <= hi).all()
        assert (low <= s.loc[low.index, f"{col}_mean"]).all()
    # The unclipped intervals of these two runs reach past the bounds.
    assert mean_interval([0.9, 1.0]).high > 1 and mean_interval([0.01, 0.5]).low < 0
    assert (s["poison_rejected_high"].dropna() == 1).all()
    assert (s["test_nmse_low"].dropna() == 0).all()


def test_error_bars_stop_at_the_range_of_their_quantity():
    df = _fake_results(n_reps=3)
    part = df[(df.alpha == 1.0) & (df.defense == "trim") & (df.ratio > 0)].copy()
    part["test_nmse"] = [0.01, 0.02, 1.0]
    part["poison_rejected"] = [0.9, 1.0, 1.0]
    nmse = error_bars(part, "test_nmse")
    assert nmse["err"][0, 0] == pytest.approx(nmse["mean"][0])  # down to 0
    assert mean_interval(part["test_nmse"]).low < 0  # where t alone would go
    rate = error_bars(part, "poison_rejected")
    assert rate["mean"][0] + rate["err"][1, 0] == pytest.approx(1.0)
