"""Write stealthy_reference.npz: poison points of StealthyPoisoner on small fixed problems.

The attack base refactor must not change a single bit of the poison points when
the attacker's validation set is passed explicitly (what the evaluation does).
This script was run at commit 5f8b9dc (main before the refactor):

    python tests/attacks/data/make_stealthy_reference.py

and ``tests/attacks/test_stealthy.py::test_poison_points_match_the_stored_reference``
compares today's code against the file. Rerun it only if the attack's numbers are
meant to change, and say so in the commit message.
"""

from pathlib import Path

import numpy as np

from skpoison.attacks import StealthyPoisoner
from skpoison.datasets import make_poisoning_regression_1d

# name -> StealthyPoisoner parameters; every case passes X_val, y_val to fit.
CASES = {
    "linear_alpha1": dict(poison_fraction=0.15, batch_size=0.075),
    "linear_alpha05": dict(poison_fraction=0.15, alpha=0.5, batch_size=0.075),
    "linear_bounds": dict(poison_fraction=0.1, bounds=(-2.0, 2.0), outer_lr=0.5),
    "mlp": dict(poison_fraction=0.1, model="mlp", hidden_layer_sizes=(4,)),
}
COMMON = dict(n_outer_steps=6, n_inner_steps=15, device="cpu", random_state=0)


def data():
    """60 training, 20 validation points of the paper's 1-d set, 2 features."""
    X, y = make_poisoning_regression_1d(80, random_state=0)
    X = np.column_stack([X, np.sin(X[:, 0])])
    return X[:60], y[:60], X[60:], y[60:]


def compute():
    X, y, X_val, y_val = data()
    out = {}
    for name, params in CASES.items():
        att = StealthyPoisoner(**params, **COMMON).fit(X, y, X_val, y_val)
        out[f"{name}__X_poison"] = att.X_poison_
        out[f"{name}__y_poison"] = att.y_poison_
        out[f"{name}__poison_indices"] = att.poison_indices_
        out[f"{name}__risk_ref"] = np.array(att.risk_ref_)
        out[f"{name}__loss_ref"] = att.loss_ref_
        out[f"{name}__sigma"] = np.array(att.sigma_)
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("stealthy_reference.npz")
    np.savez(path, **compute())
    print(f"wrote {path}")
