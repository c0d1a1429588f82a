"""Sensitivity of the paper's findings to the settings the paper leaves open.

The paper fixes some settings and leaves others to the reader (Appendix E;
issue #18 lists them). :func:`sensitivity_study` runs a small baseline study
(our defaults: one :func:`poisoning_curve` study and :func:`figure_9` over a
few seeds), then, for each registered setting and each value tried, the same
study with that one setting changed and everything else left at the default.
Each run's findings are judged by :func:`evaluate_findings`; a finding
*flips* when its verdict (agree / disagree / inconclusive) differs from the
baseline's on the same study.

:data:`SENSITIVITY_SETTINGS` is the registry. An entry names the setting, says which run
it changes (``"study"``: the poisoning curve; ``"figure9"``: Fig. 9), the
default, the values tried (derived from the baseline, e.g. half and twice the
preset ``T_out``) and how a value becomes arguments of the run. Entries whose
``target`` is None would be settings the code cannot vary (listed in the
output as not supported rather than run); every registered setting is
supported now. To add a setting, add an entry.

Small studies are cheap and weak: with fewer than
:data:`~skpoison.evaluation.MIN_REPETITIONS` repetitions every verdict is
inconclusive, so a meaningful sensitivity table needs at least 6 repetitions
(and 6 Fig. 9 seeds); a smoke test with 1 or 2 only checks the machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from ._findings import evaluate_findings
from ._registry import DEFENSE_NAMES
from ._report import markdown_table

__all__ = ["SENSITIVITY_SETTINGS", "Setting", "sensitivity_study"]


class Setting(NamedTuple):
    """One setting the paper leaves open.

    ``default(base)`` and ``values(base)`` read the baseline's resolved
    settings (``base["n_outer_steps"]``, ``base["batch_size"]``);
    ``apply(value)`` returns the overrides of the run (``attack_params``,
    ``victim_params``, ``defenses``, ``model`` or ``ratio_convention`` for the
    study; keyword arguments of :func:`figure_9`).
    """

    name: str
    description: str
    target: str | None
    default: Callable
    values: Callable
    apply: Callable | None = None


def _const(value):
    return lambda base: value


def _defense(*names, **params):
    def apply(value):
        return {"defenses": {n: (n, {k: value for k in params}) for n in names}}

    return apply


def _factors(key, factors, minimum=1):
    def values(base):
        out = []
        for f in factors:
            v = max(minimum, int(round(f * base[key])))
            if v != base[key] and v not in out:
                out.append(v)
        return tuple(out)

    return values


#: The registry of settings (see the module docstring).
SENSITIVITY_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "bayesclean_c1",
        "BayesClean's c1 (accept threshold in sigmas)",
        "study",
        _const(0.5),
        _const((0.25, 1.0)),
        _defense("bayesclean", "bayesclean_paper", defense__c1=None),
    ),
    Setting(
        "bayesclean_c2",
        "BayesClean's c2 (reject threshold in sigmas)",
        "study",
        _const(1.5),
        _const((1.0, 2.5)),
        _defense("bayesclean", "bayesclean_paper", defense__c2=None),
    ),
    Setting(
        "bayesclean_rule",
        "BayesClean's accept rule (text vs Alg. 5's literal)",
        "study",
        _const("residual"),
        _const(("paper",)),
        _defense("bayesclean", defense__rule=None),
    ),
    Setting(
        "trim_n_init",
        "TRIM's initialisation: starts (all points, then random subsets)",
        "study",
        _const(1),
        _const((5,)),
        _defense("trim", n_init=None),
    ),
    Setting(
        "trim_max_iter",
        "TRIM's stopping rule: most iterations",
        "study",
        _const(400),
        _const((1, 10)),
        _defense("trim", max_iter=None),
    ),
    Setting(
        "trim_tol",
        "TRIM's stopping rule: least improvement of the trimmed loss",
        "study",
        _const(1e-5),
        _const((1e-2,)),
        _defense("trim", tol=None),
    ),
    Setting(
        "n_outer_steps",
        "T_out, the attack's outer steps per batch",
        "study",
        lambda base: base["n_outer_steps"],
        _factors("n_outer_steps", (0.5, 2.0)),
        lambda v: {"attack_params": {"n_outer_steps": int(v)}},
    ),
    Setting(
        "batch_size",
        "poison points optimised together: half and a quarter of the default "
        "(each ratio rounded to whole batches)",
        "study",
        lambda base: base["batch_size"],
        _factors("batch_size", (0.5, 0.25)),
        lambda v: {"attack_params": {"batch_size": int(v)}},
    ),
    Setting(
        "bounds",
        "feasible box of the poison points (standardised units, x and y)",
        "study",
        _const("data range"),
        _const(((-2.0, 2.0), (-6.0, 6.0))),
        lambda v: {"attack_params": {"bounds": tuple(v)}},
    ),
    Setting(
        "figure9_alpha",
        "Fig. 9's alpha (the figure does not state it)",
        "figure9",
        _const(1.0),
        _const((0.5, 0.1)),
        lambda v: {"alpha": float(v)},
    ),
    Setting(
        "figure9_n_train",
        "Fig. 9's sample size (clean training points)",
        "figure9",
        _const(100),
        _const((50, 200)),
        lambda v: {"n_train": int(v)},
    ),
    Setting(
        "loss_scaling",
        "the training loss's scaling: 1/(2n) vs the mean 1/n; for gradient "
        "descent the mean is exactly the 1/(2n) loss with twice the learning "
        "rate (attack's inner problem and victim), which is how it is run",
        "study",
        _const("1/(2n)"),
        _const(("mean",)),
        lambda v: {
            "attack_params": {"inner_lr": "double"},
            "victim_params": {"learning_rate": "double"},
        },
    ),
    Setting(
        "ratio_convention",
        "poisoning ratio: replacement n_p/n_tr (n_p of the n_tr training points "
        "replaced) vs the paper's injection n_p/(n_tr+n_p) (n_p points added to "
        "the n_tr clean ones)",
        "study",
        _const("replacement"),
        _const(("injection",)),
        lambda v: {"ratio_convention": v},
    ),
    Setting(
        "victim",
        "the victim: T-step gradient descent vs converged least squares "
        "(scikit-learn's LinearRegression, attacked through its exact solution)",
        "study",
        _const("T-step GD"),
        _const(("least squares",)),
        lambda v: {"model": "ols"},
    ),
    Setting(
        "sigma_dof",
        "degrees of freedom of the attack's sigma (Eq. 5's residual standard "
        "error): n - p - 1 vs n (the maximum-likelihood estimate, sigma_ddof=0)",
        "study",
        _const("n - p - 1"),
        _const(("n",)),
        lambda v: {"attack_params": {"sigma_ddof": 0}},
    ),
)

_BY_NAME = {s.name: s for s in SENSITIVITY_SETTINGS}


def _base_settings(data, model, ratios, n_outer_steps):
    from ._curve import _PRESET_KEY, _batch_plan, _n_from_size, _presets, load_dataset

    key = _PRESET_KEY.get(data) if isinstance(data, str) else None
    attack, victim = _presets(key, model)
    X = load_dataset(data)[0] if isinstance(data, str) else data[0]
    n_train = _n_from_size(0.5, len(X), name="train_size")
    return {
        "n_outer_steps": int(n_outer_steps or attack["n_outer_steps"]),
        "batch_size": _batch_plan(ratios, n_train, key)[0],
        # Learning rates of the GD attack and victim (None for scikit-learn's).
        "inner_lr": attack.get("inner_lr"),
        "learning_rate": victim.get("learning_rate"),
    }


def _run_study(curve_args, overrides, out_dir, base=None):
    """One poisoning study with ``overrides``, keyed as the baseline's study.

    ``"double"`` in ``attack_params`` or ``victim_params`` is twice the
    baseline's value (``base``, from the presets). A variant with another
    victim (``model``) keeps the baseline's key, so that its findings compare
    with the baseline's.
    """
    from ._curve import poisoning_curve

    args = dict(curve_args)
    for key in ("attack_params", "victim_params"):
        params = {**(args.get(key) or {}), **overrides.get(key, {})}
        for name, value in params.items():
            if value == "double":
                if (base or {}).get(name) is None:
                    raise ValueError(
                        f"{name} has no preset to double for model "
                        f"{args['model']!r} (it applies to gradient descent)."
                    )
                params[name] = 2 * base[name]
        args[key] = params
    swap = overrides.get("defenses", {})
    args["defenses"] = [swap.get(d, d) for d in args["defenses"]]
    args.update({k: v for k, v in overrides.items() if k in _DIRECT})
    df = poisoning_curve(**args, out_dir=out_dir)
    return {(str(df["dataset"].iloc[0]), curve_args["model"]): df}


# Overrides passed to poisoning_curve as they are.
_DIRECT = ("model", "ratio_convention")


def _run_figure9(fig9_args, overrides, seeds):
    from ._figure9 import figure_9_seeds

    args = {**fig9_args, **overrides}
    args.pop("random_state")
    first = fig9_args["random_state"]
    table, _ = figure_9_seeds(range(first, first + seeds), **args)
    return table


def _verdicts(studies, fig9):
    return {(f.key, f.study): f.verdict for f in evaluate_findings(studies, fig9)}


def sensitivity_study(
    data="boston_housing",
    *,
    settings: Sequence[str] | None = None,
    model: str = "linear",
    alphas: Sequence[float] = (1.0, 0.1),
    ratios: Sequence[float] = (0.0, 0.075, 0.15, 0.3, 0.45),
    defenses: Sequence[str] = DEFENSE_NAMES,
    n_repetitions: int = 6,
    n_outer_steps: int | None = None,
    figure9_seeds: int = 6,
    figure9_n_outer_steps: int = 100,
    random_state: int = 0,
    n_jobs: int | None = None,
    backend: str | None = None,
    device: str = "cpu",
    out_dir=None,
    overwrite: bool = False,
    progress: bool = False,
):
    """Vary each open setting alone from the defaults; report which findings flip.

    Parameters
    ----------
    data : str or tuple (X, y), default="boston_housing"
        The study's data (see :func:`~skpoison.evaluation.poisoning_curve`).
    settings : sequence of str, default=None
        Names from :data:`SENSITIVITY_SETTINGS` to vary; None varies every supported one.
        Unsupported names are reported, not run.
    model, alphas, ratios, defenses, n_repetitions, random_state, n_jobs, \
