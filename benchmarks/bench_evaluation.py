"""Where the time of a poisoning study goes: one unit of work per dataset, profiled.

A unit of :func:`skpoison.evaluation.poisoning_curve` is one attack (one
repetition and alpha) with every defense evaluated at every ratio. This script
runs one alpha = 1 unit per dataset (the paper's 7 ratios, every defense, one
BLAS/torch thread as in the study), prints the attack time and each defense's
fit time summed over the ratios, and extrapolates the CPU time of the whole LR
study (10 repetitions x 4 alphas per dataset; ratio 0 is shared by the alphas
of a repetition) and its wall time on ``--cores`` cores.

Timings on a shared machine are noisy: the process CPU time is printed too.
Results go to ``benchmarks/results/evaluation.json``.

Usage::

    python benchmarks/bench_evaluation.py
    python benchmarks/bench_evaluation.py --datasets boston_housing --model linear
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from skpoison.evaluation import poisoning_curve
from skpoison.evaluation._registry import DEFENSE_NAMES

RESULTS = Path(__file__).parent / "results"


def profile_unit(dataset: str, model: str) -> dict:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    df = poisoning_curve(
        dataset, model=model, alphas=[1.0], n_repetitions=1, defenses=DEFENSE_NAMES
    )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    fits = df.groupby("defense")["fit_time"].sum().sort_values(ascending=False)
    attack = float(df["attack_time"].iloc[0])
    return {
        "dataset": dataset,
        "model": model,
        "unit_wall_s": wall,
        "unit_cpu_s": cpu,
        "attack_s": attack,
        "defense_fit_s": {k: float(v) for k, v in fits.items()},
        "diverged_rows": int(df["diverged"].sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["boston_housing", "heart", "appliances"]
    )
    parser.add_argument("--model", default="linear", choices=("linear", "mlp"))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    machine = {
        "cpu_count": os.cpu_count(),
        "torch_threads_in_units": 1,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }
    print(f"machine: {machine}")
    units = []
    total = 0.0
    for dataset in args.datasets:
        u = profile_unit(dataset, args.model)
        units.append(u)
        # ratio 0 is evaluated once per repetition, in the alpha = 1 unit
        total += 40 * u["unit_wall_s"] * (1 - 3 / 4 * 1 / 7)
        share = {k: v / u["unit_wall_s"] for k, v in u["defense_fit_s"].items()}
        print(
            f"{dataset} ({args.model}): unit {u['unit_wall_s']:.1f} s wall, "
            f"{u['unit_cpu_s']:.1f} s CPU; attack {u['attack_s']:.2f} s "
            f"({u['attack_s'] / u['unit_wall_s']:.0%})"
        )
        for name, t in u["defense_fit_s"].items():
            print(f"    {name:>17s} {t:7.2f} s  {share[name]:5.0%}")
    print(
        f"projected full study (10 reps x 4 alphas each): {total / 60:.1f} min of "
        f"unit time, about {total / 60 / args.cores:.1f} min wall on {args.cores} cores"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"evaluation_{args.model}.json"
    out.write_text(
        json.dumps(
            {"machine": machine, "units": units, "projected_unit_s": total}, indent=2
        )
        + "\n"
    )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
