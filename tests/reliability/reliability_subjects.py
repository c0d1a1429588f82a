"""Every public estimator and data-taking function, behind one small interface.

A *subject* runs one public estimator or function on ``(X, y)`` and returns its
numeric outputs (predictions, masks, scores, poison points, ...) as a dict of
arrays. The reliability tests feed the same subjects good and bad inputs:

- ``run(X, y)`` must either raise a ``ValueError``/``TypeError`` whose message
  names the faulty input, or return outputs that are all finite;
- ``fitted(X, y)`` returns the fitted object (for persistence tests) and
  ``outputs(obj, X)`` reads its outputs again.

Sizes are tiny on purpose: each call must take milliseconds, not seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

N_SAMPLES = 30
N_FEATURES = 3


def make_data(n_samples=N_SAMPLES, n_features=N_FEATURES, seed=0):
    """A small, well-posed linear problem."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    y = X @ np.linspace(1.0, -1.0, n_features) + 0.3 * rng.normal(size=n_samples)
    return X, y


def trusted_for(X, n=6, seed=1):
    """A clean trusted set with as many features as ``X`` (for DUTI)."""
    d = X.shape[-1] if getattr(X, "ndim", 0) >= 2 else 1
    Xt, yt = make_data(n, d, seed=seed)
    return Xt, yt


def _arrays(obj, names):
    out = {}
    for name in names:
        value = getattr(obj, name)
        out[name] = np.asarray(value)
    return out


@dataclass
class Subject:
    """One public estimator or function under test."""

    name: str
    fit: Callable[[Any, Any], Any]  # (X, y) -> fitted object (or raw outputs)
    outputs: Callable[[Any, Any], dict]  # (fitted, X) -> {name: array}
    uses: tuple = ("X", "y")  # which of X, y the subject reads
    min_samples: int = 1  # smallest n it accepts (below: clear error)
    random: bool = False  # has a random_state
    torch: bool = False  # holds torch state
    tags: set = field(default_factory=set)

    def run(self, X, y):
        fitted = self.fit(X, y)
        return self.outputs(fitted, X)

    def __repr__(self):
        return self.name


# --------------------------------------------------------------- estimators
def _victim_linear(**kw):
    from skpoison.models import TorchLinearRegressor

    return TorchLinearRegressor(learning_rate=0.1, n_epochs=5, **kw)


def _victim_mlp(**kw):
    from skpoison.models import TorchMLPRegressor

    return TorchMLPRegressor(
        hidden_layer_sizes=(4,), n_epochs=5, learning_rate=0.05, random_state=0, **kw
    )


def _predict_outputs(extra=()):
    def outputs(est, X):
        return {"predict": np.asarray(est.predict(X)), **_arrays(est, extra)}

    return outputs


def _defense_outputs(extra=()):
    def outputs(est, X):
        return _arrays(est, ("inlier_mask_", "scores_", *extra))

    return outputs


def _bayesclean(**kw):
    from skpoison.defenses import BayesCleanFilter

    return BayesCleanFilter(**kw)


def _trim(**kw):
    from skpoison.defenses import TrimRegressor

    return TrimRegressor(**{"reject_fraction": 0.2, **kw})


def _itrim(**kw):
    from skpoison.defenses import ITrimRegressor

    return ITrimRegressor(**{"max_poison_fraction": 0.2, "step": 0.05, **kw})


def _sever(**kw):
    from skpoison.defenses import SeverFilter

    return SeverFilter(**{"reject_fraction": 0.2, "n_rounds": 2, **kw})


def _proda(**kw):
    from skpoison.defenses import ProdaRegressor

    return ProdaRegressor(
        **{
            "reject_fraction": 0.2,
            "n_groups": 8,
            "group_size": 5,
            "random_state": 0,
            **kw,
        }
    )


def _duti(**kw):
    from skpoison.defenses import DutiFilter

    return DutiFilter(**{"reject_fraction": 0.2, "n_gammas": 5, "max_iter": 50, **kw})


def _defended(**kw):
    from skpoison.defenses import DefendedRegressor

    return DefendedRegressor(_trim(), _victim_linear(), **kw)


