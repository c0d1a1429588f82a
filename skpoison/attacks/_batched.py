"""Hypergradients of k independent MLP attack problems of one shape in one call.

A study runs many attacks whose inner problems have the same shape: the
repetitions of one alpha (other splits, other initialisations) or the alphas
of one repetition. :class:`BatchedUnrolledEngine` stacks ``k`` such
:class:`~skpoison.attacks._hypergradient.UnrolledEngine` problems along a
leading axis and runs the hand-written reverse pass
(:func:`~skpoison.attacks._hypergradient._chain_value_and_grad`) once, with
batched products (``bmm``/``baddbmm``) in place of the per-problem ones. The
algebra is the same code as the one-problem path; the results agree with
``k`` separate calls to rounding (the batched BLAS kernels may sum in
another order).

Where it pays. Not on the CPU, measured: there the Heart and Loan shapes
are bound by the arithmetic and the memory traffic of their ``n``-wide
arrays, not by per-operation overhead, and stacking ``k`` problems only
multiplies both by ``k`` (with a ``k`` times larger working set per step).
For 10 Heart problems ``python benchmarks/bench_dnn_study.py
--defenses-unit --floor`` measured the batched call at 0.82x the speed of
10 separate calls (CPU time 84.8 against 69.3 ms per problem) and the
batched victims at 0.88x (commit 07a804d, the 2-core machine to itself,
load average 0.5-0.6; ``benchmarks/results/dnn_study_cpu.json``). The
issue's goal of a 4x faster batched study cannot be met on the CPU:
batching can at most remove the per-operation cost, and the same call on
128 rows (the same sequence of operations, almost no arithmetic) takes 11.9
ms of CPU time against 67.2 ms for the Heart call, so even a perfectly free
batching would bound the gain near 1.2x. The call's 2.0 GFLOP of products,
each replayed alone on warm operands, take 37.7 ms (53 GFLOP/s in float64 on
one core) and its other operations 8.7 ms: the paper's full Heart DNN study
(19440 calls and 40 units of defenses, 7.2 s each) would take 9.9 min on 2
cores if every call ran at that floor, against 13.6 min projected from the
calls as they run. On the CPU the evaluation therefore runs its units one
at a time; on a GPU,
where each product of these sizes is one short kernel launch, one call for
``k`` problems replaces ``k`` launches (not measured: no device was used).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..exceptions import DivergenceError
from ..models._training import (
    loss_and_grad_fn,
)
from ._hypergradient import UnrolledEngine, _checked_descent, _run_chain

__all__ = ["BatchedUnrolledEngine"]


class BatchedUnrolledEngine:
    """``k`` :class:`~skpoison.attacks.UnrolledEngine` problems of one shape in one call.

    The hand-written reverse pass of the paper's MLP runs once for all ``k``
    problems with batched products; each result agrees with the problem's own
    engine to rounding. Inputs are never modified.

    Parameters
    ----------
    engines : sequence of UnrolledEngine
        Engines of the paper's MLP (or any Linear/LeakyReLU chain with
        slopes >= 0) that use the hand-written reverse pass, with the same
        ``n_steps``, ``lr``, ``l2``, dtype, device, architecture and numbers
        of fixed and validation rows. Their data and initial parameters may
        differ.

    Attributes
    ----------
    n_problems : int
        ``k``.
    init_params : list of Tensor
        The engines' initial parameters, stacked: shapes ``(k, *shape)``.

    See Also
    --------
    skpoison.attacks.UnrolledEngine : One problem.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.attacks import BatchedUnrolledEngine, UnrolledEngine
    >>> rng = np.random.default_rng(0)
    >>> def engine(seed):
    ...     X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    ...     return UnrolledEngine("mlp", X[:20], y[:20], X[20:], y[20:], n_steps=4,
    ...                           lr=0.1, hidden_layer_sizes=(4,), random_state=seed)
    >>> batched = BatchedUnrolledEngine([engine(0), engine(1)])
    >>> Xp, yp = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5))
    >>> val, gX, gy = batched.value_and_grad(Xp, yp)
    >>> tuple(val.shape), tuple(gX.shape), tuple(gy.shape)
    ((2,), (2, 5, 3), (2, 5))
    """

    def __init__(self, engines: Sequence[UnrolledEngine]):
        engines = list(engines)
        if not engines:
            raise ValueError("engines is empty: pass at least one UnrolledEngine.")
        for e in engines:
            if not isinstance(e, UnrolledEngine) or e._slopes is None:
                raise TypeError(
                    "engines must be UnrolledEngine instances of a Linear/LeakyReLU "
                    "chain with hidden layers (the hand-written reverse pass), got "
                    f"{e!r}."
                )
        first = engines[0]
        for i, e in enumerate(engines[1:], 1):
            if _shape_key(e) != _shape_key(first):
                raise ValueError(
                    f"engines[{i}] does not have the shape of engines[0]: "
                    f"{_shape_key(e)} != {_shape_key(first)} (n_steps, lr, l2, "
                    "slopes, dtype, device, fixed rows, validation rows, parameter "
                    "shapes must agree)."
                )
        self.engines = engines
        self.n_problems = len(engines)
        self.n_features = first.n_features
        self.n_steps, self.lr, self.l2 = first.n_steps, first.lr, first.l2
        self.dtype, self.device = first.dtype, first.device
        self._slopes = first._slopes
        self.X_fixed = torch.stack([e.X_fixed for e in engines])
        self.y_fixed = torch.stack([e.y_fixed for e in engines])
        self.X_val = torch.stack([e.X_val for e in engines])
        self.y_val = torch.stack([e.y_val for e in engines])
        self.init_params = [
            torch.stack(ps) for ps in zip(*(e.init_params for e in engines))
        ]
        self._loss_and_grad = loss_and_grad_fn(first.module)
        self._workspace: dict = {}

    def _poison(self, X_p, y_p):
        """Stacked ``(k, n_p, d)`` and ``(k, n_p)`` poison points, each checked."""
        k = self.n_problems
        if len(X_p) != k or len(y_p) != k:
            raise ValueError(
                f"X_p and y_p must hold one batch per problem ({k}), got "
                f"{len(X_p)} and {len(y_p)}."
            )
        pairs = [e._poison(a, b) for e, a, b in zip(self.engines, X_p, y_p)]
        shapes = {tuple(a.shape) for a, _ in pairs}
        if len(shapes) != 1:
            raise ValueError(
                f"Every problem's X_p must have the same shape, got {sorted(shapes)}."
            )
        return torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs])

    def _thread_count(self, n_p):
        # Per problem: torch splits batched products over problems, which
        # gained nothing (see chain_thread_count).
        return self.engines[0]._thread_count(n_p)

    def value_and_grad(self, X_p, y_p):
        """Validation losses and their gradients for all ``k`` problems.

        Parameters
        ----------
        X_p : array-like or sequence of shape (k, n_p, n_features)
        y_p : array-like or sequence of shape (k, n_p)

        Returns
        -------
        val_loss : Tensor of shape (k,)
        grad_X_p : Tensor of shape (k, n_p, n_features)
        grad_y_p : Tensor of shape (k, n_p)
        """
        X_p, y_p = self._poison(X_p, y_p)
        return _run_chain(self, X_p, y_p)

    def train(self, X_p, y_p) -> list[torch.Tensor]:
        """The ``k`` trained parameter sets, stacked (shapes ``(k, *shape)``)."""
        X_p, y_p = self._poison(X_p, y_p)
        X = torch.cat([self.X_fixed, X_p], dim=1)
        y = torch.cat([self.y_fixed, y_p], dim=1)
        return _checked_descent(self, X, y, self._thread_count(X_p.shape[1]))

    def value(self, X_p, y_p) -> torch.Tensor:
        """Validation losses (shape ``(k,)``) of the models trained with the poison points."""
        params = self.train(X_p, y_p)
        vals = torch.stack(
            [
                e.validation_loss([p[i] for p in params])
                for i, e in enumerate(self.engines)
            ]
        )
        if not bool(torch.isfinite(vals).all()):
            raise DivergenceError(
                "The inner training diverged (non-finite validation loss); "
                "lower the inner learning rate."
            )
        return vals


def _shape_key(e: UnrolledEngine):
    return (
        e.n_steps, e.lr, e.l2, tuple(e._slopes), e.dtype, e.device,
        tuple(e.X_fixed.shape), tuple(e.X_val.shape),
        tuple(tuple(p.shape) for p in e.init_params),
    )  # fmt: skip
