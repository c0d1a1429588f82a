"""The attack contract (skpoison.attacks._base.BasePoisoner) on small subclasses."""

import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from imblearn.pipeline import Pipeline
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.utils.estimator_checks import parametrize_with_checks

from skpoison.attacks import BasePoisoner
from skpoison.attacks._base import _count_from_fraction


class ShiftPoisoner(BasePoisoner):
    """Moves each replaced point by ``shift`` (then the base projects it on the box).

    Counts its calls and the state it was shown, so the tests can check what the
    base hands to ``_craft``.
    """

    def __init__(
        self,
        poison_fraction=0.2,
        *,
        shift=1.0,
        batch_size=None,
        bounds=None,
        random_state=None,
        warm_start=False,
    ):
        self.poison_fraction = poison_fraction
        self.shift = shift
        self.batch_size = batch_size
        self.bounds = bounds
        self.random_state = random_state
        self.warm_start = warm_start

    def _prepare(self, state, rng, **fit_params):
        state["calls"] = []

    def _batch_count(self, state):
        return self.batch_size

    def _craft(self, state, indices):
        # The current set must already hold the earlier batches' poison.
        state["calls"].append(
            (indices.copy(), state["y_current"].copy(), state["X_current"].copy())
        )
        X_p = state["X_current"][indices] + self.shift
        y_p = state["y_current"][indices] + self.shift
        return X_p, y_p, {"n_before": len(state["calls"]) - 1}


class HoldOutPoisoner(ShiftPoisoner):
    """Holds the first ``n_hold`` rows out: they must never be replaced."""

    def _held_out_rows(self, X, y, rng, **fit_params):
        return np.arange(3)


class ValPoisoner(ShiftPoisoner):
    """Takes a named fit parameter, like the attacker's validation set."""

    def fit(self, X, y, X_val=None):
        return self._fit(X, y, X_val=X_val)

    def _check_fit_params(self, X, X_val=None):
        return {"X_val": None if X_val is None else np.asarray(X_val, dtype=float)}

    def _prepare(self, state, rng, X_val=None):
        super()._prepare(state, rng)
        state["X_val"] = X_val


def _data(n=20, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=n)


# ------------------------------------------------------------------ the output
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(5, 40),
    fraction=st.floats(0.0, 0.8),
    batch=st.one_of(st.none(), st.integers(1, 7)),
    seed=st.integers(0, 1000),
)
def test_every_row_is_returned_with_the_poison_replacing_some(n, fraction, batch, seed):
    X, y = _data(n, seed=seed)
    X0, y0 = X.copy(), y.copy()
    att = ShiftPoisoner(fraction, shift=0.5, batch_size=batch, random_state=seed)
    n_p = _count_from_fraction(fraction, n)
    if n_p > n - 1:
        with pytest.raises(ValueError, match="at least one must stay clean"):
            att.fit(X, y)
        return
    Xp, yp = att.fit_resample(X, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)  # inputs untouched
    assert Xp.shape == X.shape and yp.shape == y.shape
    idx = att.poison_indices_
    assert idx.size == n_p == len(set(idx.tolist()))
    clean = np.setdiff1d(np.arange(n), idx)
    assert np.array_equal(Xp[clean], X[clean]) and np.array_equal(yp[clean], y[clean])
    assert np.array_equal(Xp[idx], att.X_poison_)
    assert np.array_equal(yp[idx], att.y_poison_)
    sizes = [s.stop - s.start for s in att.batch_slices_]
    assert sum(sizes) == n_p and att.n_batches_ == len(sizes)
    if batch is not None and n_p:
        assert all(s == batch for s in sizes[:-1]) and 0 < sizes[-1] <= batch


