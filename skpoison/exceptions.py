"""Exceptions and warnings raised by skpoison.

Examples
--------
>>> from skpoison.exceptions import DivergenceError
>>> issubclass(DivergenceError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["DivergenceError", "DivergenceWarning"]


class DivergenceError(ValueError):
    """Full-batch gradient descent diverged (or would diverge).

    Raised when a training loss becomes non-finite or explodes, or when a linear
    model's learning rate breaks the stability condition
    ``learning_rate * lambda_max(Z^T Z / n) < 2``. Lower ``learning_rate`` (or
    standardise the features) to fix it. Subclasses :class:`ValueError` because
    the cause is a bad combination of inputs and hyperparameters.
    """


class DivergenceWarning(UserWarning):
    """Training is close to the edge of stability; results may be inaccurate."""