backend, device, overwrite
        Passed to :func:`~skpoison.evaluation.poisoning_curve` for the baseline
        and every variant.
    n_outer_steps : int, default=None
        The baseline ``T_out`` (None: the dataset's Table II preset).
    figure9_seeds : int, default=6
        Seeds of each :func:`~skpoison.evaluation.figure_9` run (0 skips
        Fig. 9 and its settings).
    figure9_n_outer_steps : int, default=100
        ``T_out`` of the Fig. 9 attack.
    out_dir : path-like, default=None
        Checkpoint folder: each study (baseline and variants) is saved in its
        own subfolder as it runs, and a rerun resumes.
    progress : bool, default=False
        Show a progress bar per study.

    Returns
    -------
    table : pandas.DataFrame
        One row per setting: ``setting``, ``description``, ``default``,
        ``values`` (tried), ``supported`` (False: the code cannot vary it yet)
        and ``flips`` (the findings whose verdict changed, ``"finding
        (study): baseline -> variant @ value"``, ``"none"``, ``"not supported
        yet"``, or ``"not run (no Fig. 9 seeds)"``).
    verdicts : pandas.DataFrame
        One row per run (``setting``, ``value``; the baseline is
        ``("baseline", "default")``) and finding: ``finding``, ``study``,
        ``verdict``, ``baseline`` and ``flipped``.

    Examples
    --------
    >>> table, verdicts = sensitivity_study(
    ...     "synthetic", settings=["trim_max_iter", "sigma_dof"], alphas=[1.0],
    ...     ratios=[0.0, 0.1], defenses=["none", "trim"], n_repetitions=1,
    ...     n_outer_steps=1, figure9_seeds=0)
    >>> table[["setting", "values", "supported"]].values.tolist()
    [['trim_max_iter', '1, 10', True], ['sigma_dof', 'n', True]]
    """
    import pandas as pd

    names = (
        [s.name for s in SENSITIVITY_SETTINGS if s.target]
        if settings is None
        else list(settings)
    )
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ValueError(f"Unknown settings {unknown}; known: {sorted(_BY_NAME)}.")
    if int(figure9_seeds) < 0:
        raise ValueError(f"figure9_seeds must be >= 0, got {figure9_seeds!r}.")
    chosen = [_BY_NAME[n] for n in names]
    ratios = tuple(ratios)
    base = _base_settings(data, model, ratios, n_outer_steps)
    curve_args = dict(
        data=data,
        model=model,
        alphas=tuple(alphas),
        ratios=ratios,
        defenses=list(defenses),
        n_repetitions=n_repetitions,
        attack_params={"n_outer_steps": base["n_outer_steps"]},
        random_state=random_state,
        n_jobs=n_jobs,
        backend=backend,
        device=device,
        overwrite=overwrite,
        progress=progress,
    )
    fig9_args = dict(n_outer_steps=figure9_n_outer_steps, random_state=random_state)

    def folder(name):
        return None if out_dir is None else Path(out_dir) / name

    studies = _run_study(curve_args, {}, folder("baseline"))
    fig9 = _run_figure9(fig9_args, {}, figure9_seeds) if figure9_seeds else None
    baseline = _verdicts(studies, fig9)
    rows = [("baseline", "default", baseline)]
    summary = []
    for s in chosen:
        values = s.values(base)
        runnable = s.target == "study" or (s.target == "figure9" and figure9_seeds)
        flips = []
        for i, v in enumerate(values if runnable else ()):
            overrides = s.apply(v)
            if s.target == "study":
                run = _verdicts(
                    _run_study(curve_args, overrides, folder(f"{s.name}-{i}"), base),
                    fig9,
                )
            else:
                run = _verdicts(
                    studies, _run_figure9(fig9_args, overrides, figure9_seeds)
                )
            rows.append((s.name, _show(v), run))
            flips += [
                f"{key} ({study}): {baseline.get((key, study), 'absent')} -> "
                f"{verdict} @ {_show(v)}"
                for (key, study), verdict in run.items()
                if baseline.get((key, study)) != verdict
            ]
        summary.append(
            dict(
                setting=s.name,
                description=s.description,
                default=_show(s.default(base)),
                values=", ".join(_show(v) for v in values),
                supported=s.target is not None,
                flips=(
                    "; ".join(flips or ["none"])
                    if runnable
                    else "not run (no Fig. 9 seeds)"
                    if s.target
                    else "not supported yet"
                ),
            )
        )
    verdicts = pd.DataFrame(
        [
            dict(
                setting=name,
                value=value,
                finding=key,
                study=study,
                verdict=verdict,
                baseline=baseline.get((key, study)),
                flipped=baseline.get((key, study)) != verdict,
            )  # fmt: skip
            for name, value, run in rows
            for (key, study), verdict in run.items()
        ]
    )
    table = pd.DataFrame(summary)
    table.attrs.update(
        n_repetitions=int(n_repetitions), figure9_seeds=int(figure9_seeds)
    )
    return table, verdicts


def _show(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def sensitivity_markdown(table, verdicts, *, command: str | None = None) -> str:
    """The sensitivity table, then every run's verdicts, as Markdown."""
    text = ["# Sensitivity of the paper's findings", ""]
    if command:
        text += ["Produced by:", "", "```", command, "```", ""]
    n_runs = verdicts[["setting", "value"]].drop_duplicates().shape[0]
    sizes = (
        f" of {table.attrs['n_repetitions']} repetitions (Fig. 9: "
        f"{table.attrs['figure9_seeds']} seeds) each"
        if "n_repetitions" in table.attrs
        else ""
    )
    text += [
        f"Each setting varied alone from the defaults; {n_runs} runs{sizes} "
        "(baseline included). A finding flips when its verdict (agree / disagree "
        "/ inconclusive, see findings.md) differs from the baseline's. Settings "
        "marked 'not supported' cannot be varied by the code yet.",
        "",
        markdown_table(
            ["setting", "what", "default", "values tried", "findings that flip"],
            [
                [
                    r.setting,
                    r.description,
                    r.default,
                    r.values,
                    r.flips,
                ]  # fmt: skip
                for r in table.itertuples()
            ],
        ),
        "",
        "## Verdicts of every run",
        "",
    ]
    wide = verdicts.pivot_table(
        index=["setting", "value"], columns=["finding", "study"], values="verdict",
        aggfunc="first", sort=False,
    )  # fmt: skip
    header = ["setting", "value", *[f"{k} ({s})" for k, s in wide.columns]]
    body = [[*idx, *row] for idx, row in zip(wide.index, wide.to_numpy().tolist())]
    text += [markdown_table(header, body), ""]
    return "\n".join(text)
