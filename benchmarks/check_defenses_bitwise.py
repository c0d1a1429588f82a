"""Are two checkouts' defenses bit for bit the same? Fits, dumps, compares exactly.

A speed-up of the defenses must not change a bit of any result (the
reproduction page's numbers come from them). This script fits every defense
(several configurations each: sklearn and GD victims, ridge, random starts,
the literal and the cheap Proda, the standardised and the raw BayesClean, ...)
on fixed problems: the study's shapes (a few hundred rows, d = 10 to 30,
poison appended), a large offset, data at 1e-170 and 1e+150, rank-deficient
designs, fewer rows than features, enough rows for the blocked Gram loops, and
one ``bench_defenses_ii`` problem. Every fitted attribute (arrays and numbers
ending in ``_``, those of ``estimator_`` too, and its predictions), every
warning and every error is dumped; two dumps must be equal under
``np.array_equal`` (NaN equal to NaN), key by key; with ``--tolerance``,
floats to that relative tolerance and kept sets up to genuine ties.

Usage::

    git -C /work/main worktree add /tmp/main_ref main
    python benchmarks/check_defenses_bitwise.py --ref /tmp/main_ref
    # or in two steps, reusing the reference dump:
    PYTHONPATH=/tmp/main_ref python benchmarks/check_defenses_bitwise.py --dump ref.npz
    python benchmarks/check_defenses_bitwise.py --against ref.npz
    # changes at rounding level only (floats to 1e-9 of their size):
    python benchmarks/check_defenses_bitwise.py --ref /tmp/main_ref --tolerance 1e-9

Exits 1 and lists the keys that differ when the two sides are not identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _poisoned(seed, n, d, n_poison, shift=15.0, uniform=False):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d)) if uniform else rng.normal(size=(n, d))
    y = X @ rng.uniform(0.5, 2.0, size=d) + 0.1 * rng.normal(size=n)
    # Poison appended at the end, as in the study; some near (borderline).
    y[n - n_poison :] += shift * (0.5 + rng.random(n_poison))
    return X, y


def _small(seed=3):
    return _poisoned(seed, 80, 3, 10)


def problems():
    """name -> (X, y); built lazily so that only one large problem is in memory."""
    out = {
        "study n300 d10": lambda: _poisoned(0, 300, 10, 60),
        "study n400 d30 near": lambda: _poisoned(1, 400, 30, 40, shift=1.0),
        "study n250 d12 uniform": lambda: _poisoned(2, 250, 12, 50, 2.0, True),
        "timestamp offset": lambda: (
            _small()[0] + np.array([1.7e9, -3e7, 0.0]),
            _small()[1],
        ),
        "tiny 1e-170": lambda: tuple(a * 1e-170 for a in _small()),
        "huge 1e150": lambda: tuple(a * 1e150 for a in _small()),
        "mixed units": lambda: (
            _small()[0] * np.array([1e-8, 1.0, 1e6]) + 1e3,
            1e4 * _small()[1] - 5e6,
        ),
        "duplicated column": lambda: (
            np.hstack([_small()[0], _small()[0][:, :1]]),
            _small()[1],
        ),
        "scaled copies": lambda: (
            np.hstack(
                [_small()[0], 1e4 * _small()[0][:, 2:], -1e-4 * _small()[0][:, :1]]
            ),
            _small()[1],
        ),
        "zero column": lambda: (
            np.hstack([_small()[0], np.zeros((80, 1))]),
            _small()[1],
        ),
        "constant on kept rows": lambda: (
            np.hstack([_small()[0], (np.arange(80) >= 70)[:, None] * 1.0]),
            _small()[1],
        ),
        "n < d": lambda: _poisoned(4, 40, 60, 5),
        "blocked n70000 d6": lambda: _poisoned(5, 70000, 6, 7000),
        "bench n4000 d100": lambda: _bench(4000, 100),
    }
    return out


def _bench(n, d):
    sys.path.insert(0, str(HERE))
    from bench_defenses_ii import make_data

    X, y, *_ = make_data(n, d)
    return X, y


def defenses():
    """name -> constructor source (evaluated with skpoison's names)."""
    return {
        "BayesClean": "BayesCleanFilter()",
        "BayesClean raw": "BayesCleanFilter(standardize=False)",
        "BayesClean paper keep": "BayesCleanFilter(rule='paper', flagged='keep')",
        "TRIM": "TrimRegressor()",
        "TRIM Ridge": "TrimRegressor(Ridge(alpha=1.0), reject_fraction=0.2)",
        "TRIM LinearRegression": "TrimRegressor(LinearRegression())",
        "TRIM n_init": "TrimRegressor(n_init=3, random_state=0)",
        "TRIM GD victim": "TrimRegressor(TorchLinearRegressor(), reject_fraction=0.2)",
        "SEVER": "SeverFilter()",
        "SEVER alpha": "SeverFilter(alpha=0.5, n_rounds=3, reject_fraction=0.2)",
        "SEVER LinearRegression": "SeverFilter(LinearRegression())",
        "Proda literal": "ProdaRegressor(random_state=0)",
        "Proda n_refits": "ProdaRegressor(n_refits=3, random_state=1)",
        "Proda groups": "ProdaRegressor(n_groups=30, reject_fraction=0.2, random_state=2)",
        "DUTI": "DutiFilter()",
        "DUTI weak": "DutiFilter(regularization=1.0, confidence=10.0, reject_fraction=0.2)",
    }


# Too slow for the blocked problem and adding nothing there.
SKIP = {("blocked n70000 d6", "Proda literal"), ("blocked n70000 d6", "TRIM GD victim")}


def _values(prefix, obj, X, out):
    for key, value in sorted(vars(obj).items()):
        if not key.endswith("_") or key.startswith("__"):
            continue
        name = f"{prefix}.{key}"
        if isinstance(value, (np.ndarray, float, int, bool, np.number, np.bool_)):
            out[name] = np.asarray(value)
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (float, int, np.number)) for v in value
        ):
            out[name] = np.asarray(value)
        elif value is None or isinstance(value, str):
            out[name] = np.asarray(repr(value))
    model = getattr(obj, "estimator_", None)
    if model is not None and prefix.count(".") == 0:
        _values(f"{prefix}.estimator_", model, X, out)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[f"{prefix}.estimator_.predict"] = np.asarray(
                    model.predict(X), dtype=np.float64
                )
            except Exception as exc:  # the error is the result
                out[f"{prefix}.estimator_.predict"] = np.asarray(repr(exc))
            if hasattr(model, "coef_") and hasattr(model, "intercept_"):
                # The size of the terms a linear prediction sums: its rounding
                # (and that of the coefficients, carried by X) is relative to it.
                out[f"{prefix}.estimator_.predict_terms"] = np.abs(X) @ np.abs(
                    np.ravel(model.coef_)
                ) + np.abs(np.ravel(model.intercept_))


