"""Fit time of SEVER, Proda and DUTI relative to one LinearRegression.fit.

For each n (default 1e4 and 1e5; the lead also runs 1e6) and d = 100, on data
with 10% gross label outliers, every defense's fit time is divided by the time
of one ``LinearRegression().fit`` measured in the same run (best of
``--repeats``). Goals (issue #5): SEVER <= 2x, Proda <= 3x with the paper's
epsilon and group size; DUTI's linear variant must reach n = 1e6.

Usage::

    python benchmarks/bench_defenses_ii.py                      # n = 1e4, 1e5
    python benchmarks/bench_defenses_ii.py --sizes 1e4 1e5 1e6  # the full run

Writes ``benchmarks/results/defenses_ii.json``. Timings on a shared machine are
noisy: compare ratios from the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LinearRegression

from skpoison.defenses import DutiFilter, ProdaRegressor, SeverFilter


def make_data(n, d, seed=0, outlier_fraction=0.1, n_trusted=300):
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=d)
    X = rng.normal(size=(n, d))
    y = X @ coef + 0.5 * rng.normal(size=n)
    out = rng.choice(n, int(outlier_fraction * n), replace=False)
    y[out] += 20.0 * rng.choice([-1.0, 1.0], size=out.size)
    is_outlier = np.zeros(n, dtype=bool)
    is_outlier[out] = True
    X_t = rng.normal(size=(n_trusted, d))
    y_t = X_t @ coef + 0.5 * rng.normal(size=n_trusted)
    return X, y, is_outlier, X_t, y_t


def best_time(make, X, y, repeats, **fit_params):
    """Best of ``repeats`` wall-clock times of ``make().fit(X, y, **fit_params)``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        est = make().fit(X, y, **fit_params)
        times.append(time.perf_counter() - t0)
    return min(times), est


def defenses(n, literal_proda_max_n):
    cases = {
        "SeverFilter()": lambda: SeverFilter(),
        "ProdaRegressor(n_refits=3)": lambda: ProdaRegressor(
            n_refits=3, random_state=0
        ),
        "DutiFilter(kernel='linear')": lambda: DutiFilter(),
    }
    if n <= literal_proda_max_n:
        cases["ProdaRegressor() [literal]"] = lambda: ProdaRegressor(random_state=0)
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5])
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--literal-proda-max-n",
        type=float,
        default=1e5,
        help="largest n at which the literal Proda (every group refitted) is timed",
    )
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent / "results" / "defenses_ii.json"),
    )
    args = parser.parse_args(argv)
    machine = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "numpy": np.__version__,
    }
    print("machine:", machine)
    results = {"machine": machine, "n_features": args.n_features, "runs": []}
    for n in (int(s) for s in args.sizes):
        X, y, is_outlier, X_t, y_t = make_data(n, args.n_features)
        t_lr, _ = best_time(LinearRegression, X, y, args.repeats)
        run = {"n_samples": n, "linear_regression_s": t_lr, "defenses": {}}
        print(f"n={n:>8d}  LinearRegression.fit {t_lr:8.3f} s")
        for name, make in defenses(n, args.literal_proda_max_n).items():
            kw = {"X_trusted": X_t, "y_trusted": y_t} if "Duti" in name else {}
            t, est = best_time(make, X, y, args.repeats, **kw)
            recall = float((~est.inlier_mask_[is_outlier]).mean())
            run["defenses"][name] = {
                "fit_s": t,
                "ratio": t / t_lr,
                "outlier_recall": recall,
            }
            print(
                f"    {name:<30s} {t:8.3f} s  {t / t_lr:6.2f}x  outliers removed {recall:.3f}"
            )
        results["runs"].append(run)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
