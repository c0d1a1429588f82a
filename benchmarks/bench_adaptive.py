"""Damage of the adaptive attack against the non-adaptive one, per defense.

For each shipped dataset (Boston Housing, Heart, Appliances subsampled to
``--appliances-rows`` rows), alpha (1 and 0.3) and seed: the paper's split and
standardisation (``split_and_standardize(random_state=seed)``), the dataset's
Table II attack settings (``StealthyPoisoner.from_preset``, batches of 7.5% of
the training set) and Table III victim (linear regression by full-batch
gradient descent), then

* ``non_adaptive``: ``StealthyPoisoner(defense=None)`` (the paper's attack),
  crafted once for all defenses;
* ``adaptive``: ``StealthyPoisoner(defense=D)`` for each defense ``D``.

Each attack crafts 20% of the training set; the 10% set is its prefix
(``resample_at``), as in the evaluation. Each poisoned set is given to the
defended learner exactly as :func:`skpoison.evaluation.build_defense` builds it
(the defense, then the victim on the rows kept; TRIM and SEVER around the
victim; DUTI with trusted items from the validation set), and its test NMSE
is recorded. The adaptive attacker is given the same defense (DUTI's trusted
items included) (``--attacker-defense
registry``; ``least_squares`` gives it TRIM and SEVER on least squares
instead of around the gradient-descent victim, the model its gradient uses,
see ``skpoison.attacks._adaptive``).
For ``alpha = 0.3`` each attack's ``R_ref`` is that of its ``alpha = 1`` run.

Reported per (dataset, ratio, alpha, defense): the mean over seeds of both
test NMSEs and the damage ratio ``adaptive / non_adaptive``; then, per
defense, the ratio averaged over the cells, and the average over BayesClean,
TRIM and SEVER (the issue's goal: at least 1.3 and above 1 for each).

Usage::

    PYTHONPATH=. python benchmarks/bench_adaptive.py --seeds 0 1 2 3 4
    PYTHONPATH=. python benchmarks/bench_adaptive.py --datasets boston --seeds 0

Results go to ``benchmarks/results/adaptive.json`` (rewritten after every
seed, so an interrupted run keeps what it finished). ``--summarise A.json
B.json`` prints the summary of the rows of several result files together.

``--merge OLD.json`` reruns only ``--defenses`` on ``--datasets`` and
``--seeds`` and keeps every other row of ``OLD.json`` (the unchanged
defenses' rows, non-adaptive ones included), for a change that touches only
some defenses' adaptive attacks::

    PYTHONPATH=. python benchmarks/bench_adaptive.py --datasets boston \
        --defenses trim duti --seeds 0 1 2 3 4 \
        --merge benchmarks/results/adaptive.json \
        --out benchmarks/results/adaptive.json

Every row records the commit it ran at (rows of a file written before rows
had one get that file's ``commit``); ``merged`` lists the merged file, its
commit and command, and the largest change of a rerun non-adaptive row
(the non-adaptive attack and the defended learners are deterministic, so it
should be 0 up to rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from _provenance import commit
from sklearn.base import clone

from skpoison.attacks import StealthyPoisoner
from skpoison.datasets import (
    load_appliances,
    load_boston_housing,
    load_heart,
    split_and_standardize,
)
from skpoison.defenses import DefendedRegressor, SeverFilter, TrimRegressor
from skpoison.evaluation import build_defense, n_trusted_items
from skpoison.metrics import nmse
from skpoison.models import TorchLinearRegressor

DEFENSES = ("bayesclean", "trim", "sever", "proda", "duti")
GOAL = ("bayesclean", "trim", "sever")
RATIOS = (0.1, 0.2)
ALPHAS = (1.0, 0.3)
LOADERS = {
    "boston": load_boston_housing,
    "heart": load_heart,
    "appliances": load_appliances,
}
VICTIM = {
    "boston": dict(learning_rate=0.1, n_epochs=40),
    "heart": dict(learning_rate=0.1, n_epochs=40),
    "appliances": dict(learning_rate=0.2, n_epochs=70),
}


def attacker_defense(name, victim, seed, how):
    """The defense the adaptive attacker is given.

    ``"registry"``: the defense exactly as the defender fits it (TRIM and
    SEVER around the gradient-descent victim); ``"least_squares"``: TRIM and
    SEVER with their least-squares fast path instead.
    """
    if how == "least_squares" and name in ("trim", "sever"):
        if name == "trim":
            return TrimRegressor(reject_fraction=0.4)
        return SeverFilter(reject_fraction=0.4, n_rounds=4)
    est = build_defense(name, victim, random_state=seed)[0]
    return est.defense if isinstance(est, DefendedRegressor) else est


def load(dataset, appliances_rows, seed):
    X, y = LOADERS[dataset](return_X_y=True)
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if dataset == "appliances" and appliances_rows < X.shape[0]:
        rows = np.random.default_rng(seed).choice(X.shape[0], appliances_rows, False)
        X, y = X[rows], y[rows]
    return split_and_standardize(X, y, random_state=seed)


def defended_nmse(name, victim, Xp, yp, split, trusted, seed):
    est = build_defense(name, victim, random_state=seed)[0]
    fit_params = trusted if name == "duti" else {}
    est.fit(Xp, yp, **fit_params)
    return float(nmse(split.y_test, est.predict(split.X_test)))


def run_seed(dataset, seed, args, at):
    split = load(dataset, args.appliances_rows, seed)
    Xtr, ytr = split.X_train, split.y_train
    victim = TorchLinearRegressor(**VICTIM[dataset], random_state=seed)
    rng = np.random.default_rng(seed)
    n_t = n_trusted_items(dataset, Xtr.shape[0], split.X_val.shape[0])
    pick = rng.choice(split.X_val.shape[0], n_t, replace=False)
    trusted = dict(X_trusted=split.X_val[pick], y_trusted=split.y_val[pick])
    preset = StealthyPoisoner.from_preset(dataset).get_params()
    base = dict(
        n_outer_steps=args.outer_steps or preset["n_outer_steps"],
        outer_lr=preset["outer_lr"],
        n_inner_steps=preset["n_inner_steps"],
        inner_lr=preset["inner_lr"],
        batch_size=0.075,
        device="cpu",
        random_state=seed,
    )
    rows, times = [], {}
    for kind in ("non_adaptive", *DEFENSES):
        risk_ref = None
        for alpha in ALPHAS:
            if kind != "non_adaptive" and kind not in args.defenses:
                continue
            defense = (
                None
                if kind == "non_adaptive"
                else attacker_defense(kind, clone(victim), seed, args.attacker_defense)
            )
            attack = StealthyPoisoner(
                max(RATIOS), alpha, defense=defense, risk_ref=risk_ref, **base
            )
            t0 = time.perf_counter()
            # The adaptive attacker knows the defense that runs: DUTI's
            # trusted items included (the non-adaptive attack takes none).
            known = {} if defense is None else trusted
            attack.fit(Xtr, ytr, X_val=split.X_val, y_val=split.y_val, **known)
            times[f"{kind}_alpha{alpha}"] = time.perf_counter() - t0
            if alpha == 1.0:
                risk_ref = attack.risk_ref_
            targets = DEFENSES if kind == "non_adaptive" else (kind,)
            for ratio in RATIOS:
                Xp, yp = attack.resample_at(ratio)
                for name in targets:
                    if name not in args.defenses:
                        continue
                    score = defended_nmse(
                        name, clone(victim), Xp, yp, split, trusted, seed
                    )
                    rows.append(
                        dict(
                            dataset=dataset,
                            seed=seed,
                            ratio=ratio,
                            alpha=alpha,
                            defense=name,
                            attack="non_adaptive" if defense is None else "adaptive",
                            test_nmse=score,
                            commit=at,
                        )
                    )
    return rows, times


def summarise(rows, defenses):
    cells, per_defense = [], {}
    keys = sorted({(r["dataset"], r["ratio"], r["alpha"], r["defense"]) for r in rows})
    for ds, ratio, alpha, name in keys:
        sel = [
            r
            for r in rows
            if (r["dataset"], r["ratio"], r["alpha"], r["defense"])
            == (ds, ratio, alpha, name)
        ]
        by = {
            a: [r["test_nmse"] for r in sel if r["attack"] == a]
            for a in ("non_adaptive", "adaptive")
        }
        if not (by["adaptive"] and by["non_adaptive"]):
            continue
        na, ad = float(np.mean(by["non_adaptive"])), float(np.mean(by["adaptive"]))
        cells.append(
            dict(
                dataset=ds,
                ratio=ratio,
                alpha=alpha,
                defense=name,
                n_seeds=len(by["adaptive"]),
                non_adaptive_nmse=na,
                adaptive_nmse=ad,
                damage_ratio=ad / na,
            )
        )
        per_defense.setdefault(name, []).append(ad / na)
    mean = {k: float(np.mean(v)) for k, v in per_defense.items()}
    goal = [mean[k] for k in GOAL if k in mean]
    return cells, mean, (float(np.mean(goal)) if goal else float("nan"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS))
    parser.add_argument("--defenses", nargs="+", default=list(DEFENSES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--appliances-rows", type=int, default=4000)
    parser.add_argument(
        "--attacker-defense", choices=["registry", "least_squares"], default="registry"
    )
    parser.add_argument(
        "--outer-steps", type=int, default=None, help="override Table II's T_out"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "adaptive.json")
    )
    parser.add_argument(
        "--merge",
        metavar="JSON",
        help="keep the rows of this result file other than the rerun ones",
    )
    parser.add_argument(
        "--summarise",
        nargs="+",
        metavar="JSON",
        help="print the summary of the rows of these result files (no run)",
    )
    args = parser.parse_args()
    if args.summarise:
        rows = [
            r for f in args.summarise for r in json.loads(Path(f).read_text())["rows"]
        ]
        print_summary(*summarise(rows, DEFENSES))
        return
    rows, times = [], {}
    at = commit()  # the code that runs, read once
    kept, merged = merge_base(args)
    for seed in args.seeds:
        for dataset in args.datasets:
            t0 = time.perf_counter()
            new, t = run_seed(dataset, seed, args, at)
            rows += new
            times[f"{dataset}_seed{seed}"] = t
            if merged:
                merged["non_adaptive_max_abs_change"] = non_adaptive_change(
                    merged["_replaced"], rows
                )
            cells, mean, goal = summarise(kept + rows, args.defenses)
            print(
                f"{dataset} seed {seed}: {time.perf_counter() - t0:.0f} s; "
                f"mean damage ratio per defense {json.dumps(mean)}; "
                f"BayesClean/TRIM/SEVER average {goal:.3f}",
                flush=True,
            )
            result = dict(
                commit=at,
                command="python benchmarks/bench_adaptive.py "
                + " ".join(
                    f"--{k.replace('_', '-')} "
                    + (" ".join(map(str, v)) if isinstance(v, list) else str(v))
                    for k, v in vars(args).items()
                    if k != "out" and v is not None
                ),
                machine=dict(
                    platform=platform.platform(),
                    cpu_count=os.cpu_count(),
                    omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                ),
                seeds_done=sorted({r["seed"] for r in rows}),
                cells=cells,
                mean_damage_ratio=mean,
                goal_average_bayesclean_trim_sever=goal,
                attack_seconds=times,
                rows=kept + rows,
            )
            if merged:
                result["merged"] = {k: v for k, v in merged.items() if k[0] != "_"}
            Path(args.out).write_text(json.dumps(result, indent=1))
    print_summary(cells, mean, goal)


def merge_base(args):
    """The rows of ``--merge`` that this run does not redo, and its record."""
    if not args.merge:
        return [], None
    old = json.loads(Path(args.merge).read_text())
    rerun = set(args.datasets), set(args.defenses), set(args.seeds)

    def redone(r):
        return (r["dataset"], r["defense"], r["seed"]) in {
            (d, n, s) for d in rerun[0] for n in rerun[1] for s in rerun[2]
        }

    rows = [{**r, "commit": r.get("commit", old["commit"])} for r in old["rows"]]
    kept = [r for r in rows if not redone(r)]
    record = dict(
        file=str(args.merge),
        commit=old["commit"],
        command=old["command"],
        rows_kept=len(kept),
        rows_rerun=len(rows) - len(kept),
        _replaced=[r for r in rows if redone(r) and r["attack"] == "non_adaptive"],
    )
    return kept, record


def non_adaptive_change(old_rows, new_rows):
    """Largest ``|test_nmse|`` change of the rerun non-adaptive rows (NaN: none yet)."""
    key = ("dataset", "seed", "ratio", "alpha", "defense")
    new = {tuple(r[k] for k in key): r["test_nmse"] for r in new_rows
           if r["attack"] == "non_adaptive"}  # fmt: skip
    diffs = [abs(new[k] - r["test_nmse"]) for r in old_rows
             if (k := tuple(r[c] for c in key)) in new]  # fmt: skip
    return float(max(diffs)) if diffs else float("nan")


def print_summary(cells, mean, goal):
    print(f"{'dataset':11s} {'ratio':>5s} {'alpha':>5s} {'defense':10s} "
          f"{'seeds':>5s} {'non-adapt':>9s} {'adaptive':>9s} {'ratio':>6s}")  # fmt: skip
    for c in cells:
        print(
            f"{c['dataset']:11s} {c['ratio']:5.2f} {c['alpha']:5.2f} "
            f"{c['defense']:10s} {c['n_seeds']:5d} {c['non_adaptive_nmse']:9.4f} "
            f"{c['adaptive_nmse']:9.4f} {c['damage_ratio']:6.2f}"
        )
    for name, value in mean.items():
        ratios = [c["damage_ratio"] for c in cells if c["defense"] == name]
        print(
            f"mean damage ratio, {name}: {value:.3f} over {len(ratios)} cells "
            f"(smallest {min(ratios):.3f}, largest {max(ratios):.3f})"
        )
    print(f"average over BayesClean, TRIM and SEVER: {goal:.3f}")


if __name__ == "__main__":
    main()
