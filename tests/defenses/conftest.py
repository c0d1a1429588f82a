"""Data shared by the defense tests: the paper's 1-d set plus gross outliers."""

import numpy as np
import pytest

try:
    from skpoison.datasets import make_poisoning_regression_1d
except ImportError:  # the datasets module lands in parallel; same recipe inline

    def make_poisoning_regression_1d(n_samples=100, *, random_state=None):
        rng = np.random.RandomState(random_state)
        x = rng.uniform(-5.0, 5.0, size=n_samples)
        return x.reshape(-1, 1), 0.8 * x + rng.normal(0.0, 1.2, size=n_samples)


def make_outlier_data(n_samples=300, outlier_fraction=0.1, offset=25.0, seed=0):
    """The paper's synthetic set with a fraction of labels moved far off the line.

    Returns ``X, y, is_outlier``; outliers are placed at random indices.
    """
    X, y = make_poisoning_regression_1d(n_samples, random_state=seed)
    rng = np.random.default_rng(seed + 1)
    n_out = int(outlier_fraction * n_samples)
    idx = rng.choice(n_samples, n_out, replace=False)
    y = y.copy()
    y[idx] += offset * rng.choice([-1.0, 1.0], size=n_out)
    is_outlier = np.zeros(n_samples, dtype=bool)
    is_outlier[idx] = True
    return X, y, is_outlier


@pytest.fixture
def outlier_data():
    return make_outlier_data()


@pytest.fixture
def clean_data():
    X, y = make_poisoning_regression_1d(300, random_state=0)
    X_test, y_test = make_poisoning_regression_1d(2000, random_state=1)
    return X, y, X_test, y_test


@pytest.fixture
def make_outliers():
    """``make_outlier_data`` itself, for tests that vary its arguments."""
    return make_outlier_data
