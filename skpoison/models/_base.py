"""The sklearn facade shared by the torch victims (fit, predict, tags).

Subclasses say which architecture to build (:func:`~._training.build_mlp`) and
may add checks or fitted attributes; training itself is
:func:`~._training.gradient_descent`, the code the attack's inner problem runs.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._state import atomic_fit
from .._validation import resolve_device, resolve_dtype, validate_regression_data
from ._training import (
    chain_thread_count,
    check_training,
    gradient_descent,
    loss_and_grad_fn,
    torch_threads,
)

__all__ = ["BaseTorchRegressor"]


class BaseTorchRegressor(RegressorMixin, BaseEstimator):
    """Full-batch gradient descent on Eq. (1) of the paper, as a regressor.

    Not for direct use: see :class:`TorchLinearRegressor` and
    :class:`TorchMLPRegressor`.
    """

    _parameter_constraints: dict = {
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "n_epochs": [Interval(Integral, 1, None, closed="left")],
        "l2": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "dtype": [StrOptions({"float64", "float32"})],
        "random_state": ["random_state"],
    }

    def _build_module(
        self, n_features: int, generator: torch.Generator
    ) -> torch.nn.Module:
        """The initialised architecture, float64 on the CPU."""
        raise NotImplementedError

    def _check_trainable(self, X: torch.Tensor) -> None:
        """Raise before training when the data make training diverge."""

    def _set_fitted(self, module: torch.nn.Module) -> None:
        """Extra fitted attributes derived from the trained module."""

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train by ``n_epochs`` full-batch gradient-descent steps.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        self : object
            The fitted regressor.

        Raises
        ------
        skpoison.exceptions.DivergenceError
            If gradient descent diverges with this ``learning_rate``.
        """
        module, Xt, yt = self._start_fit(X, y)
        loss_and_grad = loss_and_grad_fn(module)
        params, losses = self._descend(module, loss_and_grad, Xt, yt)
        check_training(loss_and_grad, params, Xt, yt, losses, l2=self.l2)
        return self._finish_fit(module, params, losses)

    def _descend(self, module, loss_and_grad, Xt, yt):
        """The trained parameters and the loss before each step."""
        with torch_threads(_thread_count(module, Xt)):
            return gradient_descent(
                loss_and_grad,
                [p.detach() for p in module.parameters()],
                Xt,
                yt,
                n_steps=self.n_epochs,
                lr=self.learning_rate,
                l2=self.l2,
            )

    def _start_fit(self, X, y):
        """Validated data as tensors and the initialised module."""
        X, y = validate_regression_data(self, X, y, dtype=np.float64)
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        generator = torch.Generator().manual_seed(int(seed))
        module = self._build_module(X.shape[1], generator).to(
            device=device, dtype=dtype
        )
        # torch refuses NumPy's negative strides (X[::-1]): copy such views.
        Xt = torch.tensor(np.ascontiguousarray(X), dtype=dtype, device=device)
        yt = torch.tensor(np.ascontiguousarray(y), dtype=dtype, device=device)
        self._check_trainable(Xt)
        return module, Xt, yt

    def _finish_fit(self, module, params, losses):
        """Store the trained parameters and the fitted attributes."""
        with torch.no_grad():
            for p, new in zip(module.parameters(), params):
                p.copy_(new)
        # Kept on the CPU so the fitted estimator pickles and predicts anywhere.
        module = module.cpu().requires_grad_(False).eval()
        self.module_ = module
        self.loss_curve_ = losses.cpu().tolist()
        self.n_iter_ = self.n_epochs
        self._set_fitted(module)
        return self

    def predict(self, X):
        """Predict with the trained model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predictions (float64).
        """
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        dtype = next(self.module_.parameters()).dtype
        with torch.no_grad():
            out = self.module_(torch.tensor(np.ascontiguousarray(X), dtype=dtype))
        return out.reshape(-1).double().numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # n_epochs of plain gradient descent from the paper's init underfits the
        # small unscaled problems of sklearn's common checks.
        tags.regressor_tags.poor_score = True
        return tags


def _thread_count(module: torch.nn.Module, X: torch.Tensor) -> int | None:
    """Torch threads for training ``module`` on ``X`` (see :func:`chain_thread_count`)."""
    width = next(module.parameters()).shape[0]
    return chain_thread_count(X.shape[-2], X.shape[-1], width, X.device)
