"""NoisePoisoner: points uniform in the feasible box."""

import numpy as np
from scipy.stats import kstest

from skpoison.attacks import NoisePoisoner


def test_every_coordinate_is_uniform_on_its_side_of_the_box():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(3000, 2)), rng.normal(size=3000)
    low, high = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 10.0, 3.0])
    att = NoisePoisoner(0.4, bounds=(low, high), random_state=0).fit(X, y)
    points = np.column_stack([att.X_poison_, att.y_poison_])
    for j in range(3):
        u = (points[:, j] - low[j]) / (high[j] - low[j])
        # Fixed seed: a uniform sample passes at the 1% level.
        assert kstest(u, "uniform").pvalue > 0.01


def test_points_do_not_depend_on_the_data_inside_the_box():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(100, 2)), rng.normal(size=100)
    box = (-5.0, 5.0)
    a = NoisePoisoner(0.2, bounds=box, random_state=3).fit(X, y)
    b = NoisePoisoner(0.2, bounds=box, random_state=3).fit(X + 1, 2 * y)
    assert np.array_equal(a.X_poison_, b.X_poison_)
    assert np.array_equal(a.y_poison_, b.y_poison_)


def test_default_box_scales_with_the_data():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(100, 2)), rng.normal(size=100)
    ref = NoisePoisoner(0.2, random_state=0).fit(X, y)
    att = NoisePoisoner(0.2, random_state=0).fit(3 * X + 1, -2 * y)
    np.testing.assert_allclose(att.X_poison_, 3 * ref.X_poison_ + 1)
    # A negative scale swaps the ends of the target range.
    lo, hi = ref.bounds_[0][-1], ref.bounds_[1][-1]
    np.testing.assert_allclose(att.y_poison_, -2 * (lo + hi - ref.y_poison_))
