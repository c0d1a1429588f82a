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
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
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


# ------------------------------------------- poisoned datasets: names, damage
_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=8,
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    data=st.data(),
    n_features=st.integers(1, 4),
    n_samples=st.integers(1, 6),
    suffix=st.sampled_from([".npz", ".csv"]),
)
def test_poisoned_dataset_round_trips_any_accepted_name_and_value(
    data, n_features, n_samples, suffix, tmp_path_factory
):
    """Names with '#', commas, quotes, newlines, spaces; any finite float."""
    from skpoison.datasets import load_poisoned_dataset, save_poisoned_dataset

    names = data.draw(
        st.lists(_NAME, min_size=n_features, max_size=n_features, unique=True).filter(
            lambda ns: not {"target", "is_poison"} & set(ns)
        )
    )
    floats = st.floats(allow_nan=False, allow_infinity=False)
    X = data.draw(hnp.arrays(np.float64, (n_samples, n_features), elements=floats))
    y = data.draw(hnp.arrays(np.float64, (n_samples,), elements=floats))
    mask = data.draw(hnp.arrays(bool, (n_samples,)))
    path = tmp_path_factory.mktemp("rt") / f"p{suffix}"
    save_poisoned_dataset(path, X, y, mask, feature_names=names, note="x")
    back = load_poisoned_dataset(path)
    record("save_poisoned_dataset", f"export names {suffix}", "finite")
    assert back.feature_names == names
    assert back.data.tobytes() == X.tobytes()  # bit for bit, -0.0 included
    assert back.target.tobytes() == y.tobytes()
    assert np.array_equal(back.is_poison, mask)
    assert back.metadata == {"note": "x"}


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
@pytest.mark.parametrize(
    "names, error, match",
    [
        (["a\x00", "b", "c"], ValueError, "NUL"),
        (["\ud800", "b", "c"], ValueError, "Unicode"),
        ([1, 2, 3], TypeError, "str"),
        ("abc", TypeError, "sequence of str"),
    ],
)
def test_poisoned_dataset_refuses_names_it_cannot_round_trip(
    suffix, names, error, match, tmp_path
):
    from skpoison.datasets import save_poisoned_dataset

    X, y = make_data(5)
    with pytest.raises(error, match=match):
        save_poisoned_dataset(tmp_path / f"p{suffix}", X, y, [0], feature_names=names)
    record("save_poisoned_dataset", f"export bad names {suffix}", error.__name__)
    assert list(tmp_path.iterdir()) == []


def _npz(path, **overrides):
    X, y = make_data(5)
    arrays = dict(
        X=X, y=y, is_poison=np.array([1, 0, 0, 0, 0], dtype=bool),
        poison_indices=np.array([0]), feature_names=np.array(["a", "b", "c"]),
        metadata=np.array("{}"),
    )  # fmt: skip
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def _damage_truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _damage_empty(path):
    path.write_bytes(b"")


def _damage_json(path):
    text = path.read_text(encoding="utf-8").replace("metadata: {", "metadata: {oops")
    path.write_text(text, encoding="utf-8")


def _damage_binary(path):
    path.write_bytes(b"\xff\xfe\x00garbage")


DAMAGED_NPZ = {
    "truncated": (None, _damage_truncate, "not a valid"),
    "empty file": (None, _damage_empty, "not a valid"),
    "not a zip": (None, _damage_binary, "not a valid"),
    "bad metadata JSON": ({"metadata": np.array("{oops")}, None, "Expecting"),
    "metadata not an object": ({"metadata": np.array("[1]")}, None, "JSON object"),
    "indices disagree with is_poison": (
        {"poison_indices": np.array([1])},
        None,
        "disagree",
    ),
    "NaN in X": ({"X": np.full((5, 3), np.nan)}, None, "X contains NaN"),
    "inf in y": ({"y": np.full(5, np.inf)}, None, "y contains NaN or inf"),
    "X of strings": ({"X": np.full((5, 3), "a")}, None, "X has dtype"),
    "float indices": ({"poison_indices": np.array([0.0])}, None, "dtype"),
    "is_poison of 2s": ({"is_poison": np.array([2, 0, 0, 0, 0])}, None, "0 and 1"),
    "names of wrong length": (
        {"feature_names": np.array(["a", "b"])},
        None,
        "2 feature names for 3",
    ),
    "names not str": ({"feature_names": np.array([1, 2, 3])}, None, "str"),
    "y of wrong length": ({"y": np.ones(4)}, None, "inconsistent shapes"),
    "repeated indices": (
        {"poison_indices": np.array([0, 0]), "is_poison": np.ones(5, bool)},
        None,
        "repeated",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED_NPZ))
def test_load_npz_refuses_damaged_or_contradictory_files(case, tmp_path):
    from skpoison.datasets import load_poisoned_dataset

    overrides, damage, match = DAMAGED_NPZ[case]
    path = tmp_path / "p.npz"
    _npz(path, **(overrides or {}))
    if damage is not None:
        damage(path)
    with pytest.raises(ValueError, match=match) as info:
        load_poisoned_dataset(path)
    assert str(path) in str(info.value)
    record("save_poisoned_dataset", f"export damaged npz: {case}", "ValueError")


DAMAGED_CSV = {
    "truncated": (_damage_truncate, "every row must have|not a valid"),
    "empty file": (_damage_empty, "no header row"),
    "bad metadata JSON": (_damage_json, "Expecting"),
    "not UTF-8": (_damage_binary, "not a valid"),
    "NaN value": (
        lambda p: p.write_text('"a","target","is_poison"\nnan,1,0\n'),
        "X contains NaN",
    ),
    "inf target": (
        lambda p: p.write_text('"a","target","is_poison"\n1,inf,0\n'),
        "y contains NaN or inf",
    ),
    "ragged row": (
        lambda p: p.write_text('"a","target","is_poison"\n1,2\n'),
        "every row must have 3",
    ),
    "metadata not an object": (
        lambda p: p.write_text('# metadata: [1]\n"a","target","is_poison"\n1,2,0\n'),
        "JSON object",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED_CSV))
def test_load_csv_refuses_damaged_files(case, tmp_path):
    from skpoison.datasets import load_poisoned_dataset, save_poisoned_dataset

    damage, match = DAMAGED_CSV[case]
    X, y = make_data(5)
    path = save_poisoned_dataset(tmp_path / "p.csv", X, y, [1], alpha=0.5)
    damage(path)
    with pytest.raises(ValueError, match=match) as info:
        load_poisoned_dataset(path)
    assert str(path) in str(info.value)
    record("save_poisoned_dataset", f"export damaged csv: {case}", "ValueError")
