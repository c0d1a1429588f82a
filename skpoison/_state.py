"""A failed ``fit`` leaves the estimator as it was: one decorator for every fit.

sklearn's ``validate_data(reset=True)`` sets ``n_features_in_`` (and
``feature_names_in_``) before any training happens, and a fit then stores its
fitted attributes one after another. A refit that fails half-way (a
``DivergenceError``, data too large, a bad trusted set, Ctrl-C) would leave a
mix of the old and new state, so the earlier model could no longer predict.

:func:`atomic_fit` snapshots the instance ``__dict__`` before ``fit`` and
restores it when ``fit`` raises. Constructor parameters are kept by reference
(``fit`` never modifies them, a sklearn rule, and a user's objects keep their
identity); every other attribute is deep-copied, because warm-start state
(the attack's ``_state``: batches appended in place) is mutated, not replaced.
A successful fit keeps its new state, warm-start state included. The first fit
of an estimator has nothing to copy, so the cost is a copy of the fitted state
on refits only.

It composes with sklearn's ``@_fit_context``: put ``@atomic_fit`` above it, so
that parameter validation runs inside the transaction too.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TypeVar

__all__ = ["atomic_fit"]

F = TypeVar("F", bound=Callable)


def _snapshot(estimator) -> dict:
    try:
        params = set(estimator.get_params(deep=False))
    except Exception:  # not a sklearn estimator: copy everything
        params = set()
    return {
        key: value if key in params else copy.deepcopy(value)
        for key, value in vars(estimator).items()
    }


def _restore(estimator, saved: dict) -> None:
    state = vars(estimator)
    state.clear()
    state.update(saved)


def atomic_fit(fit: F) -> F:
    """Make ``fit`` all-or-nothing: when it raises, restore the previous state.

    Examples
    --------
    >>> from sklearn.base import BaseEstimator
    >>> class Model(BaseEstimator):
    ...     @atomic_fit
    ...     def fit(self, X):
    ...         self.n_features_in_ = len(X[0])
    ...         if len(X[0]) > 2:
    ...             raise ValueError("too wide")
    ...         self.coef_ = [1.0] * len(X[0])
    ...         return self
    >>> model = Model().fit([[1.0, 2.0]])
    >>> try:
    ...     model.fit([[1.0, 2.0, 3.0]])
    ... except ValueError:
    ...     pass
    >>> model.n_features_in_, model.coef_
    (2, [1.0, 1.0])
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        saved = _snapshot(self)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            _restore(self, saved)
            raise

    return wrapper  # type: ignore[return-value]
