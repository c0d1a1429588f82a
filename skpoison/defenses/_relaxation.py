r"""Smooth relaxations of the defenses' accept decisions, for adaptive attacks.

An attacker who knows the defense (:class:`~skpoison.attacks.StealthyPoisoner`
with ``defense=``) needs the derivative of *which points the defense keeps*
with respect to the poison points. The hard decision is a step function; each
defense exposes a relaxation of it, a soft weight ``s_i in (0, 1)`` per
training row,

.. math::

    s_i = \sigma\Big(\frac{m_i}{T \, \mathrm{spread}(m)}\Big),

where ``m_i`` is the defense's *margin* (positive for a kept row, negative for
a rejected one, zero on its threshold), ``sigma`` the logistic function, ``T``
a temperature and ``spread(m)`` the 10-90% quantile spread of the margins
(itself differentiated), so ``T`` is unit free. As ``T -> 0`` the weights
tend to the hard mask ``inlier_mask_`` (``s_i -> 1`` for kept rows, ``-> 0``
for rejected ones). The quantile spread, not a MAD, sets the width: scores such
as SEVER's are heavy-tailed, and a MAD-sized width made the relaxation nearly a
step at every temperature (no gradient).

The margins are written in torch from the defense's fitted state (the defense
must have been fitted on the same rows): what the hard fit decided
*discretely* (kept sets, rounds, groups, hyperparameters) is held fixed and
what is continuous in the data is differentiated, as follows.

BayesClean (:class:`~skpoison.defenses.BayesCleanFilter`)
    The score is ``|y_i - mu_i| / sigma_i`` with ``mu_i``, ``sigma_i`` the
    BayesianRidge predictive moments, on standardised data when
    ``standardize=True`` (the standardisation is differentiated too). The
    evidence-maximisation hyperparameters ``alpha_`` and ``lambda_`` are held
    fixed at the hard fit's values within a step; given them the posterior is
    closed form: ``w = (Xc^T Xc + lambda / alpha I)^{-1} Xc^T yc``,
    ``Sigma = (alpha Xc^T Xc + lambda I)^{-1}``,
    ``sigma_i^2 = 1 / alpha + x_ic^T Sigma x_ic``. Margin: ``c - score`` with
    ``c = c1`` (flagged rejected) or ``c2`` (flagged kept); for
    ``rule="paper"``, ``(|mu_i + c sigma_i| - |y_i|) / sigma_i`` (the larger of
    the ``c1`` and ``c2`` margins when flagged points are kept).
TRIM (:class:`~skpoison.defenses.TrimRegressor`)
    TRIM's kept set ``K`` is the ``n - k`` rows with the smallest residuals
    under the model trained on the kept set ``K'`` of its fit before (at its
    fixed point ``K' = K``; when it stops by its tolerance or ``max_iter``,
    ``K'`` is the set it had one fit earlier). ``K'`` is held fixed, the model
    on it is differentiated, and the margin is ``t - |r_i|`` with ``t``
    halfway between the ``(n - k)``-th and ``(n - k + 1)``-th smallest ``|r|``
    (a soft rank: a rejected poison point gains weight as its residual goes
    under the trimming threshold). The model is TRIM's estimator's: least
    squares, ridge for a ``Ridge``, the ``T`` gradient-descent steps of the
    paper's victim, :class:`~skpoison.models.TorchLinearRegressor`
    (:func:`gd_least_squares`);
    least squares stands in for any other estimator. So at ``T -> 0`` the
    weights are ``inlier_mask_`` exactly.
SEVER (:class:`~skpoison.defenses.SeverFilter`)
    Each round's active set is held fixed; the round's fit (the GD victim's
    ``T`` steps for the paper's victim, else least squares), the
    centred per-sample gradients in standard coordinates, their top
    eigenvector ``v`` (``torch.linalg.eigh``) and the projections are
    differentiated. The margin of round ``t`` is ``thr_t - |proj_i|`` with
    ``thr_t`` halfway between the last kept and the first removed ``|proj|``
    of that round (the square root of SEVER's score ``tau``: the same order,
    less heavy-tailed), the width from the round's active rows; the weight is
    the product of the rounds' sigmoids (a row is kept if it survives every
    round). Least squares stands in for any other estimator; the gradients are
    in standard coordinates, or in the units of ``X`` where the fit took a
    torch model's own gradients.
Proda (:class:`~skpoison.defenses.ProdaRegressor`)
    The winning group is held fixed; its small (minimum-norm, in the data's
    frame) least-squares fit is differentiated, and the margin is a soft rank
    of the residuals under it, as for TRIM. The returned model is least
    squares on the kept rows, which the attack differentiates itself.
DUTI (:class:`~skpoison.defenses.DutiFilter`, ``kernel="linear"``)
    DUTI ranks the rows by the path step ``k`` at which their label
    correction turns on, ties broken by the size of the correction's gradient
    just before, ``2 |b_i + z_i^T u_{k-1}| / gamma_{k-1}`` (``u`` the lasso's
    fixed point of :mod:`skpoison.defenses._duti`, ``b`` the labels'
    residuals under the trusted-item-weighted ridge). Each row's step and the
    path's ``u`` are held fixed; ``b`` and ``gamma_max = 2 max |b|`` (which
    scales the penalties) are differentiated, so the relaxed score is DUTI's
    own score and the margin is a soft rank of it (the hard limit is exact).
    Only the within-step part moves: crossing to another step is a jump the
    gradient does not see.

:func:`relaxed_acceptance` is the entry point; the helpers below are shared by
the defenses' ``_relaxed_acceptance`` methods.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models._training import linear_normal_equations

__all__ = ["relaxed_acceptance", "relaxed_log_acceptance"]


def relaxed_acceptance(defense, X, y, temperature: float, **fit_params) -> torch.Tensor:
    """Soft accept weights of a fitted defense on the rows it was fitted on.

    Parameters
    ----------
    defense : fitted skpoison defense
        :class:`~skpoison.defenses.BayesCleanFilter`,
        :class:`~skpoison.defenses.TrimRegressor`,
        :class:`~skpoison.defenses.SeverFilter`,
        :class:`~skpoison.defenses.ProdaRegressor` or
        :class:`~skpoison.defenses.DutiFilter`, fitted on ``(X, y)``.
    X : array-like or Tensor of shape (n_samples, n_features)
        The training rows (a tensor that requires grad to differentiate).
    y : array-like or Tensor of shape (n_samples,)
    temperature : float > 0
        Width of the relaxation; the weights tend to ``inlier_mask_`` as it
        goes to 0.
    **fit_params : dict
        The defense's fit parameters (DUTI's trusted set).

    Returns
    -------
    weights : Tensor of shape (n_samples,)
        In ``[0, 1]``, differentiable with respect to ``X`` and ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import TrimRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2)); y = X @ [1.0, -1.0] + 0.1 * rng.normal(size=40)
    >>> y[:4] += 5.0
    >>> trim = TrimRegressor(reject_fraction=0.1).fit(X, y)
    >>> s = relaxed_acceptance(trim, X, y, temperature=1e-3)
    >>> bool(((s.numpy() > 0.5) == trim.inlier_mask_).all())
    True
    """
    return torch.exp(relaxed_log_acceptance(defense, X, y, temperature, **fit_params))


def relaxed_log_acceptance(
    defense, X, y, temperature: float, **fit_params
) -> torch.Tensor:
    """``log`` of :func:`relaxed_acceptance`, without underflow far from the threshold.

    Its gradient stays informative for rows the defense rejects by far (where
    the weight itself underflows to 0), which is what lets an attacker pull a
    rejected point back under the threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import BayesCleanFilter
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 1)); y = X[:, 0] + 0.1 * rng.normal(size=30)
    >>> y[0] = 50.0
    >>> bc = BayesCleanFilter().fit(X, y)
    >>> float(relaxed_log_acceptance(bc, X, y, 1e-3)[0]) < -100
    True
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}.")
    method = getattr(defense, "_relaxed_acceptance", None)
    if method is None:
        raise TypeError(
            f"{type(defense).__name__} has no relaxation of its accept decision; "
            "adaptive attacks support BayesCleanFilter, TrimRegressor, "
            "SeverFilter, ProdaRegressor and DutiFilter."
        )
    if not hasattr(defense, "inlier_mask_"):
        raise ValueError("The defense must be fitted on (X, y) first.")
    X = as_tensor(X)
    y = as_tensor(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(
            f"X must be 2-d and y 1-d of the same length; got {tuple(X.shape)} "
            f"and {tuple(y.shape)}."
        )
    if X.shape[0] != defense.inlier_mask_.shape[0]:
        raise ValueError(
            f"The defense was fitted on {defense.inlier_mask_.shape[0]} rows, "
            f"got {X.shape[0]}."
        )
    return method(X, y, float(temperature), **fit_params)


# ------------------------------------------------------------------ helpers
def as_tensor(a) -> torch.Tensor:
    """``a`` as a float64 tensor (a tensor keeps its graph)."""
    if isinstance(a, torch.Tensor):
        return a if a.dtype == torch.float64 else a.double()
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))


