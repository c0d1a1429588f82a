"""Exceptions and warnings raised by skpoison.

Examples
--------
>>> from skpoison.exceptions import DivergenceError
>>> issubclass(DivergenceError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["DivergenceError", "DivergenceWarning", "UncentredTargetWarning"]


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


class UncentredTargetWarning(UserWarning):
    """The paper's NMSE was computed on a target far from centred.

    Eq. 7 divides by the mean square of ``y_true``, which equals its variance
    plus its squared mean; when ``|mean(y_true)| > 0.5 * std(y_true)`` the
    normaliser exceeds the variance by more than 25 %, so the NMSE shrinks as
    the target's offset grows and numbers on differently offset targets are not
    comparable. Centre the target (as the paper's standardisation does) or use
    ``nmse(..., normalize="variance")`` / ``vnmse_scorer``.
    """
