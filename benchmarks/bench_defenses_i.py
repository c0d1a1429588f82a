"""Fit time of BayesCleanFilter and TrimRegressor against their baselines.

For n = 1e3 ... 1e6 at d = 100 (synthetic linear data, 10% gross label
outliers), measured side by side in one process:

- BayesCleanFilter.fit / BayesianRidge.fit (same data, same settings); goal <= 1.3x;
- TrimRegressor.fit (least squares, to convergence, fast path) / one
  LinearRegression.fit; goal <= 2x at n = 1e6.

Each timing is the minimum over ``--repeats`` runs, the order of the estimators
alternating within a repeat. Prints a table and the machine; writes
``benchmarks/results/defenses_i.json``.

Usage::

    python benchmarks/bench_defenses_i.py --max-n 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.linear_model import BayesianRidge, LinearRegression

from skpoison.defenses import BayesCleanFilter, TrimRegressor

SIZES = [1_000, 10_000, 100_000, 1_000_000]


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    n_out = n // 10
    idx = rng.choice(n, n_out, replace=False)
    y[idx] += 20.0 * y.std() * rng.choice([-1.0, 1.0], size=n_out)
    is_outlier = np.zeros(n, dtype=bool)
    is_outlier[idx] = True
    return X, y, is_outlier


def timed(make, X, y):
    start = time.perf_counter()
    est = make().fit(X, y)
    return time.perf_counter() - start, est


def machine():
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "device": "cpu",
    }
    try:
        load = os.getloadavg()
        info["load_average_1m"] = round(load[0], 2)
    except OSError:
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "num_threads", "version")}
            for p in threadpool_info()
        ]
    except ImportError:
        pass
    return info


def run(max_n, repeats, d):
    cases = {
        "bayesian_ridge": lambda: BayesianRidge(max_iter=300),
        "bayesclean": lambda: BayesCleanFilter(max_iter=300),
        "linear_regression": LinearRegression,
        "trim": lambda: TrimRegressor(reject_fraction=0.4),
    }
    # Warm-up: first calls pay for imports, BLAS thread start-up and page faults.
    X, y, _ = make_data(2_000, d, seed=1)
    for make in cases.values():
        make().fit(X, y)
    rows = []
    for n in [s for s in SIZES if s <= max_n]:
        X, y, is_outlier = make_data(n, d)
        best = dict.fromkeys(cases, np.inf)
        fitted = {}
        for rep in range(repeats):
            names = list(cases) if rep % 2 == 0 else list(cases)[::-1]
            for name in names:
                t, est = timed(cases[name], X, y)
                best[name] = min(best[name], t)
                fitted[name] = est
        trim, bc = fitted["trim"], fitted["bayesclean"]
        row = {
            "n": n,
            "d": d,
            **{f"{k}_s": v for k, v in best.items()},
            "bayesclean_ratio": best["bayesclean"] / best["bayesian_ridge"],
            "trim_ratio": best["trim"] / best["linear_regression"],
            "trim_n_iter": int(trim.n_iter_),
            "trim_outliers_rejected": float((~trim.inlier_mask_[is_outlier]).mean()),
            "bayesclean_outliers_rejected": float(
                (~bc.inlier_mask_[is_outlier]).mean()
            ),
        }
        rows.append(row)
        print(
            f"{n:>9} {row['bayesian_ridge_s']:>9.3f} {row['bayesclean_s']:>9.3f} "
            f"{row['bayesclean_ratio']:>6.2f}x  {row['linear_regression_s']:>9.3f} "
            f"{row['trim_s']:>9.3f} {row['trim_ratio']:>6.2f}x {row['trim_n_iter']:>5} "
            f"{row['bayesclean_outliers_rejected']:>6.2f} "
            f"{row['trim_outliers_rejected']:>6.2f}",
            flush=True,
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).parent / "results" / "defenses_i.json",
    )
    args = parser.parse_args(argv)
    info = machine()
    print("machine:", json.dumps(info))
    print(
        f"{'n':>9} {'BayesR s':>9} {'BClean s':>9} {'ratio':>7}  {'LinReg s':>9} "
        f"{'TRIM s':>9} {'ratio':>7} {'iters':>5} {'BC rej':>6} {'TR rej':>6}"
    )
    rows = run(args.max_n, args.repeats, args.n_features)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "defenses_i",
                "goals": {"bayesclean_ratio": 1.3, "trim_ratio_at_1e6": 2.0},
                "timing": f"min over {args.repeats} repeats, seconds",
                "machine": info,
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
