"""``skpoison reproduce --no-dnn`` at an old commit against this tree, side by side.

Issue #16's goal for the linear study: at least 2x faster than before, with
the same ``results.csv`` up to 1e-10 where the victims are mathematically the
same. This script runs the command of both trees in alternating rounds, in
fresh processes on the same machine (``PYTHONPATH`` selects the tree; one
BLAS / OpenMP thread, as the study runs its units), and records per run:

* the command's wall time and its CPU time (user + system of the child),
  which is what to compare on a shared machine whose load changes;
* the wall time of each study, as the command prints it (``poisoning_curve``
  alone, without imports, figures and Fig. 9).

From the first round's ``timings.csv`` it also sums the time inside the
units per defense and for the attacks, on both sides (``unit_times_round0``):
the share of each part, and so the most a speed-up of one part can give.

Then it compares the ``results.csv`` of both trees row by row (same
repetition, attack, alpha, ratio and defense): per defense, the largest
difference of ``test_nmse`` and ``defense_gain`` and the rows whose counts
(``n_kept``, poison and clean rejected, ``diverged``) differ. SEVER's rows are
not expected to agree with commits before 2c4967a: there the GD victim's
gradients were taken by autograd in the units of ``X``, now in standard
coordinates (a different, unit-free criterion).

Shapes: ``--shape quick`` is ``reproduce --quick --no-dnn`` (Boston Housing,
2 repetitions, alphas 1, 0.3 and 0.1); ``--shape boston`` the full protocol on Boston Housing only
(``--no-dnn --datasets boston_housing``: 10 repetitions, 4 alphas);
``--shape full`` is ``reproduce --no-dnn`` on every shipped dataset (several
minutes per run).

Usage::

    python benchmarks/bench_study.py                      # quick, old = b2526a9
    python benchmarks/bench_study.py --shape boston --rounds 1
    python benchmarks/bench_study.py --old-tree /tmp/oldb25   # an existing checkout

Results go to ``benchmarks/results/study.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHAPES = {
    "quick": ["--quick", "--no-dnn"],
    "boston": ["--no-dnn", "--datasets", "boston_housing"],
    "full": ["--no-dnn"],
}
KEYS = ["dataset", "model", "attack", "repetition", "alpha", "ratio", "defense"]
COUNTS = ["n_kept", "poison_rejected", "clean_rejected", "diverged"]
TOLERANCE = 1e-10


def git(*args, cwd=ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def old_tree(commit: str, path: str | None) -> Path:
    """A checkout of ``commit``: ``path`` if given, else a detached worktree."""
    if path is not None:
        return Path(path)
    target = Path(tempfile.gettempdir()) / f"skpoison-bench-{commit[:7]}"
    if not target.exists():
        git("worktree", "add", "--detach", str(target), commit)
    return target


def run(tree: Path, args: list[str], out: Path) -> dict:
    """One ``skpoison reproduce`` of ``tree``; wall and CPU seconds, study walls."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")  # fmt: skip
    cmd = [sys.executable, "-m", "skpoison.cli", "reproduce", *args]
    cmd += ["--out", str(out), "--no-progress", "--overwrite"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    studies = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r"Reproduction: (\S+ \(\w+\)):.*?, ([\d.]+) s ->", proc.stdout
        )
    }
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "study_wall_s": studies}


def compare(old_out: Path, new_out: Path) -> dict:
    """Per defense: largest differences of the scores, rows whose counts differ."""
    frames = []
    for name in ("old", "new"):
        root = old_out if name == "old" else new_out
        files = sorted(root.glob("*/results.csv"))
        df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        if "attack" not in df:  # before the attack column, the one attack
            df.insert(2, "attack", "stealthy")
        frames.append(df.set_index(KEYS).sort_index())
    old, new = frames
    if not old.index.equals(new.index):
        return {"same_rows": False}
    out = {"same_rows": True, "n_rows": int(len(old)), "per_defense": {}}
    for defense in sorted(old.index.get_level_values("defense").unique()):
        o = old.xs(defense, level="defense")
        n = new.xs(defense, level="defense")
        entry = {"n_rows": int(len(o))}
        for col in ("test_nmse", "defense_gain"):
            a, b = o[col].to_numpy(float), n[col].to_numpy(float)
            both = np.isfinite(a) & np.isfinite(b)
            entry[f"max_abs_diff_{col}"] = (
                float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0
            )
            entry[f"nan_mismatch_{col}"] = int((np.isnan(a) != np.isnan(b)).sum())
        a, b = o[COUNTS].to_numpy(float), n[COUNTS].to_numpy(float)
        other = (a != b) & ~(np.isnan(a) & np.isnan(b))  # NaN: no defense counts
        entry["rows_with_other_counts"] = int(other.any(axis=1).sum())
        entry["agree_1e-10"] = bool(
            entry["max_abs_diff_test_nmse"] <= TOLERANCE
            and entry["nan_mismatch_test_nmse"] == 0
            and entry["rows_with_other_counts"] == 0
        )
        out["per_defense"][defense] = entry
    return out


