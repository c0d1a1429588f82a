"""The Huber baseline's epsilon search, warm-started along epsilon vs from zero.

The study's search (:func:`~skpoison.evaluation.build_defense` ``"huber"``: 5
values of epsilon in [1.1, 10], 3-fold CV, then a refit) on ``--n-sets``
training sets of the study's shape: Boston Housing standardised, half of it
drawn at random, a random fraction (0-45 %) of the targets moved by N(0, 3).
Both searches run side by side on each set; recorded: the mean time per
search, how often they choose the same epsilon, the largest difference of the
final coefficients and of the validation scores (relative).

Usage::

    python benchmarks/bench_huber.py            # -> benchmarks/results/huber.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from _provenance import commit

from skpoison.defenses import make_huber_baseline
from skpoison.evaluation import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sets", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/huber.json"))
    args = parser.parse_args()
    X0, y0 = load_dataset("boston_housing")
    X0, y0 = np.asarray(X0, float), np.asarray(y0, float)
    X0 = (X0 - X0.mean(0)) / X0.std(0)
    y0 = (y0 - y0.mean()) / y0.std()
    grid = np.geomspace(1.1, 10.0, 5)
    times = {"cold": [], "warm": []}
    same, coef_diff, score_diff = 0, 0.0, 0.0
    for seed in range(args.n_sets):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(y0), len(y0) // 2, replace=False)
        X, y = X0[idx], y0[idx].copy()
        k = int(rng.uniform(0, 0.45) * len(y))
        y[:k] += rng.normal(0, 3, size=k)
        fits = {}
        for name in ("cold", "warm") if seed % 2 == 0 else ("warm", "cold"):
            start = time.perf_counter()
            search = make_huber_baseline(grid, cv=3, warm_start=name == "warm")
            fits[name] = search.fit(X, y)
            times[name].append(time.perf_counter() - start)
        cold, warm = fits["cold"], fits["warm"]
        same += cold.best_params_ == warm.best_params_
        coef_diff = max(coef_diff, float(np.abs(
            cold.best_estimator_.coef_ - warm.best_estimator_.coef_).max()))  # fmt: skip
        a = cold.cv_results_["mean_test_score"]
        b = warm.cv_results_["mean_test_score"]
        score_diff = max(score_diff, float(np.abs(b / a - 1).max()))
    result = {
        "commit": commit(full=True),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
        "n_sets": args.n_sets,
        "mean_search_s": {k: float(np.mean(v)) for k, v in times.items()},
        "speedup": float(np.mean(times["cold"]) / np.mean(times["warm"])),
        "same_epsilon": f"{same}/{args.n_sets}",
        "max_abs_diff_final_coef": coef_diff,
        "max_rel_diff_cv_scores": score_diff,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
