"""Every sampler (attacks and defenses) gives back the containers it was given.

A DataFrame ``X`` comes back as a DataFrame with the same columns (and the index
of the rows returned), a Series ``y`` as a Series with its name; arrays stay
arrays. Attacks return every row; defenses the rows they keep.
"""

import numpy as np
import pandas as pd
import pytest

from skpoison.attacks import (
    FlipPoisoner,
    NoisePoisoner,
    OptPPoisoner,
    StatPPoisoner,
    StealthyPoisoner,
)
from skpoison.defenses import (
    BayesCleanFilter,
    DutiFilter,
    ITrimRegressor,
    ProdaRegressor,
    SeverFilter,
    TrimRegressor,
)

SAMPLERS = {
    "StealthyPoisoner": (
        lambda: StealthyPoisoner(0.1, n_outer_steps=2, device="cpu", random_state=0),
        lambda X, y: {},
    ),
    "OptPPoisoner": (
        lambda: OptPPoisoner(0.1, max_iter=3, random_state=0),
        lambda X, y: {},
    ),
    "FlipPoisoner": (lambda: FlipPoisoner(0.1, random_state=0), lambda X, y: {}),
    "StatPPoisoner": (lambda: StatPPoisoner(0.1, random_state=0), lambda X, y: {}),
    "NoisePoisoner": (lambda: NoisePoisoner(0.1, random_state=0), lambda X, y: {}),
    "BayesCleanFilter": (BayesCleanFilter, lambda X, y: {}),
    "ITrimRegressor": (ITrimRegressor, lambda X, y: {}),
    "TrimRegressor": (lambda: TrimRegressor(reject_fraction=0.1), lambda X, y: {}),
    "SeverFilter": (lambda: SeverFilter(reject_fraction=0.1), lambda X, y: {}),
    "ProdaRegressor": (
        lambda: ProdaRegressor(reject_fraction=0.1, random_state=0),
        lambda X, y: {},
    ),
    "DutiFilter": (
        lambda: DutiFilter(reject_fraction=0.1),
        lambda X, y: {"X_trusted": X[:5], "y_trusted": y[:5]},
    ),
}


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = X @ np.array([1.0, -0.5]) + rng.normal(0, 0.3, size=60)
    y[:4] += 8.0  # outliers for the defenses to reject
    return X, y


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_dataframe_in_dataframe_out(name):
    make, extra = SAMPLERS[name]
    X, y = _data()
    index = pd.Index(np.arange(1000, 1060), name="id")
    X_df = pd.DataFrame(X, columns=["area", "age"], index=index)
    y_s = pd.Series(y, name="price", index=index)
    X_out, y_out = make().fit_resample(X_df, y_s, **extra(X, y))
    assert isinstance(X_out, pd.DataFrame) and list(X_out.columns) == ["area", "age"]
    assert isinstance(y_out, pd.Series) and y_out.name == "price"
    assert X_out.index.equals(y_out.index) and X_out.index.isin(index).all()
    if name.endswith("Poisoner"):
        assert X_out.index.equals(index)  # every row
    # the same rows and values as with arrays in, arrays out
    X_arr, y_arr = make().fit_resample(X, y, **extra(X, y))
    assert type(X_arr) is np.ndarray and type(y_arr) is np.ndarray
    assert np.array_equal(X_out.to_numpy(), X_arr)
    assert np.array_equal(y_out.to_numpy(), y_arr)


def _public_samplers():
    import skpoison.attacks
    import skpoison.defenses

    names = []
    for module in (skpoison.attacks, skpoison.defenses):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and hasattr(obj, "fit_resample"):
                if not name.startswith("Base"):
                    names.append(name)
    return sorted(names)


def test_every_public_sampler_is_checked_here():
    # A sampler added later must join SAMPLERS, so its containers are tested too.
    assert set(_public_samplers()) <= set(SAMPLERS)
