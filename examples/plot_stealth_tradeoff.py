"""
==============================================
The stealth trade-off: alpha against TRIM
==============================================

The stealth factor ``alpha`` of :class:`~skpoison.attacks.StealthyPoisoner`
trades the attack's effectiveness (alpha = 1) against its detectability risk
(small alpha). This example reproduces the idea of the paper's Figs. 1 and
4 on its one-dimensional synthetic set: effective poison points are outliers
that TRIM removes, while stealthy ones sit close to the clean data, escape
TRIM, and TRIM then rejects genuine points instead.

TRIM (:class:`~skpoison.defenses.TrimRegressor`) is even told the exact
number of poison points, which favours it.
"""

# %%
# Data, attack and defense
# ------------------------
# 100 clean training points (:math:`x \sim \mathcal{U}(-5, 5)`,
# :math:`y = 0.8x + \mathcal{N}(0, 1.2^2)`), as many for the attacker's
# validation set, and 1000 for testing. The victim is linear regression trained
# by 40 full-batch gradient steps with learning rate 0.1 (the paper's setting
# for this set), and the attack optimises exactly that training. 20 % of the
# training points are replaced, in two batches.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skpoison.attacks import StealthyPoisoner
from skpoison.datasets import make_poisoning_regression_1d
from skpoison.defenses import TrimRegressor
from skpoison.metrics import nmse
from skpoison.models import TorchLinearRegressor

X, y = make_poisoning_regression_1d(100, random_state=0)
X_val, y_val = make_poisoning_regression_1d(100, random_state=1)
X_test, y_test = make_poisoning_regression_1d(1000, random_state=2)
victim = TorchLinearRegressor(learning_rate=0.1, n_epochs=40)
clean = TorchLinearRegressor(learning_rate=0.1, n_epochs=40).fit(X, y)

alphas = [1.0, 0.6, 0.4, 0.2]
risk_ref = None  # R_ref is the alpha = 1 attack's (Algorithm 1): reuse it
rows, runs = [], []
for alpha in alphas:
    attack = StealthyPoisoner(
        poison_fraction=0.2,
        alpha=alpha,
        n_inner_steps=40,
        inner_lr=0.1,
        n_outer_steps=50,
        batch_size=0.1,
        risk_ref=risk_ref,
        random_state=0,
    )
    X_poisoned, y_poisoned = attack.fit_resample(X, y, X_val=X_val, y_val=y_val)
    if alpha == 1.0:
        risk_ref = attack.risk_ref_
    is_poison = np.zeros(len(y_poisoned), dtype=bool)
    is_poison[attack.poison_indices_] = True

    poisoned = TorchLinearRegressor(learning_rate=0.1, n_epochs=40)
    poisoned.fit(X_poisoned, y_poisoned)
    trim = TrimRegressor(victim, reject_fraction=int(is_poison.sum()), random_state=0)
    trim.fit(X_poisoned, y_poisoned)
    runs.append((alpha, X_poisoned, y_poisoned, is_poison, poisoned, trim))
    rows.append(
        {
            "alpha": alpha,
            "risk (last batch)": attack.risk_[-1],
            "NMSE, no defense": nmse(y_test, poisoned.predict(X_test)),
            "NMSE, TRIM": nmse(y_test, trim.predict(X_test)),
            "poison rejected by TRIM": np.mean(~trim.inlier_mask_[is_poison]),
        }
    )

# %%
# What the defender sees
# ----------------------
# Blue: clean points; green: poison points; red crosses: points TRIM rejects.
# Lines: learned on clean data (black dashed), on the poisoned data (green
# dotted), by TRIM (red).
xs = np.array([[-5.0], [5.0]])
fig, axes = plt.subplots(
    2, 2, figsize=(9, 7), sharex=True, sharey=True, layout="constrained"
)
for ax, (alpha, Xp, yp, is_poison, poisoned, trim) in zip(axes.flat, runs):
    rejected = ~trim.inlier_mask_
    ax.scatter(Xp[~is_poison, 0], yp[~is_poison], s=10, label="clean")
    ax.scatter(Xp[is_poison, 0], yp[is_poison], s=10, c="tab:green", label="poison")
    ax.scatter(
        Xp[rejected, 0], yp[rejected], s=30, c="tab:red", marker="x", label="rejected"
    )
    ax.plot(xs, clean.predict(xs), "k--", label="clean model")
    ax.plot(xs, poisoned.predict(xs), ":", c="tab:green", label="poisoned model")
    ax.plot(xs, trim.predict(xs), "-", c="tab:red", label="TRIM")
    ax.set_title(f"alpha = {alpha}")
for ax in axes[1]:
    ax.set_xlabel("x")
for ax in axes[:, 0]:
    ax.set_ylabel("y")
axes[0, 0].legend(fontsize=7, loc="lower right")
plt.show()

# %%
# The numbers
# -----------
# As ``alpha`` falls, the poison points' detectability risk falls and so does
# the damage without a defense; but once the points look like inliers TRIM
# stops finding them, rejects clean points instead, and can end up worse than
# no defense at all.
pd.DataFrame(rows).round(3)
