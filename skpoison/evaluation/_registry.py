"""Attacks and defenses by name, as the paper configures them (Appendix E).

Attacks (:func:`build_attack`): ``"stealthy"`` is
:class:`~skpoison.attacks.StealthyPoisoner` with Table II's settings for the
dataset and model (``attack_params`` of
:func:`~skpoison.evaluation.poisoning_curve` override them). ``"statp"``,
``"flip"`` and ``"noise"`` are :class:`~skpoison.attacks.StatPPoisoner`,
:class:`~skpoison.attacks.FlipPoisoner` and
:class:`~skpoison.attacks.NoisePoisoner` with their defaults (the box is the
clean training set's range; ``attack_params`` do not apply). Besides names,
any attack object (a :class:`~skpoison.attacks.BasePoisoner`) is accepted and
used with its own settings; the study sets only what its protocol decides
(``poison_fraction``, ``random_state`` and, where the attack has them,
``alpha``, ``batch_size``, ``device`` and ``risk_ref``).

Defenses: every entry turns the victim (the model the defender trains, Table III) into
the estimator that is fitted on the poisoned training set:

========================  =====================================================
name                      estimator
========================  =====================================================
``"none"``                the victim alone (the paper's "no defense")
``"bayesclean"``          :class:`~skpoison.defenses.BayesCleanFilter` (c1=0.5,
                          c2=1.5, flagged points rejected, accept rule
                          ``|y - mu| <= c1 sigma``), then the victim
``"bayesclean_paper"``    the same with Alg. 5's literal accept rule
                          ``|y| <= |mu + c1 sigma|`` (``rule="paper"``)
``"trim"``                :class:`~skpoison.defenses.TrimRegressor` around the
                          victim, 40% rejected
``"itrim"``               :class:`~skpoison.defenses.ITrimRegressor` (up to 40%,
                          steps of 2%; it selects with closed-form least
                          squares), then the victim
``"sever"``               :class:`~skpoison.defenses.SeverFilter` on the victim
                          (40% in 4 rounds), then the victim
``"proda"``               :class:`~skpoison.defenses.ProdaRegressor` (groups of
                          5, epsilon 1e-5, 40% rejected; it selects with
                          closed-form least squares), then the victim
``"duti"``                :class:`~skpoison.defenses.DutiFilter` (lambda 0.1,
                          c 100, 40% rejected) with trusted items from the
                          validation set, then the victim
``"huber"``               sklearn's ``HuberRegressor`` (alpha 1e-4, 1e4
                          iterations, epsilon among 5 values in [1.1, 10] by
                          3-fold CV); it replaces the victim, as in the paper
========================  =====================================================

"TRIM, SEVER and Proda use the same training hyperparameters as in Table III":
they wrap the victim itself. Besides names, :func:`build_defense` accepts any
regressor (fitted as is, in place of the victim) and any defense object (an
estimator with ``fit`` that sets ``inlier_mask_``, wrapped in
:class:`~skpoison.defenses.DefendedRegressor` with the victim). A defense whose
``fit`` takes ``X_trusted`` receives the trusted items.

Adaptive attacks (``poisoning_curve(..., adaptive=True)``): an attack with a
``defense`` parameter (:class:`~skpoison.attacks.StealthyPoisoner`) can be told
the defense it faces. :func:`adaptive_target` reads that defense off the
estimator :func:`build_defense` made: the skpoison defense inside it, with the
settings above, if it has a relaxation for the attack to differentiate
(BayesClean, TRIM, SEVER, Proda and DUTI); the others (``"none"``,
``"huber"``, ``"itrim"``, plain regressors) are not attacked adaptively.

DUTI's trusted items are sampled from the validation set with the paper's
counts (101 Loan, 48 Heart, 8 Boston, 296 Appliances, about 3% of the training
set each); for any other data the same ratio to the training-set size is used
(:func:`n_trusted_items`).
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.base import clone

__all__ = [
    "ATTACK_NAMES",
    "DEFENSE_NAMES",
    "PAPER_TRUSTED_ITEMS",
    "SKLEARN_VICTIMS",
    "adaptive_target",
    "attack_label",
    "build_attack",
    "build_defense",
    "defense_label",
    "make_sklearn_victim",
    "n_trusted_items",
]


# ------------------------------------------------------------------- attacks
def _stealthy(model: str, attack_params: dict):
    from ..attacks import StealthyPoisoner

    return StealthyPoisoner(model=model, **attack_params)


def _baseline(name: str):
    """Builder of a baseline attack: it has no settings from Table II."""

    def build(model: str, attack_params: dict):
        from .. import attacks

        return getattr(attacks, name)()

    return build


def _optp(model: str, attack_params: dict):
    """Jagielski et al.'s OptP: it attacks the converged least-squares victim.

    For a scikit-learn victim by name (``"ridge"``, ...) it attacks that
    estimator (default penalty); for the GD victims (``"linear"``, ``"mlp"``)
    ordinary least squares, OptP's own threat model.
    """
    from ..attacks import OptPPoisoner

    if model in SKLEARN_VICTIMS:
        return OptPPoisoner(model=make_sklearn_victim(model))
    return OptPPoisoner()


# name -> builder(model, attack_params) -> unfitted attack. ``attack_params``
# are the stealthy attack's Table II settings (with the user's overrides); a
# builder uses what applies to its attack. New attacks register here.
_ATTACK_BUILDERS = {
    "stealthy": _stealthy,
    "optp": _optp,
    "statp": _baseline("StatPPoisoner"),
    "flip": _baseline("FlipPoisoner"),
    "noise": _baseline("NoisePoisoner"),
}

#: The attacks :func:`build_attack` knows by name.
ATTACK_NAMES: tuple[str, ...] = tuple(_ATTACK_BUILDERS)


def attack_label(spec) -> str:
    """The name an attack gets in result tables: its name, or its class name.

    Examples
    --------
    >>> from skpoison.attacks import StealthyPoisoner
    >>> attack_label("stealthy"), attack_label(StealthyPoisoner())
    ('stealthy', 'StealthyPoisoner')
    """
    return spec if isinstance(spec, str) else type(spec).__name__


def build_attack(spec, *, model: str = "linear", attack_params: dict | None = None):
    """The unfitted attack that ``spec`` names.

    Parameters
    ----------
    spec : str or attack
        A name from :data:`ATTACK_NAMES` or an attack object (an estimator
        with ``fit`` and ``resample_at``, such as a
        :class:`~skpoison.attacks.BasePoisoner`), which is cloned.
    model : {"linear", "mlp"}, default="linear"
        The victim's architecture, for attacks that model it.
    attack_params : dict, default=None
        Settings of a named attack (for ``"stealthy"``: Table II's preset and
        overrides); ignored for objects.

    Returns
    -------
    attack : estimator
        A fresh, unfitted attack.

    Examples
    --------
    >>> attack = build_attack("stealthy", attack_params={"n_outer_steps": 5})
    >>> type(attack).__name__, attack.n_outer_steps
    ('StealthyPoisoner', 5)
    """
    if isinstance(spec, str):
        if spec not in _ATTACK_BUILDERS:
            raise ValueError(
                f"Unknown attack {spec!r}; known names are {list(ATTACK_NAMES)}, "
                "or pass an attack object."
            )
        return _ATTACK_BUILDERS[spec](model, dict(attack_params or {}))
    if hasattr(spec, "fit") and hasattr(spec, "resample_at"):
        return clone(spec)
    raise TypeError(
        "An attack must be a name or an attack object (with fit and resample_at, "
        f"e.g. a BasePoisoner), got {spec!r}."
    )


# ------------------------------------------------------------------ defenses

#: The paper's number of DUTI trusted items and the training-set size (Table I).
PAPER_TRUSTED_ITEMS: dict[str, tuple[int, int]] = {
    "loan": (101, 3361),
    "heart": (48, 1599),
    "boston": (8, 253),
    "appliances": (296, 9868),
}
# The pooled ratio of trusted items to training points over the four datasets.
_TRUSTED_RATIO = sum(t for t, _ in PAPER_TRUSTED_ITEMS.values()) / sum(
    n for _, n in PAPER_TRUSTED_ITEMS.values()
)

_REJECT_FRACTION = 0.4


def n_trusted_items(dataset: str | None, n_train: int, n_val: int) -> int:
    """Number of DUTI trusted items: the paper's count, or the paper's ratio.

    Parameters
    ----------
    dataset : str or None
        A paper dataset key (``"loan"``, ``"heart"``, ``"boston"``,
        ``"appliances"``) or None for any other data.
    n_train, n_val : int
        Sizes of the training and validation sets.

    Returns
    -------
    n : int
        At least 2 and at most ``n_val``.

    Examples
    --------
    >>> n_trusted_items("boston", 253, 76)
    8
    >>> n_trusted_items(None, 1000, 300)
    30
    """
    if dataset in PAPER_TRUSTED_ITEMS:
        n = PAPER_TRUSTED_ITEMS[dataset][0]
    else:
        n = int(round(_TRUSTED_RATIO * n_train))
    return int(min(max(n, 2), n_val))


def _bayesclean(victim, rule):
    from ..defenses import BayesCleanFilter, DefendedRegressor

    return DefendedRegressor(BayesCleanFilter(c1=0.5, c2=1.5, rule=rule), victim)


def _trim(victim):
    from ..defenses import TrimRegressor

    return TrimRegressor(estimator=victim, reject_fraction=_REJECT_FRACTION)


def _itrim(victim):
    from ..defenses import DefendedRegressor, ITrimRegressor

    # iTrim runs TRIM once per grid fraction: it selects on TRIM's closed-form
    # least-squares path, and the victim is trained on the points it keeps.
    itrim = ITrimRegressor(max_poison_fraction=_REJECT_FRACTION)
    return DefendedRegressor(itrim, victim)


def _sever(victim):
    from ..defenses import DefendedRegressor, SeverFilter

    return DefendedRegressor(
        SeverFilter(estimator=victim, reject_fraction=_REJECT_FRACTION, n_rounds=4),
        victim,
    )


def _proda(victim):
    from ..defenses import DefendedRegressor, ProdaRegressor

    # ProdaRegressor selects its points with closed-form least squares; the
    # model returned is the victim trained (Table III) on the points it keeps.
    proda = ProdaRegressor(group_size=5, epsilon=1e-5, reject_fraction=_REJECT_FRACTION)
    return DefendedRegressor(proda, victim)


def _duti(victim):
    from ..defenses import DefendedRegressor, DutiFilter

    return DefendedRegressor(DutiFilter(reject_fraction=_REJECT_FRACTION), victim)


def _huber(victim):
    from ..defenses import make_huber_baseline

    # Five values of epsilon over the paper's range and 3-fold cross-validation:
    # the helper's default (10 values, 5 folds) costs 51 Huber fits per defense
    # and would dominate the whole study.
    return make_huber_baseline(np.geomspace(1.1, 10.0, 5), cv=3)


_BUILDERS = {
    "none": lambda victim: victim,
    "bayesclean": lambda victim: _bayesclean(victim, "residual"),
    "bayesclean_paper": lambda victim: _bayesclean(victim, "paper"),
    "trim": _trim,
    "itrim": _itrim,
    "sever": _sever,
    "proda": _proda,
    "duti": _duti,
    "huber": _huber,
}

#: The defenses :func:`build_defense` knows by name, in the paper's order.
DEFENSE_NAMES: tuple[str, ...] = tuple(_BUILDERS)

#: Victims trained by scikit-learn itself, by name (``model=`` of
#: :func:`~skpoison.evaluation.poisoning_curve`, ``skpoison evaluate --model``);
#: ``victim_params`` are the estimator's parameters (``alpha``, ``l1_ratio``).
SKLEARN_VICTIMS: dict[str, str] = {
    "ols": "LinearRegression",
    "ridge": "Ridge",
    "lasso": "Lasso",
    "elasticnet": "ElasticNet",
}


def make_sklearn_victim(name: str, params: dict | None = None):
    """The scikit-learn estimator named ``name`` (:data:`SKLEARN_VICTIMS`) with ``params``.

    Examples
    --------
    >>> make_sklearn_victim("ridge", {"alpha": 2.0})
    Ridge(alpha=2.0)
    """
    import sklearn.linear_model

    if name not in SKLEARN_VICTIMS:
        raise ValueError(
            f"unknown scikit-learn victim {name!r}; choose among {list(SKLEARN_VICTIMS)}."
        )
    return getattr(sklearn.linear_model, SKLEARN_VICTIMS[name])(**(params or {}))


def _is_named_variant(spec) -> bool:
    return (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], dict)
    )


def defense_label(spec) -> str:
    """The name a defense gets in result tables: its name, or its class name.

    A ``(name, params)`` variant keeps the name.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> defense_label("trim"), defense_label(Ridge()), defense_label(("trim", {}))
    ('trim', 'Ridge', 'trim')
    """
    if _is_named_variant(spec):
        return spec[0]
    return spec if isinstance(spec, str) else type(spec).__name__


def _is_defense(obj) -> bool:
    """A filter: fits, and either cannot predict or is a skpoison defense.

    A defense that also predicts (TRIM, Proda) is used as a filter too: the
    victim is retrained on the points it keeps.
    """
    from ..defenses import BaseDefense

    return hasattr(obj, "fit") and (
        not hasattr(obj, "predict") or isinstance(obj, BaseDefense)
    )


def _set_seed(estimator, seed: int):
    """Seed the estimator's own randomness (and its defense's), not the victim's."""
    params = estimator.get_params(deep=True)
    update = {k: seed for k in ("random_state", "defense__random_state") if k in params}
    return estimator.set_params(**update) if update else estimator


