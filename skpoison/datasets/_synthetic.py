"""The paper's one-dimensional synthetic regression set (Appendix E).

Figures 1-4, 9 and 14 of the paper use clean points with x ~ U(-5, 5) and
y = 0.8 x + e, e ~ N(0, 1.2^2).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_poisoning_regression_1d"]


def make_poisoning_regression_1d(
    n_samples: int = 100,
    *,
    noise: float = 1.2,
    slope: float = 0.8,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the paper's synthetic 1-d regression data.

    ``x`` is drawn from U(-5, 5) and ``y = slope * x + e`` with
    ``e ~ N(0, noise**2)``; the defaults are the paper's (Appendix E).

    Parameters
    ----------
    n_samples : int, default=100
        Number of points.
    noise : float, default=1.2
        Standard deviation of the Gaussian noise on ``y`` (1.2 in the paper).
    slope : float, default=0.8
        Slope of the noiseless line through the origin (0.8 in the paper).
    random_state : int, RandomState instance or None, default=None
        Seeds the draw; pass an int for reproducible output.

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
        The feature, float64.
    y : ndarray of shape (n_samples,)
        The target, float64.

    See Also
    --------
    sklearn.datasets.make_regression : Random linear problems of any size.

    Examples
    --------
    >>> from skpoison.datasets import make_poisoning_regression_1d
    >>> X, y = make_poisoning_regression_1d(200, random_state=0)
    >>> X.shape, y.shape
    ((200, 1), (200,))
    >>> bool(X.min() >= -5 and X.max() < 5)
    True
    """
    if (
        isinstance(n_samples, bool)
        or not isinstance(n_samples, numbers.Integral)
        or n_samples < 1
    ):
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
    for name, value in (("noise", noise), ("slope", slope)):
        if not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite real number, got {value!r}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}.")
    rng = check_random_state(random_state)
    x = rng.uniform(-5.0, 5.0, size=int(n_samples))
    y = slope * x + rng.normal(0.0, noise, size=int(n_samples))
    return x.reshape(-1, 1), y
