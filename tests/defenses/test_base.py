"""The defense contract helpers (skpoison.defenses._base)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from skpoison.defenses._base import mask_keep_lowest


@given(
    scores=st.lists(
        st.one_of(st.integers(0, 3).map(float), st.just(float("nan"))), max_size=30
    ),
    data=st.data(),
)
def test_mask_keep_lowest_is_a_stable_sort(scores, data):
    scores = np.array(scores, dtype=float)
    n_reject = data.draw(st.integers(0, len(scores)))
    expected = np.ones(len(scores), dtype=bool)
    if n_reject:
        expected[np.argsort(scores, kind="stable")[len(scores) - n_reject :]] = False
    np.testing.assert_array_equal(mask_keep_lowest(scores, n_reject), expected)
