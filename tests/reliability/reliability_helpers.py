"""Calling a subject safely and recording what was tried (see conftest.py)."""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

RECORDS: list[dict] = []


def _snapshot(value):
    if sp.issparse(value):
        return value.copy()
    return copy.deepcopy(value)


def _same(a, b) -> bool:
    """Bit-identical, NaN equal to NaN; works for arrays, sparse, scalars, lists."""
    if sp.issparse(a) or sp.issparse(b):
        return sp.issparse(a) and sp.issparse(b) and (a != b).nnz == 0
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape or a_arr.dtype != b_arr.dtype:
        return False
    if a_arr.dtype.kind in "fc":
        return bool(np.array_equal(a_arr, b_arr, equal_nan=True))
    return bool(np.array_equal(a_arr, b_arr))


def record(subject, category: str, outcome: str) -> None:
    """Log one input tried on ``subject`` and what came back."""
    RECORDS.append({"subject": str(subject), "category": category, "outcome": outcome})


def outcome_of(result) -> str:
    """The exception's type name, or whether the numeric outputs are all finite."""
    if isinstance(result, BaseException):
        return type(result).__name__
    values = result.values() if isinstance(result, dict) else [result]
    for value in values:
        try:
            arr = np.asarray(value.toarray() if sp.issparse(value) else value)
        except Exception:  # not array-like: nothing to check
            continue
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            return "non-finite"
    return "finite"


def call(subject, category, func, *args, **kwargs):
    """Run ``func(*args, **kwargs)``; return its result or the exception raised.

    Asserts that none of the array arguments was modified in place, whether
    the call succeeded or raised.
    """
    before = [_snapshot(a) for a in args]
    before_kw = {k: _snapshot(v) for k, v in kwargs.items()}
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        result = exc
    for i, (old, new) in enumerate(zip(before, args)):
        assert _same(old, new), f"{subject}: positional input {i} modified in place"
    for k, old in before_kw.items():
        assert _same(old, kwargs[k]), f"{subject}: input {k!r} modified in place"
    record(subject, category, outcome_of(result))
    return result


def assert_finite_outputs(subject, outputs: dict) -> None:
    for name, value in outputs.items():
        arr = np.asarray(value.toarray() if sp.issparse(value) else value)
        if arr.dtype == bool or arr.dtype.kind in "iu":
            continue
        arr = arr.astype(np.float64)
        assert np.isfinite(arr).all(), f"{subject}: output {name} is not finite"


def poisoned_regression(seed, n=80, d=3, n_poison=10):
    """A linear problem whose first ``n_poison`` targets are far poison.

    Far from the clean points (no decision is borderline), and spread out.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.uniform(0.5, 2.0, size=d) + 0.1 * rng.normal(size=n)
    y[:n_poison] += 15.0 + 5.0 * rng.random(n_poison)
    return X, y


def in_other_units(X, y, a, b, D, offsets):
    """``(X, y)`` measured in other units and from other origins.

    Column ``j`` of ``X`` is scaled by ``D[j]`` and shifted by ``offsets[j]`` of
    its new spreads (up to 1e6: a timestamp); ``y`` becomes ``a (y + b)``.
    """
    D = np.asarray(D)
    return X * D + np.multiply(offsets, D), a * (y + b)
