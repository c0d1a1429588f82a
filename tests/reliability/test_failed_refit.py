"""A failed refit leaves the previous fitted state intact, for every estimator.

The estimators are enumerated from the public API (every ``BaseEstimator``
subclass in ``skpoison.<subpackage>.__all__``), so one added later is covered
automatically; it needs a subject in ``reliability_subjects.ESTIMATORS`` (a
test below fails until it has one). Each is fitted, then refitted on data that
makes ``fit`` fail *after* sklearn's ``validate_data`` has reset
``n_features_in_`` (a different width, and values whose squares overflow or a
learning rate that diverges); afterwards its outputs (predict, transform,
poison points) must be bit-identical and every attribute must hash the same.
"""

from __future__ import annotations

import importlib
import inspect

import joblib
import numpy as np
import pytest
from reliability_helpers import _same, record
from reliability_subjects import BY_NAME, N_FEATURES, make_data, trusted_for
from sklearn.base import BaseEstimator

import skpoison
from skpoison.exceptions import DivergenceError


def _public_estimators() -> list[str]:
    names = set()
    for sub in sorted(skpoison._SUBPACKAGES):
        module = importlib.import_module(f"skpoison.{sub}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and not inspect.isabstract(obj)
                and not name.startswith("Base")
            ):
                names.add(name)
    return sorted(names)


ESTIMATORS = _public_estimators()
#: Built by a factory function, not a class, but an estimator all the same.
SUBJECT_NAMES = [*ESTIMATORS, "make_huber_baseline"]

WIDE = N_FEATURES + 2


def _refit_kwargs(name, X):
    if name == "DutiFilter":
        Xt, yt = trusted_for(X)
        return {"X_trusted": Xt, "y_trusted": yt}
    return {}


def _too_large():
    X, y = make_data(30, WIDE, seed=3)
    return X * 1e200, y * 1e200


#: Attacks that square nothing (or, as OptP, work at unit scale) accept huge
#: finite data; their refit fails (after ``validate_data``) on a poisoning
#: fraction that leaves no clean point instead. So does SEVER (it works in the
#: data's frame) on a rejection that leaves fewer than 2 points.
NO_CLEAN_POINT = {
    name: {"poison_fraction": 0.99}
    for name in ("FlipPoisoner", "StatPPoisoner", "NoisePoisoner", "OptPPoisoner")
} | {"SeverFilter": {"reject_fraction": 0.99}}

#: name -> (params making training diverge on ordinary data of another width)
DIVERGING = {
    "TorchLinearRegressor": {"learning_rate": 50.0},
    "TorchMLPRegressor": {"learning_rate": 1e4, "n_epochs": 50},
    "DefendedRegressor": {"estimator__learning_rate": 50.0},
    "StealthyPoisoner": {"inner_lr": 50.0},
}


def _digest(value):
    """A hash of ``value`` that sees through copies (pickle memo aside)."""
    import torch

    if isinstance(value, torch.nn.Module):
        state = {k: v.detach().cpu().numpy() for k, v in value.state_dict().items()}
        return joblib.hash((repr(value), state))
    if isinstance(value, torch.Tensor):
        return joblib.hash(value.detach().cpu().numpy())
    if isinstance(value, np.ma.MaskedArray):  # joblib.hash cannot hash these
        return joblib.hash((np.asarray(value.data), np.ma.getmaskarray(value)))
    if isinstance(value, np.ndarray):  # a copy is contiguous, a view may not be
        return joblib.hash(np.ascontiguousarray(value))
    if isinstance(value, BaseEstimator):
        return joblib.hash((type(value).__name__, _state_hashes(value)))
    if isinstance(value, dict):
        return joblib.hash({k: _digest(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return joblib.hash([_digest(v) for v in value])
    return joblib.hash(value)


def _state_hashes(est) -> dict:
    return {k: _digest(v) for k, v in vars(est).items()}


def _assert_unchanged(subject, est, X, before_out, before_state):
    after_out = subject.outputs(est, X)
    assert before_out.keys() == after_out.keys()
    for key in before_out:
        assert _same(before_out[key], after_out[key]), f"{subject}: {key} changed"
    after_state = _state_hashes(est)
    changed = sorted(
        k
        for k in before_state.keys() | after_state.keys()
        if before_state.get(k) != after_state.get(k)
    )
    assert not changed, f"{subject}: attributes changed by a failed fit: {changed}"
    assert est.n_features_in_ == X.shape[1]
    record(subject.name.split("(")[0], "failed refit", "state kept")


def test_every_public_estimator_has_a_subject():
    missing = [name for name in ESTIMATORS if name not in BY_NAME]
    assert not missing, (
        f"public estimators without a subject in reliability_subjects.ESTIMATORS: "
        f"{missing}"
    )
    # The enumeration really walks the package (not an empty list).
    assert {"TorchLinearRegressor", "TrimRegressor", "StealthyPoisoner"} <= set(
        ESTIMATORS
    )


def _fitted(name):
    subject = BY_NAME[name]
    X, y = make_data()
    est = subject.fit(X, y)
    return subject, est, X, subject.outputs(est, X)


@pytest.mark.parametrize("name", SUBJECT_NAMES)
def test_failed_refit_too_large_keeps_state(name):
    subject, est, X, before_out = _fitted(name)
    before_state = _state_hashes(est)
    X_bad, y_bad = _too_large()
    params = est.get_params(deep=False)
    est.set_params(**NO_CLEAN_POINT.get(name, {}))
    with pytest.raises(ValueError):
        est.fit(X_bad, y_bad, **_refit_kwargs(name, X_bad))
    est.set_params(**{k: params[k] for k in NO_CLEAN_POINT.get(name, {})})
    _assert_unchanged(subject, est, X, before_out, before_state)


@pytest.mark.parametrize("name", sorted(DIVERGING))
def test_failed_refit_divergence_keeps_state(name):
    subject, est, X, before_out = _fitted(name)
    est.set_params(**DIVERGING[name])
    before_state = _state_hashes(est)
    X_new, y_new = make_data(30, WIDE, seed=4)
    with pytest.raises(DivergenceError):
        est.fit(X_new, y_new)
    _assert_unchanged(subject, est, X, before_out, before_state)


def test_interrupted_warm_start_keeps_warm_state(monkeypatch):
    """A warm-start extension interrupted mid-run keeps the earlier batches.

    The attack appends batches to its warm-start state in place, so this checks
    that the state is copied, not only rebound.
    """
    from skpoison.attacks import StealthyPoisoner

    subject = BY_NAME["StealthyPoisoner"]
    X, y = make_data()
    est = subject.fit(X, y).set_params(warm_start=True)
    est.fit(X, y)  # reuses the state: warm start is on from here
    before_out = subject.outputs(est, X)
    before_state = _state_hashes(est)
    n_batches = len(est._state["batches"])
    craft = StealthyPoisoner._craft
    calls = []

    def interrupted(self, state, indices):
        calls.append(indices)
        if len(calls) > 1:  # one more batch was appended, then Ctrl-C
            raise KeyboardInterrupt
        return craft(self, state, indices)

    monkeypatch.setattr(StealthyPoisoner, "_craft", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.set_params(poison_fraction=0.3).fit(X, y)
    monkeypatch.setattr(StealthyPoisoner, "_craft", craft)
    assert len(calls) == 2
    est.set_params(poison_fraction=0.1)
    assert len(est._state["batches"]) == n_batches
    _assert_unchanged(subject, est, X, before_out, before_state)
