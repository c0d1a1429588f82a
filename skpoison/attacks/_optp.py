r"""Jagielski et al.'s optimisation attack OptP (IEEE S&P 2018), vectorised.

The attacker replaces ``n_p`` training points by points that maximise an
objective of the model trained on the poisoned set, by projected gradient
ascent through the model's optimality (KKT) conditions: the exact
hypergradients of :class:`~skpoison.attacks.ImplicitLinearEngine`, for
scikit-learn's ``LinearRegression``, ``Ridge``, ``Lasso`` and ``ElasticNet``.

How it follows the paper and its code (``jagielski/manip-ml``, ported to
holisticai as ``LinRegGDPoisoner``)
-------------------------------------------------------------------
Objectives
    ``"W"``: the loss on the attacker's validation set (``X_val``, ``y_val``;
    the clean training data when none is given); ``"V"``: the loss on the clean
    points of the poisoned training set. Both as ``1/(2m) sum (f(x) - y)^2``
    (a positive factor does not change the ascent); their ``V`` adds the
    penalty of the model, which is left out here.
Initialisations
    ``"inverse_flip"`` (their ``inf_flip``), ``"boundary_flip"``
    (``randflip``), ``"random"`` (``randflipnobd``): drawn from the points
    kept, in the unit box, by :mod:`skpoison.attacks._init` (shared with
    :class:`~skpoison.attacks.StealthyPoisoner`'s ``init``).
Ascent
    Their code works in the box ``[0, 1]``: here every coordinate is mapped
    affinely from the feasible box to ``[0, 1]`` (so the steps do not depend on
    units). Each iteration computes every point's gradient at the current
    poisoned set, normalises ``[grad_x, grad_y]`` per point to unit length, and
    runs their line search: steps ``eta``, ``eta beta``, ``eta beta^2``, ...
    added one after another (projected onto the box), until the objective
    decreases (the last step is undone), changes by less than ``1e-8``, or 100
    steps. An iteration without progress multiplies ``eta`` by 0.75. They stop
    after at least ``min_iter`` iterations once the objective changes by at
    most ``eps``, or after ``max_iter``. Both thresholds are on the MSE of
    targets in ``[0, 1]``, as in their code: changes of the objective are
    divided by the squared width of the target's box, so neither depends on
    the units of ``y``.
Scale
    The engine gets the data times a power of two ``c`` that brings the box to
    unit size (exact: no digit changes), and the victim's ``alpha`` times
    ``c^2`` (the same coefficients): data at 1e-300 or 1e+270, whose squares
    under- or overflow float64, give the attack of the same data at scale 1.
Vectorisation
    Their code moves one point at a time, refitting the model at each
    line-search step of each point (with the other poison points absent from
    the refit). Here all points move together along their normalised
    gradients, and each line-search step is one refit (an exact solve on the
    Gram statistics for OLS and Ridge): the same step rule on the joint
    objective.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.linear_model import LinearRegression
from sklearn.utils._param_validation import Interval, StrOptions

from .._state import atomic_fit
from ._base import BasePoisoner, check_validation_set
from ._hypergradient import make_engine
from ._init import JAGIELSKI_INITS, unit_start

__all__ = ["OptPPoisoner"]


def _penalty_of(model) -> float | None:
    """The model's ``alpha`` if it is a finite number > 0 (else the engine checks it)."""
    alpha = getattr(model, "alpha", None)
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        if np.isfinite(alpha) and alpha > 0:
            return float(alpha)
    return None


