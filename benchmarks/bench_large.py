"""StealthyPoisoner at n = 1e6: old and new commit side by side (issue #16).

At large ``n`` the attack used to rebuild its engine once per batch from the
rows (a full ``O(n d^2)`` Gram matrix and several copies of the data). This
benchmark runs the attack on synthetic linear data (``d = 10``, ``n = 1e6``;
``--quick``: ``n = 1e5``) with the linear victims whose engines need only Gram
statistics: ``model="linear"`` (the spectral engine), ``LinearRegression()``
and ``Ridge()``, at two commits:

- old: ``--old`` (default: the merge base of ``HEAD`` and ``main``), exported
  with ``git archive`` into a temporary directory;
- new: this checkout.

Every measurement runs in a fresh process (``PYTHONPATH`` = that tree), so
the memory high-water marks are the fit's own. For each model, ``--rounds``
timed rounds interleave the two sides (the order alternating from round to
round, so a drifting machine hits both alike); the speed-up quoted is the
median over rounds of old/new within a round. Memory, as a multiple of the
data (the bytes of ``X`` and ``y``):

- ``rss_extra_x``: ``ru_maxrss`` after the fit less the resident set before it
  (``/proc/self/statm``): everything the fit added at its peak, torch's
  allocations included (from the timed runs; the median);
- ``tracemalloc_peak_x``: the peak of ``tracemalloc`` during the fit, from a
  separate run: NumPy and Python allocations only (torch's CPU allocator does
  not report to tracemalloc).

One more run per side under ``cProfile`` gives the share of the fit spent
building engines (``StealthyPoisoner._engine`` and, new, ``_fixed_gram``, the
row updates). The poison points of the two sides are compared (largest
difference relative to the data's spread), and a small-``n`` check runs a few
configurations (n = 300, below the row-update threshold) on both sides and
compares the SHA-256 of their outputs (``small_n_bit_identical``).

Writes ``benchmarks/results/large.json`` (``--quick``: ``large_quick.json``)
with both commits.

Usage::

    PYTHONPATH=. python benchmarks/bench_large.py            # ~8 min on 2 cores
    PYTHONPATH=. python benchmarks/bench_large.py --quick    # ~1.5 min
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

MODELS = {
    "linear": '"linear"',
    "LinearRegression()": "LinearRegression()",
    "Ridge(alpha=1.0)": "Ridge(alpha=1.0)",
}

#: The attack's settings: 4 batches of 0.5% of n, few outer steps (short runs).
ATTACK = dict(poison_fraction=0.02, batch_size=0.005, n_outer_steps=3, random_state=0)


def _data(n, d, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    return X, y


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _attack(model_src):
    from sklearn.linear_model import LinearRegression, Ridge  # noqa: F401

    from skpoison.attacks import StealthyPoisoner

    return StealthyPoisoner(model=eval(model_src), **ATTACK)


def _worker(req):
    """One measurement in this process; prints one JSON line."""
    import resource
    import time

    import numpy as np

    import skpoison

    if req["mode"] == "identity":
        import hashlib

        from sklearn.linear_model import Ridge

        from skpoison.attacks import StealthyPoisoner

        X, y = _data(300, 4, seed=1)
        configs = [
            dict(),
            dict(alpha=0.5),
            dict(validation_fraction=0.2),
            dict(init="inverse_flip"),
            dict(model=Ridge(alpha=0.3)),
            dict(model=Ridge(alpha=0.3), alpha=0.3, validation_fraction=0.2),
        ]
        digest = hashlib.sha256()
        for kw in configs:
            a = StealthyPoisoner(
                0.1, batch_size=10, n_outer_steps=5, random_state=0, **kw
            )
            Xp, yp = a.fit_resample(X, y)
            for arr in (Xp, yp, a.loss_ref_, a.risk_, a.sigma_):
                digest.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
            for h in a.history_:
                for k in sorted(h):
                    digest.update(h[k].tobytes())
        print(json.dumps(dict(sha256=digest.hexdigest(), configs=len(configs))))
        return
    X, y = _data(req["n"], req["d"])
    data_bytes = X.nbytes + y.nbytes
    attack = _attack(req["model"])
    rss_before = _rss_bytes()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = dict(skpoison=skpoison.__file__, data_bytes=data_bytes)
    if req["mode"] == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        attack.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["tracemalloc_peak_x"] = peak / data_bytes
    elif req["mode"] == "profile":
        import cProfile
        import pstats

        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(attack.fit, X, y)
        total = time.perf_counter() - t0
        stats = pstats.Stats(prof).stats
        build = {}
        for (file, _, name), (_, _, _, cum, _) in stats.items():
            if file.endswith("_stealthy.py") and name in ("_engine", "_fixed_gram"):
                build[name] = build.get(name, 0.0) + cum
        out.update(
            profile_total_s=total,
            engine_build_s=build,
            engine_build_share=sum(build.values()) / total,
        )
    else:
        t0 = time.perf_counter()
        attack.fit(X, y)
        out["wall_s"] = time.perf_counter() - t0
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out.update(
            rss_before=rss_before,
            maxrss_before=maxrss_before,
            maxrss_after=maxrss,
            # An upper bound when the high-water mark was set before the fit.
            rss_extra_x=(maxrss - rss_before) / data_bytes,
            peak_set_during_fit=maxrss > maxrss_before,
        )
        np.save(req["save"], np.column_stack([attack.X_poison_, attack.y_poison_]))
    print(json.dumps(out))


def _run(tree, req):
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(req)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    if proc.returncode:
        raise RuntimeError(f"worker failed ({tree}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _git(*args, cwd=ROOT):
    return subprocess.check_output(["git", *args], cwd=cwd, text=True).strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 1e5")
    parser.add_argument(
        "--old", default=None, help="old commit (default: merge base with main)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        _worker(json.loads(args.worker))
        return
    import numpy as np

    sys.path.insert(0, str(HERE))
    from _provenance import commit

    old = args.old or _git("merge-base", "HEAD", "main")
    old_short = _git("rev-parse", "--short", old)
    n = 100_000 if args.quick else 1_000_000
    d = 10
    tmp = Path(tempfile.mkdtemp(prefix="bench_large_"))
    old_tree = tmp / "old"
    old_tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", old], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
    trees = {"old": old_tree, "new": ROOT}
    result = dict(
        benchmark="bench_large.py",
        commit_new=commit(),
        commit_old=old_short,
        n=n,
        d=d,
        attack=ATTACK,
        rounds=args.rounds,
        load_average_start=list(os.getloadavg()),
        models={},
    )
    ident = {side: _run(tree, dict(mode="identity")) for side, tree in trees.items()}
    result["small_n_bit_identical"] = ident["old"]["sha256"] == ident["new"]["sha256"]
    result["small_n_check"] = ident
    print("small n bit-identical:", result["small_n_bit_identical"], flush=True)
    for name in args.models:
        src = MODELS[name]
        runs = {"old": [], "new": []}
        for r in range(args.rounds):
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            for side in order:
                req = dict(
                    mode="time", n=n, d=d, model=src, save=str(tmp / f"{side}.npy")
                )
                runs[side].append(_run(trees[side], req))
                print(name, r, side, f"{runs[side][-1]['wall_s']:.2f} s", flush=True)
        ratios = [o["wall_s"] / w["wall_s"] for o, w in zip(runs["old"], runs["new"])]
        P = {side: np.load(tmp / f"{side}.npy") for side in runs}
        spread = np.ptp(np.column_stack(_data(n, d)), axis=0)
        entry = dict(
            wall_s={s: [x["wall_s"] for x in v] for s, v in runs.items()},
            speedup_median=statistics.median(ratios),
            speedup_min=min(ratios),
            speedup_max=max(ratios),
            rss_extra_x={
                s: statistics.median(x["rss_extra_x"] for x in v)
                for s, v in runs.items()
            },
            peak_set_during_fit={
                s: all(x["peak_set_during_fit"] for x in v) for s, v in runs.items()
            },
            poison_max_diff_over_spread=float(
                np.max(np.abs(P["old"] - P["new"]) / spread)
            ),
        )
        for side, tree in trees.items():
            entry.setdefault("tracemalloc_peak_x", {})[side] = _run(
                tree, dict(mode="tracemalloc", n=n, d=d, model=src)
            )["tracemalloc_peak_x"]
            prof = _run(tree, dict(mode="profile", n=n, d=d, model=src))
            entry.setdefault("engine_build_share", {})[side] = prof[
                "engine_build_share"
            ]
            entry.setdefault("engine_build_s", {})[side] = prof["engine_build_s"]
        entry["rss_extra_ratio_old_over_new"] = (
            entry["rss_extra_x"]["old"] / entry["rss_extra_x"]["new"]
        )
        result["models"][name] = entry
        print(json.dumps({name: entry}, indent=1), flush=True)
    result["load_average_end"] = list(os.getloadavg())
    out = HERE / "results" / ("large_quick.json" if args.quick else "large.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
