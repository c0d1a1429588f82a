"""FlipPoisoner: Müller et al.'s selection and flipping rule."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skpoison.attacks import FlipPoisoner
from skpoison.attacks._flip import _flip_order

finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(y=arrays(np.float64, st.integers(2, 60), elements=finite))
def test_targets_go_to_the_far_end_and_rows_by_decreasing_room(y):
    t_min, t_max = y.min(), y.max()
    order, targets = _flip_order(y, t_min, t_max)
    assert np.array_equal(np.sort(order), np.arange(y.size))
    room = np.abs(targets - y)
    # The far end: no other end is farther.
    assert np.array_equal(room, np.maximum(t_max - y, y - t_min))
    assert np.all(np.isin(targets, [t_min, t_max]))
    assert np.all(np.diff(room[order]) <= 0)


@given(
    seed=st.integers(0, 2**16),
    fraction=st.floats(0.05, 0.5),
)
@settings(max_examples=25, deadline=None)
def test_poison_points_are_copies_of_the_points_with_most_room(seed, fraction):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, 2))
    y = X @ [1.0, -2.0] + rng.normal(size=50)
    att = FlipPoisoner(fraction, random_state=seed).fit(X, y)
    n_p = att.poison_indices_.size
    room = np.maximum(y.max() - y, y - y.min())
    # The copied rows have the n_p largest rooms (and come in that order).
    assert np.array_equal(np.sort(room)[::-1][:n_p], room[att.source_indices_])
    assert np.array_equal(att.X_poison_, X[att.source_indices_])
    expected = np.where(y.max() - y > y - y.min(), y.max(), y.min())
    assert np.array_equal(att.y_poison_, expected[att.source_indices_])


def test_flipped_targets_use_the_target_range_of_the_box():
    X = np.linspace(0.0, 1.0, 20).reshape(-1, 1)
    y = np.linspace(-1.0, 1.0, 20)
    att = FlipPoisoner(0.2, bounds=([0.0, -3.0], [1.0, 5.0]), random_state=0)
    att.fit(X, y)
    # Every target is closer to -3 than to 5, so all go up to 5.
    assert np.all(att.y_poison_ == 5.0)
    # The points farthest from 5 are the lowest targets.
    assert set(att.source_indices_) == {0, 1, 2, 3}


def test_decision_does_not_depend_on_units():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X.sum(axis=1) + rng.normal(size=80)
    ref = FlipPoisoner(0.2, random_state=1).fit(X, y)
    att = FlipPoisoner(0.2, random_state=1).fit(X * 1e3 + 5, y * 1e-4 - 7)
    assert np.array_equal(att.source_indices_, ref.source_indices_)
    assert np.array_equal(att.poison_indices_, ref.poison_indices_)
    np.testing.assert_allclose(att.y_poison_, ref.y_poison_ * 1e-4 - 7)