def test_default_box_is_the_clean_data_range_and_points_are_projected_onto_it():
    X, y = _data()
    att = ShiftPoisoner(0.5, shift=100.0, random_state=0).fit(X, y)
    low, high = att.bounds_
    Xy = np.column_stack([X, y])
    assert np.array_equal(low, Xy.min(0)) and np.array_equal(high, Xy.max(0))
    assert np.array_equal(
        att.X_poison_, np.broadcast_to(high[:-1], att.X_poison_.shape)
    )
    assert np.array_equal(att.y_poison_, np.full(att.y_poison_.size, high[-1]))
    given_box = ShiftPoisoner(0.5, shift=100.0, bounds=(-1.0, 0.5), random_state=0)
    assert given_box.fit(X, y).y_poison_.max() == 0.5


def test_each_batch_sees_the_set_poisoned_so_far():
    X, y = _data()
    att = ShiftPoisoner(0.5, batch_size=3, random_state=0).fit(X, y)
    calls = att._state["calls"]
    assert len(calls) == att.n_batches_ == 4  # 10 points: 3 + 3 + 3 + 1
    for k, (idx, y_seen, _) in enumerate(calls):
        assert np.array_equal(idx, att.poison_indices_[att.batch_slices_[k]])
        done = att.poison_indices_[: att.batch_slices_[k].start]
        assert np.array_equal(y_seen[done], att.y_poison_[: done.size])
        untouched = np.setdiff1d(np.arange(20), done)
        assert np.array_equal(y_seen[untouched], y[untouched])
    # the extra item that _craft returned is stored with its batch
    assert [b["n_before"] for b in att._state["batches"]] == [0, 1, 2, 3]


def test_held_out_rows_are_never_replaced():
    X, y = _data()
    att = HoldOutPoisoner(0.85, random_state=0)
    Xp, _ = att.fit_resample(X, y)
    assert Xp.shape == X.shape and att.poison_indices_.size == 17
    assert not np.isin(att.poison_indices_, [0, 1, 2]).any()
    with pytest.raises(ValueError, match="3 are held out, so at most 17"):
        att.set_params(poison_fraction=0.9).fit(X, y)


# ---------------------------------------------------------------- incremental
@pytest.mark.parametrize("batch", [None, 2])
def test_a_larger_ratio_extends_the_smaller_one(batch):
    X, y = _data(30)
    small = ShiftPoisoner(0.2, batch_size=batch, random_state=4).fit(X, y)
    large = ShiftPoisoner(0.4, batch_size=batch, random_state=4).fit(X, y)
    n = small.poison_indices_.size
    assert np.array_equal(large.poison_indices_[:n], small.poison_indices_)
    assert np.array_equal(large.X_poison_[:n], small.X_poison_)
    for a, b in zip(large.resample_at(0.2), small.resample_at()):
        assert np.array_equal(a, b)
    assert [k for k, _, _ in large.poisoned_sets()] == (
        [0, 12] if batch is None else [0, 2, 4, 6, 8, 10, 12]
    )
    with pytest.raises(ValueError, match="warm_start"):
        small.resample_at(0.5)


def test_warm_start_crafts_only_the_new_points_and_failed_fit_keeps_state():
    X, y = _data(30)
    att = ShiftPoisoner(0.2, batch_size=3, warm_start=True, random_state=0)
    att.fit(X, y)
    first = att._state
    att.set_params(poison_fraction=0.4).fit(X, y)
    assert att._state is first and len(first["calls"]) == 4  # 2 old + 2 new batches
    fresh = ShiftPoisoner(0.4, batch_size=3, random_state=0).fit(X, y)
    assert np.array_equal(att.X_poison_, fresh.X_poison_)
    att.set_params(poison_fraction=0.1).fit(X, y)  # a prefix, no new work
    assert len(first["calls"]) == 4 and att.poison_indices_.size == 3
    att.set_params(shift=2.0).fit(X, y)  # another parameter: from scratch
    assert att._state is not first
    # a failed fit leaves the fitted attack as it was
    before = att.resample_at()
    with pytest.raises(ValueError, match="non-finite poison points"):
        att.set_params(shift=np.nan).fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(att.resample_at(), before))


