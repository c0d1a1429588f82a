"""Poisoning curves: the paper's experimental protocol as one function.

:func:`poisoning_curve` runs Appendix E of the paper. For each repetition:

1. a random train / validation / test split (Table I's 50 / 15 / 35 %) and
   standardisation of X and y with the mean and standard deviation of the
   *clean* training part (:func:`~skpoison.datasets.split_and_standardize`);
2. for each alpha, the stealthy attack (:class:`~skpoison.attacks.StealthyPoisoner`
   with Table II's settings) replaces training points by poison points, batch
   after batch; the cumulative prefixes of the batches give the poisoning
   ratios (15 % is the first two 7.5 % batches of the 45 % run);
3. for each ratio and each defense, the defense is trained on the poisoned
   training set and the victim (Table III) on what it keeps; the test NMSE
   (Eq. 7) and the defense gain against "no defense" (Eq. 8) are recorded.

Units of work. The attack dominates the cost, so a unit is one attack: one
(repetition, alpha) pair, with all its ratios and defenses. Alg. 1 normalises
the detectability risk of an alpha < 1 attack by ``risk_ref``, the largest risk
of the alpha = 1 attack's batches on the same split, so the units run in two
phases: first alpha = 1 for every repetition (run even when 1 is not among the
alphas asked for, then only to obtain ``risk_ref``), then the other alphas,
each given its repetition's ``risk_ref``. Within a phase the units run in
parallel with joblib, on any backend (``"loky"`` processes, or
``"dask"`` for a dask.distributed cluster).

Reproducibility. Every seed of a unit (split, attack, victim, trusted items,
each defense) is drawn from ``np.random.SeedSequence([random_state, repetition,
...])``, so it depends on the unit only, never on the order in which units run
or on ``n_jobs``; the seeds are columns of the result, so any row can be
recomputed. Each unit also runs with one BLAS / torch thread (parallelism is
across units), because a different number of threads can change the last bits
of a floating-point reduction.

Divergence. Fixed-step gradient descent on a poisoned or filtered training set
can diverge. The victims raise :class:`~skpoison.exceptions.DivergenceError`
(non-finite or exploding loss, or a linear model's step beyond the stability
limit); a non-finite prediction or an NMSE above ``divergence_threshold``
counts too. Such a row is kept, with ``diverged=True`` and NaN NMSE and gain;
the report counts them and summarises with medians as well as means.

Scale. The NMSE is computed on the standardised targets (the scale on which the
paper's models are trained), where ``||y_test||^2 / n_test`` is close to 1.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
import zlib
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..datasets._split import _n_from_size
from ._checkpoint import StudyStore, config_hash
from ._registry import (
    SKLEARN_VICTIMS,
    build_defense,
    defense_label,
    inlier_mask,
    make_sklearn_victim,
    n_trusted_items,
)

__all__ = [
    "DATASETS",
    "PAPER_ALPHAS",
    "PAPER_RATIOS",
    "load_dataset",
    "poisoning_curve",
]

#: The paper's poisoning ratios: 0 to 45 % in 7 cumulative steps of 7.5 %.
PAPER_RATIOS: tuple[float, ...] = (0.0, 0.075, 0.15, 0.225, 0.3, 0.375, 0.45)
PAPER_ALPHAS: tuple[float, ...] = (1.0, 0.5, 0.3, 0.1)

#: Dataset names understood by :func:`load_dataset` and the ``skpoison`` command.
DATASETS: tuple[str, ...] = (
    "loan",
    "heart",
    "boston_housing",
    "appliances",
    "synthetic",
)
_PRESET_KEY = {
    "loan": "loan",
    "heart": "heart",
    "heart_disease": "heart",
    "boston_housing": "boston",
    "boston": "boston",
    "appliances": "appliances",
}
# The paper's synthetic set is trained with eta = 0.1 for 40 epochs (Appendix E),
# Boston Housing's setting; data without a preset gets the same, with Boston's
# attack settings and batches sized to the step between ratios.
_DEFAULT_PRESET = "boston"
SYNTHETIC_N_SAMPLES = 200

RESULT_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "repetition",
    "alpha",
    "ratio",
    "n_poison",
    "poison_fraction",
    "defense",
    "test_nmse",
    "defense_gain",
    "diverged",
    "n_kept",
    "poison_rejected",
    "clean_rejected",
    "risk_ref",
    "split_seed",
    "attack_seed",
    "victim_seed",
    "trusted_seed",
    "defense_seed",
    "error",
)
TIME_COLUMNS: tuple[str, ...] = ("fit_time", "attack_time")


def load_dataset(name: str, *, random_state: int = 0):
    """Load one of the paper's datasets (or the synthetic set) by name.

    Parameters
    ----------
    name : {"loan", "heart", "boston_housing", "appliances", "synthetic"}
        ``"loan"`` needs :func:`~skpoison.datasets.fetch_loan` to find or
        download the file. ``"synthetic"`` draws ``SYNTHETIC_N_SAMPLES`` points
        of :func:`~skpoison.datasets.make_poisoning_regression_1d`.
    random_state : int, default=0
        Seed of the synthetic draw.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> X, y = load_dataset("boston_housing")
    >>> X.shape
    (506, 13)
    """
    from .. import datasets

    if name == "synthetic":
        return datasets.make_poisoning_regression_1d(
            SYNTHETIC_N_SAMPLES, random_state=random_state
        )
    if name == "loan":
        # The paper used a random subset of 6722 rows (Table I); which rows is
        # not published, so a fixed draw of that size stands in for it.
        return datasets.fetch_loan(return_X_y=True, n_samples=6722, random_state=0)
    loaders = {
        "heart": datasets.load_heart,
        "heart_disease": datasets.load_heart,
        "boston_housing": datasets.load_boston_housing,
        "boston": datasets.load_boston_housing,
        "appliances": datasets.load_appliances,
    }
    if name not in loaders:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}.")
    return loaders[name](return_X_y=True)


@dataclass(frozen=True)
class _Study:
    """Everything a unit needs besides its (repetition, alpha)."""

    dataset: str
    preset_key: str | None
    model: str
    ratios: tuple[float, ...]
    batch_counts: tuple[int, ...]
    batch_size: int
    attack_params: dict
    victim_params: dict
    defenses: tuple
    labels: tuple[str, ...]
    random_state: int
    device: str
    divergence_threshold: float
    threads_per_unit: int | None
    extra: dict = field(default_factory=dict)


def _seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


def _unit_seeds(random_state: int, repetition: int) -> dict:
    names = ("split_seed", "attack_seed", "victim_seed", "trusted_seed")
    return {name: _seed(random_state, repetition, i) for i, name in enumerate(names)}


def _defense_seed(random_state: int, repetition: int, label: str) -> int:
    # crc32, not hash(): str hashes are salted per process.
    return _seed(random_state, repetition, 100, zlib.crc32(label.encode()))


_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"active": 0, "saved": None}


@contextmanager
def _limited_threads(n_threads: int | None):
    """Run with ``n_threads`` BLAS and torch threads (None: leave them alone).

    torch's thread count is global to the process: with a thread-based
    backend several units share it, so it is set by the first unit to enter
    and restored by the last to leave.
    """
    if n_threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    with _THREADS_LOCK:
        if _THREADS_STATE["active"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
        _THREADS_STATE["active"] += 1
        torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["active"] -= 1
            if _THREADS_STATE["active"] == 0:
                torch.set_num_threads(_THREADS_STATE["saved"])


def _make_victim(study: _Study, seed: int):
    from ..models import TorchLinearRegressor, TorchMLPRegressor

    if study.model in SKLEARN_VICTIMS:
        return make_sklearn_victim(study.model, study.victim_params)
    cls = TorchLinearRegressor if study.model == "linear" else TorchMLPRegressor
    victim = cls(**study.victim_params)
    params = victim.get_params()
    update = {"random_state": seed} if "random_state" in params else {}
    if "device" in params:
        update["device"] = study.device
    return victim.set_params(**update)


def _make_attacker(study: _Study, alpha: float, risk_ref, n_train: int, seed: int):
    from ..attacks import StealthyPoisoner

    n_poison = max(study.batch_counts) * study.batch_size
    params = dict(study.attack_params)
    if risk_ref is not None and math.isfinite(risk_ref) and risk_ref > 0:
        params["risk_ref"] = float(risk_ref)
    return StealthyPoisoner(
        poison_fraction=n_poison / n_train,
        alpha=float(alpha),
        model=(
            make_sklearn_victim(study.model, study.victim_params)
            if study.model in SKLEARN_VICTIMS
            else study.model
        ),
        batch_size=study.batch_size,
        device=study.device,
        random_state=seed,
        **params,
    )


def _poisoned_prefixes(attacker, X, y, X_val, y_val, batch_counts, batch_size):
    """Run the attack once; return {n_batches: (X_poisoned, y_poisoned, poison_idx)}.

    The smaller ratios are prefixes of the largest one (the paper's cumulative
    protocol): :meth:`StealthyPoisoner.resample_at` reads them off the fitted run.
    """
    attacker.fit(X, y, X_val=X_val, y_val=y_val)
    out = {}
    for k in sorted(set(batch_counts) - {0}):
        n = k * batch_size
        Xk, yk = attacker.resample_at(n)
        out[k] = (Xk, yk, np.asarray(attacker.poison_indices_[:n], dtype=np.intp))
    return out


def _clean_prefix(X, y):
    return X, y, np.zeros(0, dtype=np.intp)


def _evaluate(study, estimator, fit_params, X, y, X_test, y_test):
    """Fit, predict, score; divergence becomes a flag, not an exception."""
    from ..exceptions import DivergenceError
    from ..metrics import nmse

    try:
        estimator.fit(X, y, **fit_params)
        pred = np.asarray(estimator.predict(X_test), dtype=np.float64).ravel()
    except (DivergenceError, FloatingPointError) as exc:
        return math.nan, True, f"{type(exc).__name__}: {exc}"
    if not np.all(np.isfinite(pred)):
        return math.nan, True, "non-finite predictions"
    score = nmse(y_test, pred)
    if score > study.divergence_threshold:
        return math.nan, True, f"test NMSE {score:.3g} > divergence_threshold"
    return score, False, ""


def _run_unit(
    study: _Study, X, y, repetition: int, alpha: float, risk_ref, evaluate, clean
):
    """One attack and its evaluations.

    ``evaluate``: evaluate every defense at the poisoned ratios; ``clean``: at
    ratio 0 too (done once per repetition, in the alpha = 1 unit, since no
    point is poisoned there whatever alpha is).
    """
    from ..datasets import split_and_standardize
    from ..exceptions import DivergenceError

    seeds = _unit_seeds(study.random_state, repetition)
    with _limited_threads(study.threads_per_unit):
        split = split_and_standardize(X, y, random_state=seeds["split_seed"])
        Xtr, ytr = split.X_train, split.y_train
        n_train = Xtr.shape[0]
        t0 = time.perf_counter()
        attacker = _make_attacker(study, alpha, risk_ref, n_train, seeds["attack_seed"])
        attack_error = ""
        try:
            prefixes = _poisoned_prefixes(
                attacker,
                Xtr,
                ytr,
                split.X_val,
                split.y_val,
                study.batch_counts,
                study.batch_size,
            )
            unit_risk_ref = float(attacker.risk_ref_)
            if not math.isfinite(unit_risk_ref):  # nothing was poisoned
                unit_risk_ref = None
        except (DivergenceError, FloatingPointError) as exc:
            prefixes, unit_risk_ref = {}, None
            attack_error = f"attack: {type(exc).__name__}: {exc}"
        prefixes[0] = _clean_prefix(Xtr, ytr)
        attack_time = time.perf_counter() - t0
        result = {"risk_ref": unit_risk_ref, "rows": []}
        todo = [
            (ratio, k)
            for ratio, k in zip(study.ratios, study.batch_counts)
            if (clean if k == 0 else evaluate)
        ]
        if not todo:
            return result

        victim = _make_victim(study, seeds["victim_seed"])
        trusted_rng = np.random.default_rng(seeds["trusted_seed"])
        n_trusted = n_trusted_items(study.preset_key, n_train, split.X_val.shape[0])
        trusted = trusted_rng.choice(split.X_val.shape[0], n_trusted, replace=False)
        trusted_params = {
            "X_trusted": split.X_val[trusted],
            "y_trusted": split.y_val[trusted],
        }
        for ratio, k in todo:
            common = dict(
                dataset=study.dataset,
                model=study.model,
                repetition=repetition,
                alpha=float(alpha),
                ratio=float(ratio),
                n_poison=k * study.batch_size,
                poison_fraction=k * study.batch_size / n_train,
                risk_ref=unit_risk_ref,
                attack_time=attack_time,
                **seeds,
            )
            if k not in prefixes:  # the attack itself diverged
                for label in study.labels:
                    result["rows"].append(
                        _row(common, label, math.nan, True, attack_error, None, None)
                    )
                continue
            Xp, yp, poison_idx = prefixes[k]
            is_poison = np.zeros(n_train, dtype=bool)
            is_poison[poison_idx] = True
            for spec, label in zip(study.defenses, study.labels):
                dseed = _defense_seed(study.random_state, repetition, label)
                estimator, wants_trusted = build_defense(
                    spec, victim, random_state=dseed
                )
                fit_params = trusted_params if wants_trusted else {}
                t1 = time.perf_counter()
                score, diverged, error = _evaluate(
                    study, estimator, fit_params, Xp, yp, split.X_test, split.y_test
                )
                mask = None if diverged else inlier_mask(estimator, n_train)
                row = _row(common, label, score, diverged, error, mask, is_poison)
                row["defense_seed"] = dseed
                row["fit_time"] = time.perf_counter() - t1
                result["rows"].append(row)
    return result


def _row(common, label, score, diverged, error, mask, is_poison):
    row = dict(common, defense=label, test_nmse=score, diverged=bool(diverged))
    row.update(error=error, defense_seed=None, fit_time=math.nan)
    if mask is None:
        row.update(n_kept=None, poison_rejected=math.nan, clean_rejected=math.nan)
    else:
        n_poison = int(is_poison.sum())
        row["n_kept"] = int(mask.sum())
        row["poison_rejected"] = (
            float((~mask & is_poison).sum() / n_poison) if n_poison else math.nan
        )
        row["clean_rejected"] = float((~mask & ~is_poison).sum() / (~is_poison).sum())
    return row


def _unit_key(repetition: int, alpha: float) -> str:
    return f"rep{repetition:03d}_alpha{alpha!r}"


def _batch_plan(ratios, n_train, preset_key, batch_size=None):
    """Batch size and number of batches per ratio (cumulative prefixes).

    The batch is ``batch_size`` if given; else, for a paper dataset with the
    paper's 7.5 % steps, Table II's count; else the smallest step between the
    ratios times ``n_train``. Each ratio is then the nearest whole number of
    batches; two ratios on the same number are an error.
    """
    ratios = [float(r) for r in ratios]
    positive = sorted({r for r in ratios if r > 0})
    if not positive:
        return 1, tuple(0 for _ in ratios)
    step = float(np.diff([0.0, *positive]).min())
    if batch_size is None:
        if preset_key is not None and math.isclose(step, 0.075):
            from ..attacks._presets import get_preset

            batch_size = get_preset(preset_key)["batch_size"]
        else:
            batch_size = max(1, int(math.floor(step * n_train + 0.5)))
    batch_size = int(batch_size)
    counts = [int(math.floor(r * n_train / batch_size + 0.5)) for r in ratios]
    for r, k in zip(ratios, counts):
        if r > 0 and k == 0:
            raise ValueError(
                f"ratio {r} is below one poisoning batch ({batch_size} of "
                f"{n_train} training points)."
            )
    if len(set(counts)) != len(counts):
        raise ValueError(
            f"ratios {ratios} do not fall on distinct whole batches of "
            f"{batch_size} / {n_train} training points; use multiples of "
            f"{batch_size / n_train:.4g}."
        )
    if max(counts) * batch_size >= n_train:
        raise ValueError(
            f"the largest ratio {max(ratios)} would poison every training point."
        )
    # Off by more than the nearest whole point: the batches, not the data, moved it.
    moved = [
        (r, k * batch_size / n_train)
        for r, k in zip(ratios, counts)
        if abs(k * batch_size - r * n_train) > 0.5
    ]
    if moved:
        warnings.warn(
            f"ratios rounded to whole batches of {batch_size} of {n_train} training "
            "points: "
            + ", ".join(f"{r:g} -> {done:.4g}" for r, done in moved)
            + f"; multiples of {batch_size / n_train:.4g} are exact.",
            UserWarning,
            stacklevel=3,
        )
    return batch_size, tuple(counts)


def _check_fraction_list(values, name, *, low, high, low_closed=True):
    values = [float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64))]
    if not values:
        raise ValueError(f"{name} must not be empty.")
    for v in values:
        ok = (low <= v if low_closed else low < v) and v <= high
        if not (ok and math.isfinite(v)):
            bracket = "[" if low_closed else "("
            raise ValueError(
                f"every value of {name} must be in {bracket}{low}, {high}], got {v}."
            )
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has duplicates: {values}.")
    return tuple(values)


def _dataset_fingerprint(X, y) -> str:
    h = config_hash({"shape": list(X.shape)})
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(X).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return f"{h}-{digest.hexdigest()[:16]}"


def _run_phase(tasks, study, X, y, *, n_jobs, backend, store, bar, results):
    """Run ``tasks`` [(key, rep, alpha, risk_ref, evaluate, clean)], saving each."""
    from joblib import Parallel, delayed, parallel_config

    todo = []
    for task in tasks:
        key = task[0]
        if store is not None and store.is_done(key):
            results[key] = store.load(key)
            if bar is not None:
                bar.update(1)
        else:
            todo.append(task)
    if not todo:
        return

    def job(key, *args):
        return key, _run_unit(study, X, y, *args)

    config = {} if backend is None else {"backend": backend}
    with parallel_config(**config):
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        for key, result in parallel(delayed(job)(*task) for task in todo):
            if store is not None:
                store.save(key, result)
            results[key] = result
            if bar is not None:
                bar.update(1)


def poisoning_curve(
    data,
    *,
    model: str = "linear",
    alphas: Sequence[float] = PAPER_ALPHAS,
    ratios: Sequence[float] = PAPER_RATIOS,
    defenses: Sequence = (
        "none",
        "bayesclean",
        "trim",
        "sever",
        "proda",
        "duti",
        "huber",
    ),
    n_repetitions: int = 10,
    attack_params: dict | None = None,
    victim_params: dict | None = None,
    random_state: int = 0,
    n_jobs: int | None = None,
    backend: str | None = None,
    out_dir=None,
    overwrite: bool = False,
    device: str = "cpu",
    divergence_threshold: float = 1e6,
    threads_per_unit: int | None = 1,
    progress: bool = False,
):
    """Test NMSE and defense gain against the poisoning ratio, per alpha and defense.

    In the spirit of :func:`sklearn.model_selection.validation_curve`: one call
    runs the paper's whole protocol (Appendix E, see the module docstring) and
    returns a tidy table.

    Parameters
    ----------
    data : str or tuple (X, y)
        A dataset name from :data:`DATASETS` (the paper's presets apply) or
        arrays ``(X, y)`` (Boston Housing's presets, batches sized to the step
        between ``ratios``).
    model : {"linear", "mlp", "ols", "ridge", "lasso", "elasticnet"}, default="linear"
        The victim: the paper's LR or its DNN (n_features x 32 x 8 x 1),
        trained by gradient descent (Table III); or scikit-learn's
        ``LinearRegression``, ``Ridge``, ``Lasso`` or ``ElasticNet``
        (``"ols"`` ... ``"elasticnet"``), fitted by scikit-learn
        itself with ``victim_params`` as its parameters (e.g. ``{"alpha": 1.0}``),
        attacked through its exact solution, and wrapped by TRIM and SEVER.
    alphas : sequence of float in (0, 1], default=(1, 0.5, 0.3, 0.1)
        The attack's trade-off between effectiveness (1) and stealth.
    ratios : sequence of float in [0, 1), default=PAPER_RATIOS
        Poisoning ratios (fraction of training points replaced); multiples of
        the smallest step, obtained as cumulative prefixes of one attack.
    defenses : sequence of str or estimator, default=all but "bayesclean_paper"
        Names from :data:`~skpoison.evaluation.DEFENSE_NAMES`, regressors or
        defense objects (see :func:`~skpoison.evaluation.build_defense`).
        ``"none"`` is always evaluated: it is the reference of the gain.
    n_repetitions : int, default=10
        Random splits (the paper averages 10).
    attack_params : dict, default=None
        Overrides of the attack's Table II preset (e.g. ``n_outer_steps``).
    victim_params : dict, default=None
        Overrides of the victim's Table III preset (e.g. ``n_epochs``).
    random_state : int, default=0
        Root of every seed (see the module docstring).
    n_jobs : int, default=None
        Units run in parallel (joblib; -1 for all cores).
    backend : str, default=None
        A joblib backend name (``"loky"``, ``"threading"``, ``"dask"``, ...);
        None uses joblib's default or the active ``parallel_config``.
    out_dir : path-like, default=None
        If given, every finished unit is saved there at once, and a rerun with
        the same arguments resumes (see :class:`~skpoison.evaluation.StudyStore`).
    overwrite : bool, default=False
        Discard a different study found in ``out_dir`` instead of refusing.
    device : str, default="cpu"
        Torch device of the attack and the victims (``"cuda"`` for a GPU).
    divergence_threshold : float, default=1e6
        A test NMSE above this counts as divergence.
    threads_per_unit : int or None, default=1
        BLAS / torch threads in each unit; 1 makes results independent of
        ``n_jobs``; None leaves the thread settings alone.
    progress : bool, default=False
        Show a tqdm progress bar over units (work done, time left).

    Returns
    -------
    results : pandas.DataFrame
        One row per repetition x alpha x ratio x defense, with columns
        :data:`RESULT_COLUMNS` (``test_nmse``, ``defense_gain`` in percent,
        ``diverged``, the fraction of poison points and of clean points each
        defense rejected, ``risk_ref`` and every seed) plus the timings
        ``fit_time`` and ``attack_time`` (seconds).

    Raises
    ------
    ValueError
        Before any work, for bad arguments or data, e.g. a constant ``y``
        (standardised to all zeros, the NMSE of Eq. (7) is undefined).

    See Also
    --------
    skpoison.attacks.StealthyPoisoner : The attack.
    skpoison.evaluation.plot_poisoning_curve : Figures of the result.
    skpoison.evaluation.write_report : Markdown tables of the result.

    Examples
    --------
    >>> from skpoison.evaluation import poisoning_curve
    >>> df = poisoning_curve("synthetic", alphas=[1.0], ratios=[0.0, 0.1],
    ...                      defenses=["none", "bayesclean"], n_repetitions=1,
    ...                      attack_params={"n_outer_steps": 2})
    >>> df[["ratio", "defense"]].values.tolist()
    [[0.0, 'none'], [0.0, 'bayesclean'], [0.1, 'none'], [0.1, 'bayesclean']]
    """
    import pandas as pd

    if model not in ("linear", "mlp", *SKLEARN_VICTIMS):
        raise ValueError(
            f"model must be one of {['linear', 'mlp', *SKLEARN_VICTIMS]}, got {model!r}."
        )
    alphas = _check_fraction_list(alphas, "alphas", low=0.0, high=1.0, low_closed=False)
    ratios = tuple(sorted(_check_fraction_list(ratios, "ratios", low=0.0, high=0.99)))
    if int(n_repetitions) != n_repetitions or n_repetitions < 1:
        raise ValueError(
            f"n_repetitions must be a positive int, got {n_repetitions!r}."
        )
    if not isinstance(random_state, (int, np.integer)) or isinstance(
        random_state, bool
    ):
        raise TypeError(
            f"random_state must be an int (it is the root of every seed), got {random_state!r}."
        )
    specs = list(defenses)
    labels = [defense_label(s) for s in specs]
    if "none" not in labels:
        specs.insert(0, "none")
        labels.insert(0, "none")
    if len(set(labels)) != len(labels):
        raise ValueError(f"defense names must be unique, got {labels}.")
    for spec in specs:  # fail early on an unknown name
        if isinstance(spec, str):
            build_defense(spec, _probe_regressor())

    if isinstance(data, str):
        dataset = data
        X, y = load_dataset(data, random_state=random_state)
        preset_key = _PRESET_KEY.get(data)
        data_id = data
    else:
        from sklearn.utils.validation import check_X_y

        from .._validation import check_target

        X, y = check_X_y(*data, dtype=np.float64, y_numeric=True)
        y = check_target(y)
        if y.size > 1 and np.ptp(y) == 0:  # (one sample: the split says too few)
            # Standardised, a constant y is all zeros: the NMSE of Eq. (7)
            # (normalised by ||y_test||^2) is undefined for every unit.
            raise ValueError(
                f"y is constant (every value is {float(y[0])!r}): once standardised it is "
                "all zeros and the test NMSE (Eq. 7) is undefined. poisoning_curve "
                "needs a target that varies."
            )
        dataset, preset_key, data_id = "custom", None, _dataset_fingerprint(X, y)

    attack_preset, victim_preset = _presets(preset_key, model)
    attack_preset.pop("model", None)
    attack_preset.pop("batch_size", None)
    attack_params = dict(attack_params or {})
    user_batch = attack_params.pop("batch_size", None)
    attack_params = {**attack_preset, **attack_params}
    victim_params = {**victim_preset, **dict(victim_params or {})}

    # The same rounding as the split the units will make (split_and_standardize).
    n_train = _n_from_size(0.5, X.shape[0], name="train_size")
    batch_size, batch_counts = _batch_plan(ratios, n_train, preset_key, user_batch)

    study = _Study(
        dataset=dataset,
        preset_key=preset_key,
        model=model,
        ratios=ratios,
        batch_counts=batch_counts,
        batch_size=batch_size,
        attack_params=attack_params,
        victim_params=victim_params,
        defenses=tuple(specs),
        labels=tuple(labels),
        random_state=int(random_state),
        device=str(device),
        divergence_threshold=float(divergence_threshold),
        threads_per_unit=threads_per_unit,
    )
    store = None
    if out_dir is not None:
        config = dict(
            data=data_id,
            model=model,
            alphas=list(alphas),
            ratios=list(ratios),
            defenses=[s if isinstance(s, str) else repr(s) for s in specs],
            n_repetitions=int(n_repetitions),
            attack_params=attack_params,
            batch_size=batch_size,
            victim_params=victim_params,
            random_state=int(random_state),
            device=str(device),
            divergence_threshold=float(divergence_threshold),
            threads_per_unit=threads_per_unit,
        )
        store = StudyStore(out_dir, config, overwrite=overwrite)

    reps = range(int(n_repetitions))
    phase1 = [(_unit_key(r, 1.0), r, 1.0, None, 1.0 in alphas, True) for r in reps]
    other = [a for a in alphas if a != 1.0]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(phase1) + len(other) * len(reps), unit="attack", desc=dataset
        )
    results: dict = {}
    try:
        _run_phase(
            phase1,
            study,
            X,
            y,
            n_jobs=n_jobs,
            backend=backend,
            store=store,
            bar=bar,
            results=results,
        )
        phase2 = [
            (_unit_key(r, a), r, a, results[phase1[r][0]]["risk_ref"], True, False)
            for r in reps
            for a in other
        ]
        _run_phase(
            phase2,
            study,
            X,
            y,
            n_jobs=n_jobs,
            backend=backend,
            store=store,
            bar=bar,
            results=results,
        )
    finally:
        if bar is not None:
            bar.close()

    rows = []
    for r in reps:
        first = results[_unit_key(r, 1.0)]["rows"]
        if 1.0 in alphas:
            rows += first
        for a in other:
            rows += [dict(row, alpha=a) for row in first if row["ratio"] == 0.0]
            rows += results[_unit_key(r, a)]["rows"]
    return _tidy(pd.DataFrame(rows), alphas, labels)


_GD_ONLY = ("n_inner_steps", "inner_lr")


def _presets(preset_key, model):
    """Table II and III settings; data without its own preset borrows one.

    The paper ran its DNN on Loan and Heart only: an MLP on other data gets
    Heart's DNN settings, a linear model Boston's LR settings (the paper's
    synthetic experiments also train with eta = 0.1 for 40 epochs).
    """
    from ..attacks._presets import ATTACK_PRESETS, get_preset, get_victim_preset

    if model in SKLEARN_VICTIMS:
        # The linear attack settings; the victim is fitted to its optimum by
        # scikit-learn, so the GD steps and the Table III training do not apply.
        attack, _ = _presets(preset_key, "linear")
        return {k: v for k, v in attack.items() if k not in _GD_ONLY}, {}
    key = preset_key if (preset_key, model) in ATTACK_PRESETS else None
    if key is None:
        key = "heart" if model == "mlp" else _DEFAULT_PRESET
    return get_preset(key, model), get_victim_preset(key, model)


def _probe_regressor():
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def _tidy(df, alphas, labels):
    """Order rows and columns, and compute the defense gain against "none"."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, *TIME_COLUMNS])
    df["defense"] = pd.Categorical(df["defense"], categories=list(labels), ordered=True)
    alpha_rank = {a: i for i, a in enumerate(alphas)}
    df["_alpha_rank"] = df["alpha"].map(alpha_rank)
    df = df.sort_values(["repetition", "_alpha_rank", "ratio", "defense"])
    df = df.drop(columns="_alpha_rank").reset_index(drop=True)
    ref = df[df["defense"] == "none"].set_index(["repetition", "alpha", "ratio"])[
        "test_nmse"
    ]
    key = pd.MultiIndex.from_frame(df[["repetition", "alpha", "ratio"]])
    reference = ref.reindex(key).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        df["defense_gain"] = (
            100.0 * (reference - df["test_nmse"].to_numpy()) / reference
        )
    df["defense"] = df["defense"].astype(str)
    for col in ("n_kept", "defense_seed"):
        df[col] = df[col].astype("Int64")
    return df[[*RESULT_COLUMNS, *TIME_COLUMNS]]
