"""The MLP hypergradient of the Heart shape: where its time goes, and old vs new.

One hypergradient of the paper's Heart MLP problem (Table I/II: 1599
training rows of which 120 poison, 480 validation rows, 28 features, the
28 x 32 x 8 x 1 network, ``T = 100`` inner steps) by
:func:`~skpoison.attacks._hypergradient._chain_value_and_grad`, float64 on one
torch thread (as the study runs its units). Two parts, in one run:

* **profile** (this tree): every aten operation of one call is recorded
  (``TorchDispatchMode``) and each distinct one (operation, shapes, strides,
  scalars) is replayed alone, on its own copies of the operands, many times:
  the microbenchmark of exactly the call's products. The products' floating
  point operations are counted from their shapes (``2 M K N``). Reported:
  the call's achieved GFLOP/s against the products' replayed GFLOP/s, and the
  call's time split into products, other operations (elementwise, copies,
  views) and the rest (the Python between operations, and the caches: the
  replay runs on warm operands, the call streams a tape of ~120 MB). Also the
  time of the same call on 128 rows (the per-operation floor).
* **old vs new**: the 10 Heart problems of ``bench_dnn_study.py`` (one
  hypergradient each) by the engine of ``--old`` (a checkout of an earlier
  commit, e.g. a ``git worktree``) and of this tree, each in
  its own worker process, timed in alternating rounds (median); their results
  must agree (max relative difference recorded); likewise the 10 victims of
  one ratio (``TorchMLPRegressor``, the Heart preset). From the per-call medians,
  the projected attack time of the paper's full Heart DNN study (10
  repetitions, 4 alphas, 6 batches of 80 + 1 engine calls: 19440 calls) on
  ``--cores`` cores, units in parallel.

Results go to ``benchmarks/results/dnn_engine.json`` with the commits of both
sides and the load average before and after (the machine may be shared:
ratios from alternating rounds are robust to load, absolute times are not).

Usage::

    git worktree add --detach /tmp/old <commit>
    python benchmarks/bench_dnn_engine.py --old /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _provenance import commit

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
K = 10
FULL_CALLS = 10 * 4 * 6 * (80 + 1)  # repetitions x alphas x batches x calls
MATMULS = {"mm", "addmm", "addmm_", "bmm", "baddbmm", "baddbmm_", "dot"}


# ---------------------------------------------------------------- worker side
def _call(e, X_p, y_p):
    import torch

    from skpoison.attacks._hypergradient import _chain_value_and_grad

    with torch.no_grad():
        return _chain_value_and_grad(
            e._slopes, e.init_params, e.X_fixed, e.y_fixed, X_p, y_p,
            e.X_val, e.y_val, n_steps=e.n_steps, lr=e.lr, l2=e.l2,
            workspace=e._workspace,
        )  # fmt: skip


def worker() -> None:
    """Serve ``time`` and ``dump PATH`` requests on stdin for this PYTHONPATH."""
    import torch

    import skpoison

    sys.path.insert(0, str(HERE))
    from bench_dnn_study import problems

    from skpoison.attacks._presets import VICTIM_PRESETS
    from skpoison.models import TorchMLPRegressor

    torch.set_num_threads(1)
    engines, Xp, yp, Xtr, ytr = problems(K, False)
    calls = [lambda e=e, i=i: _call(e, Xp[i], yp[i]) for i, e in enumerate(engines)]
    for c in calls:  # warm-up: the workspaces are allocated here
        c()
    victim = VICTIM_PRESETS[("heart", "mlp")]

    def victims():
        return [
            TorchMLPRegressor(**victim, random_state=i).fit(Xtr[i], ytr[i])
            for i in range(K)
        ]

    print(json.dumps({"skpoison": skpoison.__file__}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "time":
            w, c0 = time.perf_counter(), time.process_time()
            for c in calls:
                c()
            w, c0 = time.perf_counter() - w, time.process_time() - c0
            print(json.dumps({"s": w, "cpu_s": c0}), flush=True)
        elif cmd[0] == "victims":
            w, c0 = time.perf_counter(), time.process_time()
            victims()
            w, c0 = time.perf_counter() - w, time.process_time() - c0
            print(json.dumps({"s": w, "cpu_s": c0}), flush=True)
        elif cmd[0] == "dump":
            out = [c() for c in calls]
            arrays = {
                f"{j}_{i}": r[j].numpy() for i, r in enumerate(out) for j in range(3)
            }
            for i, reg in enumerate(victims()):
                arrays[f"victim_{i}"] = reg.predict(Xtr[i])
            np.savez(cmd[1], **arrays)
            print(json.dumps({"ok": True}), flush=True)


class _Worker:
    def __init__(self, root):
        env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
        self.p = subprocess.Popen(
            [sys.executable, __file__, "--worker"], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        self.module = self._ask(None)["skpoison"]

    def _ask(self, cmd):
        if cmd is not None:
            self.p.stdin.write(cmd + "\n")
            self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def time(self, what="time"):
        r = self._ask(what)
        return r["s"], r["cpu_s"]

    def dump(self, path):
        self._ask(f"dump {path}")
        return dict(np.load(path))

    def close(self):
        self.p.stdin.close()
        self.p.wait()


# ---------------------------------------------------------------- profile side
def _flops(name, args):
    """Floating point operations of a product, from its operands' shapes."""
    if name == "dot":
        return 2 * args[0].numel()
    a, b = (args[0], args[1]) if name in ("mm", "bmm") else (args[1], args[2])
    return 2 * a.numel() * b.shape[-1]