def _wants_trusted(estimator) -> bool:
    target = getattr(estimator, "defense", estimator)
    try:
        return "X_trusted" in inspect.signature(target.fit).parameters
    except (TypeError, ValueError):
        return False


def build_defense(spec, victim, *, random_state: int | None = None):
    """The estimator that defends ``victim`` with ``spec``.

    Parameters
    ----------
    spec : str, (str, dict) or estimator
        A name from :data:`DEFENSE_NAMES`; a ``(name, params)`` pair, the named
        defense with ``set_params(**params)`` applied (e.g. ``("trim",
        {"max_iter": 1})`` or ``("bayesclean", {"defense__c1": 1.0})``); a
        regressor (used instead of the victim) or a defense (``fit`` setting
        ``inlier_mask_``, no ``predict``), which is followed by the victim.
    victim : regressor
        The unfitted victim; it is cloned.
    random_state : int or None, default=None
        Seed for the defense's own randomness (``random_state`` of the defense,
        not of the victim inside it).

    Returns
    -------
    estimator : regressor
        A fresh, unfitted estimator.
    wants_trusted : bool
        Whether its ``fit`` expects ``X_trusted`` and ``y_trusted``.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> est, trusted = build_defense("none", LinearRegression())
    >>> type(est).__name__, trusted
    ('LinearRegression', False)
    """
    victim = clone(victim)
    if _is_named_variant(spec):
        if spec[0] == "none":
            raise ValueError(f"Defense 'none' takes no parameters, got {spec[1]}.")
        estimator, wants_trusted = build_defense(spec[0], victim)
        estimator.set_params(**spec[1])
        if random_state is not None:
            estimator = _set_seed(estimator, int(random_state))
        return estimator, wants_trusted
    if isinstance(spec, str):
        if spec not in _BUILDERS:
            raise ValueError(
                f"Unknown defense {spec!r}; known names are {list(DEFENSE_NAMES)}, "
                "or pass a regressor or a defense object."
            )
        estimator = _BUILDERS[spec](victim)
    elif _is_defense(spec):
        from ..defenses import DefendedRegressor

        estimator = DefendedRegressor(clone(spec), victim)
    elif hasattr(spec, "fit") and hasattr(spec, "predict"):
        estimator = clone(spec)
    else:
        raise TypeError(
            f"A defense must be a name, a regressor or a defense object, got {spec!r}."
        )
    if random_state is not None and estimator is not victim:
        estimator = _set_seed(estimator, int(random_state))
    return estimator, _wants_trusted(estimator)