def spread(values: torch.Tensor) -> torch.Tensor:
    """The 10-90% quantile spread of ``values``: the relaxation's width.

    Differentiable (the quantiles interpolate order statistics), so the
    gradient of the relaxation is that of the whole function. Falls back to
    the standard deviation, then to 1, when the spread is 0.

    Examples
    --------
    >>> float(spread(torch.arange(11.0, dtype=torch.float64)))
    8.0
    """
    v = values.reshape(-1)
    if v.numel() == 0:
        return torch.ones((), dtype=v.dtype)
    q = torch.quantile(v, torch.tensor([0.1, 0.9], dtype=v.dtype))
    width = q[1] - q[0]
    if not float(width.detach()) > 0:
        width = v.std() if v.numel() > 1 else torch.zeros((), dtype=v.dtype)
    if not (np.isfinite(float(width.detach())) and float(width.detach()) > 0):
        width = torch.ones((), dtype=v.dtype)
    return width


def log_soft_accept(
    margin: torch.Tensor, temperature: float, among=None
) -> torch.Tensor:
    """``log sigmoid(margin / (temperature * spread(margin[among])))``.

    ``among`` (a boolean mask) selects the rows whose margins set the width
    (default: all).
    """
    width = spread(margin if among is None else margin[torch.as_tensor(among)])
    return torch.nn.functional.logsigmoid(margin / (temperature * width))


