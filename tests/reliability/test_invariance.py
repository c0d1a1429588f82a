"""Units and origins: decisions that do not depend on how the data is measured (issue #13).

Guarantee. Every defense keeps the same points when ``X`` and ``y`` are given
in other units or from other origins (each column of ``X`` scaled by its own
factor and shifted by up to 1e6 of its spreads, ``y`` likewise), and OptP
crafts the same poison points, in the new units, at any data scale: its
engine works at unit scale, so data at 1e-300 (squares underflow) or 1e+270
(squares overflow) give the attack of the data at scale 1.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_helpers import in_other_units, poisoned_regression, record
from sklearn.linear_model import Ridge

from skpoison.attacks import OptPPoisoner


def _optp_data(seed=0, n=40, d=3):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d))
    return X, X @ rng.uniform(0.5, 1.5, size=d) + 0.05 * rng.normal(size=n)


# Powers of two: scaling by them is exact, so the attack at scale 2**j must be
# the attack at scale 1 up to the rounding of its solver, not approximately.
@pytest.mark.parametrize(
    "victim, j",
    [("LinearRegression", j) for j in (-1000, -500, 500, 900)]
    + [("Ridge", -500), ("Ridge", 450)],  # alpha c^2 must be a float
)
def test_optp_is_the_same_attack_at_every_scale(victim, j):
    X, y = _optp_data()
    c = 2.0**j

    def attack(scale):
        # Ridge(alpha) on data times c is Ridge(alpha c^2) on the data.
        model = Ridge(alpha=0.5 * scale * scale) if victim == "Ridge" else None
        return OptPPoisoner(
            0.1, model=model, min_iter=2, max_iter=4, random_state=0
        ).fit(X * scale, y * scale)

    base, scaled = attack(1.0), attack(c)
    record("OptPPoisoner", "units: data scale", "finite")
    np.testing.assert_array_equal(scaled.poison_indices_, base.poison_indices_)
    np.testing.assert_allclose(scaled.X_poison_ / c, base.X_poison_, rtol=1e-9)
    np.testing.assert_allclose(scaled.y_poison_ / c, base.y_poison_, rtol=1e-9)
    assert scaled.n_iter_ == base.n_iter_
    # The objective is in the data's squared units: +inf exactly when c^2 times
    # it is beyond float64 (at 2**900), never NaN.
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(scaled.history_, base.history_ * c * c, rtol=1e-9)


# Twice as many rejected as poisoned: which clean points go depends on the
# scores themselves, not only on the far poison.
def _defense(name):
    from skpoison.defenses import (
        BayesCleanFilter,
        DutiFilter,
        ITrimRegressor,
        ProdaRegressor,
        SeverFilter,
        TrimRegressor,
    )

    return {
        "BayesCleanFilter": lambda: BayesCleanFilter(),
        "TrimRegressor": lambda: TrimRegressor(reject_fraction=20),
        "ITrimRegressor": lambda: ITrimRegressor(),
        "SeverFilter": lambda: SeverFilter(reject_fraction=20),
        "SeverFilter(alpha=0)": lambda: SeverFilter(
            Ridge(alpha=0.0), reject_fraction=20, n_rounds=2
        ),
        "ProdaRegressor": lambda: ProdaRegressor(
            reject_fraction=20, n_groups=30, random_state=0
        ),
        "DutiFilter": lambda: DutiFilter(reject_fraction=20),
    }[name]()


#: DUTI's ridge ``regularization`` is a penalty in the units of X (as
#: scikit-learn's Ridge ``alpha``): its decisions are invariant to offsets of X
#: and to the units and origin of y, not to the units of X.
UNITS_OF_X_MATTER = {"DutiFilter"}
DEFENSES = [
    "BayesCleanFilter",
    "TrimRegressor",
    "ITrimRegressor",
    "SeverFilter",
    "SeverFilter(alpha=0)",
    "ProdaRegressor",
    "DutiFilter",
]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1000),
    log_a=st.floats(-100, 100),
    b=st.floats(-1e6, 1e6),
    log_d=st.lists(st.floats(-100, 100), min_size=3, max_size=3),
    offsets=st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3),
    name=st.sampled_from(DEFENSES),
)
def test_defense_decisions_do_not_depend_on_units_or_origins(
    seed, log_a, b, log_d, offsets, name
):
    X, y = poisoned_regression(seed)
    D = np.ones(3) if name in UNITS_OF_X_MATTER else 10.0 ** np.asarray(log_d)
    a = 10.0**log_a

    def fit(X, y):
        kw = {}
        if name == "DutiFilter":  # the trusted items move with the data
            kw = dict(X_trusted=X[40:50], y_trusted=y[40:50])
        return _defense(name).fit(X, y, **kw)

    base = fit(X, y)
    moved = fit(*in_other_units(X, y, a, b, D, offsets))
    record(name.split("(")[0], "units and origins", "same decisions")
    np.testing.assert_array_equal(moved.inlier_mask_, base.inlier_mask_)


# Found by the property test above under the random (dev) profile and fixed in
# issue #13: with y times 1e69 and a column of X times 1e-85 the mapped-back
# posterior covariance (units of (y / x)^2, here 1e308) overflowed in an outer
# product and 25 of 80 decisions changed; data at 1e-200 looked constant to
# the standardiser (its squares underflow) and every decision changed. The
# moments are now computed in standard units, the columns first divided by a
# power of two near their magnitude.
@pytest.mark.parametrize(
    "a, D, mapped_back",
    [
        (1e69, [1.0, 1.0, 1e-85], True),
        (1e69, [1e-85, 1.0, 1.0], True),
        (1e100, [1.0, 1.0, 1e-100], False),  # S in the data's units is 1e400
        (1e-200, [1.0, 1.0, 1.0], False),  # the noise precision is 1e400
        (1.0, [1e-200, 1.0, 1.0], False),
        (1e150, [1e-150, 1e-150, 1e-150], False),
    ],
)
def test_bayesclean_is_scale_free_at_extreme_units(a, D, mapped_back):
    from skpoison.defenses import BayesCleanFilter

    X, y = poisoned_regression(0)
    base = BayesCleanFilter().fit(X, y)
    moved_data = in_other_units(X, y, a, 0.0, D, np.zeros(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moved = BayesCleanFilter().fit(*moved_data)
    messages = [str(w.message) for w in caught]
    record("BayesCleanFilter", "units and origins", "same decisions")
    np.testing.assert_array_equal(moved.inlier_mask_, base.inlier_mask_)
    np.testing.assert_allclose(moved.scores_, base.scores_, rtol=1e-12)
    np.testing.assert_allclose(
        moved.predictive_std_, a * base.predictive_std_, rtol=1e-12
    )
    # No numpy overflow warning; when estimator_ in the data's units is beyond
    # float64, one warning says so (and only then).
    assert not any("overflow encountered" in m for m in messages), messages
    assert any("beyond float64" in m for m in messages) != mapped_back, messages
    if mapped_back:
        mu, sigma = moved.estimator_.predict(moved_data[0], return_std=True)
        np.testing.assert_allclose(mu, moved.predictive_mean_, rtol=1e-9)
        np.testing.assert_allclose(sigma, moved.predictive_std_, rtol=1e-9)
