"""Persistence: fitted estimators survive pickle and joblib, in this process and another.

Every fitted estimator of ``reliability_subjects.ESTIMATORS`` is round-tripped
through ``pickle`` and ``joblib.dump`` / ``joblib.load``; its outputs
(predictions, masks, scores, poison points, ...) must be bit-identical, and
torch state (``module_``) must come back parameter for parameter. One
subprocess loads all of them from a joblib file and recomputes the outputs,
so nothing depends on state of the process that fitted them.

The poisoned dataset of an attack can be exported (``.npz`` / ``.csv``) and
reused: a victim trained on the reloaded set predicts exactly as one trained
on the attack's output.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from reliability_helpers import record
from reliability_subjects import ESTIMATORS, make_data

HERE = Path(__file__).parent


def _assert_same_outputs(name, a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype and x.shape == y.shape, (name, key)
        assert np.array_equal(x, y, equal_nan=True), f"{name}: {key} changed"


def _assert_same_torch_state(name, est, other):
    for attr in ("module_",):
        module = getattr(est, attr, None)
        if module is None:
            continue
        state, state2 = module.state_dict(), getattr(other, attr).state_dict()
        assert state.keys() == state2.keys()
        for key in state:
            assert state[key].dtype == state2[key].dtype
            assert bool((state[key] == state2[key]).all()), f"{name}: {attr}.{key}"


@pytest.fixture(scope="module")
def fitted():
    X, y = make_data()
    return X, {s.name: s.fit(X, y) for s in ESTIMATORS}


@pytest.mark.parametrize("how", ["pickle", "joblib"])
@pytest.mark.parametrize("subject", ESTIMATORS, ids=str)
def test_round_trip_keeps_outputs_and_torch_state(subject, how, fitted, tmp_path):
    X, models = fitted
    est = models[subject.name]
    if how == "pickle":
        restored = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    record(subject, f"persistence ({how})", "finite")
    _assert_same_outputs(subject, subject.outputs(est, X), subject.outputs(restored, X))
    _assert_same_torch_state(subject, est, restored)
    inner = getattr(est, "estimator_", None)
    if inner is not None and hasattr(inner, "module_"):
        _assert_same_torch_state(subject, inner, restored.estimator_)


def test_round_trip_in_a_fresh_process(fitted, tmp_path):
    """Load every fitted estimator in another interpreter: same outputs."""
    X, models = fitted
    expected = {s.name: s.outputs(models[s.name], X) for s in ESTIMATORS}
    joblib.dump((X, models), tmp_path / "models.joblib")
    script = (
        "import sys, joblib\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from reliability_subjects import ESTIMATORS\n"
        f"X, models = joblib.load({str(tmp_path / 'models.joblib')!r})\n"
        "out = {s.name: s.outputs(models[s.name], X) for s in ESTIMATORS}\n"
        f"joblib.dump(out, {str(tmp_path / 'out.joblib')!r})\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="123")  # another hash seed too
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    got = joblib.load(tmp_path / "out.joblib")
    for name in expected:
        record(name, "persistence (other process)", "finite")
        _assert_same_outputs(name, expected[name], got[name])


def test_unpickled_attack_continues_a_warm_start_exactly():
    """A pickled attack keeps its batches: extending it equals extending the original."""
    from sklearn.base import clone

    from skpoison.attacks import StealthyPoisoner

    X, y = make_data(30)  # 30 training points: 10% and 20% are whole batches of 3
    params = dict(
        poison_fraction=0.1, n_inner_steps=5, n_outer_steps=3, batch_size=3,
        device="cpu", random_state=0, warm_start=True,
    )  # fmt: skip
    attack = StealthyPoisoner(**params).fit(X, y)
    restored = pickle.loads(pickle.dumps(attack))
    for est in (attack, restored):
        est.set_params(poison_fraction=0.2).fit(X, y)
    fresh = clone(attack).set_params(warm_start=False).fit(X, y)
    record("StealthyPoisoner", "persistence (warm start)", "finite")
    for a, b in ((attack, restored), (attack, fresh)):
        assert np.array_equal(a.X_poison_, b.X_poison_)
        assert np.array_equal(a.y_poison_, b.y_poison_)
        assert np.array_equal(a.poison_indices_, b.poison_indices_)
    assert restored.n_iter_ == attack.n_iter_


# ------------------------------------------------------------ poisoned datasets
@pytest.fixture(scope="module")
def poisoned():
    from skpoison.attacks import StealthyPoisoner

    X, y = make_data(40)
    attack = StealthyPoisoner(
        poison_fraction=0.15, n_inner_steps=5, n_outer_steps=3, batch_size=2,
        device="cpu", random_state=0,
    )  # fmt: skip
    X_p, y_p = attack.fit_resample(X, y)
    return attack, X_p, y_p


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_poisoned_dataset_export_and_reuse(poisoned, suffix, tmp_path):
    from skpoison.datasets import load_poisoned_dataset, save_poisoned_dataset
    from skpoison.models import TorchLinearRegressor

    attack, X_p, y_p = poisoned
    path = save_poisoned_dataset(
        tmp_path / f"boston_poisoned{suffix}",
        X_p,
        y_p,
        attack.poison_indices_,
        feature_names=["a", "b", "c"],
        alpha=attack.alpha,
        random_state=attack.random_state,
        bounds=[b.tolist() for b in attack.bounds_],
    )
    data = load_poisoned_dataset(path)
    record("save_poisoned_dataset", f"export {suffix}", "finite")
    # Bit for bit, whatever the format.
    assert np.array_equal(data.data, X_p) and np.array_equal(data.target, y_p)
    assert data.data.dtype == np.float64
    is_poison = np.zeros(len(y_p), dtype=bool)
    is_poison[attack.poison_indices_] = True
    assert np.array_equal(data.is_poison, is_poison)
    expected_idx = (
        attack.poison_indices_ if suffix == ".npz" else np.sort(attack.poison_indices_)
    )
    assert np.array_equal(data.poison_indices, expected_idx)
    assert data.feature_names == ["a", "b", "c"]
    assert data.metadata == {
        "alpha": attack.alpha,
        "random_state": 0,
        "bounds": [b.tolist() for b in attack.bounds_],
    }
    # Reuse: a victim trained on the reloaded set is the same victim.
    victim = TorchLinearRegressor(n_epochs=20)
    pred = victim.fit(X_p, y_p).predict(X_p)
    pred2 = TorchLinearRegressor(n_epochs=20).fit(data.data, data.target).predict(X_p)
    assert np.array_equal(pred, pred2)


def test_poisoned_csv_is_readable_by_pandas(poisoned, tmp_path):
    pd = pytest.importorskip("pandas")
    from skpoison.datasets import save_poisoned_dataset

    attack, X_p, y_p = poisoned
    path = save_poisoned_dataset(tmp_path / "p.csv", X_p, y_p, attack.poison_indices_)
    frame = pd.read_csv(path, comment="#")
    assert list(frame.columns) == ["x0", "x1", "x2", "target", "is_poison"]
    assert frame["is_poison"].sum() == attack.poison_indices_.size
    assert np.array_equal(frame["target"].to_numpy(), y_p)


def test_poisoned_export_is_atomic(poisoned, tmp_path):
    """A failed export leaves the previous file intact and no temporary file."""
    from skpoison.datasets import load_poisoned_dataset, save_poisoned_dataset

    attack, X_p, y_p = poisoned
    path = save_poisoned_dataset(tmp_path / "p.npz", X_p, y_p, attack.poison_indices_)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="JSON"):
        save_poisoned_dataset(path, X_p, y_p, [0], note=object())

    class Boom(Exception):
        pass

    # Fail in the middle of writing the archive itself.
    original = np.savez

    def failing_savez(*args, **kwargs):
        raise Boom

    try:
        np.savez = failing_savez
        with pytest.raises(Boom):
            save_poisoned_dataset(path, X_p * 2, y_p, [0])
    finally:
        np.savez = original
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.npz"]
    assert np.array_equal(load_poisoned_dataset(path).data, X_p)
    # Ordinary permissions (the umask decides), not a private temporary file's.
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_load_rejects_foreign_files(tmp_path):
    from skpoison.datasets import load_poisoned_dataset

    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="target' and 'is_poison'"):
        load_poisoned_dataset(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("x,target,is_poison\n1,2,3\n")
    with pytest.raises(ValueError, match="0 or 1"):
        load_poisoned_dataset(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("x,target,is_poison\nabc,2,1\n")
    with pytest.raises(ValueError, match="number"):
        load_poisoned_dataset(tmp_path / "c.csv")
    np.savez(tmp_path / "d.npz", X=np.ones((2, 2)))
    with pytest.raises(ValueError, match="missing"):
        load_poisoned_dataset(tmp_path / "d.npz")
    # Object arrays need pickle, which loading refuses (no code from files).
    np.savez(
        tmp_path / "e.npz", X=np.ones((1, 1)), y=np.ones(1), is_poison=np.zeros(1, bool),
        poison_indices=np.array([None], dtype=object),
    )  # fmt: skip
    with pytest.raises(ValueError, match="pickle"):
        load_poisoned_dataset(tmp_path / "e.npz")
    with pytest.raises(ValueError, match="must end in"):
        load_poisoned_dataset(tmp_path / "a.parquet")
