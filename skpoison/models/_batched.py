"""Fit k torch victims of one shape at once: one loop of batched GD steps.

The evaluation trains many victims of the same architecture on data of the
same shape (the repetitions of a study, the defenses' refits). Their
gradient-descent steps are independent, so :func:`fit_batched` stacks the
``k`` initial parameter sets along a leading axis and runs
:func:`~skpoison.models._training.gradient_descent` once on the stacked data
(batched products, ``bmm``/``baddbmm``). Each estimator ends fitted exactly as
by its own :meth:`fit` (to rounding: the batched kernels may sum in another
order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._state import _restore, _snapshot
from ._base import BaseTorchRegressor, _thread_count
from ._training import (
    _sequential_slopes,
    check_training,
    gradient_descent,
    loss_and_grad_fn,
    torch_threads,
)

__all__ = ["fit_batched"]


def fit_batched(
    estimators: Sequence[BaseTorchRegressor], X: Sequence, y: Sequence
) -> list[BaseTorchRegressor]:
    """Fit ``estimators[i]`` on ``(X[i], y[i])`` for all ``i`` in one training loop.

    Parameters
    ----------
    estimators : sequence of TorchLinearRegressor or TorchMLPRegressor
        Estimators of one class with the same parameters except
        ``random_state``.
    X : sequence of array-like of shape (n_samples, n_features)
        One training set per estimator, all of one shape.
    y : sequence of array-like of shape (n_samples,)

    Returns
    -------
    estimators : list
        The same objects, fitted. If any training diverges, none of them is
        changed and :class:`~skpoison.exceptions.DivergenceError` names it.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.models import TorchMLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(2, 20, 3)), rng.normal(size=(2, 20))
    >>> regs = [TorchMLPRegressor(n_epochs=5, random_state=s) for s in (0, 1)]
    >>> fitted = fit_batched(regs, X, y)
    >>> one = TorchMLPRegressor(n_epochs=5, random_state=1).fit(X[1], y[1])
    >>> bool(np.allclose(fitted[1].predict(X[1]), one.predict(X[1]), rtol=0, atol=1e-12))
    True
    """
    estimators = list(estimators)
    if not estimators:
        raise ValueError("estimators is empty: pass at least one estimator.")
    if len(X) != len(estimators) or len(y) != len(estimators):
        raise ValueError(
            f"X and y must hold one training set per estimator ({len(estimators)}), "
            f"got {len(X)} and {len(y)}."
        )
    first = estimators[0]
    if not isinstance(first, BaseTorchRegressor):
        raise TypeError(
            f"estimators must be skpoison torch regressors, got {type(first).__name__}."
        )
    ref = _shared_params(first)
    for i, est in enumerate(estimators[1:], 1):
        if type(est) is not type(first) or _shared_params(est) != ref:
            raise ValueError(
                f"estimators[{i}] differs from estimators[0] in its class or in a "
                "parameter other than random_state; batched fits need one shape."
            )
    for est in estimators:
        est._validate_params()
    # All or nothing, as each estimator's own (atomic) fit: _start_fit already
    # sets n_features_in_, so a failure restores every estimator's state.
    saved = [_snapshot(est) for est in estimators]
    try:
        _fit_started(estimators, X, y)
    except BaseException:
        for est, state in zip(estimators, saved):
            _restore(est, state)
        raise
    return estimators


def _fit_started(estimators, X, y) -> None:
    first = estimators[0]
    started = [est._start_fit(Xi, yi) for est, Xi, yi in zip(estimators, X, y)]
    shapes = {tuple(Xt.shape) for _, Xt, _ in started}
    if len(shapes) != 1:
        raise ValueError(f"Every X must have the same shape, got {sorted(shapes)}.")
    module = started[0][0]
    if _sequential_slopes(module) is None:  # pragma: no cover - built by build_mlp
        raise TypeError("fit_batched needs a Linear/LeakyReLU chain.")
    params = [
        torch.stack(ps)
        for ps in zip(*([p.detach() for p in m.parameters()] for m, _, _ in started))
    ]
    Xs = torch.stack([Xt for _, Xt, _ in started])
    ys = torch.stack([yt for _, _, yt in started])
    loss_and_grad = loss_and_grad_fn(module)
    with torch_threads(_thread_count(module, Xs)), torch.no_grad():
        params, losses = gradient_descent(
            loss_and_grad, params, Xs, ys,
            n_steps=first.n_epochs, lr=first.learning_rate, l2=first.l2,
        )  # fmt: skip
    for i in range(len(estimators)):  # the criterion of BaseTorchRegressor.fit
        check_training(
            loss_and_grad, [p[i] for p in params], Xs[i], ys[i], losses[:, i],
            l2=first.l2, what=f"training (estimators[{i}])",
        )  # fmt: skip
    for i, (est, (m, _, _)) in enumerate(zip(estimators, started)):
        est._finish_fit(m, [p[i] for p in params], losses[:, i])


def _shared_params(est) -> dict:
    params = est.get_params(deep=False)
    params.pop("random_state", None)
    return {k: repr(v) for k, v in params.items()}
