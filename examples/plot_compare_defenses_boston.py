"""
=======================================
Compare defenses on Boston Housing
=======================================

:func:`~skpoison.evaluation.poisoning_curve` runs the paper's protocol
(Appendix E): split and standardise the data, craft the attack with the
paper's settings at cumulative poisoning ratios, train the victim (linear
regression by full-batch gradient descent) with and without each defense, and
measure the test NMSE and the *defense gain* (the relative NMSE reduction a
defense brings, in percent; negative means the defense makes things worse).

This is a small version of the paper's Fig. 10 for Boston Housing: one
repetition instead of ten, ratios up to 30 %, and a shortened attack, so that
it runs in seconds. ``skpoison reproduce`` runs the full study.
"""

# %%
# One call runs the study
# -----------------------
# ``defenses`` are names (or estimators); ``"none"`` is always included, as the
# reference of the gain. DUTI gets the paper's 8 trusted items, drawn from the
# validation split.
import matplotlib.pyplot as plt

from skpoison.evaluation import poisoning_curve

results = poisoning_curve(
    "boston_housing",
    alphas=[1.0, 0.1],
    ratios=[0.0, 0.1, 0.2, 0.3],
    defenses=["none", "bayesclean", "trim", "sever", "proda", "duti", "huber"],
    n_repetitions=1,
    attack_params={"n_outer_steps": 30},
    random_state=0,
)
columns = ["alpha", "ratio", "defense", "test_nmse", "defense_gain"]
results.query("ratio == 0.2 and alpha == 0.1")[columns].round(3)

# %%
# The table is tidy: one row per repetition, alpha, ratio and defense, with the
# seeds needed to recompute any row (above, the stealthy attack at 20 %
# poisoning). The fractions of poison and clean points each defense rejected
# are there too; note that every defense also rejects clean points, which is
# why all of them lose accuracy when there is no poison (ratio 0).
detection = results.query("ratio == 0.2").pivot_table(
    index="defense", columns="alpha", values=["poison_rejected", "clean_rejected"]
)
detection.round(2)

# %%
# Defense gain against the poisoning ratio
# ----------------------------------------
# Left, the most effective attack (``alpha=1``); right, a stealthy one
# (``alpha=0.1``). The red band marks negative gains: a defense there is not
# worth deploying.
gain = results.pivot_table(
    index=["alpha", "ratio"], columns="defense", values="defense_gain"
)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
for ax, alpha in zip(axes, [1.0, 0.1]):
    table = gain.loc[alpha]
    for defense in table.columns.drop("none"):
        style = "--" if defense == "duti" else "-"  # DUTI uses trusted data
        ax.plot(100 * table.index, table[defense], style, marker="o", label=defense)
    ax.axhspan(-1e3, 0, color="tab:red", alpha=0.08)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title(f"alpha = {alpha}")
    ax.set_xlabel("poisoning ratio [%]")
axes[0].set_ylabel("test defense gain [%]")
lowest = min(-50.0, float(gain.drop(columns="none").min().min()) - 5)
axes[0].set_ylim(lowest, 100)
axes[1].legend(loc="lower left", fontsize=8)
plt.show()
