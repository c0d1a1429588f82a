"""skpoison against holisticai's port of Jagielski et al.'s OptP on an OLS victim.

For each shipped dataset (Boston Housing, Heart, Appliances subsampled to
``--appliances-rows`` rows), poisoning ratio and seed: the paper's split and
standardisation (``split_and_standardize(random_state=seed)``), then

* ``skpoison_stealthy``: ``StealthyPoisoner.from_preset(dataset,
  model=LinearRegression())`` (the dataset's Table II outer settings; the
  inner problem is scikit-learn's least-squares solution);
* ``skpoison_optp``: :class:`skpoison.attacks.OptPPoisoner` (objective W on the
  attacker's validation set, their defaults);
* ``holisticai``: ``holisticai.robustness.attackers.LinRegGDPoisoner`` (its
  defaults: inverse-flip initialisation, objective V, 15 iterations), given
  the rows skpoison kept, min-max scaled to ``[0, 1]`` with the clean
  training box (the box skpoison uses), and asked to *add* as many points as
  skpoison replaces (``poison_proportion = n_p / n_tr``), mapped back.

Reported per cell: the test MSE of scikit-learn's ``LinearRegression``
trained on each poisoned set, the attack times, and their means over seeds;
``speedup`` is holisticai's time over skpoison's, measured in the same run.
The machine is shared: times are indicative, ratios are what to read.

Install (benchmark only, not a package requirement)::

    python -m venv --system-site-packages /work/venv-victims
    /work/venv-victims/bin/pip install holisticai==1.0.14

Usage::

    PYTHONPATH=. /work/venv-victims/bin/python benchmarks/bench_vs_optp.py
    PYTHONPATH=. /work/venv-victims/bin/python benchmarks/bench_vs_optp.py --quick

Results go to ``benchmarks/results/vs_optp.json`` (``vs_optp_quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LinearRegression

from skpoison.attacks import OptPPoisoner, StealthyPoisoner, get_preset
from skpoison.datasets import (
    load_appliances,
    load_boston_housing,
    load_heart,
    split_and_standardize,
)

LOADERS = {
    "boston": load_boston_housing,
    "heart": load_heart,
    "appliances": load_appliances,
}


def _data(name, appliances_rows):
    X, y = LOADERS[name](return_X_y=True)
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if name == "appliances" and appliances_rows and X.shape[0] > appliances_rows:
        rows = np.random.default_rng(0).choice(
            X.shape[0], appliances_rows, replace=False
        )
        X, y = X[np.sort(rows)], y[np.sort(rows)]
    return X, y


def _test_mse(split, X, y):
    pred = LinearRegression().fit(X, y).predict(split.X_test)
    return float(np.mean((pred - split.y_test) ** 2))


def _timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def _holisticai(split, kept, n_p, seed):
    import pandas as pd
    from holisticai.robustness.attackers import LinRegGDPoisoner

    Xy = np.column_stack([split.X_train, split.y_train])
    low, high = Xy.min(0), Xy.max(0)
    width = np.where(high > low, high - low, 1.0)
    U = (Xy[kept] - low) / width
    cols = [f"x{j}" for j in range(U.shape[1] - 1)]
    np.random.seed(seed)  # noqa: NPY002 - holisticai draws from NumPy's global state
    attack = LinRegGDPoisoner(poison_proportion=n_p / split.X_train.shape[0])
    Xp, yp = attack.generate(
        pd.DataFrame(U[:, :-1], columns=cols), pd.Series(U[:, -1], name="y"),
        return_only_poisoned=True,
    )  # fmt: skip
    P = np.column_stack([np.asarray(Xp, dtype=float), np.asarray(yp, dtype=float)])
    P = P * width + low
    return np.vstack([Xy[kept, :-1], P[:, :-1]]), np.r_[Xy[kept, -1], P[:, -1]]


def run_cell(name, X, y, ratio, seed, with_holisticai=True):
    split = split_and_standardize(X, y, random_state=seed)
    fit = dict(X_val=split.X_val, y_val=split.y_val)
    out = {"clean": _test_mse(split, split.X_train, split.y_train)}
    preset = {
        k: v
        for k, v in get_preset(name, "linear").items()
        if k not in ("model", "n_inner_steps", "inner_lr")
    }
    stealthy = StealthyPoisoner(
        ratio, model=LinearRegression(), device="cpu", random_state=seed, **preset
    )
    (Xs, ys), t_s = _timed(
        lambda: stealthy.fit_resample(split.X_train, split.y_train, **fit)
    )
    out.update(skpoison_stealthy=_test_mse(split, Xs, ys), time_skpoison_stealthy=t_s)
    optp = OptPPoisoner(ratio, random_state=seed)
    (Xo, yo), t_o = _timed(
        lambda: optp.fit_resample(split.X_train, split.y_train, **fit)
    )
    out.update(skpoison_optp=_test_mse(split, Xo, yo), time_skpoison_optp=t_o)
    n_p = stealthy.poison_indices_.size
    out["n_poison"] = int(n_p)
    if with_holisticai and n_p:
        kept = np.setdiff1d(np.arange(split.X_train.shape[0]), stealthy.poison_indices_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (Xh, yh), t_h = _timed(lambda: _holisticai(split, kept, n_p, seed))
        out.update(holisticai=_test_mse(split, Xh, yh), time_holisticai=t_h)
    return out


def _commit():
    try:
        return subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], text=True
        ).strip()
    except Exception:  # pragma: no cover
        return "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["boston", "heart", "appliances"])
    p.add_argument("--ratios", nargs="+", type=float, default=[0.04, 0.08, 0.12, 0.2])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--appliances-rows", type=int, default=4000)
    p.add_argument("--no-holisticai", action="store_true")
    p.add_argument("--quick", action="store_true", help="Boston, 4% and 20%, 1 seed")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.ratios, args.seeds = ["boston"], [0.04, 0.2], 1
    out = Path(__file__).parent / "results"
    out = out / ("vs_optp_quick.json" if args.quick else "vs_optp.json")
    result = dict(
        commit=_commit(),
        machine=dict(cpus=os.cpu_count(), platform=platform.platform()),
        args=vars(args),
        cells=[],
    )
    for name in args.datasets:
        X, y = _data(name, args.appliances_rows)
        for ratio in args.ratios:
            runs = [run_cell(name, X, y, ratio, s, not args.no_holisticai)
                    for s in range(args.seeds)]  # fmt: skip
            mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            if "time_holisticai" in mean:
                t_h = mean["time_holisticai"]
                mean["speedup_stealthy"] = t_h / mean["time_skpoison_stealthy"]
                mean["speedup_optp"] = t_h / mean["time_skpoison_optp"]
                mean["stealthy_at_least_optp"] = (
                    mean["skpoison_stealthy"] >= mean["holisticai"]
                )
            result["cells"].append(dict(dataset=name, ratio=ratio, n_rows=int(X.shape[0]),
                                        mean=mean, runs=runs))  # fmt: skip
            print(name, ratio, {k: round(v, 3) for k, v in mean.items()}, flush=True)
            # Written after every cell: a long run that is stopped keeps its cells.
            out.write_text(json.dumps(result, indent=1, default=float))
    print("->", out)


if __name__ == "__main__":
    main()
