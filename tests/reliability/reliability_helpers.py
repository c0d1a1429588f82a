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
