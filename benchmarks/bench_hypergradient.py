"""Hypergradient engines side by side: spectral vs unrolled (linear), fast vs plain (MLP).

Measures, in one process and on random data of the paper's shapes (Tables I-II):

* linear regression, Loan (n=3361, d=88, B_p=252, T=30) and Appliances
  (n=9868, d=16, B_p=740, T=70): time per hypergradient of the exact
  :class:`LinearSpectralEngine` against

  - the **generic engine**: autograd through the unrolled gradient-descent
    steps, ``torch.autograd.grad(create_graph=True)`` at each step, which works
    for any ``nn.Module`` (``UnrolledEngine(..., force_autograd=True)``). The
    goals (>= 100x on Loan, >= 300x on Appliances) are measured against it;
  - the **first-order unrolled engine**, the library's default
    ``UnrolledEngine`` for the paper's architectures: autograd through the
    loop too, but each step's gradient is written out by hand, so autograd
    records a first-order graph (about 2x faster than the generic one). The
    ratio against it is reported as well;

  their agreement, and the end-to-end time of one whole batch of Alg. 4
  (T_out = 120 / 50 projected ascent steps; the unrolled engine runs
  ``--generic-outer-steps`` of them and the rest is extrapolated linearly, as
  each outer step costs the same), and of one batch of the real attack
  (``StealthyPoisoner.fit_resample`` with ``engine="spectral"`` and
  ``engine="unrolled"``, everything included).
* the paper's MLP, Loan (T=90) and Heart (n=1599, d=28, B_p=120, T=100): time
  and memory per hypergradient of the unrolled engine (hand-written reverse
  pass through the steps) against the plain loop (``torch.autograd.grad(
  create_graph=True)`` at each step; goal >= 2x), with torch on one thread and
  on its default number of threads. Memory is the bytes autograd saves for the
  backward pass (counted with ``torch.autograd.graph.saved_tensors_hooks``; for
  the hand-written reverse pass, the tape it keeps in its workspace) and, on
  CUDA, the peak allocated memory.

On the CPU, ``machine.thread_scaling_512_gemm`` in the JSON is the speed-up of
a plain 512 x 512 product on torch's threads over one thread: near 1 (or below)
the machine's virtual cores were sharing physical ones during the run, and the
multi-threaded timings of that run (the MLP on torch's default threads, the
unrolled engines) are unreliable; the one-thread MLP timings are not affected.

Engines are timed in alternating rounds (a few calls of each per round) and
each time is the median over all rounds, so a machine whose speed drifts
during the run affects both sides alike. Wall-clock seconds (CUDA synchronised)
and, on the CPU, process CPU seconds are reported. Results go to
``benchmarks/results/hypergradient_<device>.json``.

Why the ratios are what they are is worked out in the docstrings of
``skpoison.attacks._hypergradient`` (arithmetic floors of the spectral engine;
the products and passes of the MLP reverse pass).

Usage::

    python benchmarks/bench_hypergradient.py --device cpu
    python benchmarks/bench_hypergradient.py --device cuda
    python benchmarks/bench_hypergradient.py --quick   # small shapes, seconds
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
from _provenance import commit, cpu_model

from skpoison.attacks._hypergradient import LinearSpectralEngine, UnrolledEngine

# name: (n_train, n_val, d, B_p, T, eta, T_out, gamma), Tables I-II of the paper.
LINEAR = {
    "loan": (3361, 1008, 88, 252, 30, 0.1, 120, 0.9),
    "appliances": (9868, 2960, 16, 740, 70, 0.2, 50, 0.9),
}
MLP = {
    "loan": (3361, 1008, 88, 252, 90, 0.1, 150, 0.9),
    "heart": (1599, 480, 28, 120, 100, 0.1, 80, 0.9),
}
GOALS = {"linear": {"loan": 100, "appliances": 300}, "mlp": 2.0}


def thread_scaling() -> float:
    """Speed-up of a 512 x 512 float64 product on torch's threads over one thread.

    A diagnostic of the machine, not of skpoison: on a virtual machine whose
    virtual cores share physical ones it drops near (or below) 1, and every
    multi-threaded timing in the run is then slower than on one thread.
    """
    a = torch.randn(512, 512, dtype=torch.float64)
    n = torch.get_num_threads()

    def best():
        a @ a
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - t0)
        return min(times)

    many = best()
    torch.set_num_threads(1)
    try:
        one = best()
    finally:
        torch.set_num_threads(n)
    return one / many


def machine(device: torch.device) -> dict:
    info = {
        "commit": commit(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    else:
        info["thread_scaling_512_gemm"] = thread_scaling()
    return info


def problem(shape, seed=0, scale=1):
    """Standardised random data of a paper shape (``scale`` shrinks n for --quick)."""
    n, m, d, B, *_ = shape
    n, m, B = (
        max(n // scale, 2 * B // scale + 2),
        max(m // scale, 2),
        max(B // scale, 1),
    )
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d))
    y = X @ g.normal(size=d) / np.sqrt(d) + 0.5 * g.normal(size=n)
    Xv = g.normal(size=(m, d))
    yv = Xv @ g.normal(size=d) / np.sqrt(d) + 0.5 * g.normal(size=m)
    return (X[B:], y[B:], Xv, yv), (X[:B], y[:B])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict, device, rounds: int, calls: dict) -> dict:
    """Median wall and CPU seconds per call of each function, timed in alternating rounds.

    Each round calls every function ``calls[name]`` times in turn (after one
    untimed warm-up call per function).
    """
    for fn in fns.values():
        fn()
    sync(device)
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(calls[name]):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                sync(device)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return {
        k: {
            "wall_s": statistics.median(wall[k]),
            "cpu_s": statistics.median(cpu[k]),
            "calls": len(wall[k]),
        }
        for k in fns
    }


def saved_bytes(fn):
    """Bytes autograd saves for backward during ``fn()`` (each storage once)."""
    seen = {}

    def pack(t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = t.untyped_storage().nbytes()
        except RuntimeError:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return int(sum(seen.values()))


def workspace_bytes(engine):
    """Bytes of the per-step tape an engine keeps between calls (if any)."""
    ws = getattr(engine, "_workspace", None) or {}
    # Each buffer once, however many views of it the workspace keeps.
    storages = {}

    def walk(v):
        if isinstance(v, torch.Tensor):
            s = v.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(list(ws.values()))
    return int(sum(storages.values()))


def peak_cuda_bytes(fn, device):
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


def outer_batch(engine, X0, y0, n_outer, gamma, low, high):
    """Alg. 4 for alpha = 1: normalised projected hypergradient ascent."""
    Xp, yp = X0.clone(), y0.clone()
    for _ in range(n_outer):
        _, gX, gy = engine.value_and_grad(Xp, yp)
        norm = torch.sqrt((gX * gX).sum(1) + gy * gy).clamp_min(1e-300)
        Xp = torch.clamp(Xp + gamma * gX / norm[:, None], low[:-1], high[:-1])
        yp = torch.clamp(yp + gamma * gy / norm, low[-1], high[-1])
    return Xp, yp


def rel(a, b):
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def agreement(a, b):
    return {
        "val": abs(float(a[0] - b[0])) / abs(float(b[0])),
        "X": rel(a[1], b[1]),
        "y": rel(a[2], b[2]),
    }


def bench_linear(name, shape, device, args):
    T, eta, T_out, gamma = shape[4:]
    data, (Xp, yp) = problem(shape, scale=args.scale)
    kw = dict(n_steps=T, lr=eta, device=device)
    fast = LinearSpectralEngine(*data, **kw)
    first = UnrolledEngine("linear", *data, **kw)
    generic = UnrolledEngine("linear", *data, force_autograd=True, **kw)
    Xp = torch.as_tensor(Xp, device=device)
    yp = torch.as_tensor(yp, device=device)
    a = fast.value_and_grad(Xp, yp)
    agree = {
        "vs_generic": agreement(a, generic.value_and_grad(Xp, yp)),
        "vs_first_order": agreement(a, first.value_and_grad(Xp, yp)),
    }
    t = interleaved(
        {
            "spectral": lambda: fast.value_and_grad(Xp, yp),
            "generic": lambda: generic.value_and_grad(Xp, yp),
            "first_order": lambda: first.value_and_grad(Xp, yp),
        },
        device,
        rounds=args.rounds,
        calls={"spectral": args.fast_calls, "generic": 1, "first_order": 1},
    )
    variants = {}
    for method in ("eigh", "krylov"):
        for backend in ("numpy", "torch"):
            eng = LinearSpectralEngine(*data, method=method, backend=backend, **kw)
            v = interleaved(
                {"v": lambda e=eng: e.value_and_grad(Xp, yp)},
                device,
                rounds=1,
                calls={"v": args.fast_calls * 4},
            )
            variants[f"{method}/{backend}"] = v["v"]["wall_s"]
    full = np.vstack([data[0], Xp.cpu().numpy()])
    bounds = np.column_stack([full, np.r_[data[1], yp.cpu().numpy()]])
    low = torch.as_tensor(bounds.min(0), device=device)
    high = torch.as_tensor(bounds.max(0), device=device)
    n_outer = T_out if not args.quick else min(T_out, 5)
    k = min(n_outer, args.generic_outer_steps)
    e2e = {}
    for label, eng, steps in (
        ("spectral", fast, n_outer),
        ("first_order", first, k),
        ("generic", generic, k),
    ):
        t0 = time.perf_counter()
        outer_batch(eng, Xp, yp, steps, gamma, low, high)
        sync(device)
        e2e[label] = (time.perf_counter() - t0) * n_outer / steps
    attack = attack_batch(data, (Xp, yp), shape, device, args)
    s = t["spectral"]
    res = {
        "shape": dict(
            zip(["n_train", "n_val", "d", "batch", "T", "eta", "T_out", "gamma"], shape)
        ),
        "scale": args.scale,
        "agreement_rel_err": agree,
        "spectral": {**s, "method": fast.method, "backend": fast.backend},
        "generic": t["generic"],
        "first_order": t["first_order"],
        "spectral_variants_wall_s": variants,
        "ratio_vs_generic": t["generic"]["wall_s"] / s["wall_s"],
        "ratio_vs_generic_cpu": t["generic"]["cpu_s"] / max(s["cpu_s"], 1e-9),
        "ratio_vs_first_order": t["first_order"]["wall_s"] / s["wall_s"],
        "ratio_vs_first_order_cpu": t["first_order"]["cpu_s"] / max(s["cpu_s"], 1e-9),
        "goal_vs_generic": GOALS["linear"][name],
        "batch_end_to_end_s": {
            "outer_steps": n_outer,
            **e2e,
            "unrolled_extrapolated_from_steps": k if k < n_outer else None,
        },
        "attack_batch_s": attack,
    }
    goal = GOALS["linear"][name]
    worst = max(max(v.values()) for v in agree.values())
    print(
        f"linear {name:11s} spectral {1e3 * s['wall_s']:7.3f} ms | generic "
        f"{1e3 * t['generic']['wall_s']:6.2f} ms: {res['ratio_vs_generic']:6.1f}x "
        f"(goal {goal}x, cpu-time {res['ratio_vs_generic_cpu']:.0f}x) | first-order "
        f"{1e3 * t['first_order']['wall_s']:6.2f} ms: {res['ratio_vs_first_order']:5.1f}x "
        f"| max rel diff {worst:.1e}"
    )
    print(
        f"       spectral variants (auto = {fast.method}/{fast.backend}): "
        + ", ".join(f"{k_} {1e3 * v:.3f} ms" for k_, v in variants.items())
    )
    extra = f" (unrolled extrapolated from {k} steps)" if k < n_outer else ""
    print(
        f"       one batch of {n_outer} outer steps: spectral {e2e['spectral']:.3f} s, "
        f"first-order {e2e['first_order']:.1f} s, generic {e2e['generic']:.1f} s{extra}"
    )
    print(
        f"       StealthyPoisoner, one whole batch (alpha = 1, {attack['outer_steps']} "
        f"outer steps): engine='spectral' {attack['spectral']:.3f} s, "
        f"engine='unrolled' {attack['unrolled']:.1f} s"
    )
    return res


def attack_batch(data, poison, shape, device, args):
    """Seconds of ``StealthyPoisoner.fit_resample`` for one batch, both engines.

    The real attack end to end (clean model, batch set-up, the outer loop with
    its projections and bookkeeping), not only the hypergradients.
    """
    from skpoison.attacks import StealthyPoisoner

    X = np.vstack([poison[0].cpu().numpy(), data[0]])
    y = np.r_[poison[1].cpu().numpy(), data[1]]
    B, T, eta, T_out, gamma = shape[3] // args.scale, *shape[4:]
    n_outer = T_out if not args.quick else min(T_out, 5)
    out = {"outer_steps": n_outer}
    for engine in ("spectral", "unrolled"):
        attack = StealthyPoisoner(
            poison_fraction=B / len(y), batch_size=B, alpha=1.0, n_inner_steps=T,
            inner_lr=eta, n_outer_steps=n_outer, outer_lr=gamma, engine=engine,
            device=device, random_state=0,
        )  # fmt: skip
        t0 = time.perf_counter()
        attack.fit_resample(X, y, X_val=data[2], y_val=data[3])
        sync(device)
        out[engine] = time.perf_counter() - t0
    return out


def bench_mlp(name, shape, device, args, threads):
    T, eta = shape[4], shape[5]
    if args.quick:
        T = min(T, 10)
    data, (Xp, yp) = problem(shape, scale=args.scale)
    kw = dict(n_steps=T, lr=eta, random_state=0, device=device)
    fast = UnrolledEngine("mlp", *data, **kw)
    plain = UnrolledEngine("mlp", *data, force_autograd=True, **kw)
    for eng in (fast, plain):
        # Time on the thread count set below: by default the engine picks its
        # own (one for these shapes, see chain_thread_count).
        eng._thread_count = lambda n_p: None
    Xp = torch.as_tensor(Xp, device=device)
    yp = torch.as_tensor(yp, device=device)
    a, b = fast.value_and_grad(Xp, yp), plain.value_and_grad(Xp, yp)
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t = interleaved(
            {
                "fast": lambda: fast.value_and_grad(Xp, yp),
                "plain": lambda: plain.value_and_grad(Xp, yp),
            },
            device,
            rounds=args.mlp_rounds,
            calls={"fast": 2, "plain": 2},
        )
    finally:
        torch.set_num_threads(saved)
    res = {
        "shape": dict(
            zip(["n_train", "n_val", "d", "batch", "T", "eta"], (*shape[:4], T, eta))
        ),
        "scale": args.scale,
        "torch_threads": threads or saved,
        "agreement_rel_err": {"X": rel(a[1], b[1]), "y": rel(a[2], b[2])},
    }
    for label, eng in (("fast", fast), ("plain", plain)):
        res[label] = dict(t[label])
        res[label]["saved_for_backward_bytes"] = saved_bytes(
            lambda e=eng: e.value_and_grad(Xp, yp)
        ) + workspace_bytes(eng)  # the hand-written pass keeps its tape there
        res[label]["cuda_peak_bytes"] = peak_cuda_bytes(
            lambda e=eng: e.value_and_grad(Xp, yp), device
        )
    res["ratio_wall"] = res["plain"]["wall_s"] / res["fast"]["wall_s"]
    res["ratio_cpu"] = res["plain"]["cpu_s"] / max(res["fast"]["cpu_s"], 1e-9)
    res["memory_ratio"] = (
        res["plain"]["saved_for_backward_bytes"]
        / res["fast"]["saved_for_backward_bytes"]
    )
    mib = 2.0**20
    print(
        f"mlp    {name:6s} {res['torch_threads']} thread(s): fast "
        f"{1e3 * res['fast']['wall_s']:7.1f} ms, plain {1e3 * res['plain']['wall_s']:7.1f} ms: "
        f"{res['ratio_wall']:4.2f}x (goal {GOALS['mlp']}x, cpu-time {res['ratio_cpu']:.2f}x); "
        f"memory {res['fast']['saved_for_backward_bytes'] / mib:.0f} vs "
        f"{res['plain']['saved_for_backward_bytes'] / mib:.0f} MiB; max rel diff "
        f"{max(res['agreement_rel_err'].values()):.1e}"
    )
    return res


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--quick", action="store_true", help="small shapes (a smoke test)"
    )
    parser.add_argument("--skip-mlp", action="store_true")
    parser.add_argument("--skip-linear", action="store_true")
    parser.add_argument("--generic-outer-steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7, help="linear timing rounds")
    parser.add_argument(
        "--fast-calls", type=int, default=30, help="spectral calls per round"
    )
    parser.add_argument("--mlp-rounds", type=int, default=4)
    parser.add_argument(
        "--no-blas-limit",
        action="store_true",
        help="let the spectral engine's NumPy BLAS use all its threads (a diagnostic: "
        "shows why the engine limits them to one)",
    )
    parser.add_argument(
        "--out", default=None, help="JSON path (default: benchmarks/results/)"
    )
    args = parser.parse_args(argv)
    args.scale = 10 if args.quick else 1
    if args.quick:
        args.rounds, args.fast_calls, args.mlp_rounds = 2, 5, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_blas_limit:
        from skpoison.attacks import _hypergradient

        class NoBlasLimit(_hypergradient._small_cpu_threads):
            def __init__(self, device, blas=False, torch_=True):
                super().__init__(device, blas=False, torch_=torch_)

        _hypergradient._small_cpu_threads = NoBlasLimit
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU.")
    device = torch.device(args.device)
    info = machine(device)
    print("machine:", json.dumps(info))
    results = {
        "machine": info,
        "quick": args.quick,
        "no_blas_limit": args.no_blas_limit,
        "linear": {},
        "mlp": {},
    }
    if not args.skip_linear:
        for name, shape in LINEAR.items():
            results["linear"][name] = bench_linear(name, shape, device, args)
    if not args.skip_mlp:
        # On the CPU both engines run on one torch thread (like for like, per
        # core) and on torch's default number of threads.
        settings = [1, None] if device.type == "cpu" else [None]
        if device.type == "cpu" and torch.get_num_threads() == 1:
            settings = [1]
        for name, shape in MLP.items():
            results["mlp"][name] = {
                f"threads_{threads or torch.get_num_threads()}": bench_mlp(
                    name, shape, device, args, threads
                )
                for threads in settings
            }
    tag = ("_quick" if args.quick else "") + (
        "_no_blas_limit" if args.no_blas_limit else ""
    )
    out = (
        Path(args.out)
        if args.out
        else Path(__file__).parent
        / "results"
        / f"hypergradient_{args.device}{tag}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