def dump(path):
    """Fit every defense on every problem; save every fitted value to ``path``."""
    from sklearn.linear_model import LinearRegression, Ridge

    import skpoison
    from skpoison import defenses as mod
    from skpoison.models import TorchLinearRegressor

    names = {k: getattr(mod, k) for k in mod.__all__}
    names.update(
        LinearRegression=LinearRegression,
        Ridge=Ridge,
        TorchLinearRegressor=TorchLinearRegressor,
    )
    out = {}
    for pname, make in problems().items():
        X, y = make()
        rng = np.random.default_rng(11)
        coef = np.linalg.lstsq(X[: int(0.5 * len(y))], y[: int(0.5 * len(y))])[0]
        X_t = X[rng.choice(len(y), min(100, len(y)), replace=False)]
        y_t = X_t @ coef
        for dname, source in defenses().items():
            if (pname, dname) in SKIP:
                continue
            prefix = f"{pname}|{dname}"
            est = eval(source, names)
            kw = {"X_trusted": X_t, "y_trusted": y_t} if "Duti" in source else {}
            X_in, y_in = X.copy(), y.copy()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    est.fit(X_in, y_in, **kw)
                except Exception as exc:  # the error is the result
                    out[f"{prefix}.error"] = np.asarray(f"{type(exc).__name__}: {exc}")
                else:
                    _values(prefix, est, X, out)
            out[f"{prefix}.warnings"] = np.asarray(
                repr(sorted(f"{w.category.__name__}: {w.message}" for w in caught))
            )
            out[f"{prefix}.input_unchanged"] = np.asarray(
                np.array_equal(X_in, X) and np.array_equal(y_in, y)
            )
        print(f"{pname}: done", file=sys.stderr, flush=True)
    np.savez(path, **out)
    print(f"{len(out)} values from {skpoison.__file__} -> {path}", file=sys.stderr)


