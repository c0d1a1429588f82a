"""TorchLinearRegressor: the paper's linear victim (zeros init, full-batch GD)."""

from __future__ import annotations

import torch
from sklearn.utils._param_validation import StrOptions

from ._base import BaseTorchRegressor
from ._closed_form import gd_closed_form, gd_loss_excess
from ._training import (
    build_mlp,
    chain_thread_count,
    check_hessian_stability,
    check_linear_stability,
    init_paper_params,
    linear_normal_equations,
    torch_threads,
)

__all__ = ["TorchLinearRegressor"]


class TorchLinearRegressor(BaseTorchRegressor):
    """Linear regression trained by full-batch gradient descent, as in the paper.

    Minimises Eq. (1), ``1/(2n) sum (x^T w + b - y)^2 + l2/2 ||w||^2``, by
    ``n_epochs`` steps ``w <- w - learning_rate * grad`` from ``w = 0``. This is
    exactly the inner problem of :class:`~skpoison.attacks.StealthyPoisoner`
    with ``model="linear"`` (Table III: same ``eta``, epochs ``= T``), so the
    victim learns what the attacker optimised against.

    The ``T`` steps from zero have a closed form, ``w_T = F(H) g`` with ``H``
    the Hessian, ``g = Z^T y / n`` and ``F`` a geometric series per eigenvalue
    (:mod:`skpoison.models._closed_form`, the algebra of the attack's spectral
    engine). ``solver="closed_form"`` (the default) computes it from one
    ``(d+1) x (d+1)`` eigendecomposition, in float64 on the host; it is the
    same model as the loop (``solver="gd"``) to rounding (about ``1e-13``,
    tested), with the same stability check, loss curve and errors.

    Parameters
    ----------
    learning_rate : float, default=0.1
        ``eta`` in the paper.
    n_epochs : int, default=40
        Number of full-batch steps (``T`` / "# Epochs" in Tables II-III).
    l2 : float, default=0.0
        ``lambda`` in Eq. (1), on the coefficients only (the paper uses 0).
    device : str or torch.device, default="cpu"
        Where to train: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    dtype : {"float64", "float32"}, default="float64"
        Precision of training.
    random_state : int, RandomState instance or None, default=None
        Unused (the initialisation is zeros); accepted for symmetry with
        :class:`TorchMLPRegressor`.
    solver : {"closed_form", "gd"}, default="closed_form"
        ``"gd"`` runs the ``n_epochs`` steps in torch; ``"closed_form"`` gives
        their result from the Gram matrix (cost ``O(n d^2)``, independent of
        ``n_epochs``). With ``dtype="float32"`` the closed form's algebra is
        float64 (the loop rounds each step in float32).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Coefficients.
    intercept_ : float
        Intercept.
    module_ : torch.nn.Sequential
        The trained ``nn.Linear(n_features, 1)`` (on the CPU).
    loss_curve_ : list of float
        Training loss (Eq. (1)) before each step (in closed form: ``L(w_T)``
        plus the excess of each step, a sum of positive terms).
    n_iter_ : int
        Number of steps taken (``n_epochs``).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    Raises
    ------
    skpoison.exceptions.DivergenceError
        In ``fit``, when ``learning_rate * lambda_max(Z^T Z / n) >= 2`` with
        ``Z = [X, 1]``: gradient descent would diverge.

    See Also
    --------
    TorchMLPRegressor : The paper's neural-network victim.
    sklearn.linear_model.SGDRegressor : Stochastic (not full-batch) training.

    References
    ----------
    .. [1] J. Carnerero-Cano, L. Muñoz-González, P. Spencer and E. C. Lupu,
       "Stealthy Poisoning Attacks Bypass Defenses in Regression Settings",
       Eq. (1) and Appendix E.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.models import TorchLinearRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, size=(100, 1))
    >>> y = 0.8 * X[:, 0] + 0.5
    >>> reg = TorchLinearRegressor(learning_rate=0.5, n_epochs=200).fit(X, y)
    >>> reg.coef_.round(2), round(reg.intercept_, 2)
    (array([0.8]), 0.5)
    """

    def __init__(
        self,
        learning_rate=0.1,
        n_epochs=40,
        l2=0.0,
        device="cpu",
        dtype="float64",
        random_state=None,
        solver="closed_form",
    ):
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.l2 = l2
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.solver = solver

    def _build_module(self, n_features, generator):
        return init_paper_params(
            build_mlp(n_features, ()).double(), generator=generator
        )

    _parameter_constraints: dict = {
        **BaseTorchRegressor._parameter_constraints,
        "solver": [StrOptions({"closed_form", "gd"})],
    }

    def _check_trainable(self, X: torch.Tensor) -> None:
        if self.solver == "gd":  # the closed form checks the same H in _descend
            check_linear_stability(X, self.learning_rate, self.l2)

    def _descend(self, module, loss_and_grad, Xt, yt):
        if self.solver == "gd":
            return super()._descend(module, loss_and_grad, Xt, yt)
        n, d = Xt.shape
        lr, T = self.learning_rate, self.n_epochs
        with torch_threads(chain_thread_count(n, d, d + 1, Xt.device)):
            H, g = linear_normal_equations(Xt, yt, self.l2)
            check_hessian_stability(H, lr)  # the loop's check, on the same H
        w, spectrum = gd_closed_form(
            H.double().cpu().numpy(), g.double().cpu().numpy(), lr, T
        )
        w = torch.as_tensor(w, dtype=Xt.dtype, device=Xt.device)
        params = [w[:d].reshape(1, d), w[d:].clone()]
        with torch.no_grad():
            last, _ = loss_and_grad(params, Xt, yt, self.l2)
            # The loss at w_0 = 0 exactly as the loop computes it.
            first, _ = loss_and_grad([torch.zeros_like(p) for p in params], Xt, yt)
        curve = float(last) + gd_loss_excess(spectrum, lr, T)
        curve[0] = float(first)
        return params, torch.as_tensor(curve, dtype=Xt.dtype, device=Xt.device)

    def _set_fitted(self, module):
        layer = module[0]
        self.coef_ = layer.weight.detach().reshape(-1).double().numpy().copy()
        self.intercept_ = float(layer.bias.detach()[0])
