"""The Heart DNN study shape, batched vs one problem at a time, in one run.

The study shape of issue #16: Heart (Table I: 1599 training and 480
validation rows, 28 features), the paper's MLP (28 x 32 x 8 x 1, Table II:
``T = 100`` inner steps, ``eta = 0.1``, batches of 120 poison points, 80
outer steps), 10 repetitions, alphas 1 and 0.1, ratios 0, 7.5 and 15 % (two
batches per attack), no defenses. A unit's repetitions of one alpha are ``k =
10`` independent problems of one shape, so this script measures, side by
side in alternating rounds (median of the rounds):

* **engine**: one hypergradient of each of the 10 problems (the 10 splits of
  Heart, each with its own initialisation and poison batch) by one
  :class:`~skpoison.attacks._batched.BatchedUnrolledEngine` call against 10
  :class:`~skpoison.attacks._hypergradient.UnrolledEngine` calls, on one torch
  thread (as the study runs its units); and the one-at-a-time calls on
  torch's default threads (the direct-use behaviour before the engine chose
  its thread count; ``--default-threads-problems`` of them, scaled to 10, as
  they are slow under load);
* **victims**: the 10 victims of one ratio (``TorchMLPRegressor``, 100
  epochs) by one :func:`~skpoison.models._batched.fit_batched` against 10 fits.

From these it projects the study shape (20 attacks of 2 x (80 + 1) engine
calls, 50 victim fits) one at a time and batched (the 10 repetitions of each
alpha grouped), and the paper's full Heart DNN study (10 repetitions, 4
alphas, ratios 0-45 %: 6 batches per attack; with ``--defenses-unit`` the
defenses' fit time of one real unit, measured by
:func:`~skpoison.evaluation.poisoning_curve` with 2 outer steps, is added for
each of the 40 units) on ``--cores`` cores, with units in parallel.

With ``--floor`` it also profiles one call (``bench_dnn_engine.profile``:
each of its operations replayed alone on warm operands) and states what the
issue's goal for the full study (under 10 minutes on 2 cores) asks of one
engine call against that floor, and the most that batching could gain (the
whole per-operation cost, measured by the same call on 128 rows).

Results go to ``benchmarks/results/dnn_study_cpu.json``. The machine may be
shared: the load average before and after is recorded; ratios measured in
alternating rounds are robust to load, absolute times are not.

Usage::

    python benchmarks/bench_dnn_study.py
    python benchmarks/bench_dnn_study.py --quick          # small shapes, seconds
    python benchmarks/bench_dnn_study.py --defenses-unit  # + one unit's defenses
    python benchmarks/bench_dnn_study.py --defenses-unit --floor
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import commit
from bench_hypergradient import cpu_model

from skpoison.attacks._batched import BatchedUnrolledEngine
from skpoison.attacks._hypergradient import UnrolledEngine, _chain_value_and_grad
from skpoison.attacks._presets import ATTACK_PRESETS, VICTIM_PRESETS
from skpoison.datasets import split_and_standardize
from skpoison.evaluation import load_dataset
from skpoison.models import TorchMLPRegressor
from skpoison.models._batched import fit_batched
from skpoison.models._training import torch_threads

RESULTS = Path(__file__).parent / "results"
K = 10  # repetitions: the problems of one alpha
STUDY = dict(repetitions=10, alphas=2, batches=2, victim_fits=10 + 2 * 20)
FULL = dict(repetitions=10, alphas=4, batches=6)
GOAL_MIN = 10  # issue #16: the full Heart DNN study on 2 cores


def problems(k, quick):
    """k Heart splits: engines, poison batches, and the victims' training sets."""
    preset = ATTACK_PRESETS[("heart", "mlp")]
    T = 5 if quick else preset["n_inner_steps"]
    n_p = preset["batch_size"]
    X, y = load_dataset("heart")
    engines, Xp, yp, Xtr, ytr = [], [], [], [], []
    for rep in range(k):
        b = split_and_standardize(X, y, random_state=rep)
        engines.append(
            UnrolledEngine(
                "mlp", b.X_train[n_p:], b.y_train[n_p:], b.X_val, b.y_val,
                n_steps=T, lr=preset["inner_lr"], random_state=rep,
            )
        )  # fmt: skip
        Xp.append(b.X_train[:n_p])
        yp.append(b.y_train[:n_p])
        Xtr.append(b.X_train)
        ytr.append(b.y_train)
    as_t = lambda a: torch.tensor(np.stack(a))  # noqa: E731
    return engines, as_t(Xp), as_t(yp), np.stack(Xtr), np.stack(ytr)