def _close(a, b, tolerance) -> bool:
    """Equal, or for floats within ``tolerance`` of the array's largest magnitude."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    numeric = a.dtype.kind in "fc"
    if np.array_equal(a, b, equal_nan=numeric):
        return True
    if not (tolerance and numeric):
        return False
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if not np.array_equal(np.isinf(a), np.isinf(b)) or not np.array_equal(
        a[np.isinf(a)], b[np.isinf(b)]
    ):
        return False
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    size = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    return bool(np.all(np.abs(a - b) <= tolerance * size))


def _close_derived(ref, new, key, tolerance) -> bool:
    """Values whose rounding is not relative to their own size, within ``tolerance``.

    A linear model's predictions sum terms ``x_j coef_j`` that can be far larger
    than the result (data with offsets): rounding-level changes of the
    coefficients move them by ``tolerance`` times those terms. Singular values
    taken from a Gram matrix are its eigenvalues' square roots: rounding is
    relative to the squares (a zero singular value is ``sqrt(eps)`` noise).
    Losses are relative to the largest squared residual of their fit.
    """
    a, b = ref[key], new[key]
    if a.shape != b.shape or a.dtype.kind != "f" or b.dtype.kind != "f":
        return False
    if key.endswith(".estimator_.predict") and key + "_terms" in ref.files:
        terms = np.maximum(ref[key + "_terms"], new[key + "_terms"])
        return bool(np.all(np.abs(a - b) <= tolerance * terms))
    if key.endswith(".singular_"):
        return _close(a * a, b * b, tolerance)
    scores = key.rsplit(".", 1)[0] + ".scores_"
    if key.endswith(("loss_", "losses_", "loss_path_")) and scores in ref.files:
        # Mean squared residuals: rounded like the squares they sum (a fit
        # that interpolates its rows has a loss of pure rounding noise).
        size = float(np.abs(ref[scores]).max(initial=0.0))
        finite = np.isfinite(a) & np.isfinite(b)
        return bool(
            np.array_equal(np.isnan(a), np.isnan(b))
            and np.all(np.abs(a[finite] - b[finite]) <= tolerance * size)
        )
    return False


def _tied(ref, new, mask_key, tolerance) -> bool:
    """Do two kept sets of the same size tie (to ``tolerance``)?

    Either the points they swap have equal scores, or both fits interpolate
    their kept sets (every kept score is 0 against the largest score: with
    fewer rows than parameters any kept set is fitted exactly, and which one
    is kept is decided by rounding noise).
    """
    scores_key = mask_key.replace("inlier_mask_", "scores_")
    if scores_key not in ref.files or scores_key not in new.files or not tolerance:
        return False
    a, b = ref[mask_key], new[mask_key]
    if a.shape != b.shape or a.sum() != b.sum():
        return False
    s, t = ref[scores_key], new[scores_key]
    size = max(float(np.abs(s).max(initial=0.0)), float(np.abs(t).max(initial=0.0)))
    swapped = s[a != b]
    if float(swapped.max() - swapped.min()) <= tolerance * size:
        return True
    return bool(s[a].max() <= tolerance * size and t[b].max() <= tolerance * size)


def compare(ref_path, new_path, tolerance=0.0) -> int:
    """Compare two dumps key by key; 1 if any value differs beyond ``tolerance``.

    With ``tolerance`` (relative), floats may differ by that fraction of the
    largest magnitude of their array, and a kept set may differ where the
    points it swaps have scores equal to that tolerance (a genuine tie): the
    other values of that fit are then reported but not counted.
    """
    ref, new = np.load(ref_path), np.load(new_path)
    bad = sorted(set(ref.files) ^ set(new.files))
    differ = [
        key
        for key in sorted(set(ref.files) & set(new.files))
        if not _close(ref[key], new[key], tolerance)
        and not (tolerance and _close_derived(ref, new, key, tolerance))
    ]
    ties = {
        key.split(".")[0]
        for key in differ
        if key.endswith(".inlier_mask_") and _tied(ref, new, key, tolerance)
    }
    for key in differ:
        if key.split(".")[0] in ties:
            print("DIFFERS AFTER A TIE:", key)
        else:
            bad.append(key)
    for key in bad:
        print("DIFFERS:", key)
    same = "identical" if not tolerance else f"equal to rtol {tolerance:g}"
    print(
        f"{len(ref.files)} reference values, {len(new.files)} new: "
        + (same if not bad else f"{len(bad)} differ")
        + (f" ({len(ties)} fits with tied kept sets)" if ties else "")
    )
    return 1 if bad else 0


def _dump_in(root: Path, path: str):
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    subprocess.run(
        [sys.executable, __file__, "--dump", path], check=True, env=env, cwd=root
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dump", help="fit everything, save the values here")
    group.add_argument("--ref", type=Path, help="a reference checkout to compare with")
    group.add_argument("--against", help="a reference dump to compare with")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="relative: floats may differ by this fraction of their array's "
        "largest magnitude (e.g. 1e-9), kept sets only among tied scores; "
        "default 0, bit for bit",
    )
    args = parser.parse_args(argv)
    if args.dump:
        dump(args.dump)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = args.against
        if args.ref is not None:
            ref_path = str(Path(tmp) / "ref.npz")
            _dump_in(args.ref, ref_path)
        new_path = str(Path(tmp) / "new.npz")
        _dump_in(HERE.parent, new_path)
        print(json.dumps({"reference": str(args.ref or args.against)}))
        return compare(ref_path, new_path, args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