def rank_threshold(values: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Halfway between the ``n_keep``-th and ``(n_keep + 1)``-th smallest ``values``.

    Differentiable (through the two order statistics); above the largest when
    every row is kept.
    """
    n = values.shape[0]
    ordered = torch.sort(values).values
    if n_keep >= n:
        return ordered[-1] + 1.0 + ordered[-1].abs()
    if n_keep <= 0:
        return ordered[0] - 1.0 - ordered[0].abs()
    return 0.5 * (ordered[n_keep - 1] + ordered[n_keep])


def psd_solve(C: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``C^{-1} b`` for symmetric PSD ``C`` (pseudo-inverse when singular), differentiable."""
    d = C.shape[0]
    if d == 0:
        return torch.zeros_like(b)
    diag = torch.diagonal(C).detach()
    varying = diag > 1e-12 * diag.max().clamp_min(1e-300)
    s = torch.where(
        varying, 1.0 / torch.sqrt(diag.clamp_min(1e-300)), torch.zeros_like(diag)
    )
    Cs = C * s[:, None] * s[None, :] + torch.diag((~varying).to(C.dtype))
    L, info = torch.linalg.cholesky_ex(Cs)
    if int(info) == 0:
        dL = torch.diagonal(L).detach().abs()
        if float((dL.max() / dL.min()) ** 2) < 1e12:
            x = torch.cholesky_solve((b * s).unsqueeze(-1), L).squeeze(-1)
            return x * s
    return (torch.linalg.pinv(Cs, hermitian=True) @ (b * s)) * s


def least_squares(X, y, weight=None, ridge: float = 0.0):
    """Weighted least squares (ridge) with an unpenalised intercept, in torch.

    Returns ``(coef, intercept)``, differentiable with respect to ``X``, ``y``
    and ``weight`` (the centred normal equations; minimum norm when singular).
    """
    w = torch.ones_like(y) if weight is None else weight
    n_s = w.sum()
    x_bar = (w[:, None] * X).sum(0) / n_s
    y_bar = (w * y).sum() / n_s
    Xc, yc = X - x_bar, y - y_bar
    C = Xc.T @ (w[:, None] * Xc)
    if ridge:
        C = C + ridge * torch.eye(X.shape[1], dtype=X.dtype)
    coef = psd_solve(C, Xc.T @ (w * yc))
    return coef, y_bar - x_bar @ coef


def gd_least_squares(X, y, weight, l2: float, lr: float, n_steps: int):
    """The GD victim's model on weighted rows, in torch: ``n_steps`` steps from 0.

    Gradient descent on Eq. (1) with the rows weighted (``H = Z^T W Z / sum w
    + l2 P``, ``g = Z^T W y / sum w``, ``Z = [X, 1]``, ``P`` masking the
    bias), ``v <- v - lr (H v - g)``: for 0/1 weights the model
    :class:`~skpoison.models.TorchLinearRegressor` trains on the kept rows.
    Returns ``(coef, intercept)``, differentiable with respect to ``X``, ``y``
    and ``weight``.
    """
    d = X.shape[1]
    H, g = linear_normal_equations(X, y, l2, weight=weight)
    v = torch.zeros(d + 1, dtype=X.dtype)
    for _ in range(int(n_steps)):
        v = v - lr * (H @ v - g)
    return v[:d], v[d]


def estimator_fit(estimator, X, y, weight, ridge: float = 0.0):
    """A defense's model on weighted rows, in torch: ``(coef, intercept)``.

    The paper's GD victim (:class:`~skpoison.models.TorchLinearRegressor`)
    by its ``T`` steps (:func:`gd_least_squares`), any other estimator by
    least squares with penalty ``ridge`` (:func:`least_squares`; exact for
    least squares and ridge, a stand-in otherwise).
    """
    from ..models import TorchLinearRegressor

    if type(estimator) is TorchLinearRegressor:
        return gd_least_squares(
            X, y, weight, estimator.l2, estimator.learning_rate, estimator.n_epochs
        )
    return least_squares(X, y, weight, ridge)


def standard_coordinates(X: torch.Tensor):
    """``(mean, 1 / std)`` of the columns (1 for a constant column), differentiable."""
    mean = X.mean(0)
    std = torch.sqrt(((X - mean) ** 2).mean(0))
    safe = torch.where(std > 0, std, torch.ones_like(std))
    return mean, 1.0 / safe