def _huber(**kw):
    from skpoison.defenses import make_huber_baseline

    return make_huber_baseline([1.35, 3.0], cv=2, **kw)


def _attack(**kw):
    from skpoison.attacks import StealthyPoisoner

    params = dict(
        poison_fraction=0.1,
        n_inner_steps=5,
        n_outer_steps=2,
        batch_size=2,
        device="cpu",
        random_state=0,
    )
    return StealthyPoisoner(**{**params, **kw})


def _baseline(name):
    """A factory of the baseline attack ``name`` (Flip, StatP, noise)."""

    def factory(**kw):
        from skpoison import attacks

        params = {"poison_fraction": 0.1, "random_state": 0, **kw}
        return getattr(attacks, name)(**params)

    return factory


def _optp(**kw):
    from skpoison.attacks import OptPPoisoner

    return OptPPoisoner(
        **{
            "poison_fraction": 0.1,
            "min_iter": 1,
            "max_iter": 2,
            "random_state": 0,
            **kw,
        }
    )


def _attack_outputs(att, X):
    X_p, y_p = att.resample_at()
    return {
        "X_poison_": att.X_poison_,
        "y_poison_": att.y_poison_,
        "poison_indices_": att.poison_indices_,
        "X_resampled": X_p,
        "y_resampled": y_p,
    }


def _fit(factory, **fit_kw):
    def fit(X, y):
        return factory().fit(X, y, **fit_kw)

    return fit


def _fit_duti(X, y):
    Xt, yt = trusted_for(X)
    return _duti().fit(X, y, X_trusted=Xt, y_trusted=yt)


def _fit_standardizer(X, y):
    from skpoison.datasets import PaperStandardizer

    return PaperStandardizer().fit(X, y)


def _standardizer_outputs(scaler, X):
    return {"X_std": scaler.transform(X), "y_mean_": scaler.y_mean_}


ESTIMATORS = [
    Subject(
        "TorchLinearRegressor",
        _fit(_victim_linear),
        _predict_outputs(("coef_",)),
        torch=True,
    ),
    Subject(
        "TorchMLPRegressor",
        _fit(_victim_mlp),
        _predict_outputs(),
        random=True,
        torch=True,
    ),
    Subject(
        "BayesCleanFilter",
        _fit(_bayesclean),
        _defense_outputs(("predictive_mean_", "predictive_std_")),
        min_samples=2,
    ),
    Subject(
        "TrimRegressor",
        _fit(_trim),
        _predict_outputs(("inlier_mask_", "scores_")),
        min_samples=2,
        random=True,
    ),
    Subject(
        "ITrimRegressor",
        _fit(_itrim),
        _predict_outputs(("inlier_mask_", "scores_")),
        min_samples=2,
        random=True,
    ),
    Subject(
        "SeverFilter", _fit(_sever), _defense_outputs(), min_samples=2, random=True
    ),
    Subject(
        "ProdaRegressor",
        _fit(_proda),
        _predict_outputs(("inlier_mask_", "scores_")),
        min_samples=5,
        random=True,
    ),
    Subject("DutiFilter", _fit_duti, _defense_outputs(("corrections_",))),
    Subject(
        "DefendedRegressor",
        _fit(_defended),
        _predict_outputs(("inlier_mask_",)),
        min_samples=2,
        torch=True,
    ),
    Subject("make_huber_baseline", _fit(_huber), _predict_outputs(), min_samples=4),
    Subject(
        "StealthyPoisoner",
        _fit(_attack),
        _attack_outputs,
        min_samples=8,
        random=True,
        torch=True,
    ),
    *(
        Subject(name, _fit(_baseline(name)), _attack_outputs, random=True)
        for name in ("FlipPoisoner", "StatPPoisoner", "NoisePoisoner")
    ),
    Subject("OptPPoisoner", _fit(_optp), _attack_outputs, random=True),
    Subject(
        "PaperStandardizer", _fit_standardizer, _standardizer_outputs, min_samples=1
    ),
]


# ---------------------------------------------------------------- functions
def _split_and_standardize(X, y):
    from skpoison.datasets import split_and_standardize

    return split_and_standardize(X, y, random_state=0)


