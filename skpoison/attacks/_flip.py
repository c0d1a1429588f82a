"""The Flip attack (Müller, Kowatsch and Böttinger, PRDC 2020, Section IV).

A black-box heuristic that needs the training data but no model. Every clean
point ``(x_i, y_i)`` can have its target moved to the top or the bottom of the
feasible target range ``[t_min, t_max]``; the farther end gives the larger
squared error,

.. math::

    \\delta_i = \\max(t_{max} - y_i,\\; y_i - t_{min}),

and the target goes there (up when ``t_max - y_i > y_i - t_min``, down
otherwise, as in the reference code). The attack takes the points with the
largest ``delta`` and inserts copies of them with flipped targets.

In skpoison's replacement convention (``poison_fraction = n_p / n_tr``) the
copies replace the rows drawn by the attack base (a random permutation), so the
``k``-th poison point is always the point with the ``k``-th largest ``delta``
(ties broken by row order) and a smaller ratio is a prefix of a larger one. The
reference code also offers to draw the points at random among the
``best_relax * n_p`` largest ``delta`` (default 1: none); that pool depends on
``n_p`` and would break the prefixes, so it is not offered. ``[t_min, t_max]``
is the target range of the feasible box (by default the clean minimum and
maximum, the reference code's values).
"""

from __future__ import annotations

import numpy as np

from ._base import BasePoisoner

__all__ = ["FlipPoisoner"]


def _flip_order(y, t_min: float, t_max: float):
    """Rows by decreasing room to flip, and the flipped target of each row.

    Returns ``order`` (a permutation of the rows) and ``targets`` (for every row,
    ``t_max`` or ``t_min``, whichever is farther from ``y_i``).
    """
    up = (t_max - y) > (y - t_min)
    room = np.where(up, t_max - y, y - t_min)
    order = np.argsort(-room, kind="stable")
    return order, np.where(up, t_max, t_min)


class FlipPoisoner(BasePoisoner):
    """Flip attack: copies of the points with the most room, targets flipped.

    Müller, Kowatsch and Böttinger's heuristic (2020): each chosen clean point
    gets the end of the target range farther from its target, and the points
    are chosen by how far that is. It needs the training data and the target
    range, but no model and no optimisation, so it is fast and model-agnostic.
    See :mod:`skpoison.attacks._flip` for the rule.

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
        last entry for the target). Flipped targets go to the target's ends;
        copied features are clipped to the box. ``None`` uses the clean
        per-column minimum and maximum.
    random_state : int, RandomState instance or None, default=None
        Draws which rows are replaced by the poison points.

    Attributes
    ----------
    poison_indices_ : ndarray of shape (n_poison,)
        The replaced rows, in the order of decreasing flip room of the copied
        points.
    X_poison_ : ndarray of shape (n_poison, n_features)
        The poison points' features: copies of the clean points in
        ``source_indices_``.
    y_poison_ : ndarray of shape (n_poison,)
        Their flipped targets (the low or high end of the target range).
    source_indices_ : ndarray of shape (n_poison,)
        The clean rows that were copied, by decreasing flip room.

    See Also
    --------
    StatPPoisoner : Jagielski et al.'s statistical attack.
    NoisePoisoner : Uniform random points, a floor for comparisons.

    References
    ----------
    .. [1] N. M. Müller, D. Kowatsch and K. Böttinger, "Data Poisoning Attacks
       on Regression Learning and Corresponding Defenses", IEEE PRDC 2020,
       arXiv:2009.07008.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.attacks import FlipPoisoner
    >>> X = np.arange(6.0).reshape(-1, 1); y = np.array([0.0, 1, 2, 3, 4, 5])
    >>> attack = FlipPoisoner(0.34, random_state=0)
    >>> X_pois, y_pois = attack.fit_resample(X, y)
    >>> attack.source_indices_, attack.y_poison_
    (array([0, 5]), array([5., 0.]))
    >>> X_pois.shape
    (6, 1)
    """

    def __init__(self, poison_fraction=0.1, *, bounds=None, random_state=None):
        self.poison_fraction = poison_fraction
        self.bounds = bounds
        self.random_state = random_state

    def _prepare(self, state, rng, **fit_params):
        low, high = state["bounds"]
        state["flip_order"], state["flip_targets"] = _flip_order(
            state["y"], low[-1], high[-1]
        )

    def _craft(self, state, indices):
        start = sum(b["indices"].size for b in state["batches"])
        source = state["flip_order"][start : start + indices.size]
        return (
            state["X"][source],
            state["flip_targets"][source],
            {"source": source},
        )

    def _set_batch_attributes(self, kept):
        parts = [b["source"][:t] for b, t in kept]
        self.source_indices_ = (
            np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
        )
