"""Specifications of the paper's synthetic 1-d regression set."""

import numpy as np
import pytest

from skpoison.datasets import make_poisoning_regression_1d


def test_shapes_dtype_and_support():
    X, y = make_poisoning_regression_1d(500, random_state=0)
    assert X.shape == (500, 1) and y.shape == (500,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert X.min() >= -5.0 and X.max() < 5.0


def test_same_seed_same_data_different_seed_different_data():
    a = make_poisoning_regression_1d(50, random_state=1)
    b = make_poisoning_regression_1d(50, random_state=1)
    c = make_poisoning_regression_1d(50, random_state=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_statistics_match_the_paper_model():
    # x ~ U(-5, 5), y = 0.8 x + N(0, 1.2^2): checked on a large sample.
    X, y = make_poisoning_regression_1d(200_000, random_state=0)
    x = X[:, 0]
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    assert abs(slope - 0.8) < 0.01 and abs(intercept) < 0.01
    assert abs(residual.std() - 1.2) < 0.01
    assert abs(x.mean()) < 0.03 and abs(x.var() - 100 / 12) < 0.05


def test_noise_zero_puts_points_on_the_line():
    X, y = make_poisoning_regression_1d(30, noise=0.0, slope=-2.0, random_state=0)
    np.testing.assert_allclose(y, -2.0 * X[:, 0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"noise": -1.0}, "noise"),
        ({"slope": np.nan}, "slope"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_poisoning_regression_1d(**{"n_samples": 10, **kwargs})
