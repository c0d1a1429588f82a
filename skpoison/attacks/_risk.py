"""The paper's model-based detectability risk (Section IV-A2, Eq. 5).

The attacker fears defenses that reject points with a large loss under a model
fitted to clean data. The risk of a batch of poison points ``D_p`` is the
product of their losses under the clean model with its output bias shifted by
``+sigma`` and by ``-sigma``:

.. math::

    R(D_p) = L(D_p, w_{cl+}) \\, L(D_p, w_{cl-}),
    \\qquad L(D, w) = \\frac{1}{2 |D|} \\sum_{(x, y) \\in D} (f(x, w) - y)^2 .

Shifting the output bias by ``+-sigma`` shifts every prediction by ``+-sigma``,
so with the clean residuals ``r_k = f(x_k, w_cl) - y_k`` of the poison points

.. math::

    R = \\frac{1}{4 B^2} \\Big(\\sum_k (r_k + \\sigma)^2\\Big)
        \\Big(\\sum_k (r_k - \\sigma)^2\\Big),

which holds for any model whose output layer has a bias (the paper's LR and
MLP). ``sigma`` is the residual standard error of the clean model on the clean
training set, ``sqrt(sum r_i^2 / df)`` with ``df = n_tr - p - 1`` (Eq. 5's
degrees of freedom for LR, ``p`` the number of features). The product is small
for points near either edge of the "confidence band" ``f(x) +- sigma`` and grows
away from it, so it does not simply pull points onto the regression line (which
``L(D_p, w_cl)`` alone would do, redundantly with the effectiveness objective).

``R`` depends on the poison points only through ``f(x_k, w_cl)``: its gradient
with respect to the points needs no unrolling, only autograd through one forward
pass of the clean model (:func:`risk_and_grad`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["detectability_risk", "residual_std", "risk_and_grad"]


def residual_std(residuals, n_features: int, *, ddof: int | None = None) -> float:
    """Residual standard error ``sqrt(sum r^2 / (n - ddof))``.

    Parameters
    ----------
    residuals : array-like of shape (n_samples,)
        Residuals of the clean model on the clean training set.
    n_features : int
        ``p`` in Eq. (5)'s degrees of freedom ``n - p - 1``.
    ddof : int >= 0 or None, default=None
        Delta degrees of freedom: the divisor is ``n - ddof``. None is Eq. (5)'s
        ``p + 1`` (one per coefficient and the intercept); 0 is the maximum
        likelihood estimate ``sqrt(mean r^2)``.

    Returns
    -------
    sigma : float

    Examples
    --------
    >>> residual_std(np.array([1.0, -1.0, 1.0, -1.0]), n_features=1)
    1.414...
    >>> residual_std(np.array([1.0, -1.0, 1.0, -1.0]), n_features=1, ddof=0)
    1.0
    """
    r = _check_residuals(residuals)
    if ddof is None:
        df = r.shape[0] - int(n_features) - 1
        needed = f"n_features + 1 = {int(n_features) + 1}"
    else:
        if isinstance(ddof, bool) or int(ddof) != ddof or ddof < 0:
            raise ValueError(f"ddof must be an int >= 0 or None, got {ddof!r}.")
        df = r.shape[0] - int(ddof)
        needed = f"ddof = {int(ddof)}"
    if df <= 0:
        raise ValueError(
            f"The residual standard error needs more training samples than "
            f"{needed}; got {r.shape[0]}."
        )
    with np.errstate(over="ignore"):
        sigma = float(np.sqrt(np.sum(r**2) / df))
    if not np.isfinite(sigma):
        # The squares overflowed although sigma itself fits: compute it scale-free.
        largest = float(np.max(np.abs(r)))
        sigma = largest * float(np.sqrt(np.sum((r / largest) ** 2) / df))
    return sigma


def _check_residuals(residuals) -> np.ndarray:
    """Residuals as a finite float64 vector (a silent NaN would poison the attack)."""
    r = np.asarray(residuals, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"residuals must be 1-d, got shape {r.shape}.")
    if not np.isfinite(r).all():
        raise ValueError("residuals contain NaN or infinity.")
    return r


def detectability_risk(residuals, sigma):
    """Eq. (5): ``L(D_p, w_cl+) * L(D_p, w_cl-)`` from the clean residuals.

    Parameters
    ----------
    residuals : ndarray or torch.Tensor of shape (n_poison,)
        ``f(x_k, w_cl) - y_k`` for the poison points under the clean model.
    sigma : float
        The clean residual standard error (:func:`residual_std`).

    Returns
    -------
    risk : float or 0-d torch.Tensor
        A float for numpy input; a tensor (that autograd can differentiate) for
        torch input.

    Examples
    --------
    Points on either edge of the band ``f(x) +- sigma`` have zero risk:

    >>> detectability_risk(np.array([1.0, 1.0]), sigma=1.0)
    0.0
    >>> detectability_risk(np.array([0.0]), sigma=1.0)
    0.25
    """
    if isinstance(residuals, np.ndarray) or np.isscalar(residuals):
        r = _check_residuals(np.atleast_1d(residuals))
        if r.size == 0:
            raise ValueError("residuals is empty: the risk of no points is undefined.")
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be finite and >= 0, got {sigma}.")
        # May overflow to +inf (never NaN): R grows like r^4.
        with np.errstate(over="ignore"):
            return float(0.25 * np.mean((r + sigma) ** 2) * np.mean((r - sigma) ** 2))
    return 0.25 * ((residuals + sigma) ** 2).mean() * ((residuals - sigma) ** 2).mean()


def risk_and_grad(predict, X_p, y_p, sigma):
    """Risk of a batch and its gradient with respect to the points.

    Parameters
    ----------
    predict : callable
        Maps a torch tensor of shape (n_poison, n_features) to the clean model's
        predictions, shape (n_poison,), differentiably.
    X_p : torch.Tensor of shape (n_poison, n_features)
    y_p : torch.Tensor of shape (n_poison,)
    sigma : float
        The clean residual standard error.

    Returns
    -------
    risk : float
    grad_X : torch.Tensor of shape (n_poison, n_features)
    grad_y : torch.Tensor of shape (n_poison,)

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([2.0], dtype=torch.float64)
    >>> X = torch.tensor([[1.0]], dtype=torch.float64)
    >>> y = torch.tensor([0.0], dtype=torch.float64)
    >>> r, gX, gy = risk_and_grad(lambda Z: Z @ w, X, y, sigma=1.0)
    >>> r, gX.item(), gy.item()
    (2.25, 12.0, -6.0)
    """
    import torch

    X = X_p.detach().clone().requires_grad_(True)
    y = y_p.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        risk = detectability_risk(predict(X).reshape(-1) - y, sigma)
        grad_X, grad_y = torch.autograd.grad(risk, (X, y))
    return float(risk.detach()), grad_X, grad_y