def _split_outputs(split, X):
    return {k: split[k] for k in ("X_train", "X_val", "X_test", "y_train", "y_test")}


def _train_val_test_split(X, y):
    from skpoison.datasets import train_val_test_split

    return train_val_test_split(X, y, random_state=0)


def _parts_outputs(parts, X):
    return {
        f"part{i}": p.toarray() if hasattr(p, "toarray") else np.asarray(p)
        for i, p in enumerate(parts)
    }


def _nmse_true(X, y):
    from skpoison.metrics import nmse

    y_pred = np.linspace(-1.0, 1.0, np.shape(y)[0]) if np.ndim(y) else 0.0
    return nmse(y, y_pred)


def _nmse_pred(X, y):
    from skpoison.metrics import nmse

    y_true = np.linspace(-1.0, 1.0, np.shape(y)[0]) + 0.5 if np.ndim(y) else 1.0
    return nmse(y_true, y)


def _value(v, X):
    return {"value": np.asarray(v)}


def _residual_std(X, y):
    from skpoison.attacks import residual_std

    return residual_std(y, n_features=1)


def _risk(X, y):
    from skpoison.attacks import detectability_risk

    return detectability_risk(np.asarray(y), sigma=1.0)


def _engine(X, y):
    """A hypergradient engine on (X, y) as its fixed set; value and gradient."""
    from skpoison.attacks import make_engine

    engine = make_engine("linear", X, y, X, y, n_steps=5, lr=0.1)
    val, gX, gy = engine.value_and_grad(np.asarray(X)[:2], np.asarray(y)[:2])
    return {"value": float(val), "gX": gX.numpy(), "gy": gy.numpy()}


def _unrolled_engine(X, y):
    from skpoison.attacks import make_engine

    engine = make_engine(
        "mlp", X, y, X, y, n_steps=3, lr=0.05, hidden_layer_sizes=(3,), random_state=0
    )
    val, gX, gy = engine.value_and_grad(np.asarray(X)[:2], np.asarray(y)[:2])
    return {"value": float(val), "gX": gX.numpy(), "gy": gy.numpy()}


def _save_load(fmt):
    def run(X, y):
        import tempfile
        from pathlib import Path

        from skpoison.datasets import load_poisoned_dataset, save_poisoned_dataset

        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"poisoned.{fmt}"
            save_poisoned_dataset(path, X, y, [0], note="reliability")
            data = load_poisoned_dataset(path)
        return {"data": data.data, "target": data.target, "is_poison": data.is_poison}

    return run


def _curve(X, y):
    from skpoison.evaluation import poisoning_curve

    df = poisoning_curve(
        (X, y),
        alphas=[1.0],
        ratios=[0.0, 0.2],
        defenses=["none"],
        n_repetitions=1,
        attack_params={"n_outer_steps": 1, "n_inner_steps": 3},
        victim_params={"n_epochs": 3},
    )
    return {"test_nmse": df["test_nmse"].to_numpy(dtype=float)}


FUNCTIONS = [
    Subject(
        "split_and_standardize", _split_and_standardize, _split_outputs, min_samples=3
    ),
    Subject(
        "train_val_test_split",
        _train_val_test_split,
        _parts_outputs,
        min_samples=3,
        tags={"passthrough"},
    ),
    Subject("nmse(y_true)", _nmse_true, _value, uses=("y",)),
    Subject("nmse(y_pred)", _nmse_pred, _value, uses=("y",)),
    Subject("residual_std", _residual_std, _value, uses=("y",), min_samples=3),
    Subject("detectability_risk", _risk, _value, uses=("y",)),
    Subject("make_engine(linear)", _engine, lambda v, X: v),
    Subject("make_engine(mlp)", _unrolled_engine, lambda v, X: v),
    Subject("save_poisoned_dataset(npz)", _save_load("npz"), lambda v, X: v),
    Subject("save_poisoned_dataset(csv)", _save_load("csv"), lambda v, X: v),
    Subject("poisoning_curve", _curve, lambda v, X: v, min_samples=8, tags={"slowish"}),
]

SUBJECTS = ESTIMATORS + FUNCTIONS
BY_NAME = {s.name: s for s in SUBJECTS}
