"""A stand-in for the adaptive attack: the evaluation's tests need its API only.

:class:`KnowsDefense` is a :class:`~skpoison.attacks.StealthyPoisoner` with the
adaptive attack's parameters (``defense``, ``adaptive_temperature``) that
records, in :data:`TOLD`, what each of its fits was told, so that the
evaluation's plumbing (which defense, seed and trusted items reach the attack)
is tested without depending on the attack itself (or its cost).
"""

import inspect

from skpoison.attacks import StealthyPoisoner

#: What each fit of a stand-in attack was told: (defense, n trusted items).
TOLD = []


def _signature():
    """StealthyPoisoner's parameters plus the two adaptive ones (unless it has them)."""
    parent = inspect.signature(StealthyPoisoner.__init__).parameters
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d)
        for name, d in (("defense", None), ("adaptive_temperature", (1.0, 0.05)))
        if name not in parent
    ]
    return inspect.Signature([*parent.values(), *extra])


class KnowsDefense(StealthyPoisoner):
    """StealthyPoisoner with the adaptive attack's parameters; it records them.

    With ``weaken_when_adaptive`` its adaptive runs take no ascent step, so
    their poison differs from the ordinary attack's.
    """

    weaken_when_adaptive = False

    def __init__(self, defense=None, adaptive_temperature=(1.0, 0.05), **params):
        super().__init__(**params)
        self.defense = defense
        self.adaptive_temperature = adaptive_temperature

    # scikit-learn reads the parameters off the signature.
    __init__.__signature__ = _signature()

    def fit(self, X, y, X_val=None, y_val=None, X_trusted=None, y_trusted=None):
        TOLD.append((self.defense, None if X_trusted is None else len(X_trusted)))
        defense = self.defense
        if defense is not None and self.weaken_when_adaptive:
            self.n_outer_steps = 0
        # The parent's ordinary attack, even where the parent has defense=.
        self.defense = None
        try:
            return super().fit(X, y, X_val=X_val, y_val=y_val)
        finally:
            self.defense = defense


class WeakerWhenAdaptive(KnowsDefense):
    weaken_when_adaptive = True