def engine_floor(call_s, full_calls, units, defenses_unit_s, cores) -> dict:
    """What the full study's goal asks of one engine call, against its floor.

    The floor is the call's own products and other operations, each replayed
    alone on warm copies of its operands (``bench_dnn_engine.profile``): no
    Python between operations, no tape streamed through the caches. Batching
    ``k`` problems can at most remove the per-operation cost, which the same
    call on 128 rows measures.
    """
    from bench_dnn_engine import profile

    prof = profile()
    floor_s = prof["products"]["replayed_s"] + prof["other_ops"]["replayed_s"]
    defenses = units * (defenses_unit_s or 0.0)
    per_op_s = prof["call_on_128_rows_s"]  # the same call with almost no arithmetic
    needed_s = (GOAL_MIN * 60 * cores - defenses) / full_calls
    return {
        "call_ms": call_s * 1e3,
        "floor_ms_per_call": floor_s * 1e3,
        "needed_ms_per_call_for_goal": needed_s * 1e3,
        "goal_min": GOAL_MIN,
        "defenses_included": defenses_unit_s is not None,
        "full_study_floor_min": (full_calls * floor_s + defenses) / cores / 60,
        "batching_bound": prof["call_s"] / (prof["call_s"] - per_op_s),
        "profile": prof,
    }


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--defenses-unit", action="store_true")
    parser.add_argument(
        "--floor", action="store_true",
        help="profile one call (bench_dnn_engine.profile, the full Heart shape even with --quick) and state the floor",
    )  # fmt: skip
    parser.add_argument("--no-default-threads", action="store_true")
    parser.add_argument(
        "--default-threads-problems", type=int, default=2,
        help="problems timed on default threads (slow under load), scaled to 10",
    )  # fmt: skip
    parser.add_argument("--out", default=str(RESULTS / "dnn_study_cpu.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    ran_at = commit(full=True)
    default_threads = torch.get_num_threads()
    n_default = max(1, min(K, args.default_threads_problems))
    engines, Xp, yp, Xtr, ytr = problems(K, args.quick)
    batched = BatchedUnrolledEngine(engines)
    victim = VICTIM_PRESETS[("heart", "mlp")]
    if args.quick:
        victim = dict(victim, n_epochs=5)

    def one_at_a_time():
        return [e.value_and_grad(Xp[i], yp[i]) for i, e in enumerate(engines)]

    def one_at_a_time_default_threads():
        # The per-problem reverse pass on torch's default threads: what direct
        # use ran before the engine chose its thread count.
        with torch_threads(default_threads), torch.no_grad():
            return [
                _chain_value_and_grad(
                    e._slopes, e.init_params, e.X_fixed, e.y_fixed, Xp[i], yp[i],
                    e.X_val, e.y_val, n_steps=e.n_steps, lr=e.lr, l2=e.l2,
                    workspace=e._workspace,
                )
                for i, e in enumerate(engines[:n_default])
            ]  # fmt: skip

    def regs():
        return [TorchMLPRegressor(**victim, random_state=i) for i in range(K)]

    sides = {
        "engine_batched": lambda: batched.value_and_grad(Xp, yp),
        "engine_one_at_a_time": one_at_a_time,
        "victims_batched": lambda: fit_batched(regs(), Xtr, ytr),
        "victims_one_at_a_time": lambda: [
            r.fit(Xtr[i], ytr[i]) for i, r in enumerate(regs())
        ],
    }
    if not args.no_default_threads and default_threads > 1:
        sides["engine_one_at_a_time_default_threads"] = one_at_a_time_default_threads
    # Agreement of the two paths (and a warm-up of every side).
    with torch_threads(1):
        vb, gXb, gyb = batched.value_and_grad(Xp, yp)
        single = one_at_a_time()
        fb = fit_batched(regs(), Xtr, ytr)
        fs = [r.fit(Xtr[i], ytr[i]) for i, r in enumerate(regs())]
    agreement = {
        "engine_max_abs_diff": max(
            max(
                abs(float(vb[i] - v)),
                float((gXb[i] - gX).abs().max()),
                float((gyb[i] - gy).abs().max()),
            )
            for i, (v, gX, gy) in enumerate(single)
        ),
        "victims_max_abs_pred_diff": max(
            float(np.abs(a.predict(Xtr[i]) - b.predict(Xtr[i])).max())
            for i, (a, b) in enumerate(zip(fb, fs))
        ),
    }
    wall = {k: [] for k in sides}
    cpu = {k: [] for k in sides}
    for _ in range(args.rounds):
        for name, fn in sides.items():
            threads = None if name.endswith("default_threads") else 1
            with torch_threads(threads):
                w, c, _ = timed(fn)
            wall[name].append(w)
            cpu[name].append(c)
    scale = {"engine_one_at_a_time_default_threads": K / n_default}
    med = {k: statistics.median(v) * scale.get(k, 1) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) * scale.get(k, 1) for k, v in cpu.items()}
    # On one thread the process CPU time is the work itself, less sensitive
    # to other processes on a shared machine than the wall time.
    cpu_ratios = {
        "engine": med_cpu["engine_one_at_a_time"] / med_cpu["engine_batched"],
        "victims": med_cpu["victims_one_at_a_time"] / med_cpu["victims_batched"],
    }
    ratios = {
        "engine": med["engine_one_at_a_time"] / med["engine_batched"],
        "victims": med["victims_one_at_a_time"] / med["victims_batched"],
    }
    if "engine_one_at_a_time_default_threads" in med:
        ratios["engine_default_threads_vs_batched"] = (
            med["engine_one_at_a_time_default_threads"] / med["engine_batched"]
        )
    # Per problem: one engine call, one victim fit.
    per = {k: v / K for k, v in med.items()}
    n_outer = ATTACK_PRESETS[("heart", "mlp")]["n_outer_steps"]
    calls_per_batch = n_outer + 1  # the last outer step only evaluates
    study_calls = (
        STUDY["repetitions"] * STUDY["alphas"] * STUDY["batches"] * calls_per_batch
    )
    study = {
        side: study_calls * per[f"engine_{side}"]
        + STUDY["victim_fits"] * per[f"victims_{side}"]
        for side in ("one_at_a_time", "batched")
    }
    ratios["study_shape_projected"] = study["one_at_a_time"] / study["batched"]
    full_calls = (
        FULL["repetitions"] * FULL["alphas"] * FULL["batches"] * calls_per_batch
    )
    units = FULL["repetitions"] * FULL["alphas"]
    defenses_unit_s = None
    if args.defenses_unit:
        from skpoison.evaluation import poisoning_curve

        df = poisoning_curve(
            "heart", model="mlp", alphas=[1.0], n_repetitions=1,
            attack_params={"n_outer_steps": 2},
        )  # fmt: skip
        defenses_unit_s = float(df["fit_time"].sum())
    full = {
        side: (full_calls * per[f"engine_{side}"] + units * (defenses_unit_s or 0.0))
        / args.cores
        for side in ("one_at_a_time", "batched")
    }
    floor = engine_floor(per["engine_one_at_a_time"], full_calls, units,
                         defenses_unit_s, args.cores) if args.floor else None  # fmt: skip
    out = {
        "commit": ran_at,
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_default_threads": default_threads,
            "torch_threads_timed": 1,
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "shared": "machine shared with other engineers during the run",
        },
        "quick": args.quick,
        "k_problems": K,
        "agreement": agreement,
        "median_wall_s": med,
        "median_cpu_s": med_cpu,
        "ratios": ratios,
        "cpu_time_ratios": cpu_ratios,
        "study_shape_projected_s": study,
        "full_study": {
            "engine_calls": full_calls,
            "defenses_unit_s": defenses_unit_s,
            "cores": args.cores,
            "projected_wall_s": full,
            "note": "attack engine calls plus, with --defenses-unit, each unit's "
            "defense fits; units in parallel on the cores",
        },
        "floor": floor,
    }
    for name, v in med.items():
        print(f"{name:40s} {v:8.3f} s  ({v / K * 1e3:7.1f} ms per problem)")
    for name, v in ratios.items():
        print(f"ratio {name:38s} {v:6.2f}x")
    for name, v in cpu_ratios.items():
        print(f"cpu-time ratio {name:29s} {v:6.2f}x")
    print(
        f"study shape projected: {study['one_at_a_time']:.0f} s one at a time, "
        f"{study['batched']:.0f} s batched"
    )
    print(
        f"full Heart DNN study on {args.cores} cores: "
        f"{full['one_at_a_time'] / 60:.1f} min one at a time, "
        f"{full['batched'] / 60:.1f} min batched"
        + ("" if defenses_unit_s is not None else " (attack only)")
    )
    print("agreement", agreement)
    if floor is not None:
        print(
            f"floor: one call {floor['call_ms']:.1f} ms; its products and other "
            f"operations replayed alone {floor['floor_ms_per_call']:.1f} ms; the "
            f"goal ({GOAL_MIN} min) needs {floor['needed_ms_per_call_for_goal']:.1f} "
            f"ms per call; study at the floor {floor['full_study_floor_min']:.1f} "
            f"min; batching gains at most {floor['batching_bound']:.2f}x"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
