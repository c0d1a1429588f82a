"""Fit time of every defense at two commits, side by side: the old/new ratio.

Two worker processes, one importing skpoison from ``--old`` (a checkout of an
older commit, e.g. ``git worktree add /tmp/old5f8 5f8b9dc``) and one from
``--new`` (default: this checkout), fit the same defenses on the same data
(:func:`bench_defenses_ii.make_data`: d = 100, 10% gross label outliers) in
turn: for each defense and size, ``--repeats`` rounds, the order of the two
sides alternating from round to round, each round the best of ``--inner``
fits. A shared, loaded machine drifts in speed; the rounds interleave, so the
drift hits both sides alike, and the ratio quoted is the median over rounds of
the ratio new/old within a round (the min and max are printed as well: a wide
range says the machine was noisy). Both sides must keep the same points (the
kept masks are compared).

Prints one row per defense and size and the load average; writes
``benchmarks/results/defenses_paired.json`` with the commit of both sides.

Usage::

    git worktree add /tmp/old5f8 5f8b9dc
    python benchmarks/bench_defenses_paired.py --old /tmp/old5f8 --sizes 1e4 1e5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (constructor source, evaluated in the worker with the defenses imported)
DEFENSES = {
    "BayesCleanFilter()": "BayesCleanFilter()",
    "TrimRegressor(reject_fraction=0.4)": "TrimRegressor(reject_fraction=0.4)",
    "SeverFilter()": "SeverFilter()",
    "ProdaRegressor(n_refits=3)": "ProdaRegressor(n_refits=3, random_state=0)",
    "ProdaRegressor() [literal]": "ProdaRegressor(random_state=0)",
    "DutiFilter(kernel='linear')": "DutiFilter()",
}


def _worker():
    """Answer one JSON request per line on stdin: fit, time, hash the kept mask."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    from bench_defenses_ii import make_data

    import skpoison
    from skpoison import defenses

    names = {k: getattr(defenses, k) for k in defenses.__all__}
    data = {}

    def fit(source, n, d):
        if (n, d) not in data:
            data.clear()  # one data set in memory at a time
            data[n, d] = make_data(n, d)
        X, y, _, X_t, y_t = data[n, d]
        est = eval(source, names)  # the constructors in DEFENSES above
        kw = {"X_trusted": X_t, "y_trusted": y_t} if "Duti" in source else {}
        start = time.perf_counter()
        est.fit(X, y, **kw)
        return time.perf_counter() - start, est

    print(json.dumps({"ready": skpoison.__file__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        times, est = [], None
        for _ in range(req["inner"]):
            t, est = fit(req["source"], req["n"], req["d"])
            times.append(t)
        mask = np.ascontiguousarray(est.inlier_mask_)
        reply = {"best_s": min(times), "mask": hashlib.sha1(mask).hexdigest()}
        print(json.dumps(reply), flush=True)


class _Side:
    def __init__(self, root: Path):
        self.root = root
        env = dict(os.environ, PYTHONPATH=str(root))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )
        ready = json.loads(self.proc.stdout.readline())["ready"]
        if not Path(ready).resolve().is_relative_to(root.resolve()):
            raise RuntimeError(f"{root}: the worker imported skpoison from {ready}")

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker of {self.root} died")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def commit_of(root: Path) -> str:
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "skpoison")
    return head + ("+uncommitted" if dirty else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, default=HERE.parent)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5])
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner", type=int, default=2)
    parser.add_argument(
        "--defenses", nargs="+", default=list(DEFENSES), choices=list(DEFENSES)
    )
    parser.add_argument(
        "--literal-proda-max-n", type=float, default=1e4, help="as bench_defenses_ii"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "defenses_paired.json"
    )
    args = parser.parse_args(argv)
    sides = {"old": _Side(args.old), "new": _Side(args.new)}
    commits = {k: commit_of(side.root) for k, side in sides.items()}
    machine = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1m_start": round(os.getloadavg()[0], 2),
    }
    print("commits:", commits)
    print("machine:", machine)
    print(
        f"{'defense':<36} {'n':>7} {'old s':>8} {'new s':>8} "
        f"{'new/old min':>11} {'median':>7} {'max':>6}  masks"
    )
    rows = []
    for n in (int(s) for s in args.sizes):
        for name in args.defenses:
            if "literal" in name and n > args.literal_proda_max_n:
                continue
            req = dict(source=DEFENSES[name], n=n, d=args.n_features)
            sides["old"].ask(**req, inner=1)  # warm-up: data, caches, threads
            sides["new"].ask(**req, inner=1)
            times = {"old": [], "new": []}
            masks = set()
            for rep in range(args.repeats):
                for key in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                    reply = sides[key].ask(**req, inner=args.inner)
                    times[key].append(reply["best_s"])
                    masks.add((key, reply["mask"]))
            ratios = [b / a for a, b in zip(times["old"], times["new"])]
            same = len({m for _, m in masks}) == 1
            row = {
                "defense": name,
                "n": n,
                "d": args.n_features,
                "old_s": times["old"],
                "new_s": times["new"],
                "old_median_s": statistics.median(times["old"]),
                "new_median_s": statistics.median(times["new"]),
                "ratio_min": min(ratios),
                "ratio_median": statistics.median(ratios),
                "ratio_max": max(ratios),
                "same_kept_points": same,
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            print(
                f"{name:<36} {n:>7} {row['old_median_s']:>8.3f} "
                f"{row['new_median_s']:>8.3f} {row['ratio_min']:>11.2f} "
                f"{row['ratio_median']:>7.2f} {row['ratio_max']:>6.2f}  "
                f"{'same' if same else 'DIFFER'}  (load {row['load_average_1m']})",
                flush=True,
            )
    for side in sides.values():
        side.close()
    machine["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "defenses_paired",
                "commits": commits,
                "timing": (
                    f"each round the best of {args.inner} fits; {args.repeats} "
                    "rounds, sides alternating; ratio = new/old within a round"
                ),
                "machine": machine,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print("wrote", args.out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker()
    else:
        main()
