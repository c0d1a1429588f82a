"""How long ``doc/reproduce.sh`` takes: a small sample of every study, extrapolated.

Runs one repetition of each LR study (alphas 1 and 0.1: two units of work),
one DNN unit on Heart, one Fig. 9 seed and one repetition of the sensitivity
baseline, with one BLAS/torch thread as in the studies, and measures the
process CPU time of each (on a shared machine the CPU time is what the same
work costs on a quiet core; wall times are printed too). The full run's CPU
time is then

- LR study: ``reps x 4 alphas`` units per dataset;
- DNN study: ``dnn_reps x 4`` units on Heart (for each of ``--dnn-reps``);
- Fig. 9: ``seeds`` seeds;
- sensitivity: for each of its studies (baseline and variants) ``reps x 2``
  Boston units, the attack's share scaled for the variants that change its
  work (T_out x 0.5 and x 2; batches of 1/2 and 1/4: 2 and 4 times as many
  batches), and 5 Fig. 9 runs of ``seeds`` seeds (sample size 200 at twice
  the cost);

and its wall time on ``--cores`` quiet cores is that CPU time divided by the
cores (the units run in parallel). Process start-up, reports and figures are
not in it: they added about 60 % to such a projection in the last measured
run (doc/reproduction.md, "Time"). Loan is not counted (not downloadable on
the development machines). Results go to
``benchmarks/results/estimate_reproduction.json``.

Usage::

    python benchmarks/estimate_reproduction.py
    python benchmarks/estimate_reproduction.py --reps 20 --fig9-seeds 10 --dnn-reps 5 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from _provenance import commit

from skpoison.evaluation import figure_9, poisoning_curve
from skpoison.evaluation._sensitivity import SENSITIVITY_SETTINGS

RESULTS = Path(__file__).parent / "results"
ALL_DEFENSES = ("none", "bayesclean", "bayesclean_paper", "trim", "sever", "proda",
                "duti", "huber")  # fmt: skip
SENS_RATIOS = (0.0, 0.075, 0.15, 0.3, 0.45)
# The attack's work in each sensitivity variant relative to the baseline's.
ATTACK_FACTOR = {("n_outer_steps", 0): 0.5, ("n_outer_steps", 1): 2.0,
                 ("batch_size", 0): 2.0, ("batch_size", 1): 4.0}  # fmt: skip


def _timed(fn, *args, **kwargs):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def _units(dataset, model, alphas, ratios=None, n_outer_steps=None):
    kw = {} if ratios is None else {"ratios": ratios}
    params = {} if n_outer_steps is None else {"n_outer_steps": n_outer_steps}
    df, wall, cpu = _timed(
        poisoning_curve, dataset, model=model, alphas=alphas, n_repetitions=1,
        defenses=ALL_DEFENSES, attack_params=params, **kw)  # fmt: skip
    attack = float(df.groupby("alpha")["attack_time"].first().sum())
    n = len(alphas)
    return {"dataset": dataset, "model": model, "units": n, "wall_s": wall,
            "cpu_s": cpu, "cpu_per_unit_s": cpu / n,
            "attack_share": min(1.0, attack / wall)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--fig9-seeds", type=int, default=10)
    p.add_argument("--dnn-reps", type=int, nargs="+", default=[5, 10])
    p.add_argument("--sensitivity-reps", type=int, default=10)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--datasets", nargs="+", default=["heart", "boston_housing",
                                                     "appliances"])  # fmt: skip
    args = p.parse_args()
    ran_at = commit(full=True)
    machine = {"cpu_count": os.cpu_count(), "torch": torch.__version__,
               "torch_threads_in_units": 1, "platform": platform.platform(),
               "load_average_before": os.getloadavg()}  # fmt: skip
    print(f"commit {ran_at[:7]}; machine: {machine}")

    lr = [_units(d, "linear", [1.0, 0.1]) for d in args.datasets]
    for u in lr:
        print(f"LR {u['dataset']}: {u['cpu_per_unit_s']:.1f} s CPU per unit "
              f"(wall {u['wall_s'] / u['units']:.1f} s)")  # fmt: skip
    dnn = _units("heart", "mlp", [1.0])
    print(
        f"DNN heart: {dnn['cpu_per_unit_s']:.1f} s CPU per unit (wall {dnn['wall_s']:.1f} s)"
    )
    _, f9_wall, f9_cpu = _timed(figure_9, plot=False, random_state=0)
    print(f"Fig. 9: {f9_cpu:.1f} s CPU per seed (wall {f9_wall:.1f} s)")
    sens = _units("boston_housing", "linear", [1.0, 0.1], ratios=SENS_RATIOS)
    print(f"sensitivity baseline unit: {sens['cpu_per_unit_s']:.1f} s CPU, attack "
          f"{sens['attack_share']:.0%} of it")  # fmt: skip

    lr_cpu = sum(args.reps * 4 * u["cpu_per_unit_s"] for u in lr)
    fig9_cpu = args.fig9_seeds * f9_cpu
    unit, share = sens["cpu_per_unit_s"], sens["attack_share"]
    studies = [1.0]  # the baseline
    fig9_runs = [1.0]
    for s in SENSITIVITY_SETTINGS:
        base = {"n_outer_steps": 100, "batch_size": 19, "inner_lr": 0.1,
                "learning_rate": 0.1}  # fmt: skip
        for i, v in enumerate(s.values(base)):
            if s.target == "figure9":
                fig9_runs.append(v / 100 if s.name == "figure9_n_train" else 1.0)
            else:
                studies.append(1 - share + share * ATTACK_FACTOR.get((s.name, i), 1.0))
    sens_cpu = sum(studies) * args.sensitivity_reps * 2 * unit
    sens_cpu += sum(fig9_runs) * args.fig9_seeds * f9_cpu
    rows = {}
    for k in args.dnn_reps:
        dnn_cpu = k * 4 * dnn["cpu_per_unit_s"]
        total = lr_cpu + fig9_cpu + dnn_cpu + sens_cpu
        rows[k] = {"lr_cpu_s": lr_cpu, "fig9_cpu_s": fig9_cpu, "dnn_cpu_s": dnn_cpu,
                   "sensitivity_cpu_s": sens_cpu, "total_cpu_s": total,
                   "wall_s_on_cores": total / args.cores}  # fmt: skip
        print(f"--reps {args.reps} --fig9-seeds {args.fig9_seeds} --dnn-reps {k} "
              f"--sensitivity-reps {args.sensitivity_reps}: LR {lr_cpu / 60:.1f} + "
              f"Fig. 9 {fig9_cpu / 60:.1f} + DNN {dnn_cpu / 60:.1f} + sensitivity "
              f"{sens_cpu / 60:.1f} ({len(studies)} studies) = {total / 60:.0f} min "
              f"CPU, about {total / 60 / args.cores:.0f} min wall on {args.cores} "
              "quiet cores (plus start-up, reports, figures)")  # fmt: skip
    machine["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "estimate_reproduction.json"
    out.write_text(json.dumps(
        {"commit": ran_at, "machine": machine, "args": vars(args), "lr_units": lr,
         "dnn_unit": dnn, "figure9_seed": {"wall_s": f9_wall, "cpu_s": f9_cpu},
         "sensitivity_unit": sens, "sensitivity_studies": len(studies),
         "projection": rows}, indent=1) + "\n")  # fmt: skip
    print(f"-> {out}")


if __name__ == "__main__":
    main()
