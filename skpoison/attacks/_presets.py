"""The paper's experimental settings as presets (Appendix E, Tables II and III).

Table II gives, per dataset and model, the settings used to *craft* the attack:
``T_out`` (outer hypergradient-ascent steps, ``n_outer_steps``), ``gamma`` (outer
step, ``outer_lr``), ``T`` (inner gradient-descent steps, ``n_inner_steps``),
``eta`` (inner learning rate, ``inner_lr``) and the poisoning batch size ``B_p``
(``batch_size``). Table III gives the settings of the *victims* trained to test the
attack (``eta_tr`` and the number of full-batch epochs); they equal ``eta`` and
``T`` of Table II, so the attacker optimises exactly what the victim learns.

The batch sizes of Table II are counts for the paper's training-set sizes
(Table I); each is 7.5% of the training set (rounded), the step between the
paper's cumulative poisoning ratios 0, 7.5, ..., 45%. The presets keep the
paper's counts.

:data:`OPTP_OPTIONS` is not from the paper: it is the documented option set
under which the stealthy attack plays Jagielski et al.'s OptP game (their
inverse-flip start, all points in one batch, small steps, the objective on the
clean training data); ``StealthyPoisoner.from_preset("optp", ...)`` uses it.
The benchmark ``benchmarks/bench_vs_optp.py`` compares it with OptP
(doc/user_guide/attacks.rst has the table).

Dataset keys are ``"loan"``, ``"heart"``, ``"boston"`` and ``"appliances"``
(``"heart_disease"`` and ``"boston_housing"`` are accepted too); model keys are
``"linear"`` (the paper's LR) and ``"mlp"`` (the paper's DNN, only for Loan and
Heart Disease).
"""

from __future__ import annotations

__all__ = [
    "ATTACK_PRESETS",
    "OPTP_OPTIONS",
    "VICTIM_PRESETS",
    "get_preset",
    "get_victim_preset",
]

#: Table II, in :class:`~skpoison.attacks.StealthyPoisoner`'s parameter names.
ATTACK_PRESETS: dict[tuple[str, str], dict] = {
    ("loan", "linear"): dict(
        n_outer_steps=120, outer_lr=0.9, n_inner_steps=30, inner_lr=0.1, batch_size=252
    ),
    ("heart", "linear"): dict(
        n_outer_steps=50, outer_lr=0.9, n_inner_steps=40, inner_lr=0.1, batch_size=120
    ),
    ("boston", "linear"): dict(
        n_outer_steps=100, outer_lr=0.9, n_inner_steps=40, inner_lr=0.1, batch_size=19
    ),
    ("appliances", "linear"): dict(
        n_outer_steps=50, outer_lr=0.9, n_inner_steps=70, inner_lr=0.2, batch_size=740
    ),
    ("loan", "mlp"): dict(
        n_outer_steps=150, outer_lr=0.9, n_inner_steps=90, inner_lr=0.1, batch_size=252
    ),
    ("heart", "mlp"): dict(
        n_outer_steps=80, outer_lr=0.9, n_inner_steps=100, inner_lr=0.1, batch_size=120
    ),
}

#: Table III: the victims' full-batch learning rate and number of epochs, in the
#: parameter names of :mod:`skpoison.models` (``learning_rate``, ``n_epochs``).
VICTIM_PRESETS: dict[tuple[str, str], dict] = {
    ("loan", "linear"): dict(learning_rate=0.1, n_epochs=30),
    ("heart", "linear"): dict(learning_rate=0.1, n_epochs=40),
    ("boston", "linear"): dict(learning_rate=0.1, n_epochs=40),
    ("appliances", "linear"): dict(learning_rate=0.2, n_epochs=70),
    ("loan", "mlp"): dict(learning_rate=0.1, n_epochs=90),
    ("heart", "mlp"): dict(learning_rate=0.1, n_epochs=100),
}

#: StealthyPoisoner's options for OptP's threat model (not the paper's settings):
#: Jagielski et al.'s inverse-flip start, the n_p points as one batch, 25 steps
#: of 0.1 (a point moves by at most 2.5 in the data's units) and, without
#: ``X_val``, the objective on the clean training data (as OptP's ``V``).
OPTP_OPTIONS: dict = dict(
    init="inverse_flip",
    n_outer_steps=25,
    outer_lr=0.1,
    batch_size=1.0,
    validation_fraction=None,
)

_DATASET_ALIASES = {
    "loan": "loan",
    "heart": "heart",
    "heart_disease": "heart",
    "boston": "boston",
    "boston_housing": "boston",
    "appliances": "appliances",
}
_MODEL_ALIASES = {"linear": "linear", "lr": "linear", "mlp": "mlp", "dnn": "mlp"}


def _model_key(model: str) -> str:
    """``"linear"`` or ``"mlp"`` for one of their aliases; a ValueError otherwise."""
    mo = _MODEL_ALIASES.get(str(model).lower())
    if mo is None:
        raise ValueError(f"Unknown model {model!r}; expected 'linear' or 'mlp'.")
    return mo


def _key(dataset: str, model: str, table: dict) -> tuple[str, str]:
    ds = _DATASET_ALIASES.get(str(dataset).lower())
    if ds is None:
        raise ValueError(
            f"Unknown dataset {dataset!r}; expected one of "
            f"{sorted(set(_DATASET_ALIASES.values()))}."
        )
    mo = _model_key(model)
    if (ds, mo) not in table:
        available = sorted(d for d, m in table if m == mo)
        raise ValueError(
            f"The paper has no setting for dataset={ds!r} with model={mo!r}; "
            f"with {mo!r} it has {available}."
        )
    return ds, mo


def get_preset(dataset: str, model: str = "linear") -> dict:
    """Table II's attack settings for one dataset and model.

    Parameters
    ----------
    dataset : {"loan", "heart", "boston", "appliances"}
        The paper's dataset.
    model : {"linear", "mlp"}, default="linear"
        The victim model (the paper's LR or DNN).

    Returns
    -------
    params : dict
        ``n_outer_steps``, ``outer_lr``, ``n_inner_steps``, ``inner_lr`` and
        ``batch_size`` (plus ``model``), ready for
        :class:`~skpoison.attacks.StealthyPoisoner`; a fresh copy.

    See Also
    --------
    StealthyPoisoner.from_preset : build an attack from these settings.
    get_victim_preset : Table III, the victims' training settings.

    Examples
    --------
    >>> get_preset("boston")["batch_size"]
    19
    >>> get_preset("heart", "mlp")["n_inner_steps"]
    100
    """
    key = _key(dataset, model, ATTACK_PRESETS)
    return {"model": key[1], **ATTACK_PRESETS[key]}


def get_victim_preset(dataset: str, model: str = "linear") -> dict:
    """Table III's victim training settings for one dataset and model.

    Parameters
    ----------
    dataset : {"loan", "heart", "boston", "appliances"}
        The paper's dataset.
    model : {"linear", "mlp"}, default="linear"
        The victim model.

    Returns
    -------
    params : dict
        ``learning_rate`` and ``n_epochs`` for
        :class:`~skpoison.models.TorchLinearRegressor` or
        :class:`~skpoison.models.TorchMLPRegressor`; a fresh copy.

    Examples
    --------
    >>> get_victim_preset("appliances")
    {'learning_rate': 0.2, 'n_epochs': 70}
    """
    return dict(VICTIM_PRESETS[_key(dataset, model, VICTIM_PRESETS)])
