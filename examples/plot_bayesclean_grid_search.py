"""
===========================================
Tune BayesClean's thresholds c1 and c2
===========================================

:class:`~skpoison.defenses.BayesCleanFilter` accepts the training points within
``c1`` predictive standard deviations of a Bayesian model's mean and rejects
those beyond ``c2`` (the points in between are flagged, and rejected by
default). The paper fixes ``c1=0.5`` and ``c2=1.5`` for every dataset; here we
search them with :class:`~sklearn.model_selection.GridSearchCV` on a poisoned
Boston Housing training set.

Wrapped with a regressor in :class:`~skpoison.defenses.DefendedRegressor`, the
defense's parameters are reachable as ``defense__c1`` and ``defense__c2``.
"""

# %%
# A poisoned training set
# -----------------------
# 15 % of the training points are replaced by the paper's attack with
# ``alpha=1`` (shortened to 30 ascent steps per batch to stay fast). The
# attacker's validation set is the paper's validation split.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, PredefinedSplit

from skpoison.attacks import StealthyPoisoner
from skpoison.datasets import load_boston_housing, split_and_standardize
from skpoison.defenses import BayesCleanFilter, DefendedRegressor
from skpoison.metrics import nmse, nmse_scorer

X, y = load_boston_housing(return_X_y=True)
data = split_and_standardize(X, y, random_state=0)
attack = StealthyPoisoner.from_preset(
    "boston", alpha=1.0, poison_fraction=0.15, n_outer_steps=30, random_state=0
)
X_poisoned, y_poisoned = attack.fit_resample(
    data.X_train, data.y_train, X_val=data.X_val, y_val=data.y_val
)
print(f"{attack.poison_indices_.size} of {len(y_poisoned)} training points poisoned")

# %%
# Where to measure
# ----------------
# Cross-validating on the poisoned set would reward the models that fit the
# poison. The defender scores each setting on clean data instead: a small
# held-out set it trusts (here the validation split). A
# :class:`~sklearn.model_selection.PredefinedSplit` trains every candidate on
# the poisoned training set and scores it on that set, with the NMSE (the
# scorer is the negated NMSE, so greater is better).
X_search = np.vstack([X_poisoned, data.X_val])
y_search = np.concatenate([y_poisoned, data.y_val])
one_split = PredefinedSplit(
    np.r_[np.full(len(y_poisoned), -1), np.zeros(len(data.y_val))]
)

# %%
# With ``flagged="reject"`` (the paper's choice) every point beyond ``c1`` is
# rejected, so the kept set depends on ``c1`` alone; ``c2`` matters when
# flagged points are kept (``flagged="keep"``). We search both: ``c1`` alone
# with flagged points rejected, and every ``c1 <= c2`` with them kept (``c2 <
# c1`` is an error).
c_values = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0]
param_grid = [
    {"defense__flagged": ["reject"], "defense__c1": c_values, "defense__c2": [3.0]}
] + [
    {
        "defense__flagged": ["keep"],
        "defense__c1": [c1],
        "defense__c2": [c2 for c2 in c_values if c2 >= c1],
    }
    for c1 in c_values
]
search = GridSearchCV(
    DefendedRegressor(BayesCleanFilter(), LinearRegression()),
    param_grid,
    scoring=nmse_scorer,
    cv=one_split,
    refit=False,  # refitting would train on the validation split too
)
search.fit(X_search, y_search)
best = {
    name.removeprefix("defense__"): value for name, value in search.best_params_.items()
}
print("best:", best, f"validation NMSE {-search.best_score_:.3f}")

# %%
# The validation NMSE over the grid
# ---------------------------------
# Left: flagged points rejected, as a function of ``c1``. Right: flagged
# points kept. A small threshold rejects many genuine points, a large one lets
# the poison in.
grid = np.full((len(c_values), len(c_values)), np.nan)
reject_curve = np.full(len(c_values), np.nan)
results = zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])
for params, score in results:
    i = c_values.index(params["defense__c1"])
    if params["defense__flagged"] == "reject":
        reject_curve[i] = -score
    else:
        grid[i, c_values.index(params["defense__c2"])] = -score

fig, (ax0, ax) = plt.subplots(
    1, 2, figsize=(10, 4.2), layout="constrained", width_ratios=[1, 1.3]
)
ax0.plot(c_values, reject_curve, "o-")
ax0.set_xlabel("c1")
ax0.set_ylabel("validation NMSE")
ax0.set_title('flagged="reject"')
image = ax.imshow(grid, origin="lower", cmap="viridis")
ax.set_xticks(range(len(c_values)), c_values)
ax.set_yticks(range(len(c_values)), c_values)
ax.set_xlabel("c2")
ax.set_ylabel("c1")
ax.set_title('flagged="keep": validation NMSE')
for i, j in zip(*np.nonzero(np.isfinite(grid))):
    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
fig.colorbar(image, ax=ax)
plt.show()

# %%
# On the test set
# ---------------
# The tuned thresholds against the paper's fixed ones and no defense at all.
paper = DefendedRegressor(BayesCleanFilter(c1=0.5, c2=1.5), LinearRegression())
paper.fit(X_poisoned, y_poisoned)
tuned = DefendedRegressor(BayesCleanFilter(**best), LinearRegression())
tuned.fit(X_poisoned, y_poisoned)
undefended = LinearRegression().fit(X_poisoned, y_poisoned)
for name, model in [
    ("no defense", undefended),
    ("paper's c1, c2", paper),
    ("tuned", tuned),
]:
    print(f"{name:>15}: test NMSE {nmse(data.y_test, model.predict(data.X_test)):.3f}")

# %%
# ``inlier_mask_`` tells which training points the filter kept, and the
# attack's ``poison_indices_`` which of them were poisoned.
is_poison = np.zeros(len(y_poisoned), dtype=bool)
is_poison[attack.poison_indices_] = True
for name, model in [("paper's c1, c2", paper), ("tuned", tuned)]:
    kept = model.inlier_mask_
    print(
        f"{name:>15}: rejects {np.mean(~kept[is_poison]):.0%} of the poison points "
        f"and {np.mean(~kept[~is_poison]):.0%} of the clean ones"
    )