def _unit_exponent(low, high, model) -> int:
    """``k`` such that ``2**k`` times the box ``[low, high]`` has size about 1.

    With a penalty ``alpha`` (which becomes ``alpha * 4**k``, module ``_craft``)
    ``k`` is limited so that the scaled penalty stays a normal float.
    """
    top = max(np.abs(low).max(initial=0.0), np.abs(high).max(initial=0.0))
    k = -int(np.frexp(top)[1]) if top > 0 else 0
    alpha = _penalty_of(model)
    if alpha is not None:
        e = int(np.frexp(alpha)[1])
        k = min(max(k, (-1000 - e) // 2), (1000 - e) // 2)
    return k


def _scaled_model(model, two_k: int):
    """``model`` for the data times ``2**(two_k / 2)``: its ``alpha`` times ``2**two_k``.

    Every supported objective (module ``_implicit``) is the squared error plus
    ``alpha`` times a penalty on the coefficients: scaling ``X`` and ``y`` by
    ``c`` scales the error by ``c**2``, so ``alpha c**2`` gives the same
    coefficients.
    """
    alpha = _penalty_of(model)
    if two_k == 0 or alpha is None:
        return model
    return clone(model).set_params(alpha=float(np.ldexp(float(alpha), two_k)))


class OptPPoisoner(BasePoisoner):
    """Jagielski et al.'s optimisation poisoning attack (OptP) on linear regression.

    Replaces a fraction of the training points by points optimised by
    projected gradient ascent, through the KKT conditions of the victim
    (scikit-learn's ``LinearRegression``, ``Ridge``, ``Lasso`` or
    ``ElasticNet``), to maximise the victim's validation loss (objective
    ``"W"``) or its loss on the clean training points (``"V"``). See
    :mod:`skpoison.attacks._optp` for how it follows the paper.

    Parameters
    ----------
    poison_fraction : float in [0, 1), default=0.1
        ``n_p / n_tr``: the fraction of the training points replaced.
    model : LinearRegression, Ridge, Lasso, ElasticNet or None, default=None
        The victim (unfitted); ``None`` is ``LinearRegression()``.
    init : {"inverse_flip", "boundary_flip", "random"}, default="inverse_flip"
        How the starting points are drawn (:mod:`skpoison.attacks._init`).
    objective : {"W", "V"}, default="W"
        Validation loss (``W``) or loss on the clean training points (``V``).
    eta : float > 0, default=0.01
        Line-search step, in units of the box width (their ``eta``).
    beta : float in (0, 1), default=0.05
        Line-search decay (their ``beta``).
    eps : float >= 0, default=1e-3
        Stop once the objective changes by at most ``eps`` (their ``eps``).
    min_iter, max_iter : int, default=15, 50
        Iterations: at least ``min_iter`` (capped at ``max_iter``), at most
        ``max_iter``.
    optimize_y : bool, default=True
        Move the targets too (their ``opty``).
    bounds : (low, high) or None, default=None
        The feasible box (default: per-column minimum and maximum of the clean
        features and target).
    random_state : int, RandomState instance or None, default=None
        Seeds the rows replaced and the starting points.

    Attributes
    ----------
    poison_indices_, X_poison_, y_poison_, batch_slices_, n_batches_, bounds_
        See :class:`~skpoison.attacks.BasePoisoner`.
    history_ : ndarray of shape (n_iter_ + 1,)
        The objective after each iteration (entry 0: at the start), in the
        squared units of ``y`` (``inf`` where that overflows float64: the
        attack itself runs at unit scale and is not affected).
    n_iter_ : int
        Iterations run.

    References
    ----------
    .. [1] M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru and B. Li,
       "Manipulating Machine Learning: Poisoning Attacks and Countermeasures
       for Regression Learning", IEEE S&P 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.attacks import OptPPoisoner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(60, 2)); y = X @ [0.5, 0.3] + 0.05 * rng.normal(size=60)
    >>> attack = OptPPoisoner(0.1, random_state=0)
    >>> X_pois, y_pois = attack.fit_resample(X, y)
    >>> X_pois.shape, attack.poison_indices_.shape
    ((60, 2), (6,))
    >>> bool(attack.history_[-1] > attack.history_[0])
    True
    """

    _parameter_constraints: dict = {
        **BasePoisoner._parameter_constraints,
        "model": [None, BaseEstimator],
        "init": [StrOptions(set(JAGIELSKI_INITS))],
        "objective": [StrOptions({"W", "V"})],
        "eta": [Interval(numbers.Real, 0, None, closed="neither")],
        "beta": [Interval(numbers.Real, 0, 1, closed="neither")],
        "eps": [Interval(numbers.Real, 0, None, closed="left")],
        "min_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "optimize_y": ["boolean"],
    }

    def __init__(
        self,
        poison_fraction: float = 0.1,
        *,
        model=None,
        init: str = "inverse_flip",
        objective: str = "W",
        eta: float = 0.01,
        beta: float = 0.05,
        eps: float = 1e-3,
        min_iter: int = 15,
        max_iter: int = 50,
        optimize_y: bool = True,
        bounds=None,
        random_state=None,
    ):
        self.poison_fraction = poison_fraction
        self.model = model
        self.init = init
        self.objective = objective
        self.eta = eta
        self.beta = beta
        self.eps = eps
        self.min_iter = min_iter
        self.max_iter = max_iter
        self.optimize_y = optimize_y
        self.bounds = bounds
        self.random_state = random_state

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, X_val=None, y_val=None):
        """Craft the poison points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        X_val, y_val : array-like, optional
            The attacker's validation set for ``objective="W"`` (default: the
            clean training data).

        Returns
        -------
        self : OptPPoisoner
        """
        return self._fit(X, y, X_val=X_val, y_val=y_val)

    def fit_resample(self, X, y, X_val=None, y_val=None):
        """Craft the poison points; return every row with the replaced ones poisoned.

        Returns
        -------
        X_poisoned : ndarray of shape (n_samples, n_features)
        y_poisoned : ndarray of shape (n_samples,)
        """
        return super().fit_resample(X, y, X_val=X_val, y_val=y_val)

    # ------------------------------------------------------------------- hooks
    def _check_fit_params(self, X, X_val=None, y_val=None):
        X_val, y_val = check_validation_set(X, X_val, y_val)
        return dict(X_val=X_val, y_val=y_val)

    def _prepare(self, st, rng, X_val=None, y_val=None):
        st["model"] = LinearRegression() if self.model is None else self.model
        st["X_val"], st["y_val"] = (
            (st["X"], st["y"]) if X_val is None else (X_val, y_val)
        )

    def _craft(self, st, idx):
        low, high = st["bounds"]
        # The engine works on the data times a power of two c that brings the box
        # to unit size: exact (no rounding), and its sums of squares neither
        # underflow (data at 1e-300) nor overflow; the penalty becomes alpha c^2.
        k = _unit_exponent(low, high, st["model"])
        low, high = np.ldexp(low, k), np.ldexp(high, k)
        width = np.where(high > low, high - low, 1.0)
        X_cur, y_cur = np.ldexp(st["X_current"], k), np.ldexp(st["y_current"], k)
        fixed = np.ones(st["n_train"], dtype=bool)
        fixed[idx] = False
        # Work in the unit box, as their code does: u = (z - low) / width.
        U = (np.column_stack([X_cur, y_cur]) - low) / width
        start = unit_start(self.init, U[fixed], idx.size, st["rng"])
        X_val, y_val = (
            (X_cur[fixed], y_cur[fixed])
            if self.objective == "V"
            else (np.ldexp(st["X_val"], k), np.ldexp(st["y_val"], k))
        )
        engine = make_engine(
            _scaled_model(st["model"], 2 * k),
            X_cur[fixed],
            y_cur[fixed],
            X_val,
            y_val,
            n_steps=1,
            lr=1.0,
        )
        U_p, history = self._ascend(engine, start, low, width)
        Z = np.ldexp(U_p * width + low, -k)
        # The objective in the data's units (c^2 times smaller; inf past float64).
        with np.errstate(over="ignore"):
            history = np.ldexp(history, -2 * k)
        return Z[:, :-1], Z[:, -1], {"history": history}

    def _set_batch_attributes(self, kept):
        hist = [b["history"] for b, _ in kept]
        self.history_ = hist[-1] if hist else np.zeros(0)
        self.n_iter_ = max(self.history_.size - 1, 0)

    # ---------------------------------------------------------------- internals
    def _objective(self, engine, U, low, width, grad=False):
        Z = U * width + low
        Xp = torch.as_tensor(Z[:, :-1])
        yp = torch.as_tensor(Z[:, -1])
        if not grad:
            return float(engine.value(Xp, yp))
        val, gX, gy = engine.value_and_grad(Xp, yp)
        # Chain rule to the unit box.
        G = np.column_stack([gX.numpy(), gy.numpy()]) * width
        if not self.optimize_y:
            G[:, -1] = 0.0
        return float(val), G

    def _ascend(self, engine, U, low, width):
        eta = float(self.eta)
        obj, _ = self._objective(engine, U, low, width, grad=True)
        history = [obj]
        for count in range(1, self.max_iter + 1):
            _, G = self._objective(engine, U, low, width, grad=True)
            norm = np.linalg.norm(G, axis=1, keepdims=True)
            direction = G / np.where(norm > 0, norm, 1.0)
            U_new, new = self._line_search(engine, U, obj, direction, eta, low, width)
            if new < obj:  # no progress: smaller steps, keep the points
                eta *= 0.75
                new = obj
            else:
                U = U_new
            # Their eps is on the MSE of targets in [0, 1].
            change = abs(new - history[-1]) * 2.0 / width[-1] ** 2
            obj = new
            history.append(obj)
            if count >= self.min_iter and change <= self.eps:
                break
        return U, np.asarray(history)

    def _line_search(self, engine, U, obj, direction, eta, low, width):
        """Their line search: steps eta, eta beta, ... while the objective grows."""
        last, w1 = U, obj
        cur = U
        for k in range(100):
            step = eta * self.beta**k
            cur = np.clip(cur + step * direction, 0.0, 1.0)
            w2 = self._objective(engine, cur, low, width)
            # Their 1e-8, like eps, is on the MSE of targets in [0, 1].
            if abs(w1 - w2) * 2.0 / width[-1] ** 2 < 1e-8:
                return cur, w2
            if w2 < w1:
                return last, w1
            last, w1 = cur, w2
        return last, w1
