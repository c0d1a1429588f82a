"""Specifications of the paper's split and standardisation protocol."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from skpoison.datasets import (
    PaperStandardizer,
    load_boston_housing,
    split_and_standardize,
    train_val_test_split,
)

# Table I of the paper: n -> (train, validation, test).
TABLE_I = {
    6722: (3361, 1008, 2353),  # Loan
    3198: (1599, 480, 1119),  # Heart Disease
    506: (253, 76, 177),  # Boston Housing
    19735: (9868, 2960, 6907),  # Appliances
}


def split_rows(n, **kwargs):
    """Split row numbers, so each part tells which input rows it holds."""
    X = np.arange(n).reshape(-1, 1)
    y = np.arange(n)
    X_tr, X_val, X_te, y_tr, y_val, y_te = train_val_test_split(X, y, **kwargs)
    for Xp, yp in ((X_tr, y_tr), (X_val, y_val), (X_te, y_te)):
        np.testing.assert_array_equal(Xp[:, 0], yp)  # rows stay paired
    return y_tr, y_val, y_te


@pytest.mark.parametrize("n, sizes", TABLE_I.items())
def test_default_proportions_give_table_i_sizes(n, sizes):
    parts = split_rows(n, random_state=0)
    assert tuple(len(p) for p in parts) == sizes


@given(n=st.integers(10, 3000), seed=st.integers(0, 2**31 - 1))
def test_parts_are_disjoint_and_cover_every_row(n, seed):
    parts = split_rows(n, random_state=seed)
    together = np.concatenate(parts)
    assert len(together) == n
    np.testing.assert_array_equal(np.sort(together), np.arange(n))


@given(n=st.integers(10, 3000))
def test_sizes_follow_the_proportions(n):
    n_train, n_val, n_test = (len(p) for p in split_rows(n, random_state=0))
    assert abs(n_train - 0.5 * n) <= 0.5
    assert abs(n_val - 0.15 * n) <= 0.5
    assert abs(n_test - 0.35 * n) <= 1.0


def test_same_random_state_same_split_and_different_seeds_differ():
    a = split_rows(500, random_state=3)
    b = split_rows(500, random_state=3)
    c = split_rows(500, random_state=4)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a[0], c[0])


def test_no_shuffle_gives_consecutive_blocks():
    train, val, test = split_rows(20, shuffle=False)
    np.testing.assert_array_equal(train, np.arange(10))
    np.testing.assert_array_equal(val, np.arange(10, 13))
    np.testing.assert_array_equal(test, np.arange(13, 20))


def test_counts_and_explicit_test_size_leave_rows_out():
    train, val, test = split_rows(100, train_size=10, val_size=5, test_size=0.2)
    assert (len(train), len(val), len(test)) == (10, 5, 20)
    assert len(np.unique(np.concatenate([train, val, test]))) == 35


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"train_size": 0.9, "val_size": 0.15}, "cannot exceed"),
        ({"train_size": 1.5}, "train_size"),
        ({"val_size": 0.0}, "val_size"),
        ({"test_size": 200}, "test_size"),
        ({"train_size": "half"}, "train_size"),
    ],
)
def test_impossible_sizes_are_rejected(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        split_rows(100, **kwargs)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        train_val_test_split(np.zeros((10, 2)), np.zeros(9))


def test_split_keeps_dataframes():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame({"a": range(40), "b": range(40)})
    X_tr, _, _, y_tr, _, _ = train_val_test_split(
        X, pd.Series(range(40)), random_state=0
    )
    assert isinstance(X_tr, pd.DataFrame) and isinstance(y_tr, pd.Series)
    np.testing.assert_array_equal(X_tr.index, y_tr.index)


def test_split_and_standardize_uses_training_statistics_only():
    X, y = load_boston_housing(return_X_y=True)
    split = split_and_standardize(X, y, random_state=1)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (253, 76, 177)
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(split.X_train.std(axis=0), 1.0)
    assert abs(split.y_train.mean()) < 1e-12 and abs(split.y_train.std() - 1) < 1e-12
    # The other parts are mapped with the training statistics, not their own.
    train = split.train_indices
    np.testing.assert_allclose(
        split.X_test, (X[split.test_indices] - X[train].mean(0)) / X[train].std(0)
    )
    np.testing.assert_allclose(
        split.y_val, (y[split.val_indices] - y[train].mean()) / y[train].std()
    )
    # ... and undone exactly for reporting in the data's units.
    np.testing.assert_allclose(
        split.scaler.inverse_transform_y(split.y_test), y[split.test_indices]
    )
    np.testing.assert_allclose(
        split.scaler.inverse_transform(split.X_val), X[split.val_indices], atol=1e-12
    )


def test_split_and_standardize_matches_train_val_test_split():
    X, y = load_boston_housing(return_X_y=True)
    split = split_and_standardize(X, y, random_state=5)
    _, _, X_te, _, _, y_te = train_val_test_split(X, y, random_state=5)
    np.testing.assert_array_equal(X[split.test_indices], X_te)
    np.testing.assert_array_equal(y[split.test_indices], y_te)


def test_constant_feature_and_target_get_unit_scale_not_nan():
    X = np.column_stack([np.arange(6.0), np.full(6, 3.0)])
    scaler = PaperStandardizer().fit(X, np.full(6, 2.0))
    X_std, y_std = scaler.transform(X, np.array([2.0, 3.0, 2.0, 2.0, 2.0, 2.0]))
    assert np.isfinite(X_std).all() and np.isfinite(y_std).all()
    assert scaler.scale_[1] == 1.0 and scaler.y_scale_ == 1.0
    np.testing.assert_array_equal(X_std[:, 1], 0.0)
    np.testing.assert_array_equal(y_std, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0])


def test_standardizer_does_not_modify_inputs():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    X0, y0 = X.copy(), y.copy()
    scaler = PaperStandardizer().fit(X, y)
    scaler.transform(X, y)
    scaler.inverse_transform_y(y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_target_methods_need_a_target_at_fit():
    scaler = PaperStandardizer().fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match="without y"):
        scaler.inverse_transform_y(np.ones(4))
    # Refitting without y forgets an earlier target.
    scaler = PaperStandardizer().fit(np.ones((4, 2)), np.arange(4.0))
    scaler.fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match="without y"):
        scaler.transform(np.ones((4, 2)), np.ones(4))


def test_nan_in_input_is_rejected():
    X = np.ones((5, 2))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        split_and_standardize(X, np.arange(5.0))
    with pytest.raises(ValueError, match="NaN"):
        PaperStandardizer().fit(np.ones((5, 2)), [0, 1, np.nan, 2, 3])


@parametrize_with_checks([PaperStandardizer()])
def test_sklearn_compatible(estimator, check):
    check(clone(estimator))


def test_standardizer_set_output_pandas_keeps_names_and_index():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        rng.normal(5, 2, size=(12, 2)), columns=["area", "age"], index=range(100, 112)
    )
    out = PaperStandardizer().set_output(transform="pandas").fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["area", "age"] and out.index.equals(X.index)
    np.testing.assert_allclose(out.to_numpy(), (X - X.mean()) / X.std(ddof=0))
