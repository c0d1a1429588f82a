"""Does ``torch.compile`` help the inner training loop on the CPU? (MLP, Heart shape)

The hypergradient issue asked to consider ``torch.func`` and ``torch.compile``
where they help on the CPU. This script measures, in one process, ``T`` full-batch
gradient-descent steps of the paper's MLP (``d -> 32 -> 8 -> 1``, LeakyReLU,
Eq. 1) on random data of the Heart Disease shape (n = 1599, d = 28, T = 100):

* ``naive eager``: one step written plainly with ``torch.func.grad`` of the
  loss (a new autograd graph per step);
* ``naive compiled``: the same step function through ``torch.compile``
  (``dynamic=False``), after its first call (the compile time is reported
  apart: it is paid once per process and shape);
* ``skpoison``: :func:`skpoison.models._training.gradient_descent` with the
  hand-written first-order step, which the victims and the attack's engines run.

On one and on torch's default number of threads. Writes
``benchmarks/results/compile_<threads>.json``.

Usage::

    python benchmarks/bench_compile.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from skpoison.models._training import (
    build_mlp,
    gradient_descent,
    init_paper_params,
    loss_and_grad_fn,
)


def best_of(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1599)
    parser.add_argument("--d", type=int, default=28)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    n, d, T, lr = args.n, args.d, args.steps, 0.1
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    module = init_paper_params(
        build_mlp(d).to(torch.float64), generator=torch.Generator().manual_seed(0)
    )
    params0 = [p.detach().clone() for p in module.parameters()]

    def loss(params, X, y):
        W0, b0, W1, b1, W2, b2 = params
        h = F.leaky_relu(X @ W0.T + b0, 0.01)
        h = F.leaky_relu(h @ W1.T + b1, 0.01)
        r = (h @ W2.T + b2).reshape(-1) - y
        return 0.5 * (r * r).mean()

    grad = torch.func.grad(loss)

    def step(params, X, y):
        return [p - lr * q for p, q in zip(params, grad(params, X, y))]

    def sweep(step_fn):
        params = list(params0)
        for _ in range(T):
            params = step_fn(params, X, y)
        return params

    first_order = loss_and_grad_fn(module)
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        },
        "shape": {"n": n, "d": d, "T": T},
        "runs": {},
    }
    default = torch.get_num_threads()
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        compiled = torch.compile(step, dynamic=False)
        t0 = time.perf_counter()
        sweep(compiled)
        compile_s = time.perf_counter() - t0
        ref = sweep(step)
        got = sweep(compiled)
        ours, _ = gradient_descent(first_order, params0, X, y, n_steps=T, lr=lr)
        agree = max(
            float((a - b).abs().max() / b.abs().max())
            for a, b in zip([*got, *ours], [*ref, *ref])
        )
        run = {
            "naive_eager_s": best_of(lambda: sweep(step), args.repeats),
            "naive_compiled_s": best_of(lambda c=compiled: sweep(c), args.repeats),
            "first_call_with_compile_s": compile_s,
            "skpoison_s": best_of(
                lambda: gradient_descent(first_order, params0, X, y, n_steps=T, lr=lr),
                args.repeats,
            ),
            "max_rel_diff": agree,
        }
        results["runs"][f"threads_{threads}"] = run
        print(
            f"{threads} thread(s), {T} steps: naive eager {1e3 * run['naive_eager_s']:.1f} ms, "
            f"naive compiled {1e3 * run['naive_compiled_s']:.1f} ms (first call "
            f"{run['first_call_with_compile_s']:.1f} s), skpoison "
            f"{1e3 * run['skpoison_s']:.1f} ms; max rel diff {agree:.1e}"
        )
    torch.set_num_threads(default)
    out = (
        Path(args.out)
        if args.out
        else (Path(__file__).parent / "results" / f"compile_{os.cpu_count()}cpu.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
