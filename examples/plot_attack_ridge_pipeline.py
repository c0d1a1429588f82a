"""
=============================================
Poison a Ridge regression inside a pipeline
=============================================

:class:`~skpoison.attacks.StealthyPoisoner` is a *sampler*: its
``fit_resample`` returns a poisoned copy of the training set. As the first step
of an :class:`imblearn.pipeline.Pipeline` it poisons the data the next step is
trained on, and only that: ``predict`` runs on clean inputs.

We attack a :class:`~sklearn.linear_model.Ridge` model on Boston Housing with
15 % of the training points replaced, once with the most effective attack
(``alpha=1``) and once with a stealthy one (``alpha=0.1``), and look at what the
stealth costs and what it buys.
"""

# %%
# The paper's split and standardisation
# -------------------------------------
# About 50 % / 15 % / 35 % of the points for training, validation (the
# attacker's) and test; features and target standardised with the training
# part's mean and standard deviation.
import matplotlib.pyplot as plt
import numpy as np
from imblearn.pipeline import make_pipeline
from sklearn.linear_model import Ridge

from skpoison.attacks import StealthyPoisoner
from skpoison.datasets import load_boston_housing, split_and_standardize
from skpoison.metrics import nmse

X, y = load_boston_housing(return_X_y=True)
data = split_and_standardize(X, y, random_state=0)
print(data.X_train.shape, data.X_val.shape, data.X_test.shape)


# %%
# The attack as a pipeline step
# -----------------------------
# :meth:`~skpoison.attacks.StealthyPoisoner.from_preset` takes the paper's
# Table II settings for Boston Housing (batches of 19 points, 40 inner
# gradient steps, ascent step 0.9); we shorten the ascent to 40 steps per batch
# to keep this example fast.
#
# Inside a pipeline the attack receives only the training data, so it
# evaluates its objective (the error it wants the model to make) on that clean
# training data, and returns every row, some of them replaced by poison
# points: the poisoned model trains on as many points as the clean baseline
# (``poison_fraction=0``). (Called directly, ``fit_resample(X, y, X_val=...,
# y_val=...)`` takes a separate validation set, the paper's protocol; through a
# pipeline, scikit-learn's metadata routing can pass it, see
# :ref:`attack_usage`.)


def poisoned_ridge(poison_fraction, alpha=1.0, **params):
    attack = StealthyPoisoner.from_preset(
        "boston",
        alpha=alpha,
        poison_fraction=poison_fraction,
        n_outer_steps=40,
        random_state=0,
        **params,
    )
    return make_pipeline(attack, Ridge(alpha=1e-3))


baseline = poisoned_ridge(0.0).fit(data.X_train, data.y_train)
effective = poisoned_ridge(0.15, alpha=1.0).fit(data.X_train, data.y_train)
attack_1 = effective.named_steps["stealthypoisoner"]
print(
    f"{attack_1.poison_indices_.size} of {len(data.X_train)} training "
    f"points replaced, in {attack_1.n_batches_} batches"
)

# %%
# A stealthy attack normalises its detectability risk by the largest risk of
# the ``alpha=1`` attack (the paper's Algorithm 1); passing the ``risk_ref_``
# we already have skips recomputing it.
stealthy = poisoned_ridge(0.15, alpha=0.1, risk_ref=attack_1.risk_ref_)
stealthy.fit(data.X_train, data.y_train)
attack_01 = stealthy.named_steps["stealthypoisoner"]

scores = {
    "clean": nmse(data.y_test, baseline.predict(data.X_test)),
    "alpha = 1": nmse(data.y_test, effective.predict(data.X_test)),
    "alpha = 0.1": nmse(data.y_test, stealthy.predict(data.X_test)),
}
for name, value in scores.items():
    print(f"{name:>12}: test NMSE {value:.3f}")

# %%
# What stealth buys
# -----------------
# Defenses look for points that the clean model fits badly. We measure, for
# each poison point, its residual under the clean model in units of the clean
# residual standard error :math:`\sigma` (the attack's ``sigma_``). The
# effective attack's points are far outliers; the stealthy ones sit within a
# few :math:`\sigma` of the clean regression, like genuine points, while still
# raising the test error.
clean = baseline[-1]
clean_resid = np.abs(clean.predict(data.X_train) - data.y_train) / attack_1.sigma_


def poison_resid(attack):
    return np.abs(clean.predict(attack.X_poison_) - attack.y_poison_) / attack.sigma_


fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
ax0.bar(list(scores), list(scores.values()), color=["tab:blue", "tab:red", "tab:green"])
ax0.set_ylabel("test NMSE")
ax0.set_title("Effectiveness")
ax1.boxplot(
    [clean_resid, poison_resid(attack_1), poison_resid(attack_01)],
    tick_labels=["clean points", "alpha = 1", "alpha = 0.1"],
)
ax1.set_yscale("log")
ax1.set_ylabel(r"|residual| under the clean model / $\sigma$")
ax1.set_title("Detectability")
plt.show()