def _record(fn):
    """Every aten operation ``fn`` runs: (func, args, kwargs, seconds in the call)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = []

    class Rec(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            w = time.process_time()
            out = func(*args, **kwargs)
            calls.append((func, args, kwargs, time.process_time() - w))
            return out

    with torch.no_grad(), Rec():
        fn()
    return calls


def _signature(func, args, kwargs):
    import torch

    def sig(a):
        if isinstance(a, torch.Tensor):
            return ("T", tuple(a.shape), tuple(a.stride()))
        if isinstance(a, (list, tuple)):
            return tuple(sig(x) for x in a)
        return repr(a)

    return (str(func), sig(args), tuple((k, sig(v)) for k, v in kwargs.items()))


def _own_copy(a):
    """``a`` with its shape and strides on its own storage (views stay views)."""
    import torch

    if isinstance(a, torch.Tensor):
        c = torch.empty_strided(a.shape, a.stride(), dtype=a.dtype)
        c.copy_(a)
        return c
    if isinstance(a, (list, tuple)):
        return type(a)(_own_copy(x) for x in a)
    return a


def _replay_s(func, args, kwargs, reps=40, rounds=5):
    """Median CPU seconds of one run of ``func`` alone, on copies of its operands."""
    args, kwargs = _own_copy(args), {k: _own_copy(v) for k, v in kwargs.items()}
    func(*args, **kwargs)
    ts = []
    for _ in range(rounds):
        w = time.process_time()
        for _ in range(reps):
            func(*args, **kwargs)
        ts.append((time.process_time() - w) / reps)
    return statistics.median(ts)


def _median_call_s(fn, rounds=7):
    fn()
    ts = []
    for _ in range(rounds):
        w = time.process_time()
        fn()
        ts.append(time.process_time() - w)
    return statistics.median(ts)


def profile() -> dict:
    """Where one call's time goes (this tree's engine)."""
    import torch

    from skpoison.attacks._hypergradient import UnrolledEngine

    sys.path.insert(0, str(HERE))
    from bench_dnn_study import problems

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # the replays repeat in-place scalings
    engines, Xp, yp, _, _ = problems(1, False)
    e = engines[0]
    call = lambda: _call(e, Xp[0], yp[0])  # noqa: E731
    call_s = _median_call_s(call)
    calls = _record(call)
    groups = defaultdict(list)
    for func, args, kwargs, s in calls:
        groups[_signature(func, args, kwargs)].append((func, args, kwargs, s))
    kinds = defaultdict(
        lambda: {"calls": 0, "replayed_s": 0.0, "in_call_s": 0.0, "gflop": 0.0}
    )
    products = []
    for members in groups.values():
        func, args, kwargs, _ = members[0]
        name = func.__name__.split(".")[0]
        s = _replay_s(func, args, kwargs)
        kind = "products" if name in MATMULS else "other_ops"
        flop = _flops(name, args) if kind == "products" else 0
        kinds[kind]["calls"] += len(members)
        kinds[kind]["replayed_s"] += s * len(members)
        kinds[kind]["in_call_s"] += sum(m[3] for m in members)
        kinds[kind]["gflop"] += flop * len(members) / 1e9
        if kind == "products":
            products.append(
                {
                    "op": str(func),
                    "shapes": [list(a.shape) for a in args if hasattr(a, "shape")],
                    "calls": len(members),
                    "replayed_us": s * 1e6,
                    "gflops": flop / s / 1e9,
                }
            )
    products.sort(key=lambda p: -p["calls"] * p["replayed_us"])
    prod, other = kinds["products"], kinds["other_ops"]
    rest = call_s - prod["replayed_s"] - other["replayed_s"]
    # The per-operation floor: the same network and steps on 128 rows.
    r = np.random.default_rng(0)
    small = UnrolledEngine(
        "mlp", r.normal(size=(8, 28)), r.normal(size=8), r.normal(size=(8, 28)),
        r.normal(size=8), n_steps=e.n_steps, lr=e.lr, random_state=0,
    )  # fmt: skip
    sXp, syp = torch.tensor(r.normal(size=(120, 28))), torch.tensor(r.normal(size=120))
    small_s = _median_call_s(lambda: _call(small, sXp, syp))
    return {
        "shape": {
            "n": int(e.X_fixed.shape[0] + Xp.shape[1]),
            "n_poison": int(Xp.shape[1]),
            "n_val": int(e.X_val.shape[0]),
            "layers": [list(p.shape) for p in e.init_params[::2]],
            "T": e.n_steps,
        },
        "call_s": call_s,
        "aten_ops_per_call": len(calls),
        "products": {
            "calls": prod["calls"],
            "gflop_per_call": prod["gflop"],
            "replayed_s": prod["replayed_s"],
            "replayed_gflops": prod["gflop"] / prod["replayed_s"],
            "call_gflops": prod["gflop"] / call_s,
            "share_of_call": prod["replayed_s"] / call_s,
            "in_call_s": prod["in_call_s"],
            "in_call_gflops": prod["gflop"] / prod["in_call_s"],
        },
        "other_ops": {
            "calls": other["calls"],
            "replayed_s": other["replayed_s"],
            "share_of_call": other["replayed_s"] / call_s,
            "in_call_s": other["in_call_s"],
        },
        "rest_s": rest,
        "rest_share_of_call": rest / call_s,
        "call_on_128_rows_s": small_s,
        "top_products": products[:12],
        "note": "replayed: each distinct operation alone on warm copies of its "
        "operands (its dispatch included), CPU time; rest: the call less the "
        "replays; in_call: each operation timed (CPU) where it runs in one "
        "recorded call, on the call's own buffers",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--old", required=True, help="a checkout of the earlier commit (old side)"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "dnn_engine.json"))
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    load_before = os.getloadavg()
    root = HERE.parent
    sides = {"old": Path(args.old).resolve(), "new": root}
    workers = {k: _Worker(v) for k, v in sides.items()}
    with tempfile.TemporaryDirectory() as tmp:
        res = {k: w.dump(f"{tmp}/{k}.npz") for k, w in workers.items()}

    def max_rel(keys):
        return max(
            float(np.abs(res["new"][k] - res["old"][k]).max())
            / max(float(np.abs(res["old"][k]).max()), 1e-300)
            for k in keys
            if res["old"][k].size
        )

    agree = max_rel([k for k in res["old"] if not k.startswith("victim")])
    agree_victims = max_rel([k for k in res["old"] if k.startswith("victim")])
    times = {k: [] for k in sides}
    cpu = {k: [] for k in sides}
    vcpu = {k: [] for k in sides}
    for _ in range(args.rounds):
        for k, w in workers.items():
            s, c = w.time()
            times[k].append(s / K)
            cpu[k].append(c / K)
            vcpu[k].append(w.time("victims")[1] / K)
    for w in workers.values():
        w.close()
    per_call = {k: statistics.median(v) for k, v in times.items()}
    per_call_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    per_fit_cpu = {k: statistics.median(v) for k, v in vcpu.items()}
    prof = None if args.no_profile else profile()
    out = {
        "commit": commit(),
        "old_commit": commit(root=sides["old"]),
        "modules": {k: w.module for k, w in workers.items()},
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "torch_threads": 1,
        },
        "rounds": args.rounds,
        "max_rel_diff_new_vs_old": agree,
        "per_call_s_median": per_call,
        "per_call_s_rounds": times,
        "per_call_cpu_s_median": per_call_cpu,
        "speedup_new_vs_old": per_call["old"] / per_call["new"],
        "cpu_time_speedup_new_vs_old": per_call_cpu["old"] / per_call_cpu["new"],
        "victims": {
            "what": "one Heart victim fit (TorchMLPRegressor, the preset), CPU time",
            "per_fit_cpu_s_median": per_fit_cpu,
            "cpu_time_speedup_new_vs_old": per_fit_cpu["old"] / per_fit_cpu["new"],
            "max_rel_diff_predictions_new_vs_old": agree_victims,
        },
        "full_heart_dnn_study_attack": {
            "engine_calls": FULL_CALLS,
            "cores": args.cores,
            "projected_min": {
                k: FULL_CALLS * v / args.cores / 60 for k, v in per_call.items()
            },
            "projected_min_from_cpu_time": {
                k: FULL_CALLS * v / args.cores / 60 for k, v in per_call_cpu.items()
            },
            "note": "engine calls only (no victims, no defenses), units in "
            "parallel on the cores, at this run's per-call medians",
        },
        "profile": prof,
    }
    for k, v in per_call.items():
        print(f"{k}: {v * 1e3:.1f} ms per call, {per_call_cpu[k] * 1e3:.1f} ms CPU")
    print(
        f"speed-up new vs old: {out['speedup_new_vs_old']:.2f}x "
        f"({out['cpu_time_speedup_new_vs_old']:.2f}x in CPU time), "
        f"max rel diff {agree:.1e}"
    )
    print(
        f"victim fit: {per_fit_cpu['old'] * 1e3:.1f} -> {per_fit_cpu['new'] * 1e3:.1f}"
        f" ms CPU ({per_fit_cpu['old'] / per_fit_cpu['new']:.2f}x), max rel diff "
        f"of predictions {agree_victims:.1e}"
    )
    full = out["full_heart_dnn_study_attack"]
    for k, v in full["projected_min"].items():
        print(
            f"full Heart DNN study (attack) on {args.cores} cores, {k}: {v:.1f} min "
            f"({full['projected_min_from_cpu_time'][k]:.1f} from CPU time)"
        )
    if prof:
        p = prof["products"]
        print(
            f"profile: call {prof['call_s'] * 1e3:.1f} ms, {prof['aten_ops_per_call']} "
            f"ops; products {p['gflop_per_call']:.2f} GFLOP, {p['call_gflops']:.1f} "
            f"GFLOP/s in the call vs {p['replayed_gflops']:.1f} replayed "
            f"({p['share_of_call']:.0%} of the call); other ops "
            f"{prof['other_ops']['share_of_call']:.0%}; rest "
            f"{prof['rest_share_of_call']:.0%}; on 128 rows "
            f"{prof['call_on_128_rows_s'] * 1e3:.1f} ms; timed in the call: "
            f"products {p['in_call_s'] * 1e3:.1f} ms ({p['in_call_gflops']:.1f} "
            f"GFLOP/s), other ops {prof['other_ops']['in_call_s'] * 1e3:.1f} ms"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
