"""An independent cross-check of the alpha = 1 attack: NumPy from the paper, not skpoison.

The stealthy attack at ``alpha = 1`` against the paper's LR (Alg. 1, 3, 4;
Eq. 1 and Table II) is written here from the paper's text with plain NumPy,
sharing no code with :mod:`skpoison.attacks`:

- the victim: ``T`` full-batch gradient-descent steps on
  ``1/(2n) sum (x^T w + b - y)^2`` from ``w = 0, b = 0`` with step ``eta``;
- the hypergradient of the validation loss ``1/(2m) sum (x^T w_T + b_T - y)^2``
  with respect to each poison point ``(x_k, y_k)``: reverse-mode
  differentiation through the ``T`` steps, written out by hand;
- the ascent (Alg. 4): ``T_out`` steps, each point's gradient row divided by
  its L2 norm (a zero row stays zero), a step ``gamma``, then clipping to the
  box of the clean training data's per-column minimum and maximum;
- batches (Alg. 1): the poison rows, taken in ``B_p``-sized batches in the
  order skpoison replaced them (the only thing read from skpoison's run, so
  that both replace the same rows); each batch starts as copies of the points
  it replaces and sees the set poisoned by the batches before it.

Both run on the same split of Boston Housing (the first repetition of
``poisoning_curve(..., random_state=0)``), with Table II's Boston settings
(T_out 100, T 40, eta 0.1, gamma 0.9, batches of 19 up to 45 %). The script
prints the largest absolute difference between the two sets of poison points
and writes it to ``benchmarks/results/crosscheck_attack_<dataset>.json``.

Usage::

    python benchmarks/crosscheck_attack.py
    python benchmarks/crosscheck_attack.py --dataset heart --n-batches 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def train(Z, y, T, eta):
    """The parameters after each of the ``T`` GD steps (``thetas[t]`` before step t)."""
    n = Z.shape[0]
    theta = np.zeros(Z.shape[1])
    thetas = [theta]
    for _ in range(T):
        theta = theta - eta / n * (Z.T @ (Z @ theta - y))
        thetas.append(theta)
    return thetas


def hypergradient(Z, y, rows, Zv, yv, T, eta):
    """d L_val(theta_T) / d (x_k, y_k) for the rows ``rows`` of the training set."""
    n, m = Z.shape[0], Zv.shape[0]
    thetas = train(Z, y, T, eta)
    lam = Zv.T @ (Zv @ thetas[T] - yv) / m  # dL_val / d theta_T
    gz = np.zeros((len(rows), Z.shape[1]))
    gy = np.zeros(len(rows))
    zk, yk = Z[rows], y[rows]
    for t in range(T - 1, -1, -1):
        th = thetas[t]
        # theta_{t+1} = theta_t - eta/n sum_i z_i (z_i^T theta_t - y_i)
        r = zk @ th - yk  # residuals of the poison rows before step t
        zl = zk @ lam  # z_k^T lambda_{t+1}
        gz -= eta / n * (r[:, None] * lam[None, :] + zl[:, None] * th[None, :])
        gy += eta / n * zl
        lam = lam - eta / n * (Z.T @ (Z @ lam))
    loss = 0.5 * np.mean((Zv @ thetas[T] - yv) ** 2)
    return loss, gz[:, :-1], gy  # the last column of z is the constant 1


def attack(X, y, Xv, yv, order, batch, n_outer, T, eta, gamma):
    """Alg. 1 at alpha = 1: the poison points of the rows ``order``, batch by batch."""
    low = np.append(X.min(axis=0), y.min())
    high = np.append(X.max(axis=0), y.max())
    X, y = X.copy(), y.copy()
    Zv = np.column_stack([Xv, np.ones(len(Xv))])
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        Xp, yp = X[rows].copy(), y[rows].copy()
        for _ in range(n_outer):
            X[rows], y[rows] = Xp, yp
            Z = np.column_stack([X, np.ones(len(X))])
            _, gx, gyk = hypergradient(Z, y, rows, Zv, yv, T, eta)
            norm = np.sqrt((gx**2).sum(axis=1) + gyk**2)
            scale = gamma / np.where(norm > 0, norm, 1.0)
            Xp = np.clip(Xp + scale[:, None] * gx, low[:-1], high[:-1])
            yp = np.clip(yp + scale * gyk, low[-1], high[-1])
        X[rows], y[rows] = Xp, yp
    return X[order], y[order]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="boston_housing")
    p.add_argument("--n-batches", type=int, default=6, help="batches (6: 45 %%)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON")
    args = p.parse_args()

    from skpoison.attacks import get_preset
    from skpoison.datasets import split_and_standardize
    from skpoison.evaluation import load_dataset
    from skpoison.evaluation._curve import _PRESET_KEY, _unit_seeds

    key = _PRESET_KEY[args.dataset]
    preset = get_preset(key)
    seeds = _unit_seeds(0, 0)  # poisoning_curve(random_state=0), repetition 0
    split = split_and_standardize(
        *load_dataset(args.dataset), random_state=seeds["split_seed"]
    )
    X, y, Xv, yv = split.X_train, split.y_train, split.X_val, split.y_val
    batch = preset["batch_size"]
    n_p = args.n_batches * batch
    from skpoison.attacks import StealthyPoisoner

    t0 = time.perf_counter()
    ours = StealthyPoisoner(
        n_p / len(X), 1.0, **{k: v for k, v in preset.items() if k != "batch_size"},
        batch_size=batch, device="cpu", random_state=seeds["attack_seed"],
    ).fit(X, y, X_val=Xv, y_val=yv)  # fmt: skip
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    Xc, yc = attack(X, y, Xv, yv, ours.poison_indices_, batch,
                    preset["n_outer_steps"], preset["n_inner_steps"],
                    preset["inner_lr"], preset["outer_lr"])  # fmt: skip
    t_numpy = time.perf_counter() - t0
    dx = float(np.abs(Xc - ours.X_poison_).max())
    dy = float(np.abs(yc - ours.y_poison_).max())
    moved = float(np.abs(ours.X_poison_ - X[ours.poison_indices_]).max())
    # doc/reproduce.sh runs this from an export (no .git): it names the commit.
    commit = (
        os.environ.get("SKPOISON_COMMIT")
        or subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    print(f"{args.dataset}: {n_p} poison points ({args.n_batches} batches of {batch}), "
          f"T_out {preset['n_outer_steps']}, T {preset['n_inner_steps']}: largest "
          f"difference |x| {dx:.2e}, |y| {dy:.2e} (the points moved up to {moved:.2f} "
          f"from their starts); skpoison {t_ours:.1f} s, NumPy {t_numpy:.1f} s")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"crosscheck_attack_{args.dataset}.json"
    out.write_text(json.dumps(
        {"commit": commit, "dataset": args.dataset, "n_poison": n_p, "batch": batch,
         "preset": preset, "max_abs_diff_x": dx, "max_abs_diff_y": dy,
         "max_move_from_start": moved, "skpoison_s": t_ours, "numpy_s": t_numpy},
        indent=1) + "\n")  # fmt: skip
    print(f"-> {out}")


if __name__ == "__main__":
    main()