def unit_times(root: Path) -> dict:
    """Seconds inside the units, per defense and for the attacks (timings.csv).

    The share of each part of the study's work: what a speed-up of one part
    can give at most. Rows of ratio 0 are shared by the alphas of a
    repetition, so an attack's time is counted once per (study, repetition,
    alpha) from its poisoned rows.
    """
    frames = [
        pd.read_csv(f).assign(study=f.parent.name) for f in root.glob("*/timings.csv")
    ]
    if not frames:  # an old tree without timings.csv
        return {}
    df = pd.concat(frames, ignore_index=True)
    fits = df.groupby("defense")["fit_time"].sum()
    poisoned = df[df["ratio"] > 0]
    unit = [c for c in ("study", "repetition", "alpha", "attack") if c in df]
    attacks = poisoned.drop_duplicates(unit)
    total = float(fits.sum() + attacks["attack_time"].sum())
    parts = {f"fit {k}": float(v) for k, v in fits.items()}
    parts["attacks"] = float(attacks["attack_time"].sum())
    return {
        "total_s": total,
        "seconds": parts,
        "share": {k: v / total for k, v in parts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="b2526a9", help="commit to compare with")
    parser.add_argument("--old-tree", default=None, help="existing checkout of --old")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="quick")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--out", default=str(RESULTS / "study.json"))
    args = parser.parse_args()

    old_commit = git("rev-parse", args.old)
    trees = {"old": old_tree(old_commit, args.old_tree), "new": ROOT}
    load_before = os.getloadavg()
    runs = {"old": [], "new": []}
    work = Path(tempfile.mkdtemp(prefix="bench-study-"))
    for r in range(args.rounds):
        # Alternate which goes first, so a change of load hits both alike.
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for name in order:
            res = run(trees[name], SHAPES[args.shape], work / f"{name}{r}")
            runs[name].append(res)
            print(f"round {r} {name}: wall {res['wall_s']:.1f} s, cpu "
                  f"{res['cpu_s']:.1f} s, studies {res['study_wall_s']}", flush=True)  # fmt: skip
    agreement = compare(work / "old0", work / "new0")
    parts = {name: unit_times(work / f"{name}0") for name in ("old", "new")}

    def median(name, key):
        return statistics.median(x[key] for x in runs[name])

    def study_median(name):
        return statistics.median(sum(x["study_wall_s"].values()) for x in runs[name])

    speedup = {
        "wall": median("old", "wall_s") / median("new", "wall_s"),
        "cpu": median("old", "cpu_s") / median("new", "cpu_s"),
        "studies_wall": study_median("old") / study_median("new"),
    }
    result = {
        "command": "skpoison reproduce "
        + " ".join(SHAPES[args.shape])
        + " --n-jobs default",
        "shape": args.shape,
        "old_commit": old_commit,
        "new_commit": git("rev-parse", "HEAD"),
        "new_tree_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "rounds": args.rounds,
        "runs": runs,
        "speedup_median": speedup,
        "unit_times_round0": parts,
        "agreement": agreement,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"speed-up (median of {args.rounds}): wall {speedup['wall']:.2f}x, "
          f"cpu {speedup['cpu']:.2f}x, studies' own wall {speedup['studies_wall']:.2f}x")  # fmt: skip
    for defense, entry in agreement.get("per_defense", {}).items():
        print(f"  {defense:18s} agree to 1e-10: {entry['agree_1e-10']!s:5s} "
              f"max |d nmse| {entry['max_abs_diff_test_nmse']:.2e}, rows with "
              f"other counts {entry['rows_with_other_counts']}/{entry['n_rows']}")  # fmt: skip
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
