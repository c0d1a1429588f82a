"""Poisoning curves: the paper's experimental protocol as one function.

:func:`poisoning_curve` runs Appendix E of the paper. For each repetition:

1. a random train / validation / test split (Table I's 50 / 15 / 35 %) and
   standardisation of X and y with the mean and standard deviation of the
   *clean* training part (:func:`~skpoison.datasets.split_and_standardize`);
2. for each attack (by default the stealthy attack,
   :class:`~skpoison.attacks.StealthyPoisoner` with Table II's settings) and
   each alpha, the attack replaces training points by poison points, batch
   after batch; the cumulative prefixes of the batches give the poisoning
   ratios (15 % is the first two 7.5 % batches of the 45 % run). An attack
   without a stealth factor runs once, reported at alpha = 1;
3. for each ratio and each defense, the defense is trained on the poisoned
   training set and the victim (Table III) on what it keeps; the test NMSE
   (Eq. 7) and the defense gain against "no defense" (Eq. 8) are recorded.

Units of work. The attack dominates the cost, so a unit is one attack run: one
(repetition, attack, alpha) triple, with all its ratios and defenses
(``_plan`` lays out the grid, ``_run_unit`` runs one). Alg. 1 normalises
the detectability risk of an alpha < 1 attack by ``risk_ref``, the largest risk
of the alpha = 1 attack's batches on the same split, so the units run in two
phases: first alpha = 1 for every repetition and attack (run even when 1 is not
among the alphas asked for, then only to obtain ``risk_ref``), then the other
alphas, each given its repetition's ``risk_ref``. Within a phase the units run in
parallel with joblib, on any backend (``"loky"`` processes, or
``"dask"`` for a dask.distributed cluster).

Adaptive attacks (``adaptive=True``, issue #15). For each attack that takes a
``defense`` and each defense it can follow (BayesClean, TRIM, SEVER, Proda,
DUTI), one more unit per (repetition, alpha): the same attack, seeds and
``risk_ref``, told the defense (as the study builds it, seed included, and
DUTI's trusted items), and evaluated on that defense and on "none" (the
reference of its gain). Its rows have ``adaptive=True``; the ordinary rows are
exactly those of the study without ``adaptive``.

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

import inspect
import math
import threading
import time
import warnings
import zlib
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone

from ..datasets._split import _n_from_size
from ._checkpoint import StudyStore, config_hash
from ._registry import (
    SKLEARN_VICTIMS,
    adaptive_target,
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
    "attack",
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
#: Columns of an adaptive study (``adaptive=True``) only: whether the row's
#: attack was adapted to the row's defense, and the test NMSE of the undefended
#: victim on the same poisoned set (the reference of the row's gain).
ADAPTIVE_COLUMNS: tuple[str, ...] = ("adaptive", "undefended_nmse")


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
    """Everything a unit needs besides its (repetition, attack, alpha)."""

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
    attacks: tuple
    attack_labels: tuple[str, ...]
    # The alphas each attack is reported at: the study's alphas for an attack
    # with a stealth factor, (1.0,) for one without (it ignores detectability,
    # which is what alpha = 1 means in Eq. 4).
    attack_alphas: tuple[tuple[float, ...], ...]
    random_state: int
    device: str
    divergence_threshold: float
    threads_per_unit: int | None
    # Poison points at each ratio: ``batch_counts * batch_size`` for the
    # replacement convention; ``round(r n_tr / (1 - r))`` for injection.
    n_poisons: tuple[int, ...] = ()
    ratio_convention: str = "replacement"
    extra: dict = field(default_factory=dict)
    # Adaptive studies: whether the table has the adaptive columns, the attacks
    # that take a ``defense`` and the defenses they are adapted to (indices).
    adaptive: bool = False
    adaptive_attacks: tuple[int, ...] = ()
    adaptive_targets: tuple[int, ...] = ()

    def __post_init__(self):
        if not self.n_poisons:
            counts = tuple(k * self.batch_size for k in self.batch_counts)
            object.__setattr__(self, "n_poisons", counts)


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


def _make_attacker(
    study: _Study, attack: int, alpha: float, risk_ref, n_train, seed, defense=None
):
    """The unit's attack: what the protocol decides is set, the rest is the spec's.

    ``defense`` (an unfitted skpoison defense) makes it the adaptive attack
    against that defense.
    """
    from ._registry import build_attack

    model = study.model
    if model in SKLEARN_VICTIMS:  # the estimator itself, as the victim trains
        model = make_sklearn_victim(model, study.victim_params)
    attacker = build_attack(
        study.attacks[attack], model=model, attack_params=study.attack_params
    )
    n_poison = max(study.n_poisons)
    if study.ratio_convention == "injection":
        attacker = _injecting(attacker, n_train - n_poison)
    has = attacker.get_params()
    update = {"poison_fraction": n_poison / n_train, "random_state": seed}
    optional = {"alpha": float(alpha), "batch_size": study.batch_size}
    optional["device"] = study.device
    if risk_ref is not None and math.isfinite(risk_ref) and risk_ref > 0:
        optional["risk_ref"] = float(risk_ref)
    update.update({k: v for k, v in optional.items() if k in has})
    if defense is not None:
        update["defense"] = clone(defense)
    return attacker.set_params(**update)


def _poisoned_prefixes(
    attacker, X, y, X_val, y_val, n_poisons, n_clean=None, trusted=None
):
    """Run the attack once; return {n_poison: (X_poisoned, y_poisoned, poison_idx)}.

    The smaller ratios are prefixes of the largest one (the paper's cumulative
    protocol): :meth:`~skpoison.attacks.BasePoisoner.resample_at` reads them off
    the fitted run. An attack whose ``fit`` takes ``X_val`` gets the split's
    validation set (the paper's ``D_val``); one whose ``fit`` takes
    ``X_trusted`` gets ``trusted`` (DUTI's trusted items, for an adaptive
    attack), if given.

    Injection (``n_clean`` given): ``X`` is the clean training set (its first
    ``n_clean`` rows) followed by the copies the attack replaces; a prefix
    keeps the clean rows and the first ``n`` poison points only (the copies
    not yet replaced are dropped), the poison rows last.
    """
    fit_params = {"X_val": X_val, "y_val": y_val, **(trusted or {})}
    accepted = inspect.signature(attacker.fit).parameters
    attacker.fit(X, y, **{k: v for k, v in fit_params.items() if k in accepted})
    out = {}
    for n in sorted(set(n_poisons) - {0}):
        Xk, yk = attacker.resample_at(n)
        idx = np.asarray(attacker.poison_indices_[:n], dtype=np.intp)
        if n_clean is None:
            out[n] = (Xk, yk, idx)
            continue
        if idx.size and idx.min() < n_clean:  # the contract of _injecting
            raise RuntimeError(
                f"{type(attacker).__name__} replaced a clean row under the "
                "injection convention."
            )
        rows = np.concatenate([np.arange(n_clean), idx])
        out[n] = (Xk[rows], yk[rows], np.arange(n_clean, n_clean + n))
    return out


def _injecting(attacker, n_clean: int):
    """``attacker``, made to replace only rows ``n_clean`` and after.

    Under the injection convention the attack is given the clean training set
    followed by copies of some of its points (the poison points' starting
    values, as Alg. 4's ``initDp`` clones them) and may replace only the
    copies: a subclass whose held-out rows (never replaced) include the clean
    ones (:meth:`~skpoison.attacks.BasePoisoner._held_out_rows`).
    """
    from ..attacks import BasePoisoner

    base = type(attacker)
    if not isinstance(attacker, BasePoisoner):
        raise ValueError(
            "ratio_convention='injection' needs attacks derived from "
            f"skpoison.attacks.BasePoisoner, got {base.__name__}."
        )

    def _held_out_rows(self, X, y, rng, **fit_params):
        held = base._held_out_rows(self, X, y, rng, **fit_params)
        return np.union1d(held, np.arange(n_clean))

    injecting = type(
        base.__name__,
        (base,),
        {"_held_out_rows": _held_out_rows, "__module__": base.__module__},
    )
    return injecting(**attacker.get_params())


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


def _run_unit(study: _Study, X, y, unit: _Unit, risk_ref):
    """One attack and its evaluations (``unit.evaluate``: at the poisoned
    ratios; ``unit.clean``: at ratio 0 too, done once per repetition)."""
    from ..datasets import split_and_standardize

    seeds = _unit_seeds(study.random_state, unit.repetition)
    with _limited_threads(study.threads_per_unit):
        split = split_and_standardize(X, y, random_state=seeds["split_seed"])
        trusted = _trusted_items(study, split, seeds["trusted_seed"])
        victim = _make_victim(study, seeds["victim_seed"])
        defenses = _unit_defenses(study, unit)
        defense = None
        if unit.target is not None:
            # The attacker knows the defense it faces, seed included.
            _, spec, dseed = defenses[-1]
            built, _ = build_defense(spec, victim, random_state=dseed)
            defense = adaptive_target(built)
        attacked = _attack_split(
            study, unit, split, risk_ref, seeds["attack_seed"], defense, trusted
        )
        todo = [
            (ratio, n)
            for ratio, n in zip(study.ratios, study.n_poisons)
            if (unit.clean if n == 0 else unit.evaluate)
        ]
        context = dict(victim=victim, defenses=defenses, trusted=trusted)
        rows = (
            _evaluate_ratios(study, unit, split, attacked, todo, seeds, **context)
            if todo
            else []
        )
    return {"risk_ref": attacked["risk_ref"], "rows": rows}


def _trusted_items(study, split, seed):
    """DUTI's trusted items: a draw from the validation set (Appendix E)."""
    n_train = split.X_train.shape[0]
    n_trusted = n_trusted_items(study.preset_key, n_train, split.X_val.shape[0])
    trusted = np.random.default_rng(seed).choice(
        split.X_val.shape[0], n_trusted, replace=False
    )
    return {"X_trusted": split.X_val[trusted], "y_trusted": split.y_val[trusted]}


def _unit_defenses(study, unit):
    """The unit's defenses as ``[(label, spec, seed)]``.

    Every defense for an ordinary unit; for an adaptive one "none" (the
    reference of the gain) and, last, the defense its attack knows, with the
    seed it has in every other unit.
    """
    chosen = [
        i
        for i, label in enumerate(study.labels)
        if unit.target is None or (label == "none" and i != unit.target)
    ]
    if unit.target is not None:
        chosen.append(unit.target)
    return [
        (
            study.labels[i],
            study.defenses[i],
            _defense_seed(study.random_state, unit.repetition, study.labels[i]),
        )
        for i in chosen
    ]


def _attack_split(study, unit, split, risk_ref, seed, defense, trusted):
    """The poisoned prefixes of one split; an attack that diverges leaves none.

    ``defense``: the one an adaptive attack knows (None: the ordinary attack);
    it also gets DUTI's ``trusted`` items, the ordinary attack only ``D_val``.
    """
    from ..exceptions import DivergenceError

    Xtr, ytr = split.X_train, split.y_train
    t0 = time.perf_counter()
    Xa, ya, n_clean = Xtr, ytr, None
    if study.ratio_convention == "injection":
        # Copies of distinct clean points (initDp), appended for the attack to
        # replace; the same for every alpha of the split (its attack seed).
        n_clean = Xtr.shape[0]
        copies = np.random.default_rng(seed).choice(
            n_clean, max(study.n_poisons), replace=False
        )
        Xa, ya = np.vstack([Xtr, Xtr[copies]]), np.concatenate([ytr, ytr[copies]])
    attacker = _make_attacker(
        study, unit.attack, unit.alpha, risk_ref, Xa.shape[0], seed, defense=defense
    )
    error = ""
    try:
        prefixes = _poisoned_prefixes(
            attacker,
            Xa,
            ya,
            split.X_val,
            split.y_val,
            study.n_poisons,
            n_clean,
            trusted=None if defense is None else trusted,
        )
        unit_risk_ref = float(getattr(attacker, "risk_ref_", math.nan))
        if not math.isfinite(unit_risk_ref):  # nothing poisoned, or no R_ref
            unit_risk_ref = None
    except (DivergenceError, FloatingPointError) as exc:
        prefixes, unit_risk_ref = {}, None
        error = f"attack: {type(exc).__name__}: {exc}"
    prefixes[0] = _clean_prefix(Xtr, ytr)
    return dict(
        prefixes=prefixes,
        risk_ref=unit_risk_ref,
        error=error,
        time=time.perf_counter() - t0,
    )


def _evaluate_ratios(
    study, unit, split, attacked, todo, seeds, *, victim, defenses, trusted
):
    """Every defense of ``defenses`` at every ratio of ``todo``: the result rows."""
    n_train = split.X_train.shape[0]
    rows = []
    for ratio, k in todo:
        # The training set the defenses get: n_train rows when poison points
        # replace clean ones, n_train + k when they are injected.
        n_set = n_train + k if study.ratio_convention == "injection" else n_train
        common = dict(
            dataset=study.dataset,
            model=study.model,
            attack=study.attack_labels[unit.attack],
            repetition=unit.repetition,
            alpha=float(unit.alpha),
            ratio=float(ratio),
            n_poison=k,
            poison_fraction=k / n_set,
            risk_ref=attacked["risk_ref"],
            attack_time=attacked["time"],
            **seeds,
        )
        if k not in attacked["prefixes"]:  # the attack itself diverged
            for label, *_ in defenses:
                rows.append(
                    _row(common, label, math.nan, True, attacked["error"], None, None)
                )
            continue
        Xp, yp, poison_idx = attacked["prefixes"][k]
        is_poison = np.zeros(n_set, dtype=bool)
        is_poison[poison_idx] = True
        for label, spec, dseed in defenses:
            estimator, wants_trusted = build_defense(spec, victim, random_state=dseed)
            fit_params = trusted if wants_trusted else {}
            t1 = time.perf_counter()
            score, diverged, error = _evaluate(
                study, estimator, fit_params, Xp, yp, split.X_test, split.y_test
            )
            mask = None if diverged else inlier_mask(estimator, n_set)
            row = _row(common, label, score, diverged, error, mask, is_poison)
            row["defense_seed"] = dseed
            row["fit_time"] = time.perf_counter() - t1
            rows.append(row)
    return rows


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


@dataclass(frozen=True)
class _Unit:
    """One attack run: (repetition, attack, alpha) and what to evaluate.

    ``reference`` is the key of the unit whose ``risk_ref`` this one needs
    (the same attack at alpha = 1 on the same split, Alg. 1), or None.
    """

    repetition: int
    attack: int
    alpha: float
    evaluate: bool
    clean: bool
    reference: str | None = None
    #: Index of the defense an adaptive unit's attack knows (None: ordinary).
    target: int | None = None

    def key(self, study: _Study) -> str:
        label = study.attack_labels[self.attack]
        key = f"rep{self.repetition:03d}_{label}_alpha{self.alpha!r}"
        if self.target is not None:
            key += f"_adaptive-{study.labels[self.target]}"
        return key


def _plan(study: _Study, n_repetitions: int):
    """The grid of units, in two phases.

    Phase 1: every attack at alpha = 1 (run for an attack with a stealth
    factor even when 1 is not among its alphas, then only for its ``risk_ref``);
    the first attack's unit also evaluates ratio 0, which no attack touches.
    Phase 2: the other alphas, each after its repetition's alpha = 1 unit,
    then the adaptive units (one per attack with a ``defense``, alpha and
    target defense), normalised by the same ``risk_ref`` as the ordinary
    attack so that only the knowledge of the defense differs.
    """
    phase1, phase2, adaptive = [], [], []
    for r in range(n_repetitions):
        for i, alphas in enumerate(study.attack_alphas):
            first = _Unit(r, i, 1.0, evaluate=1.0 in alphas, clean=i == 0)
            phase1.append(first)
            phase2 += [
                _Unit(r, i, a, True, False, reference=first.key(study))
                for a in alphas
                if a != 1.0
            ]
            if i not in study.adaptive_attacks:
                continue
            adaptive += [
                _Unit(r, i, a, True, False, first.key(study) if a != 1.0 else None, t)
                for a in alphas
                for t in study.adaptive_targets
            ]
    return phase1, phase2 + adaptive


def _collect(study: _Study, phase1, phase2, results):
    """The result rows of every reported (repetition, attack, alpha).

    The clean rows (ratio 0) were evaluated once per repetition; each attack
    and alpha gets a copy, so every curve starts from the same point (an
    adaptive unit: of its two defenses). In an adaptive study each row also
    says whether its attack was adaptive and, in ``_target``, which defense
    that attack knew ("" for the ordinary attack; :func:`_tidy` pairs a row
    with the "none" row of the same target).
    """
    rows = []
    by_rep = {}
    for unit in phase1 + phase2:
        by_rep.setdefault(unit.repetition, []).append(unit)
    for units in by_rep.values():
        clean = next(u for u in units if u.clean)
        clean_rows = [
            row for row in results[clean.key(study)]["rows"] if row["ratio"] == 0.0
        ]
        for unit in units:
            if not unit.evaluate:
                continue
            own = results[unit.key(study)]
            label = study.attack_labels[unit.attack]
            unit_rows = [
                dict(row, attack=label, alpha=unit.alpha, risk_ref=own["risk_ref"])
                for row in clean_rows
            ]
            unit_rows += [row for row in own["rows"] if row["ratio"] != 0.0]
            if study.adaptive:
                unit_rows = _tag_adaptive(study, unit, unit_rows)
            rows += unit_rows
    return rows


def _tag_adaptive(study, unit, rows):
    """Rows of one unit with ``adaptive`` and ``_target`` (see :func:`_collect`)."""
    if unit.target is None:
        return [dict(row, adaptive=False, _target="") for row in rows]
    target = study.labels[unit.target]
    return [
        dict(row, adaptive=True, _target=target)
        for row in rows
        if row["defense"] in ("none", target)
    ]


def _batch_plan(ratios, n_train, preset_key, batch_size=None):
    """Batch size and number of batches per ratio (cumulative prefixes).

    The batch is ``batch_size`` if given; else, for a paper dataset with the
    paper's 7.5 % steps, Table II's count; else the smallest step between the
    ratios times ``n_train``. Each ratio is then the nearest whole number of
    batches; two ratios on the same number are an error.
    """
    ratios = [float(r) for r in ratios]
    if not any(r > 0 for r in ratios):
        return 1, tuple(0 for _ in ratios)
    batch_size = _batch_size(ratios, n_train, preset_key, batch_size)
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
            stacklevel=4,  # _batch_plan <- _make_study <- poisoning_curve <- caller
        )
    return batch_size, tuple(counts)


def _batch_size(ratios, n_train, preset_key, batch_size=None) -> int:
    """The batch: ``batch_size``, Table II's for the paper's 7.5 % steps, or
    the smallest step between the ratios times ``n_train``."""
    if batch_size is not None:
        return int(batch_size)
    positive = sorted({float(r) for r in ratios if r > 0})
    step = float(np.diff([0.0, *positive]).min())
    if preset_key is not None and math.isclose(step, 0.075):
        from ..attacks._presets import get_preset

        return int(get_preset(preset_key)["batch_size"])
    return max(1, int(math.floor(step * n_train + 0.5)))


def _injection_plan(ratios, n_train, preset_key, batch_size=None):
    """Batch size and poison points per ratio under the injection convention.

    ``n_p = round(r n_train / (1 - r))`` points are added to the ``n_train``
    clean ones (so that ``n_p / (n_train + n_p) = r``); the batch is the one
    the replacement convention would use. The copies the attack starts from
    are distinct clean points, so ``n_p <= n_train`` (``r <= 0.5``).
    """
    ratios = [float(r) for r in ratios]
    if not any(r > 0 for r in ratios):
        return 1, tuple(0 for _ in ratios)
    batch_size = _batch_size(ratios, n_train, preset_key, batch_size)
    counts = [int(math.floor(r * n_train / (1.0 - r) + 0.5)) for r in ratios]
    for r, n in zip(ratios, counts):
        if r > 0 and n == 0:
            raise ValueError(
                f"ratio {r} injects no poison point into {n_train} training points."
            )
        if n > n_train:
            raise ValueError(
                f"ratio {r} would inject {n} poison points into {n_train} clean "
                "ones; the injection convention starts each from a distinct clean "
                "point, so ratios must be at most 0.5."
            )
    if len(set(counts)) != len(counts):
        raise ValueError(
            f"ratios {ratios} inject the same number of poison points into "
            f"{n_train} training points; use ratios further apart."
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


#: Seconds a new process-based worker takes before its first unit: it imports
#: skpoison, torch and scikit-learn again (about 3.5 s on the 2-core machine,
#: issue #16's profile of ``n_jobs=2`` on a small study).
WORKER_START_SECONDS = 3.5

_PROCESS_BACKENDS = (None, "loky", "multiprocessing")


def _workers_win(
    n_units: int,
    unit_seconds: float,
    n_workers: int,
    start_seconds: float = WORKER_START_SECONDS,
) -> bool:
    """Whether ``n_workers`` new processes finish ``n_units`` units sooner than one.

    One process takes ``n_units * unit_seconds``; workers take their start-up
    plus their share of the units, whole units per worker (the last round of
    a few units leaves some workers idle).

    Examples
    --------
    >>> _workers_win(n_units=5, unit_seconds=1.0, n_workers=2)  # 3.5 + 3 > 5
    False
    >>> _workers_win(n_units=40, unit_seconds=3.0, n_workers=2)  # 3.5 + 60 < 120
    True
    """
    if n_workers <= 1 or n_units <= 1:
        return False
    rounds = math.ceil(n_units / n_workers)
    return start_seconds + rounds * unit_seconds < n_units * unit_seconds


def warm_workers(backend=None) -> int:
    """How many of joblib's reusable loky workers are alive in this process.

    joblib keeps one loky executor per process and reuses its workers (which
    have already imported torch and skpoison) for every ``Parallel`` call with
    the same executor settings, until they have been idle for 300 s. 0 when
    ``backend`` is not loky (``None`` is joblib's default, loky) or loky's
    state cannot be read.

    Examples
    --------
    >>> warm_workers("threading")
    0
    """
    if backend not in (None, "loky"):
        return 0
    try:
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor
        if executor is None or executor._flags.shutdown or executor._flags.broken:
            return 0
        return sum(p.is_alive() for p in list(executor._processes.values()))
    except Exception:  # loky's private state moved: assume nothing is warm
        return 0


def _workers_cost_nothing(backend, n_workers: int) -> bool:
    """Whether ``n_workers`` of ``backend`` need no start-up: threads, or
    process workers already running (:func:`warm_workers`)."""
    return backend not in _PROCESS_BACKENDS or warm_workers(backend) >= n_workers


def _run_phase(
    units, study, X, y, *, n_jobs, backend, store, bar, results, timing, later=()
):
    """Run ``units`` (skipping those saved in ``store``), saving each as it ends.

    With a process backend (joblib's default, ``"loky"``, ``"multiprocessing"``)
    and several workers, units run in this process until the projected time
    says new workers win (:func:`_workers_win`, from the mean time of the
    units run so far, ``timing``, over the units left in this phase and in
    the ``later`` phases, which the same workers will run): on a small study
    each worker's start-up (re-importing torch) costs more than it saves.
    Workers that are already
    running (:func:`warm_workers`: an earlier phase or study of this process
    started them) cost nothing to start, so then every unit goes to them.
    """
    from joblib import Parallel, delayed, effective_n_jobs, parallel_config

    todo = []
    for unit in units:
        key = unit.key(study)
        if store is not None and store.is_done(key):
            results[key] = store.load(key)
            if bar is not None:
                bar.update(1)
        else:
            todo.append(unit)
    n_later = sum(store is None or not store.is_done(u.key(study)) for u in later)

    def job(unit, risk_ref):
        start = time.perf_counter()
        out = _run_unit(study, X, y, unit, risk_ref)
        return unit.key(study), out, time.perf_counter() - start

    def risk_ref(unit):
        return None if unit.reference is None else results[unit.reference]["risk_ref"]

    def record(key, result, seconds):
        if store is not None:
            store.save(key, result)
        results[key] = result
        timing.append(seconds)
        if bar is not None:
            bar.update(1)

    config = {} if backend is None else {"backend": backend}
    with parallel_config(**config):
        n_workers = min(effective_n_jobs(n_jobs), len(todo))
        if n_workers > 1 and not _workers_cost_nothing(backend, n_workers):
            # Measure before paying for workers: units run here until the
            # mean unit time says the rest is worth new processes.
            while todo and not (
                timing
                and _workers_win(len(todo) + n_later, float(np.mean(timing)), n_workers)
            ):
                unit = todo.pop(0)
                record(*job(unit, risk_ref(unit)))
        if not todo:
            return
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        for key, result, seconds in parallel(
            delayed(job)(u, risk_ref(u)) for u in todo
        ):
            record(key, result, seconds)


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
    attacks: Sequence = ("stealthy",),
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
    ratio_convention: str = "replacement",
    adaptive: bool = False,
):
    """Test NMSE and defense gain against the poisoning ratio, per attack, alpha and defense.

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
    attacks : sequence of str or attack, default=("stealthy",)
        Names from :data:`~skpoison.evaluation.ATTACK_NAMES` or attack objects
        (see :func:`~skpoison.evaluation.build_attack`), each run on every
        split. An attack with a stealth factor ``alpha`` runs at each of
        ``alphas``; one without runs once and is reported at ``alpha = 1``
        (detectability ignored, Eq. 4). Every attack replaces the same rows
        (the attack seed is the repetition's).
    attack_params : dict, default=None
        Overrides of the stealthy attack's Table II preset (e.g.
        ``n_outer_steps``); an attack object keeps its own settings.
    victim_params : dict, default=None
        Overrides of the victim's Table III preset (e.g. ``n_epochs``).
    random_state : int, default=0
        Root of every seed (see the module docstring).
    n_jobs : int, default=None
        Units run in parallel (joblib; -1 for all cores). With a process
        backend (joblib's default) units run in this process until their
        measured time says that new workers, which import torch again (about
        3.5 s each), finish sooner: a small study never gets slower than
        ``n_jobs=1``. The results do not depend on it.
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
    ratio_convention : {"replacement", "injection"}, default="replacement"
        What a ratio ``r`` means. ``"replacement"`` (ours): ``n_p = r n_tr`` of
        the ``n_tr`` training points are replaced by poison points, so the
        defenses get ``n_tr`` points. ``"injection"`` (the paper's Section
        III): ``n_p`` poison points are added to the ``n_tr`` clean ones, with
        ``n_p / (n_tr + n_p) = r``, i.e. ``n_p = round(r n_tr / (1 - r))``:
        the attack is given the clean set followed by copies of ``n_p``
        distinct clean points (Alg. 4's starting values) and replaces only the
        copies, in batches of the same size as under replacement; a smaller
        ratio keeps the clean points and the first ``n_p`` poison points
        (a prefix that may end inside a batch). Either way the poison is a
        fraction ``r`` of what the defenses get; injection keeps every clean
        point. Attacks must derive from
        :class:`~skpoison.attacks.BasePoisoner`, and ``r <= 0.5``.
    adaptive : bool, default=False
        Also run, for each defense, the attack adapted to it (issue #15): the
        attack is told the defense (``set_params(defense=...)``, with the
        defense's settings and seed, and DUTI's trusted items as ``fit``
        parameters ``X_trusted`` / ``y_trusted`` where its ``fit`` takes them)
        and its poison is evaluated on that defense. Only attacks with a
        ``defense`` parameter (:class:`~skpoison.attacks.StealthyPoisoner`)
        and the defenses with a relaxation the attack can differentiate
        (BayesClean, TRIM, SEVER, Proda, DUTI) take part, with a linear
        victim; the others are skipped with a warning. Each (repetition, attack, alpha, defense) is
        its own unit, checkpointed like the others. The table gets the columns
        ``adaptive`` and ``undefended_nmse`` (see Returns); its ordinary rows
        are those of the same study without ``adaptive``.

    Returns
    -------
    results : pandas.DataFrame
        One row per repetition x attack x alpha x ratio x defense, with columns
        :data:`RESULT_COLUMNS` (``attack``, ``test_nmse``, ``defense_gain`` in percent,
        ``diverged``, the fraction of poison points and of clean points each
        defense rejected, ``risk_ref`` and every seed) plus the timings
        ``fit_time`` and ``attack_time`` (seconds). With ``adaptive=True``
        also ``adaptive`` (the row's attack knew the row's defense) and
        ``undefended_nmse`` (the undefended victim's test NMSE on the same
        poisoned set: the reference of ``defense_gain``), after
        :data:`RESULT_COLUMNS`; an adaptive row has no "none" row of its own.

    Raises
    ------
    ValueError
        Before any work, for bad arguments or data, e.g. a constant ``y``
        (standardised to all zeros, the NMSE of Eq. (7) is undefined).

    See Also
    --------
    skpoison.attacks.StealthyPoisoner : The default attack.
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

    study, X, y, config = _make_study(
        data,
        model=model,
        ratios=ratios,
        alphas=alphas,
        defenses=defenses,
        attacks=attacks,
        n_repetitions=n_repetitions,
        attack_params=attack_params,
        victim_params=victim_params,
        random_state=random_state,
        device=device,
        divergence_threshold=divergence_threshold,
        threads_per_unit=threads_per_unit,
        ratio_convention=ratio_convention,
        adaptive=adaptive,
    )
    store = None
    if out_dir is not None:
        store = StudyStore(out_dir, config, overwrite=overwrite)
    phase1, phase2 = _plan(study, int(n_repetitions))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(phase1) + len(phase2), unit="attack", desc=study.dataset)
    results: dict = {}
    run = dict(n_jobs=n_jobs, backend=backend, store=store, bar=bar, results=results)
    run["timing"] = []  # seconds of each unit run in this call
    try:
        _run_phase(phase1, study, X, y, later=phase2, **run)
        _run_phase(phase2, study, X, y, **run)
    finally:
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()  # the folder's lock: the next run may start
    rows = _collect(study, phase1, phase2, results)
    return _tidy(pd.DataFrame(rows), config["alphas"], study)


def _make_study(data, *, model, ratios, alphas, defenses, attacks, **settings):
    """Check the arguments, load the data, resolve presets and batches.

    Returns the study, the data and the configuration that decides the results
    (what a checkpoint folder is keyed by). Every error is raised here, before
    any work.
    """
    if model not in ("linear", "mlp", *SKLEARN_VICTIMS):
        raise ValueError(
            f"model must be one of {['linear', 'mlp', *SKLEARN_VICTIMS]}, got {model!r}."
        )
    alphas = _check_fraction_list(alphas, "alphas", low=0.0, high=1.0, low_closed=False)
    ratios = tuple(sorted(_check_fraction_list(ratios, "ratios", low=0.0, high=0.99)))
    n_repetitions = settings["n_repetitions"]
    if int(n_repetitions) != n_repetitions or n_repetitions < 1:
        raise ValueError(
            f"n_repetitions must be a positive int, got {n_repetitions!r}."
        )
    random_state = settings["random_state"]
    if not isinstance(random_state, (int, np.integer)) or isinstance(
        random_state, bool
    ):
        raise TypeError(
            f"random_state must be an int (it is the root of every seed), got {random_state!r}."
        )
    specs, labels = _defense_specs(defenses)
    dataset, preset_key, data_id, X, y = _load_data(data, random_state)

    attack_preset, victim_preset = _presets(preset_key, model)
    attack_preset.pop("model", None)
    attack_preset.pop("batch_size", None)
    attack_params = dict(settings["attack_params"] or {})
    user_batch = attack_params.pop("batch_size", None)
    attack_params = {**attack_preset, **attack_params}
    victim_params = {**victim_preset, **dict(settings["victim_params"] or {})}
    attack_specs, attack_labels, attack_alphas = _attack_specs(
        attacks, alphas, model, attack_params
    )

    # The same rounding as the split the units will make (split_and_standardize).
    n_train = _n_from_size(0.5, X.shape[0], name="train_size")
    convention = settings.get("ratio_convention", "replacement")
    if convention == "replacement":
        batch_size, batch_counts = _batch_plan(ratios, n_train, preset_key, user_batch)
        n_poisons = ()
    elif convention == "injection":
        batch_size, n_poisons = _injection_plan(ratios, n_train, preset_key, user_batch)
        batch_counts = tuple(-(-n // batch_size) for n in n_poisons)
        if not all(isinstance(s, str) or _is_base_poisoner(s) for s in attack_specs):
            raise ValueError(
                "ratio_convention='injection' needs attacks derived from "
                "skpoison.attacks.BasePoisoner."
            )
    else:
        raise ValueError(
            "ratio_convention must be 'replacement' or 'injection', got "
            f"{convention!r}."
        )

    device = str(settings["device"])
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
        attacks=attack_specs,
        attack_labels=attack_labels,
        attack_alphas=attack_alphas,
        random_state=int(random_state),
        device=device,
        divergence_threshold=float(settings["divergence_threshold"]),
        threads_per_unit=settings["threads_per_unit"],
        n_poisons=n_poisons,
        ratio_convention=convention,
    )
    adaptive = settings.get("adaptive", False)
    if not isinstance(adaptive, (bool, np.bool_)):
        raise TypeError(f"adaptive must be True or False, got {adaptive!r}.")
    if adaptive:
        study = _with_adaptive(study, model, attack_params)
    # What decides the results (a checkpoint folder is keyed by its hash).
    config = {name: getattr(study, name) for name in _CONFIG_FIELDS}
    config.update(
        data=data_id,
        alphas=list(alphas),
        n_repetitions=int(n_repetitions),
        defenses=_spec_names(specs),
        attacks=_spec_names(attack_specs),
    )
    if convention != "replacement":  # (the default leaves earlier hashes alone)
        config["ratio_convention"] = convention
    if study.adaptive:  # absent otherwise: ordinary studies keep their hash
        config["adaptive"] = True
    return study, X, y, config


def _is_base_poisoner(spec) -> bool:
    from ..attacks import BasePoisoner

    return isinstance(spec, BasePoisoner)


def _with_adaptive(study, model, attack_params):
    """The study with its adaptive attacks and targets; a warning names the rest."""
    import dataclasses

    from ._registry import build_attack

    attacks = tuple(
        i
        for i, spec in enumerate(study.attacks)
        if "defense"
        in build_attack(spec, model=model, attack_params=attack_params).get_params()
    )
    if model == "mlp" and attacks:
        # The adaptive attack differentiates a least-squares stand-in for the
        # victim (the converged linear model): a network has none.
        warnings.warn(
            "adaptive: the adaptive attack needs a linear victim; with "
            "model='mlp' every attack runs non-adaptively only.",
            UserWarning,
            stacklevel=4,
        )
        attacks = ()
    targets = tuple(
        i
        for i, spec in enumerate(study.defenses)
        if adaptive_target(build_defense(spec, _probe_regressor())[0]) is not None
    )
    skipped_attacks = [
        label for i, label in enumerate(study.attack_labels) if i not in attacks
    ]
    if skipped_attacks:
        warnings.warn(
            f"adaptive: attacks {skipped_attacks} take no defense (no 'defense' "
            "parameter) and run non-adaptively only.",
            UserWarning,
            stacklevel=4,
        )
    skipped = [
        label
        for i, label in enumerate(study.labels)
        if i not in targets and label != "none"
    ]
    if skipped:
        warnings.warn(
            f"adaptive: defenses {skipped} have no relaxation an attack can follow "
            "(no _relaxed_acceptance method; BayesClean, TRIM, SEVER, Proda and "
            "DUTI have one) and face the non-adaptive attack only.",
            UserWarning,
            stacklevel=4,
        )
    return dataclasses.replace(
        study, adaptive=True, adaptive_attacks=attacks, adaptive_targets=targets
    )


# The study's settings that go into the checkpoint configuration as they are.
_CONFIG_FIELDS = (
    "model",
    "ratios",
    "attack_params",
    "batch_size",
    "victim_params",
    "random_state",
    "device",
    "divergence_threshold",
    "threads_per_unit",
)


def _spec_names(specs) -> list[str]:
    """Names as given; objects by their ``repr`` (what the configuration records)."""
    return [s if isinstance(s, str) else repr(s) for s in specs]


def _defense_specs(defenses):
    specs = list(defenses)
    labels = [defense_label(s) for s in specs]
    if "none" not in labels:
        specs.insert(0, "none")
        labels.insert(0, "none")
    if len(set(labels)) != len(labels):
        raise ValueError(f"defense names must be unique, got {labels}.")
    for spec in specs:  # fail early on an unknown name
        if isinstance(spec, (str, tuple)):
            build_defense(spec, _probe_regressor())
    return specs, labels


def _attack_specs(attacks, alphas, model, attack_params):
    """Attack specs, their labels and the alphas each is reported at."""
    from ._registry import attack_label, build_attack

    specs = [attacks] if isinstance(attacks, str) else list(attacks)
    if not specs:
        raise ValueError("attacks must not be empty.")
    labels = [attack_label(s) for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"attack names must be unique, got {labels}.")
    # Building each once fails early on an unknown name or a bad object.
    built = [build_attack(s, model=model, attack_params=attack_params) for s in specs]
    per_attack = tuple(
        tuple(alphas) if "alpha" in b.get_params() else (1.0,) for b in built
    )
    return tuple(specs), tuple(labels), per_attack


def _load_data(data, random_state):
    """(dataset label, preset key, id for the checkpoint config, X, y)."""
    if isinstance(data, str):
        X, y = load_dataset(data, random_state=random_state)
        return data, _PRESET_KEY.get(data), data, X, y
    from sklearn.utils.validation import check_X_y

    from .._validation import check_not_datetime, check_target

    check_not_datetime(data[0])
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
    return "custom", None, _dataset_fingerprint(X, y), X, y


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


def _tidy(df, alphas, study):
    """Order rows and columns, and compute the defense gain against "none"."""
    import pandas as pd

    if df.empty:
        extra = ADAPTIVE_COLUMNS if study.adaptive else ()
        return pd.DataFrame(columns=[*RESULT_COLUMNS, *extra, *TIME_COLUMNS])
    labels = list(study.labels)
    df["defense"] = pd.Categorical(df["defense"], categories=labels, ordered=True)
    attack_rank = {a: i for i, a in enumerate(study.attack_labels)}
    alpha_rank = {a: i for i, a in enumerate(alphas)}
    df["_attack_rank"] = df["attack"].map(attack_rank)
    df["_alpha_rank"] = df["alpha"].map(alpha_rank).fillna(-1)
    order = ["repetition", "_attack_rank", "_alpha_rank", "ratio", "defense"]
    keys = ["repetition", "attack", "alpha", "ratio"]
    if study.adaptive:  # ordinary rows first, then each target's adaptive rows
        order.insert(3, "adaptive")
        keys.append("_target")
    df = df.sort_values(order).drop(columns=order[1:3]).reset_index(drop=True)
    ref = df[df["defense"] == "none"].set_index(keys)["test_nmse"]
    reference = ref.reindex(pd.MultiIndex.from_frame(df[keys])).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        df["defense_gain"] = (
            100.0 * (reference - df["test_nmse"].to_numpy()) / reference
        )
    df["defense"] = df["defense"].astype(str)
    for col in ("n_kept", "defense_seed"):
        df[col] = df[col].astype("Int64")
    if not study.adaptive:
        return df[[*RESULT_COLUMNS, *TIME_COLUMNS]]
    df["undefended_nmse"] = reference
    # An adaptive unit's "none" row served as its reference; the ordinary
    # attack's "none" rows are the undefended curve.
    df = df[~(df["adaptive"] & (df["defense"] == "none"))].reset_index(drop=True)
    df["adaptive"] = df["adaptive"].astype(bool)
    return df[[*RESULT_COLUMNS, *ADAPTIVE_COLUMNS, *TIME_COLUMNS]]
