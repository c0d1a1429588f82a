"""skpoison: data-poisoning attacks and defenses for regression.

A scikit-learn compatible library built around the paper *Stealthy Poisoning
Attacks Bypass Defenses in Regression Settings* (Carnerero-Cano, Muñoz-González,
Spencer and Lupu).

Subpackages
-----------
datasets
    The paper's datasets (three shipped, Loan fetched on demand), the synthetic
    set and the paper's split / standardisation protocol.
metrics
    NMSE, defense gain and scorers.
models
    The victim models (full-batch gradient descent, the paper's initialisation).
defenses
    BayesClean, TRIM, SEVER, Proda, DUTI and the :class:`DefendedRegressor`.
attacks
    :class:`StealthyPoisoner`, the stealthy bilevel attack.
evaluation
    Poisoning curves, plots and reports.
"""

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "attacks",
    "datasets",
    "defenses",
    "evaluation",
    "metrics",
    "models",
]

_SUBPACKAGES = frozenset(__all__) - {"__version__"}


def __getattr__(name):
    # Subpackages load on first use (``skpoison.defenses``) so that
    # ``import skpoison`` stays cheap and does not import torch.
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBPACKAGES)