def test_same_random_state_same_points_and_other_state_other_rows():
    X, y = _data(30)
    a = ShiftPoisoner(0.3, random_state=1).fit(X, y)
    b = ShiftPoisoner(0.3, random_state=1).fit(X, y)
    c = ShiftPoisoner(0.3, random_state=2).fit(X, y)
    assert np.array_equal(a.poison_indices_, b.poison_indices_)
    assert not np.array_equal(a.poison_indices_, c.poison_indices_)


# ----------------------------------------------------------------- containers
def test_dataframe_and_series_round_trip():
    X, y = _data()
    index = pd.Index([f"r{i}" for i in range(20)])
    X_df = pd.DataFrame(X, columns=["a", "b"], index=index)
    y_s = pd.Series(y, name="price", index=index)
    att = ShiftPoisoner(0.3, random_state=0)
    Xp, yp = att.fit_resample(X_df, y_s)
    assert isinstance(Xp, pd.DataFrame) and list(Xp.columns) == ["a", "b"]
    assert Xp.index.equals(index) and isinstance(yp, pd.Series)
    assert yp.name == "price" and yp.index.equals(index)
    assert list(att.feature_names_in_) == ["a", "b"]
    assert all(isinstance(s[1], pd.DataFrame) for s in att.poisoned_sets())
    # an array in gives arrays out, also after a DataFrame fit
    Xa, ya = att.fit_resample(X, list(y))
    assert type(Xa) is np.ndarray and type(ya) is np.ndarray


# ----------------------------------------------------------- errors and hooks
def test_base_without_craft_names_the_missing_hook():
    class Nothing(ShiftPoisoner):
        _craft = BasePoisoner._craft

    with pytest.raises(NotImplementedError, match="_craft"):
        Nothing(0.2).fit(*_data())


def test_unexpected_fit_parameters_raise():
    with pytest.raises(TypeError, match="unexpected parameters"):
        ShiftPoisoner(0.2)._fit(*_data(), X_val=1)


def test_named_fit_parameters_get_a_fit_resample_request():
    assert not hasattr(ShiftPoisoner(), "set_fit_resample_request")
    X, y = _data(30)
    Xv = np.ones((4, 2))
    with sklearn.config_context(enable_metadata_routing=True):
        att = ValPoisoner(0.2, random_state=0)
        att.set_fit_request(X_val=True).set_fit_resample_request(X_val=True)
        pipe = Pipeline([("attack", att), ("model", LinearRegression())])
        pipe.fit(X, y, X_val=Xv)
    assert np.array_equal(pipe.named_steps["attack"]._state["X_val"], Xv)


# -------------------------------------------------------- pipelines and search
def test_pipeline_grid_search_clone_and_pickle():
    X, y = _data(60)
    pipe = Pipeline([("attack", ShiftPoisoner(0.2, random_state=0)),
                     ("model", LinearRegression())])  # fmt: skip
    out = cross_validate(pipe, X, y, cv=KFold(3), return_estimator=True)
    assert all(
        e.named_steps["attack"].poison_indices_.size == 8 for e in out["estimator"]
    )
    search = GridSearchCV(pipe, {"attack__shift": [0.0, 3.0]}, cv=2).fit(X, y)
    assert list(search.cv_results_["param_attack__shift"]) == [0.0, 3.0]
    att = ShiftPoisoner(0.2, random_state=0).fit(X, y)
    assert clone(att).get_params() == att.get_params()
    again = pickle.loads(pickle.dumps(att))
    assert all(
        np.array_equal(a, b) for a, b in zip(again.resample_at(), att.resample_at())
    )


def test_target_is_required():
    assert ShiftPoisoner().__sklearn_tags__().target_tags.required


@parametrize_with_checks([ShiftPoisoner(0.2, batch_size=2)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
