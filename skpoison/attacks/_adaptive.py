r"""The adaptive attacker's objective: the model the *defended* learner ends with.

:class:`~skpoison.attacks.StealthyPoisoner` with ``defense=D`` maximises the
paper's objective ``alpha L(D_val, w_D) / L_ref - (1 - alpha) R / R_ref`` where
``w_D`` is the victim trained on the rows that ``D`` keeps from the poisoned
training set (the defended learner), instead of on all rows.

True objective
    At every outer step the defense is fitted (hard, as a defender would; DUTI
    with the defender's trusted items when ``fit`` is given ``X_trusted``,
    else with the attacker's validation set, see :func:`prepare_defense`) on
    the current poisoned set, the victim is trained on the rows it keeps and
    ``L(D_val, w_D)`` is its validation loss; ``L_ref`` is that loss at the
    batch's start (the set poisoned so far, defended). The ascent keeps the
    iterate with the best true objective, not the last. An iterate on which
    the defended learner cannot be trained (its gradient descent diverges on
    the kept rows) has no true objective (NaN in ``history_``) and is never
    kept.
Gradient
    The kept set is relaxed into soft weights ``s_i(X, y)`` per training row
    (:mod:`skpoison.defenses._relaxation`, a sigmoid of the defense's margin at
    temperature ``T``, which is annealed geometrically from
    ``adaptive_temperature[0]`` to ``adaptive_temperature[1]`` over the outer
    steps). The victim is modelled as weighted least squares on all rows,
    ``w(s) = argmin sum_i s_i (x_i^T w + b - y_i)^2``, its converged limit
    (for a scikit-learn victim, that estimator with ``sample_weight = s``;
    the true objective trains the victim itself), so
    by the chain rule, for a poison row ``p``::

        dL/dx_p = (dL/dx_p)|_s + sum_i (dL/ds_i) (ds_i/dx_p)

    where the first term and ``dL/ds`` are exact
    (:class:`~skpoison.attacks.ImplicitLinearEngine`, implicit
    differentiation of the weighted normal equations) and ``ds/dx_p`` is
    autograd through the relaxation (which moves every row's weight: a poison
    point also changes which clean rows the defense keeps). A poison row that
    the defense rejects has ``s_p ~ 0`` and so almost no gradient; the term
    ``L * sum_p log s_p / n`` is added to the ascent objective, whose gradient
    ``(1 - s_p) d(margin_p)`` does not vanish far from the threshold and pulls
    rejected points back under it (a soft rank for TRIM and Proda).
Step
    The adaptive ascents move each point by at most ``outer_lr / 3`` per step
    (``STEP_SCALE``): the relaxed objective is a worse guide than the
    undefended one far from the current kept set, and on Boston
    (``benchmarks/bench_adaptive.py --datasets boston --seeds 1``, run on the
    parent of commit 4311daa with the step as a patched constant) the shorter
    step gave a higher damage ratio averaged over BayesClean, TRIM and SEVER
    (1.34 against 1.30 for ``outer_lr``; one seed, so a weak preference).
Starts
    Two starts per batch, each kept by its best true objective: the
    non-adaptive ascent's start (``init``; by default the copies of the
    replaced points, the paper's ``initDp``), and the non-adaptive
    attack's batch (so the adaptive attack's true objective is at least the
    non-adaptive one's on every batch).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LinearRegression

from ..defenses._relaxation import relaxed_log_acceptance
from ..exceptions import DivergenceError
from ._implicit import SUPPORTED_ESTIMATORS, ImplicitLinearEngine

__all__ = ["AdaptiveObjective", "prepare_defense", "surrogate_victim", "temperatures"]

#: Weight of the pull term ``L * sum_p log s_p / n`` (module docstring).
PULL_WEIGHT = 1.0
#: The adaptive ascents' step, as a fraction of ``outer_lr`` (module docstring).
STEP_SCALE = 1.0 / 3.0


def surrogate_victim(model):
    """The least-squares model that stands for the victim in the gradient.

    ``"linear"`` (gradient descent) is modelled by its converged limit,
    :class:`~sklearn.linear_model.LinearRegression`; a scikit-learn linear
    victim by itself. Other victims have no adaptive attack yet.
    """
    if isinstance(model, str) and model == "linear":
        return LinearRegression()
    if isinstance(model, BaseEstimator) and type(model) in SUPPORTED_ESTIMATORS:
        return clone(model)
    raise ValueError(
        f"defense= (the adaptive attack) needs a linear victim: model='linear' or "
        f"a scikit-learn LinearRegression, Ridge, Lasso or ElasticNet; got {model!r}."
    )


def prepare_defense(defense, seed: int, X_val, y_val, trusted=None):
    """An unfitted clone of ``defense`` (seeded if it draws) and its fit parameters.

    A defense that needs trusted items (DUTI) gets ``trusted`` (a dict with
    ``X_trusted`` and ``y_trusted``: the defender's own, so that the attacker
    models the defense that runs) or, without them, the attacker's validation
    set: what the attacker then assumes the defender trusts.
    """
    est = clone(defense)
    params = est.get_params(deep=False)
    if "random_state" in params and params["random_state"] is None:
        est.set_params(random_state=seed)
    fit_params = {}
    if "X_trusted" in inspect.signature(est.fit).parameters:
        if trusted:
            fit_params = dict(
                X_trusted=trusted["X_trusted"], y_trusted=trusted["y_trusted"]
            )
        else:
            fit_params = dict(X_trusted=X_val, y_trusted=y_val)
    return est, fit_params


def temperatures(schedule, n_steps: int) -> np.ndarray:
    """Geometric annealing from ``schedule[0]`` to ``schedule[1]`` over the steps."""
    start, end = (float(t) for t in schedule)
    if n_steps <= 1:
        return np.array([start])
    return start * (end / start) ** (np.arange(n_steps) / (n_steps - 1))


class AdaptiveObjective:
    """True defended validation loss and the relaxed ascent direction of one batch.

    Called by the attack's ascent as ``(Xp, yp, step, grad) -> (val, gX, gy)``:
    ``val`` the true (hard-defense) validation loss, ``gX``, ``gy`` the
    gradient of the relaxed objective in the same units (module docstring).
    """

    def __init__(self, defense, fit_params, X_cur, y_cur, idx, X_val, y_val,
                 victim_value, surrogate, temps, like):  # fmt: skip
        self.defense, self.fit_params = defense, fit_params
        self.X_cur, self.y_cur, self.idx = X_cur, y_cur, np.asarray(idx)
        self.victim_value = victim_value
        d = X_cur.shape[1]
        self.surrogate = ImplicitLinearEngine(
            surrogate, np.empty((0, d)), np.empty(0), X_val, y_val
        )
        self.temps = temps
        self.like = like
        self.last = None  # the last defense fitted on an iterate  # a tensor with the attack's dtype and device

    def poisoned(self, Xp, yp):
        X, y = self.X_cur.copy(), self.y_cur.copy()
        X[self.idx] = _numpy(Xp)
        y[self.idx] = _numpy(yp)
        return X, y

    def fit_defense(self, X, y):
        return clone(self.defense).fit(X, y, **self.fit_params)

    def true_value(self, Xp, yp):
        X, y = self.poisoned(Xp, yp)
        return self.victim_value(X, y, self.fit_defense(X, y).inlier_mask_)

    def __call__(self, Xp, yp, step, grad):
        X, y = self.poisoned(Xp, yp)
        try:
            fitted = self.fit_defense(X, y)
            val = self.victim_value(X, y, fitted.inlier_mask_)
        except DivergenceError:
            if self.last is None:
                raise
            # The defended learner cannot be trained on this iterate (its
            # gradient descent diverges): it is never kept (NaN objective),
            # and the ascent goes on from the last defense fitted.
            fitted, val = self.last, float("nan")
        else:
            self.last = fitted
        if not grad:
            return val, None, None
        idx = torch.as_tensor(self.idx)
        Xp_t = torch.as_tensor(X[self.idx]).requires_grad_(True)
        yp_t = torch.as_tensor(y[self.idx]).requires_grad_(True)
        Xt = torch.as_tensor(X).index_put((idx,), Xp_t)
        yt = torch.as_tensor(y).index_put((idx,), yp_t)
        log_s = relaxed_log_acceptance(
            fitted, Xt, yt, float(self.temps[min(step, len(self.temps) - 1)]),
            **self.fit_params,
        )  # fmt: skip
        s = torch.exp(log_s)
        _, gX, gy, gs = self.surrogate.value_and_grad(
            X, y, s.detach().numpy(), weight_grad=True
        )
        pull = PULL_WEIGHT * (val if np.isfinite(val) else 1.0) / X.shape[0]
        J = (gs.double() * s).sum() + pull * log_s[idx].sum()
        gXm, gym = torch.autograd.grad(J, (Xp_t, yp_t))
        GX = gX.double()[idx] + gXm
        Gy = gy.double()[idx] + gym
        kw = dict(dtype=self.like.dtype, device=self.like.device)
        return val, GX.to(**kw), Gy.to(**kw)


def _numpy(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy().astype(np.float64)
    return np.asarray(t, dtype=np.float64)