def adaptive_target(estimator):
    """The defense an adaptive attack against ``estimator`` is told, or None.

    ``estimator`` is what :func:`build_defense` returns: a
    :class:`~skpoison.defenses.DefendedRegressor` (the candidate is its
    ``defense``), a robust regressor such as
    :class:`~skpoison.defenses.TrimRegressor` (itself), or a plain regressor
    (none). A candidate is a target if it is a skpoison defense with a
    relaxation of its accept decision (a ``_relaxed_acceptance`` method, what
    the adaptive attack differentiates); the defense returned is an unfitted
    clone.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> adaptive_target(build_defense("huber", LinearRegression())[0]) is None
    True
    >>> adaptive_target(build_defense("none", LinearRegression())[0]) is None
    True
    """
    from ..defenses import BaseDefense, DefendedRegressor

    inner = estimator.defense if isinstance(estimator, DefendedRegressor) else estimator
    relaxed = callable(getattr(inner, "_relaxed_acceptance", None))
    return clone(inner) if isinstance(inner, BaseDefense) and relaxed else None


def inlier_mask(estimator, n_samples: int) -> np.ndarray | None:
    """The training points a fitted defended estimator kept, if it says so.

    Looks for ``inlier_mask_`` (skpoison defenses, RANSAC), then for
    ``outliers_`` (``HuberRegressor``, possibly inside a search's
    ``best_estimator_``). Returns None when the estimator does not tell.
    """
    for est in (estimator, getattr(estimator, "best_estimator_", None)):
        if est is None:
            continue
        mask = getattr(est, "inlier_mask_", None)
        if mask is None and getattr(est, "outliers_", None) is not None:
            mask = ~np.asarray(est.outliers_, dtype=bool)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape == (n_samples,):
                return mask
    return None
