"""The Huber baseline's epsilon search: GridSearchCV.fit, the plain loop, warm starts.

The study's search (:func:`~skpoison.evaluation.build_defense` ``"huber"``: 5
values of epsilon in [1.1, 10], 3-fold CV, then a refit) on ``--n-sets``
training sets of the study's shape: Boston Housing standardised, half of it
drawn at random, a random fraction (0-45 %) of the targets moved by N(0, 3).
Three searches run side by side on each set (their order rotates from set to
set, so a change of load hits all alike):

* ``gridsearch``: ``GridSearchCV.fit`` on the search (the path before the
  plain loop; joblib dispatch, per-fit checks);
* ``plain``: the search's own ``fit`` (the default, cold): the plain loop;
* ``warm``: ``warm_start=True`` (fits along epsilon from the previous one).

Recorded: the mean time per search and the ratios; whether the plain loop
gave exactly ``GridSearchCV.fit``'s result (best epsilon, final coefficients,
every validation score: ``np.array_equal``); how often the warm search chose
the cold one's epsilon, the largest difference of the final coefficients and
of the validation scores (relative).

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
from sklearn.model_selection import GridSearchCV

from skpoison.defenses import make_huber_baseline
from skpoison.evaluation import load_dataset

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("gridsearch", "plain", "warm")


def _search(name, grid, X, y):
    search = make_huber_baseline(grid, cv=3, warm_start=name == "warm")
    if name == "gridsearch":
        return GridSearchCV.fit(search, X, y)
    return search.fit(X, y)


def _identical(a, b) -> bool:
    scores = [k for k in b.cv_results_ if "test_score" in k]
    return (
        a.best_params_ == b.best_params_
        and np.array_equal(a.best_estimator_.coef_, b.best_estimator_.coef_)
        and a.best_estimator_.intercept_ == b.best_estimator_.intercept_
        and all(np.array_equal(a.cv_results_[k], b.cv_results_[k]) for k in scores)
    )


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
    load_before = os.getloadavg()
    times = {name: [] for name in NAMES}
    plain_identical, same, coef_diff, score_diff = 0, 0, 0.0, 0.0
    for seed in range(args.n_sets):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(y0), len(y0) // 2, replace=False)
        X, y = X0[idx], y0[idx].copy()
        k = int(rng.uniform(0, 0.45) * len(y))
        y[:k] += rng.normal(0, 3, size=k)
        fits = {}
        for name in NAMES[seed % 3 :] + NAMES[: seed % 3]:
            start = time.perf_counter()
            fits[name] = _search(name, grid, X, y)
            times[name].append(time.perf_counter() - start)
        cold, warm = fits["plain"], fits["warm"]
        plain_identical += _identical(cold, fits["gridsearch"])
        same += cold.best_params_ == warm.best_params_
        coef_diff = max(coef_diff, float(np.abs(
            cold.best_estimator_.coef_ - warm.best_estimator_.coef_).max()))  # fmt: skip
        a = cold.cv_results_["mean_test_score"]
        b = warm.cv_results_["mean_test_score"]
        score_diff = max(score_diff, float(np.abs(b / a - 1).max()))
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    result = {
        "commit": commit(full=True),
        "cpus": os.cpu_count(),
        "load": [load_before, os.getloadavg()],
        "n_sets": args.n_sets,
        "mean_search_s": mean,
        "speedup_plain_vs_gridsearch": mean["gridsearch"] / mean["plain"],
        "plain_identical_to_gridsearch": f"{plain_identical}/{args.n_sets}",
        "speedup_warm_vs_plain": mean["plain"] / mean["warm"],
        "warm_same_epsilon": f"{same}/{args.n_sets}",
        "warm_max_abs_diff_final_coef": coef_diff,
        "warm_max_rel_diff_cv_scores": score_diff,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
