"""Uniform random poison: a floor for comparing attacks.

Each poison point is drawn independently and uniformly from the feasible box,
features and target alike, with no knowledge of the data beyond the box or of
the model. Any attack worth its cost must beat it; a defense that cannot remove
it removes nothing. The draws come from ``random_state`` after the replacement
order, one point after another, so a smaller ratio is a prefix of a larger one.
"""

from __future__ import annotations

from ._base import BasePoisoner

__all__ = ["NoisePoisoner"]


class NoisePoisoner(BasePoisoner):
    """Random-noise baseline: poison points uniform in the feasible box.

    Replaces a fraction of the training points by points whose features and
    target are drawn uniformly from the box. It needs no model and no data
    beyond the box, so it is the floor of any poisoning curve.

    Also sets the fitted attributes of :class:`BasePoisoner`
    (``batch_slices_``, ``n_batches_``, ``bounds_``, ``n_features_in_``,
    ``feature_names_in_``).

    Parameters
    ----------
    poison_fraction : float in [0, 1), default=0.1
        ``n_p / n_tr``: the fraction of the training points replaced;
        ``n_p = round(poison_fraction * n_tr)``.
    bounds : (low, high) or None, default=None
        The feasible box: scalars or arrays of length ``n_features + 1`` (the
        last entry for the target). ``None`` uses the clean per-column minimum
        and maximum.
    random_state : int, RandomState instance or None, default=None
        Draws which rows are replaced, then the points.

    Attributes
    ----------
    poison_indices_ : ndarray of shape (n_poison,)
        The replaced rows.
    X_poison_ : ndarray of shape (n_poison, n_features)
        The poison points' features.
    y_poison_ : ndarray of shape (n_poison,)
        Their targets.

    See Also
    --------
    FlipPoisoner : Extreme targets on copies of chosen clean points.
    StatPPoisoner : Jagielski et al.'s statistical attack.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.attacks import NoisePoisoner
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.uniform(-1, 1, size=(50, 2)), rng.uniform(0, 3, size=50)
    >>> attack = NoisePoisoner(0.2, bounds=(-1.0, [1.0, 1.0, 3.0]), random_state=0)
    >>> X_pois, y_pois = attack.fit_resample(X, y)
    >>> X_pois.shape, attack.poison_indices_.size
    ((50, 2), 10)
    >>> bool((attack.X_poison_ >= -1).all() and (attack.y_poison_ <= 3).all())
    True
    """

    def __init__(self, poison_fraction=0.1, *, bounds=None, random_state=None):
        self.poison_fraction = poison_fraction
        self.bounds = bounds
        self.random_state = random_state

    def _craft(self, state, indices):
        low, high = state["bounds"]
        points = state["rng"].uniform(low, high, size=(indices.size, low.size))
        return points[:, :-1], points[:, -1]
