r"""Hypergradients of the validation loss with respect to the poison points.

The attack (Alg. 2-4 of the paper) needs, for a batch of poison points
``(X_p, y_p)``, the validation loss of the model trained on
``D = D_fixed U (X_p, y_p)`` and its gradient with respect to ``X_p`` and
``y_p``::

    val(X_p, y_p) = 1 / (2 m) * sum_{(x, y) in D_val} (f(x, w_T) - y) ** 2,

where ``w_T`` is the result of ``T`` full-batch gradient-descent steps with
learning rate ``eta`` from the paper's initialisation on the ``n = n_fixed + n_p``
training points (the training convention of :mod:`skpoison.models._training`).
Two engines compute it, with one interface
(``value_and_grad``, ``value``, ``train``, ``predict``):

:class:`UnrolledEngine` (any model)
    Reverse-mode differentiation through the ``T`` unrolled steps (Alg. 3 of the
    paper), which is exactly what autograd does on the unrolled loop. With
    ``force_autograd=True`` it is the *generic engine*: each step's gradient
    comes from ``torch.autograd.grad(create_graph=True)`` through the module,
    for any ``nn.Module``. By default, the paper's architectures use the
    hand-written gradient of :func:`~skpoison.models._training.loss_and_grad_fn`
    at each step, so autograd records one first-order graph instead of
    differentiating a double backward (about 2x faster for the linear model).
    For the paper's MLP (a Linear/LeakyReLU chain with hidden layers and
    slopes >= 0) the reverse pass is written out by hand
    (:func:`_chain_value_and_grad`): no autograd graph, a tape in buffers
    reused between calls, arrays laid out ``(features, n)``, bias folded into
    each layer's matrix, and four ``n x d x h_1`` products per step (two
    forward, two reverse) against the six of the generic engine. Against the
    generic engine: 2.2-2.5x on the Loan shape and 2.2-2.35x on Heart on one
    torch thread (2.1-2.3x and 2.0-2.1x on two), with 25% less memory
    (``benchmarks/bench_hypergradient.py``). Linear models keep autograd in
    this engine; their exact engine is the next one.

    Where its time goes, on the Heart shape on one thread
    (``python benchmarks/bench_dnn_engine.py --old OLD --rounds 9`` at commit
    f8566df, ``OLD`` a checkout of 7dfacf6; 2-core machine shared, load 6;
    ``benchmarks/results/dnn_engine.json``):
    one hypergradient is 4025 aten operations, 2308 of them products worth
    2.01 GFLOP. The call runs them at 24 GFLOP/s; replayed alone on warm
    copies of their operands the same products run at 51 GFLOP/s and take
    47% of the call's 83 ms of CPU time, the other operations 12%. The rest
    (41%) is the operations running slower on the call's own buffers, which
    each step streams through the caches (timed in place: products 59 ms,
    other operations 29 ms), more than Python: the same call on 128 rows
    takes 14 ms. Removing the avoidable work of each step (allocations,
    concatenations and views made per step; the widest error ``delta_1``
    kept on the tape for the poison rows only, the only ones the reverse pass
    reads; one temporary per layer in turn; autograd's bookkeeping, by
    inference mode) made the call 1.29x faster than at commit 7dfacf6 (98.1
    to 76.3 ms of CPU time per call, alternating rounds, results bit for bit
    equal). That projects the attack of the paper's full Heart DNN study
    (19440 calls, units in parallel) on 2 cores at 12.4 min (15.9 before):
    the goal of 10 min is not met on this machine.

    Threads. The engine runs its steps on
    :func:`~skpoison.models._training.chain_thread_count` torch threads (one
    for the paper's shapes, whose products take well under a millisecond) and
    restores the caller's count afterwards: on a loaded 2-core machine two
    threads made a Heart hypergradient tens of times slower than one
    (``benchmarks/bench_dnn_study.py``, ``engine_default_threads_vs_batched``).
    :class:`~skpoison.attacks._batched.BatchedUnrolledEngine` runs the same
    reverse pass for ``k`` problems of one shape at once.

    ``torch.compile`` was measured and is not used
    (``benchmarks/bench_compile.py``, Heart shape, 100 training steps of the
    MLP): it brings a plainly written ``torch.func.grad`` step from 108 to
    54 ms on one thread (91 to 40 ms on two), about the speed of the
    hand-written step (63 and 40 ms), after 3-6 s of compilation per process
    and shape (more on a cold compiler cache), and it needs a C++ compiler at
    run time. ``torch.func`` serves
    the generic path (``functional_call``) and SEVER's per-sample gradients.

:class:`LinearSpectralEngine` (linear regression, exact, independent of ``n`` and ``T``)
    Derivation. Let ``Z = [X, 1]`` (``n x p``, ``p = d + 1``), ``A = Z^T Z``
    (plus ``n * l2 * P`` with ``P = diag(1, ..., 1, 0)`` for the L2 term, which
    does not penalise the bias) and ``b = Z^T y``. With ``c = eta / n`` a step is
    ``w <- w - c (A w - b) = (I - c A) w + c b``, so from ``w_0 = 0``::

        w_T = sum_{k<T} (I - c A)^k c b = F(A) b,
        F(lam) = c * sum_{k=0}^{T-1} (1 - c lam)^k = (1 - (1 - c lam)^T) / lam,

    with ``F(0) = c T``. The clean part of ``A`` and ``b`` is fixed, so only
    ``A = A_0 + Z_p^T Z_p`` and ``b = b_0 + Z_p^T y_p`` depend on the poison
    points. The validation loss is a quadratic in ``w``::

        val = w^T H w / 2 - h^T w + s / 2,   g = grad_w val = H w - h,

    with ``H = Z_v^T Z_v / m``, ``h = Z_v^T y_v / m``, ``s = y_v^T y_v / m``
    precomputed. Then ``d val = g^T dF(A)[dA] b + g^T F(A) db``.

    *The db term.* With ``u = F(A) g`` (``F(A)`` is symmetric),
    ``g^T F(A) db = u^T (dZ_p^T y_p + Z_p^T dy_p)``, which contributes
    ``y_p u^T`` to ``grad_{Z_p}`` and ``Z_p u`` to ``grad_{y_p}``.

    *The dA term (Daleckii-Krein).* For symmetric ``A = U diag(l) U^T`` the
    Frechet derivative of the matrix function is
    ``dF(A)[E] = U (G o (U^T E U)) U^T`` with ``G_ij = F[l_i, l_j]``, the first
    divided difference of ``F`` (``F'(l_i)`` when ``l_i = l_j``); this holds
    for repeated eigenvalues and any orthonormal eigenbasis. With
    ``g^ = U^T g`` and ``b^ = U^T b``::

        g^T dF(A)[E] b = <S, E>,   S = U (G o sym(g^ b^T)) U^T,

    and ``dA = dZ_p^T Z_p + Z_p^T dZ_p`` gives ``<S, dA> = <2 Z_p S, dZ_p>``.
    Altogether::

        grad_{Z_p} = 2 Z_p S + y_p u^T,     grad_{y_p} = Z_p u,

    and ``grad_{X_p}`` is the first ``d`` columns of ``grad_{Z_p}``.

    *Divided differences without cancellation.* Write ``mu = 1 - c lam``. Since
    ``F = c sum_k mu^k`` and ``(a^k - b^k)/(a - b) = h_{k-1}(a, b)``, the complete
    homogeneous symmetric polynomial ``sum_{s+t=k-1} a^s b^t``, and
    ``d mu / d lam = -c``::

        F[l_i, l_j] = -c^2 sum_{k=1}^{T-1} h_{k-1}(mu_i, mu_j)
                    = -c^2 sum_{s+t <= T-2} mu_i^s mu_j^t
                    = -c^2 (V K V^T)_ij,

    with ``V_is = mu_i^s`` (``s < T - 1``) and ``K_st = [s + t <= T - 2]``. There
    is no subtraction of nearly equal numbers, so equal, nearly equal and zero
    eigenvalues (duplicated or constant columns) are all exact to rounding; the
    diagonal is ``F'(l_i)`` automatically. Likewise ``F(l_i) = c sum_{s<T} V_is``.
    This costs ``O(p T^2 + p^2 T)`` and is used up to ``T = 256``.

    *Any T: closed forms.* Above that, with ``x = c lam = 1 - mu`` and
    ``phi(mu) = sum_{k<T} mu^k = (1 - mu^T) / x``, the sums are
    ``F = c phi`` and ``D_ij = sum_{s+t<=T-2} mu_i^s mu_j^t = phi[mu_i, mu_j]``.
    Subtracting ``phi(mu_j)`` from ``phi(mu_i)`` gives, with
    ``q_T = (mu_i^T - mu_j^T) / (mu_i - mu_j)``::

        D_ij = (1 - mu_i^T - x_i q_T) / (x_i x_j),

    and ``1 - mu^T = -expm1(T log1p(-x))``, ``q_T = mu_b^(T-1)
    expm1(T log1p(rho)) / rho`` (``mu_b`` the larger of the pair,
    ``rho = (x_b - x_a) / mu_b``) carry no cancellation for close eigenvalues.
    That formula is used for close pairs; far-apart pairs
    (``|x_i - x_j| >= max / 2``) take ``(phi_i - phi_j) / (mu_i - mu_j)``, and
    pairs with ``T max(|x_i|, |x_j|) < 1/2``, where the numerator above is a
    difference of nearly equal terms, the binomial series
    ``D = sum_{j>=1} (-1)^(j+1) C(T, j+1) h_j(x_i, x_j)`` (20 terms, each at most
    ``(T x)^j / (j+1)!`` of the first). Each formula loses at most a factor 4 to
    cancellation, so ``D`` and ``F`` are exact to rounding for every ``T``
    (tests compare them with rational arithmetic), in ``O(p^2)`` time and memory
    independent of ``T``.

    *Without eigenvectors.* In the original basis the same sums read
    ``U (G o sym(g^ b^T)) U^T = -c^2 sym(sum_{s+t<=T-2} M^s g b^T M^t)`` with
    ``M = I - c A``, i.e. ``-c^2 sym(P_g^T K P_b)`` for the Krylov rows
    ``P_v = [v, M v, ..., M^(T-2) v]``, and ``w = c sum_{k<T} M^k b``,
    ``u = c sum_{k<T} M^k g``. This costs ``2 T`` matrix-vector products of
    size ``p`` instead of an eigendecomposition (``method="krylov"``), cheaper
    when ``p^3`` dominates ``T p^2``; it is exact too (the same polynomial).
    Above ``T = 256`` the product with ``K`` becomes reversed cumulative sums
    of ``P_b`` (``O(T p)`` memory, not ``T^2``).

    *Cost per call.* ``W = [Z_p, y_p]`` gives ``A`` and ``b`` from one BLAS
    ``syrk`` (``W^T W``) and both gradients from one product ``W R`` with
    ``R = [[2 S[:, :d], u], [u[:d]^T, 0]]`` (``O(n_p p^2)`` each); in between
    one symmetric eigendecomposition (``O(p^3)``, plus ``O(p T^2 + p^2 T)`` for
    ``V K V^T`` or ``O(p^2)`` for the closed forms) or ``2 (T - 1)`` Krylov matrix-vector products, independent
    of ``n_fixed`` and of the validation-set size. Measured on one core of the
    2-core benchmark machine (AMD EPYC, 2.6 GHz), Loan shape (``n_p = 252``,
    ``p = 89``, ``T = 30``): ``syrk`` 60 us, ``W R`` 90 us, the 58 Krylov
    products 60-70 us (about 1.1 us each, mostly call overhead), the rest
    ~15 us of arithmetic: ~0.23 ms before any Python, 0.33 ms measured.
    That is 106-210x the generic engine (35-69 ms in the same runs: its time
    varies most) and ~50x the first-order unrolled one (16 ms). Appliances (``n_p = 740``,
    ``p = 17``, ``T = 70``): ~55 us of arithmetic (``syrk``, ``W R``, a
    17 x 17 ``?syevd``) under ~35 small NumPy calls, 0.13 ms measured:
    317-619x the generic engine, ~190x the first-order one. All BLAS calls run
    on one thread: with torch's OpenMP workers active from the caller's work, a
    second BLAS thread on a 2-core machine made one Loan batch 10-20x slower
    (``python benchmarks/bench_hypergradient.py --no-blas-limit`` shows it).

Both engines raise :class:`~skpoison.exceptions.DivergenceError` when the
inner training diverges, never returning NaN.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg.lapack
import scipy.sparse
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from .._validation import check_not_datetime, resolve_device, resolve_dtype
from ..exceptions import DivergenceError
from ..models._closed_form import _geometric_sums
from ..models._training import (
    RowBlocks,
    _sequential_slopes,
    build_mlp,
    chain_thread_count,
    check_loss_curve,
    check_training,
    gradient_descent,
    init_paper_params,
    loss_and_grad_fn,
    squared_loss,
    torch_threads,
)

__all__ = ["LinearSpectralEngine", "UnrolledEngine", "make_engine"]

#: How divergence errors name the step size (``lr`` here, ``inner_lr`` in the attack).
_LR_NAME = "the inner learning rate"


def _as_tensor(a, dtype, device, name: str, ndim: int) -> torch.Tensor:
    if scipy.sparse.issparse(a):
        raise TypeError(f"{name} must be a dense array or tensor, got a sparse matrix.")
    check_not_datetime(a, name=name)
    if isinstance(a, torch.Tensor):
        t = a.detach().to(device=device, dtype=dtype)
    else:
        # ascontiguousarray: torch refuses negative strides (a reversed view).
        a = np.ascontiguousarray(a, dtype=np.float64)
        t = torch.as_tensor(a, dtype=dtype, device=device)
    if t.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {tuple(t.shape)}.")
    return t


def _check_finite_squares(t: torch.Tensor, name: str) -> None:
    """Raise unless ``t`` is finite and its sum of squares fits in float64.

    One pass without temporaries for a float64 tensor: the sum of squares is
    finite only if every entry is (NaN and infinity propagate), so the entries
    are looked at again only to word the error.
    """
    if t.dtype == torch.float64 and t.is_contiguous():
        flat = t.reshape(-1)
        squares = torch.dot(flat, flat)
    else:
        squares = (t.double() ** 2).sum()
    if bool(torch.isfinite(squares)):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinity.")
    # Finite values whose squares overflow (|t| ~1e154+) would make every
    # loss and Gram matrix inf; say so instead of failing deep inside.
    raise ValueError(
        f"{name} is too large: its squares overflow float64. Standardise the data."
    )


class _EngineBase:
    """Data handling shared by both engines."""

    def __init__(
        self, X_fixed, y_fixed, X_val, y_val, *, n_steps, lr, l2, dtype, device,
        fixed_gram=None,
    ):  # fmt: skip
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.n_steps = int(n_steps)
        self.lr = float(lr)
        self.l2 = float(l2)
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}.")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}.")
        self._set_data(X_fixed, y_fixed, X_val, y_val, fixed_gram)

    def _set_data(self, X_fixed, y_fixed, X_val, y_val, fixed_gram=None):
        """Validate the fixed and validation sets and store them as tensors.

        With ``fixed_gram`` (a :class:`~skpoison.attacks._gram.RowGram`) the
        fixed rows are given by their statistics only: ``X_fixed`` and
        ``y_fixed`` must be None and stay None.
        """
        if fixed_gram is not None:
            if X_fixed is not None or y_fixed is not None:
                raise ValueError("Pass X_fixed, y_fixed or fixed_gram, not both.")
            self.X_fixed = self.y_fixed = None
            self.n_fixed = fixed_gram.n
            self.n_features = fixed_gram.n_features
        else:
            self.X_fixed = _as_tensor(X_fixed, self.dtype, self.device, "X_fixed", 2)
            self.y_fixed = _as_tensor(y_fixed, self.dtype, self.device, "y_fixed", 1)
            self.n_fixed = self.X_fixed.shape[0]
            self.n_features = self.X_fixed.shape[1]
            if self.X_fixed.shape[0] != self.y_fixed.shape[0]:
                raise ValueError("X_fixed and y_fixed have different numbers of rows.")
        self.X_val = _as_tensor(X_val, self.dtype, self.device, "X_val", 2)
        self.y_val = _as_tensor(y_val, self.dtype, self.device, "y_val", 1)
        if self.X_val.shape != (self.y_val.shape[0], self.n_features):
            raise ValueError(
                f"X_val must have shape (len(y_val), {self.n_features}), "
                f"got {tuple(self.X_val.shape)}."
            )
        if self.X_val.shape[0] < 1:
            raise ValueError("The validation set is empty.")
        for name, t in (("X_fixed", self.X_fixed), ("y_fixed", self.y_fixed),
                        ("X_val", self.X_val), ("y_val", self.y_val)):  # fmt: skip
            if t is not None:
                _check_finite_squares(t, name)

    def _poison(self, X_p, y_p):
        X_p = _as_tensor(X_p, self.dtype, self.device, "X_p", 2)
        y_p = _as_tensor(y_p, self.dtype, self.device, "y_p", 1)
        if X_p.shape != (y_p.shape[0], self.n_features):
            raise ValueError(
                f"X_p must have shape (len(y_p), {self.n_features}), got {tuple(X_p.shape)}."
            )
        if self.n_fixed + X_p.shape[0] == 0:
            raise ValueError(
                "The training set is empty: no fixed and no poison points."
            )
        return X_p, y_p

    def _input(self, X) -> torch.Tensor:
        """``X`` on the engine's device and dtype, keeping its autograd graph."""
        if isinstance(X, torch.Tensor):
            X = X.to(device=self.device, dtype=self.dtype)
            if X.ndim != 2:
                raise ValueError(f"X must be 2-d, got shape {tuple(X.shape)}.")
            return X
        return _as_tensor(X, self.dtype, self.device, "X", 2)

    def value(self, X_p, y_p) -> torch.Tensor:
        """Validation loss of the model trained with the poison points."""
        params = self.train(X_p, y_p)
        return self.validation_loss(params)

    def validation_loss(self, params) -> torch.Tensor:
        """``1/(2 m) sum (f(x) - y)^2`` over the validation set."""
        return squared_loss(self.predict(params, self.X_val), self.y_val)


class UnrolledEngine(_EngineBase):
    """Reverse-mode hypergradients through ``T`` unrolled gradient-descent steps.

    Works for any model: the linear model, the paper's MLP, or a callable
    returning a ``torch.nn.Module``. This is Alg. 3 of the paper, done by
    autograd on the unrolled training loop.

    Parameters
    ----------
    model : {"linear", "mlp"} or callable
        The victim's architecture. A callable is called as ``model(n_features)``
        and must return an ``nn.Module`` mapping ``(n, n_features)`` to ``(n,)``
        or ``(n, 1)``; its ``nn.Linear`` layers get the paper's initialisation
        (:func:`~skpoison.models._training.init_paper_params`). The same integer
        ``random_state`` gives the same initial parameters as
        :class:`~skpoison.models.TorchMLPRegressor`.
    X_fixed, y_fixed : array-like of shape (n_fixed, n_features), (n_fixed,)
        The training points that stay fixed (the clean ones and earlier poison
        batches).
    X_val, y_val : array-like of shape (m, n_features), (m,)
        The attacker's validation set.
    n_steps : int
        ``T``, the number of inner gradient-descent steps.
    lr : float
        ``eta``, the inner learning rate.
    l2 : float, default=0.0
        ``lambda`` in Eq. (1).
    hidden_layer_sizes : tuple of int, default=(32, 8)
        For ``model="mlp"``.
    negative_slope : float, default=0.01
        LeakyReLU slope for ``model="mlp"``.
    init_params : sequence of Tensor, optional
        Initial parameters (in ``module.parameters()`` order). By default they
        are drawn once with the paper's initialisation from ``random_state`` and
        reused at every call, so the objective is deterministic.
    random_state : int, numpy Generator/RandomState or None, default=None
        Seeds the initialisation.
    dtype : torch.dtype or str, default=torch.float64
    device : str or torch.device, default="cpu"
    force_autograd : bool, default=False
        Differentiate ``torch.autograd.grad`` with ``create_graph=True`` at each
        step (the plain reference) instead of the hand-written gradient.

    Attributes
    ----------
    module : nn.Module
        The architecture (its own parameters are not used).
    init_params : list of Tensor
        ``w_0``, the same at every call.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    >>> eng = UnrolledEngine("linear", X[:15], y[:15], X[15:], y[15:], n_steps=5, lr=0.1)
    >>> val, gX, gy = eng.value_and_grad(X[:2], y[:2])
    >>> tuple(gX.shape), tuple(gy.shape)
    ((2, 3), (2,))
    """

    def __init__(
        self,
        model: str | Callable[[int], nn.Module],
        X_fixed,
        y_fixed,
        X_val,
        y_val,
        *,
        n_steps: int,
        lr: float,
        l2: float = 0.0,
        hidden_layer_sizes: Sequence[int] = (32, 8),
        negative_slope: float = 0.01,
        init_params: Sequence[torch.Tensor] | None = None,
        random_state=None,
        dtype=torch.float64,
        device="cpu",
        force_autograd: bool = False,
    ):
        super().__init__(
            X_fixed, y_fixed, X_val, y_val, n_steps=n_steps, lr=lr, l2=l2,
            dtype=dtype, device=device,
        )  # fmt: skip
        self.module = _make_module(
            model, self.n_features, hidden_layer_sizes, negative_slope, random_state
        ).to(device=self.device, dtype=self.dtype)
        self._names = [name for name, _ in self.module.named_parameters()]
        if init_params is None:
            init_params = [p.detach().clone() for p in self.module.parameters()]
        init = [
            torch.as_tensor(p).detach().to(device=self.device, dtype=self.dtype).clone()
            for p in init_params
        ]
        shapes = [tuple(p.shape) for p in self.module.parameters()]
        if [tuple(p.shape) for p in init] != shapes:
            raise ValueError(f"init_params must have shapes {shapes}.")
        self.init_params = init
        self._loss_and_grad = loss_and_grad_fn(
            self.module, force_autograd=force_autograd
        )
        # The paper's MLP (a Linear/LeakyReLU chain with hidden layers) gets the
        # hand-written reverse pass; linear models keep autograd here (their
        # exact engine is LinearSpectralEngine), and so does any other module.
        slopes = None if force_autograd else _sequential_slopes(self.module)
        # The reverse pass reads each LeakyReLU's slope mask off its output,
        # which needs slope >= 0; other chains keep autograd.
        ok = slopes and min(slopes) >= 0
        self._slopes = slopes if ok else None
        self._workspace: dict = {}

    def train(self, X_p, y_p, *, differentiable: bool = False) -> list[torch.Tensor]:
        """Parameters ``w_T`` after training on ``X_fixed U X_p``."""
        X_p, y_p = self._poison(X_p, y_p)
        return self._train(X_p, y_p, differentiable=differentiable)

    def _thread_count(self, n_p: int) -> int | None:
        """Torch threads for training on ``n_fixed + n_p`` rows (see :func:`chain_thread_count`)."""
        n = self.X_fixed.shape[0] + n_p
        first = self.init_params[0]  # the first layer's weight for the chains
        width = first.shape[0] if first.ndim else 1
        return chain_thread_count(n, self.n_features, width, self.device)

    def _train(self, X_p, y_p, *, differentiable):
        X = RowBlocks(self.X_fixed, X_p)
        y = torch.cat([self.y_fixed, y_p])
        threads = self._thread_count(X_p.shape[0])
        return _checked_descent(self, X, y, threads, differentiable=differentiable)

    def predict(self, params, X) -> torch.Tensor:
        """Model output of shape (n,) for parameters ``params``."""
        X = self._input(X)
        if isinstance(params, dict):
            params = [params[name] for name in self._names]
        out = torch.func.functional_call(
            self.module, dict(zip(self._names, params)), (X,)
        )
        return out.reshape(-1)

    def value_and_grad(self, X_p, y_p):
        """Validation loss and its gradient with respect to ``X_p`` and ``y_p``.

        Returns
        -------
        val_loss : Tensor, 0-d
        grad_X_p : Tensor of shape (n_p, n_features)
        grad_y_p : Tensor of shape (n_p,)
        """
        X_p, y_p = self._poison(X_p, y_p)
        if self._slopes is not None:
            return _run_chain(self, X_p, y_p)
        X_p.requires_grad_(True)
        y_p.requires_grad_(True)
        threads = torch_threads(self._thread_count(X_p.shape[0]))
        with torch.enable_grad(), threads:
            params = self._train(X_p, y_p, differentiable=True)
            val = self.validation_loss(params)
            if not bool(torch.isfinite(val)):
                raise DivergenceError(
                    "The inner training diverged (non-finite validation loss); "
                    "lower the inner learning rate."
                )
            gX, gy = torch.autograd.grad(val, (X_p, y_p))
        return val.detach(), gX, gy


def _run_chain(engine, X_p, y_p):
    """:func:`_chain_value_and_grad` on an engine's data, on its thread count.

    ``engine`` is an :class:`UnrolledEngine` or a
    :class:`~skpoison.attacks._batched.BatchedUnrolledEngine` (the same
    attributes, with a leading problem axis).
    """
    with torch.no_grad(), torch_threads(engine._thread_count(X_p.shape[-2])):
        return _chain_value_and_grad(
            engine._slopes, engine.init_params, engine.X_fixed, engine.y_fixed,
            X_p, y_p, engine.X_val, engine.y_val,
            n_steps=engine.n_steps, lr=engine.lr, l2=engine.l2,
            workspace=engine._workspace,
        )  # fmt: skip


def _checked_descent(engine, X, y, threads, *, differentiable=False):
    """``T`` gradient-descent steps of ``engine``'s inner problem, checked for divergence.

    Shared by :class:`UnrolledEngine` and the batched engine (which stacks
    ``k`` problems along a leading axis of ``X``, ``y`` and its parameters).
    """
    with torch_threads(threads):
        params, losses = gradient_descent(
            engine._loss_and_grad, engine.init_params, X, y,
            n_steps=engine.n_steps, lr=engine.lr, l2=engine.l2,
            differentiable=differentiable,
        )  # fmt: skip
    check_training(
        engine._loss_and_grad, params, X, y, losses, l2=engine.l2,
        what="inner training", lr_name=_LR_NAME,
    )  # fmt: skip
    return params


def _slope_mask(z, slope):
    """The LeakyReLU's derivative at ``z`` (1 or ``slope``), in ``z``'s dtype."""
    return torch.where(z > 0, z.new_ones(()), z.new_full((), slope))


_leaky_relu_backward = torch.ops.aten.leaky_relu_backward.grad_input


def _leaky_grad(v, h, slope, *, out):
    """``s o v`` for the LeakyReLU slope ``s`` (1 where ``h > 0``, else ``slope``).

    One fused pass from the activation ``h`` itself (its sign is the
    pre-activation's for ``slope >= 0``), so no mask is stored.
    """
    return _leaky_relu_backward(v, h, slope, True, grad_input=out)


def _chain_workspace(XTa, T, outs, n_fixed):
    """Per-step tape buffers and their views for :func:`_chain_value_and_grad`.

    Hidden layer ``k`` (``1 <= k < L``, input width ``o = outs[k-1]``) keeps,
    per step, one ``(o + 1, n)`` slot ``[h_k; 1]`` (the row of ones folds the
    bias into every product with ``h_k``) and one ``(2 outs[k], n)`` slot
    ``[delta_k; z_bar_k]``, whose second half the reverse pass writes so that
    ``h_bar = [G_bar_k^T, W_k^T] [delta_k; z_bar_k]`` is one product without
    copies. The weights ``[W_k, b_k]`` of every step are a tape too: layer
    ``k >= 1`` keeps them as the second half of a ``(2 outs[k], o + 1)`` slot
    ``[G_bar_k, B_bar_k; W_k, b_k]`` whose first half the reverse pass writes,
    so ``[G_bar_k^T, W_k^T]`` is a view of it. Every view the sweeps use (of
    the tape, of one step's slot, of a fixed buffer) is made here, once, not
    per step. A batched ``XTa`` (``(k, d + 1, n)``) gives every slot the same
    leading problem axis.
    """
    n, L = XTa.shape[-1], len(outs)
    lead = tuple(XTa.shape[:-2])
    ins = [XTa.shape[-2] - 1] + outs[:-1]
    hidden = range(1, L)
    steps = range(T)
    ha = [None] + [XTa.new_empty((T, *lead, outs[k - 1] + 1, n)) for k in hidden]
    for k in hidden:
        ha[k][..., outs[k - 1], :].fill_(1.0)
    # Per-step temporaries, one (outs[k], n) buffer per layer, so that one
    # step's working set stays in cache: t_[k-1] holds in turn delta_1 in the
    # forward step (k = 1) and, in the reverse step, delta_bar_(k-1), then
    # s o delta_bar_(k-1) (in place), then h_bar_(k-1) and z_bar_(k-1).
    t_ = [XTa.new_empty((*lead, outs[k], n)) for k in range(L)]
    # delta_1 is needed after its step only on the poison rows (for the input
    # gradient): a tape of its poison columns.
    d1 = t_[0]
    d1p = XTa.new_empty((T, *lead, outs[0], n - n_fixed))
    dz = [None]
    dz += [XTa.new_empty((T, *lead, 2 * outs[k], n)) for k in hidden]
    # Weights of steps 0..T; layer 0's alone, the others' under their G_bar.
    wt = [XTa.new_empty((T + 1, *lead, outs[0], ins[0] + 1))]
    wt += [XTa.new_empty((T + 1, *lead, 2 * outs[k], ins[k] + 1)) for k in hidden]
    Wa = [[wt[0][t] for t in range(T + 1)]]
    Wa += [[wt[k][t][..., outs[k] :, :] for t in range(T + 1)] for k in hidden]
    Ws = [[w[..., : ins[k]] for w in Wa[k]] for k in range(L)]
    g0 = XTa.new_empty((*lead, outs[0], ins[0] + 1))
    # G_bar_k of step t (k >= 1) lives in the first half of weight slot t.
    gbar = [[g0] * T] + [[wt[k][t][..., : outs[k], :] for t in steps] for k in hidden]
    hb = [None] + [t_[k - 1] for k in hidden]
    e = [None] + [t_[k - 1] for k in hidden]
    zb = [None] + [[dz[k][t][..., outs[k] :, :] for t in steps] for k in hidden]
    return {
        "h": [None]
        + [[ha[k][t][..., : outs[k - 1], :] for t in steps] for k in hidden],
        "ha": [None] + [list(ha[k].unbind(0)) for k in hidden],
        "haT": [None] + [[ha[k][t].mT for t in steps] for k in hidden],
        "d": [[d1] * T]
        + [[dz[k][t][..., : outs[k], :] for t in steps] for k in hidden],
        "zb": zb,
        "dz": [None] + [list(dz[k].unbind(0)) for k in hidden],
        "wt": wt,
        "Wa": Wa,
        "Ws": Ws,
        "WsT": [[w.mT for w in Ws[k]] for k in range(L)],
        "gbar": gbar,
        "gbarW": [[g[..., : ins[k]] for g in gbar[k]] for k in range(L)],
        # [G_bar_k^T, W_k^T] of step t, (outs[k-1], 2 outs[k]).
        "GW": [None] + [[wt[k][t][..., : ins[k]].mT for t in steps] for k in hidden],
        "t": t_,
        "z_last": t_[L - 1][..., 0, :],
        "delta_last": [dz[L - 1][t][..., 0, :] for t in steps],
        "zb_last_p": [zb[L - 1][t][..., 0, n_fixed:] for t in steps],
        "d0p": [d1[..., n_fixed:], list(d1p.unbind(0))],
        "d0pT": [d1p[t].mT for t in steps],
        "g0d": g0[..., : ins[0]],
        "zb0pT": hb[1][..., n_fixed:].mT,
        "hb": hb,
        "e": e,
        "eT": [None] + [e[k].mT for k in hidden],
        # The tape itself, for memory accounting.
        "tape": [b for b in ha + dz + wt + [d1p] if b is not None],
    }


def _chain_value_and_grad(slopes, params, X_fixed, y_fixed, X_p, y_p, X_val, y_val,
                          *, n_steps, lr, l2, workspace=None):  # fmt: skip
    """Validation loss and its gradient in ``X_p``, ``y_p`` for a Linear/LeakyReLU chain.

    The reverse pass through the ``T`` gradient-descent steps written out by
    hand (no autograd graph): the forward sweep stores each step's activations
    ``h_k`` and back-propagated errors ``delta_k``, the reverse sweep applies
    the transpose of one step's Jacobian to the adjoint ``(W_bar, b_bar)``. For
    ``G_k = delta_k^T h_(k-1) + l2 W_k``, ``B_k = 1^T delta_k`` with
    ``delta_k = s_k o (delta_(k+1) W_(k+1))`` (``s_k`` the LeakyReLU slopes,
    piecewise constant) and ``delta_L = (z_L - y) / n``, the cotangents
    ``(G_bar, B_bar) = -lr (W_bar, b_bar)`` flow back as::

        delta_bar_k = h_(k-1) G_bar_k^T + 1 B_bar_k^T + (s_(k-1) o delta_bar_(k-1)) W_k^T
        W_bar_k += l2 G_bar_k + delta_k^T (s_(k-1) o delta_bar_(k-1))     (k > 1)
        h_bar_(k-1) = delta_k G_bar_k,   z_bar_L = delta_bar_L / n,   y_bar = -z_bar_L

    and then through the forward layers as in ordinary backpropagation
    (``z_bar_k = s_k o h_bar_k``, ``W_bar_k += z_bar_k^T h_(k-1)``, ...). The
    first layer's products with ``X`` (``X G_bar_1^T`` and ``z_bar_1^T X``)
    are the only ``n x d`` work besides the two of the forward step; the input
    gradient is formed for the poison rows only, so of ``delta_1`` (the widest
    error) only the poison rows are kept on the tape.

    *k problems at once.* Every argument may carry a leading axis of ``k``
    independent problems of one shape (``params[i]`` of shape
    ``(k, *shape_i)``, ``X_fixed`` of shape ``(k, n_fixed, d)``, ...): the
    same sweeps then run with batched products (``bmm``/``baddbmm``) and the
    value is of shape ``(k,)`` (:class:`~skpoison.attacks._batched.BatchedUnrolledEngine`).

    How it is laid out, for speed (``benchmarks/bench_hypergradient.py``):

    * per-sample arrays are transposed, ``(features, n)``: BLAS runs these
      short-and-wide products markedly faster than tall-and-skinny ones
      (1.5x for ``X W^T`` on the Loan shape);
    * each layer's weights and bias are one matrix ``[W_k, b_k]`` and its
      input carries a row of ones, so a layer, its gradient ``[G_k, B_k]``
      and its adjoint updates are one product each, with no pass to
      broadcast a bias or to sum one;
    * ``[delta_k; z_bar_k]`` share one tape slot, so ``h_bar_(k-1)`` (a wide
      ``(outs[k-1], n)`` output) is one product;
    * the LeakyReLU's slope mask is read off the stored activation by one
      fused kernel (``leaky_relu_backward``), so no mask is stored;
    * ``workspace`` (a dict) keeps the tape between calls: refilling memory
      that is already mapped is much cheaper than allocating it afresh;
    * the sweeps run under ``torch.inference_mode`` (no version counters or
      autograd metadata on each operation's tensors);
      the workspace then holds inference tensors, and the results are cloned
      out of it as ordinary tensors.
    """
    with torch.inference_mode():
        val, gX, gy = _chain_sweeps(
            slopes, params, X_fixed, y_fixed, X_p, y_p, X_val, y_val,
            n_steps=n_steps, lr=lr, l2=l2, workspace=workspace,
        )  # fmt: skip
    return val.clone(), gX.clone(), gy.clone()


def _chain_sweeps(slopes, params, X_fixed, y_fixed, X_p, y_p, X_val, y_val,
                  *, n_steps, lr, l2, workspace):  # fmt: skip
    """The body of :func:`_chain_value_and_grad`, run in inference mode."""
    n_p = X_p.shape[-2]
    d = X_p.shape[-1]
    n = X_fixed.shape[-2] + n_p
    n_fixed = n - n_p
    lead = tuple(X_p.shape[:-2])  # () for one problem, (k,) for k
    # The products of one problem, or their batched forms for k problems:
    # bound once, so the one-problem path calls the plain kernels directly.
    if lead:
        mm, addmm, addmm_ = torch.bmm, torch.baddbmm, torch.Tensor.baddbmm_
    else:
        mm, addmm, addmm_ = torch.mm, torch.addmm, torch.Tensor.addmm_
    L = len(params) // 2
    T = n_steps
    outs = [params[2 * k].shape[-2] for k in range(L)]
    ins = [d] + outs[:-1]
    # [X; 1] as (d + 1, n): the ones row carries the first layer's bias.
    XTa = X_p.new_empty((*lead, d + 1, n))
    XTa[..., :d, :n_fixed] = X_fixed.mT
    XTa[..., :d, n_fixed:] = X_p.mT
    XTa[..., d, :] = 1.0
    y = torch.cat([y_fixed, y_p], dim=-1)
    key = (lead, n, n_fixed, d, T, tuple(outs), XTa.dtype, XTa.device)
    if workspace is None or workspace.get("key") != key:
        bufs = _chain_workspace(XTa, T, outs, n_fixed)
        if workspace is not None:
            workspace.clear()
            workspace.update(bufs, key=key)
    else:
        bufs = workspace
    H, Ha, HaT, E, ET = bufs["h"], bufs["ha"], bufs["haT"], bufs["e"], bufs["eT"]
    D, Zb, DZ = bufs["d"], bufs["zb"], bufs["dz"]
    WA, WS, WST = bufs["Wa"], bufs["Ws"], bufs["WsT"]
    GB, GBW, GW = bufs["gbar"], bufs["gbarW"], bufs["GW"]
    tmp, hbuf = bufs["t"], bufs["hb"]
    d0p_now, d0p_tape = bufs["d0p"]
    z_last, delta_last = bufs["z_last"], bufs["delta_last"]
    # Step 0's weights [W_k, b_k], (outs[k], ins[k] + 1).
    for k in range(L):
        WA[k][0][..., : ins[k]] = params[2 * k]
        WA[k][0][..., ins[k]] = params[2 * k + 1]
    XTaT = XTa.mT
    inp = [XTa] + [None] * (L - 1)
    inpT = [XTaT] + [None] * (L - 1)
    # (T + 1,) or (T + 1, k): each step's slot is contiguous, for out=.
    losses = XTa.new_empty((T + 1, *lead))
    loss_t = losses.unbind(0)
    decay = 1.0 - lr * l2
    for t in range(T):
        for k in range(1, L):
            inp[k], inpT[k] = Ha[k][t], HaT[k][t]
        # z_k goes straight into the tape slot of h_(k+1), activated in place.
        z = mm(WA[0][t], XTa, out=H[1][t])
        for k in range(1, L):
            F.leaky_relu_(z, slopes[k - 1])
            z = mm(WA[k][t], inp[k], out=H[k + 1][t] if k + 1 < L else tmp[k])
        delta0 = delta_last[t]
        torch.sub(z_last, y, out=delta0).div_(n)
        # The victims' divergence check, on the same curve (data term, before
        # each step): n / 2 * ||delta||^2 = ||r||^2 / (2 n). No host sync here.
        if lead:
            torch.linalg.vecdot(delta0, delta0, out=loss_t[t])
        else:
            torch.dot(delta0, delta0, out=loss_t[t])
        delta = D[L - 1][t]
        for k in range(L - 1, 0, -1):
            nxt = D[k - 1][t]
            mm(WST[k][t], delta, out=nxt)
            _leaky_grad(nxt, H[k][t], slopes[k - 1], out=nxt)
            delta = nxt
        if n_p:
            d0p_tape[t].copy_(d0p_now)
        for k in range(L):
            # [W_k, b_k] - lr ([G_k, B_k] + l2 [W_k, 0]), [G_k, B_k] in one
            # product, into the next step's weight slot.
            new = WA[k][t + 1]
            if l2:
                new.copy_(WA[k][t])
                WS[k][t + 1].mul_(decay)
                addmm_(new, D[k][t], inpT[k], alpha=-lr)
            else:
                addmm(WA[k][t], D[k][t], inpT[k], alpha=-lr, out=new)
    # The loss at w_T too (a run may explode in its last step): one forward.
    Wa = [WA[k][T] for k in range(L)]
    h = XTa
    for k in range(L):
        i = ins[k]
        z = addmm(Wa[k][..., i].unsqueeze(-1), Wa[k][..., :i], h[..., :i, :])
        h = F.leaky_relu(z, slopes[k]) if k < L - 1 else z
    r = h[..., 0, :] - y
    if lead:
        torch.linalg.vecdot(r, r, out=losses[T]).div_(n * n)
    else:
        torch.dot(r, r, out=losses[T]).div_(n * n)
    # (T + 1, k): check_loss_curve checks each problem's column.
    check_loss_curve(losses.mul_(0.5 * n), what="inner training", lr_name=_LR_NAME)
    # The validation loss at w_T and its gradient (ordinary backpropagation).
    m = X_val.shape[-2]
    Ws = [w[..., :i] for w, i in zip(Wa, ins)]
    bs = [w[..., None, :, i] for w, i in zip(Wa, ins)]  # (1, outs) rows
    hv, sv = [X_val], []
    z = addmm(bs[0], X_val, Ws[0].mT, alpha=1.0)
    for k in range(1, L):
        s = _slope_mask(z, slopes[k - 1])
        sv.append(s)
        hv.append(z * s)
        z = addmm(bs[k], hv[k], Ws[k].mT, alpha=1.0)
    r = z[..., 0] - y_val
    val = 0.5 * (torch.dot(r, r) if r.ndim == 1 else torch.linalg.vecdot(r, r)) / m
    if not bool(torch.isfinite(val).all()):
        raise DivergenceError(
            "The inner training diverged (non-finite validation loss); "
            "lower the inner learning rate."
        )
    e = (r / m).unsqueeze(-1)
    Wbar = [None] * L  # [W_bar_k, b_bar_k]
    for k in range(L - 1, -1, -1):
        Wbar[k] = torch.cat([e.mT @ hv[k], e.sum(-2)[..., None]], -1)
        if k > 0:
            e = (e @ Ws[k]) * sv[k - 1]
    gX = X_p.new_zeros(X_p.shape)
    gy = y_p.new_zeros(y_p.shape)
    # Views made once: Wbar is updated in place.
    WbarW = [w[..., :i] for w, i in zip(Wbar, ins)]
    d0pT, g0d, zb0pT = bufs["d0pT"], bufs["g0d"], bufs["zb0pT"]
    zb_last_p = bufs["zb_last_p"]
    for t in range(T - 1, -1, -1):
        for k in range(1, L):
            inpT[k] = HaT[k][t]
        # [G_bar_k, B_bar_k] = -lr [W_bar_k, b_bar_k], into its slot.
        Gbar = [torch.mul(Wbar[k], -lr, out=GB[k][t]) for k in range(L)]
        # Reverse of the backward (gradient) sweep, from delta_1 up to delta_L.
        dbar = None
        for k in range(L):
            # delta_bar_k = G_bar_k h_(k-1) + B_bar_k 1^T (+ the chain term)
            if k == 0:
                tk = mm(Gbar[0], XTa, out=tmp[0])
            else:
                ed = _leaky_grad(dbar, H[k][t], slopes[k - 1], out=E[k])
                tk = mm(Gbar[k], Ha[k][t], out=tmp[k])
                addmm_(tk, WS[k][t], ed)  # (outs[k], n): a narrow output, cheap twice
                addmm_(WbarW[k], D[k][t], ET[k])
            if l2:
                WbarW[k].add_(GBW[k][t], alpha=l2)
            dbar = tk
        if n_p:
            addmm_(gX, d0pT[t], g0d)
        # z_bar_L (1 x n), as r = z_L - y.
        zbar = torch.div(dbar, n, out=Zb[L - 1][t])
        if n_p:
            gy.sub_(zb_last_p[t])
        # Reverse of the forward sweep.
        for k in range(L - 1, -1, -1):
            addmm_(Wbar[k], zbar, inpT[k])  # [W_bar_k, b_bar_k] in one product
            if k > 0:
                # h_bar = G_bar_k^T delta_k + W_k^T z_bar_k: [delta_k; z_bar_k]
                # and [G_bar_k, W_k] are tape slots, so this is one product.
                hb = mm(GW[k][t], DZ[k][t], out=hbuf[k])
                out = Zb[k - 1][t] if k > 1 else hb
                zbar = _leaky_grad(hb, H[k][t], slopes[k - 1], out=out)
            elif n_p:
                addmm_(gX, zb0pT, WS[0][t])
    return val, gX, gy


def _check_module_shape(module: nn.Module, n_features: int) -> None:
    """A callable's module must map ``(n, n_features)`` to ``(n,)`` or ``(n, 1)``."""
    probe = torch.zeros(2, n_features, dtype=torch.float64)
    try:
        with torch.no_grad():
            out = module(probe)
    except RuntimeError as exc:  # e.g. "mat1 and mat2 shapes cannot be multiplied"
        raise ValueError(
            f"model(n_features) returned a module that does not take inputs of "
            f"n_features={n_features} columns: {exc}"
        ) from None
    if tuple(out.shape) not in ((2,), (2, 1)):
        raise ValueError(
            f"model(n_features) must return a module mapping (n, {n_features}) to "
            f"(n,) or (n, 1); it maps (2, {n_features}) to {tuple(out.shape)}."
        )


def _make_module(model, n_features, hidden_layer_sizes, negative_slope, random_state):
    seed = _seed_from(random_state)
    generator = torch.Generator().manual_seed(seed)
    if isinstance(model, str):
        if model == "linear":
            hidden: Sequence[int] = ()
        elif model == "mlp":
            hidden = tuple(hidden_layer_sizes)
        else:
            raise ValueError(
                f"model must be 'linear', 'mlp' or a callable, got {model!r}."
            )
        module = build_mlp(n_features, hidden, negative_slope).double()
        return init_paper_params(module, generator=generator)
    if callable(model):
        # Build under a private seed so the callable's own init is reproducible.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = model(n_features)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"model(n_features) must return an nn.Module, got {type(module)}."
            )
        module = init_paper_params(module.double(), generator=generator)
        _check_module_shape(module, n_features)
        return module
    raise ValueError(f"model must be 'linear', 'mlp' or a callable, got {model!r}.")


def _seed_from(random_state) -> int:
    from sklearn.utils import check_random_state

    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(check_random_state(random_state).randint(2**31 - 1))


class _LinearModel:
    """Parameters and predictions of a linear model (``nn.Linear`` layout)."""

    def _as_params(self, w):
        d = self.n_features
        return {"weight": w[:d].reshape(1, d), "bias": w[d:].clone()}

    def predict(self, params, X) -> torch.Tensor:
        """``X @ weight.T + bias`` of shape (n,), differentiable in ``X`` and ``params``."""
        X = self._input(X)
        if isinstance(params, dict):
            W, bias = params["weight"], params["bias"]
        else:
            W, bias = params
        return (X @ W.reshape(-1)) + bias.reshape(())


class LinearSpectralEngine(_LinearModel, _EngineBase):
    """Exact hypergradients for linear regression from ``(d+1) x (d+1)`` Gram algebra.

    Same result as :class:`UnrolledEngine` with ``model="linear"`` (to rounding)
    at a cost independent of the number of training points; see the module
    docstring for the derivation.

    Parameters
    ----------
    X_fixed, y_fixed, X_val, y_val, n_steps, lr, l2, dtype, device
        As for :class:`UnrolledEngine`.
    method : {"auto", "eigh", "krylov"}, default="auto"
        How ``F(A)`` and its Daleckii-Krein derivative are evaluated: from one
        eigendecomposition (``O(p^3)``, independent of ``T``), or from the
        Krylov vectors ``M^k b`` and ``M^k g`` with ``M = I - c A``, which give
        the same sums without eigenvectors (``O(T p^2)``). Both are exact;
        ``"auto"`` takes the cheaper.
    backend : {"auto", "numpy", "torch"}, default="auto"
        Where the small ``p x p`` algebra runs: NumPy on the host, or torch on
        ``device``. The ``n_p x p`` products with the poison points always run
        in torch on ``device``, and inputs and outputs are torch tensors either
        way. ``"auto"`` takes NumPy up to ``p = 512`` (less overhead per
        operation; on CUDA, one round trip of ``A`` instead of a small GPU
        eigensolver or ``T`` sequential kernel launches).
    fixed_gram, val_gram : RowGram or None, default=None
        Precomputed statistics (:class:`~skpoison.attacks._gram.RowGram`) of
        the fixed rows (then ``X_fixed`` and ``y_fixed`` are None) and of the
        validation set (which must be the statistics of ``X_val``, ``y_val``).
        The attack passes them at large ``n``, where it updates them by rows
        between batches instead of recomputing them; the result agrees with
        the one from the rows to rounding, not bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    >>> args = (X[:15], y[:15], X[15:], y[15:])
    >>> fast = LinearSpectralEngine(*args, n_steps=5, lr=0.1)
    >>> slow = UnrolledEngine("linear", *args, n_steps=5, lr=0.1)
    >>> a, b = fast.value_and_grad(X[:2], y[:2]), slow.value_and_grad(X[:2], y[:2])
    >>> bool(torch.allclose(a[1], b[1], rtol=1e-10, atol=0))
    True
    """

    def __init__(
        self, X_fixed, y_fixed, X_val, y_val, *, n_steps: int, lr: float, l2: float = 0.0,
        dtype=torch.float64, device="cpu", method: str = "auto", backend: str = "auto",
        fixed_gram=None, val_gram=None,
    ):  # fmt: skip
        super().__init__(
            X_fixed, y_fixed, X_val, y_val, n_steps=n_steps, lr=lr, l2=l2,
            dtype=dtype, device=device, fixed_gram=fixed_gram,
        )  # fmt: skip
        if method not in ("auto", "eigh", "krylov"):
            raise ValueError(
                f"method must be 'auto', 'eigh' or 'krylov', got {method!r}."
            )
        if backend not in ("auto", "numpy", "torch"):
            raise ValueError(
                f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}."
            )
        on_cuda = self.device.type == "cuda"
        p = self.n_features + 1
        T = self.n_steps
        if backend == "auto":
            # The p x p algebra is tiny: on the host, NumPy's per-operation cost
            # is lower than torch's, and on CUDA one round trip of A (p x p)
            # should beat a small GPU eigensolver or T sequential kernel launches.
            backend = "numpy" if p <= 512 else "torch"
        self.backend = backend
        self._ops = _TorchOps if backend == "torch" else _NumpyOps
        # The n_p x p products run where the data lives: in NumPy too when the
        # whole computation is on the host, else in torch on the device.
        self._data_ops = _NumpyOps if backend == "numpy" and not on_cuda else _TorchOps
        if method == "auto":
            # Measured break-even on CPUs: an eigendecomposition costs about as
            # much as 2 T matrix-vector products when p^3 ~ 3000 T; with torch
            # on CUDA the T sequential launches cost more than one solver call.
            cheap_eigh = p**3 < 3000 * T or (on_cuda and backend == "torch")
            method = "eigh" if cheap_eigh else "krylov"
        self.method = method
        penalty = torch.ones(p, dtype=self.dtype, device=self.device)
        penalty[-1] = 0.0
        # The clean Gram statistics stay on the device, where the poison Gram
        # is added; the p x p algebra runs in the backend's arrays.
        if fixed_gram is None:
            Z0 = self._augment(self.X_fixed)
            Ab0 = Z0.T @ torch.cat([Z0, self.y_fixed[:, None]], dim=1)
        else:
            ZtZ, Zty, _ = fixed_gram.around(0.0, 0.0)
            Ab0 = self._from_host(np.column_stack([ZtZ, Zty]))
        self._Ab0 = self._data_ops.from_torch(Ab0)
        if self._data_ops is _NumpyOps:
            self._A0 = np.ascontiguousarray(self._Ab0[:, :-1])
            self._b0 = np.ascontiguousarray(self._Ab0[:, -1])
        # torch computes nothing in a call when both sides are NumPy arrays,
        # so its thread count need not be touched then.
        self._torch_compute = not (self._ops is self._data_ops is _NumpyOps)
        self._np_dtype = torch.empty((), dtype=self.dtype).numpy().dtype
        if val_gram is None:
            Zv = self._augment(self.X_val)
            m = Zv.shape[0]
            H, h, s = Zv.T @ Zv, Zv.T @ self.y_val, torch.dot(self.y_val, self.y_val)
        else:
            # The validation set's statistics, computed once by the caller
            # (they do not change between batches); X_val still gives value().
            m = val_gram.n
            H, h, s = (self._from_host(a) for a in val_gram.around(0.0, 0.0))
        stats = {
            "H": H / m,
            "h": h / m,
            "s": s / m,
            "penalty": penalty,
            "eye": torch.eye(p, dtype=self.dtype, device=self.device),
        }
        if T <= _POWER_SUMS_MAX_T:
            # K_st = [s + t <= T - 2]: the sums over s + t <= T - 2 of the
            # divided differences (module docstring) as one matrix product.
            idx = torch.arange(max(T - 1, 0), device=self.device)
            stats["K"] = (idx[:, None] + idx[None, :] <= T - 2).to(self.dtype)
        self._stats = {k: self._ops.from_torch(v) for k, v in stats.items()}
        self._val_quadratic = val_gram is not None

    def validation_loss(self, params) -> torch.Tensor:
        """``1/(2 m) sum (f(x) - y)^2``; from the validation statistics with ``val_gram``.

        Then ``w^T H w / 2 - h^T w + s / 2``, as in :meth:`value_and_grad`:
        ``O(p^2)``, without a pass over (and temporaries of the size of) a
        large validation set.
        """
        if not self._val_quadratic:
            return super().validation_loss(params)
        w = torch.cat([params["weight"].reshape(-1), params["bias"].reshape(-1)])
        st, ops = self._stats, self._ops
        w = ops.from_torch(w.detach()) if ops is _TorchOps else w.detach().cpu().numpy()
        val = 0.5 * (ops.dot(w, st["H"] @ w - 2.0 * st["h"]) + st["s"])
        return torch.as_tensor(val, dtype=self.dtype, device=self.device)

    @staticmethod
    def _augment(X):
        return torch.cat([X, X.new_ones(X.shape[0], 1)], dim=1)

    def _from_host(self, a):
        """A float64 host array as a tensor of the engine."""
        return torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def _stack(self, X_p, y_p):
        """``W = [X_p, 1, y_p]`` (``n_p x (p + 1)``, C-contiguous) in the data's arrays.

        One array for both products of a call: ``W^T W`` holds ``Z_p^T Z_p`` and
        ``Z_p^T y_p``, and ``W R`` gives both gradients.
        """
        n_p, d = X_p.shape
        if self._data_ops is _NumpyOps:
            W = np.empty((n_p, d + 2), dtype=self._np_dtype)
            W[:, :d] = X_p.numpy()
            W[:, d] = 1.0
            W[:, d + 1] = y_p.numpy()
            return W
        return torch.cat([X_p, X_p.new_ones(n_p, 1), y_p[:, None]], dim=1)

    def _to_ops(self, a):
        """A data-side array as the backend's array (one transfer at most)."""
        return a if self._ops is self._data_ops else self._ops.from_torch(a)

    def _to_data(self, a):
        """A backend array as a data-side array."""
        return a if self._ops is self._data_ops else self._ops.to_torch(a, self.device)

    def _gram(self, W):
        """``A``, ``b`` (in the backend's arrays) and ``c`` from ``W = [Z_p, y_p]``."""
        st, n = self._stats, self.n_fixed + W.shape[0]
        p = self.n_features + 1
        # W^T W of a C-contiguous W: one BLAS call (syrk or gemm) for A and b.
        G = W.T @ W
        if self._data_ops is _NumpyOps:
            A, b = self._A0 + G[:p, :p], self._b0 + G[:p, p]  # A C-contiguous
        else:
            Ab = self._to_ops(self._Ab0 + G[:p])
            A, b = Ab[:, :p], Ab[:, p]
        if self.l2:
            A = A + st["eye"] * (n * self.l2 * st["penalty"])
        return A, b, self.lr / n

    def _check_lam_max(self, c, lam_max):
        """Raise unless ``c * lam_max < 2`` (the inner descent is stable)."""
        if np.isfinite(lam_max) and c * lam_max < 2.0:
            return
        raise DivergenceError(
            f"The inner gradient descent diverges: lr * lambda_max(Z^T Z / n) = "
            f"{c * lam_max:.3g} >= 2. Lower the inner learning rate or keep the "
            "poison points within the scale of the data."
        )

    def _check_stable(self, A, c):
        """Raise unless ``c * lambda_max(A) < 2`` (cheap norm bound first)."""
        ops = self._ops
        # Two cheap upper bounds on lambda_max first: the Frobenius norm (one
        # dot product), then the largest absolute row sum (Gershgorin).
        for bound in (ops.fro, lambda A: ops.abs(A).sum(1).max()):
            bound = float(bound(A))
            if np.isfinite(bound) and c * bound < 2.0:
                return
        self._check_lam_max(c, float(ops.eigvalsh(A)[-1]))

    def _eig(self, A, c):
        """Eigenvectors, ``F(lam)`` and a function giving ``D_ij = -F[l_i, l_j] / c^2``."""
        ops = self._ops
        lam, U = ops.eigh(A)
        self._check_lam_max(c, float(lam[-1]))
        T = self.n_steps
        if T <= _POWER_SUMS_MAX_T:
            mu = 1.0 - c * lam
            # Rows mu^0, ..., mu^(T-1) by cumulative products (exact for mu < 0 too).
            V = ops.empty((T, mu.shape[0]), mu)
            V[0] = 1.0
            V[1:] = mu
            V = ops.cumprod_rows(V)
            return U, c * V.sum(0), lambda: ops.triangle(V, V, self._stats["K"])
        # Closed forms: time and memory independent of T.
        x = _NumpyOps.from_torch(c * lam) if ops is _TorchOps else c * lam
        phi, D = _geometric_sums(x, T)
        if ops is _TorchOps:
            phi, D = (torch.as_tensor(a, dtype=lam.dtype, device=lam.device)
                      for a in (phi, D))  # fmt: skip
        return U, c * phi, lambda: D

    def _krylov(self, M, v):
        """Rows ``v, M v, ..., M^(T-1) v``."""
        out = self._ops.empty((self.n_steps, v.shape[0]), v)
        out[0] = v
        rows = list(out)  # row views made once
        if self._ops is _NumpyOps:
            # The loop is bound by per-call overhead (p^2 flops per call): the
            # bound method M.dot(v, out) has the least of it.
            dot = M.dot
            for a, b in zip(rows, rows[1:]):
                dot(a, b)
        else:
            for a, b in zip(rows, rows[1:]):
                torch.mv(M, a, out=b)
        return out

    def _weights(self, A, b, c, *, with_grad):
        """``w`` and, with ``with_grad``, the validation loss and ``R``.

        ``R = [[2 S[:, :d], u], [u[:d]^T, 0]]`` (``(p + 1) x (d + 1)``), so that
        ``[grad_X, grad_y] = [Z_p, y_p] R`` (see :meth:`value_and_grad`).
        """
        st, ops = self._stats, self._ops
        if self.method == "eigh":
            U, F, divided = self._eig(A, c)
            b_hat = U.T @ b
            w = U @ (F * b_hat)
        else:
            self._check_stable(A, c)
            M = st["eye"] - c * A
            Kb = self._krylov(M, b)
            w = c * Kb.sum(0)
        if not with_grad:
            return w, None
        g = st["H"] @ w - st["h"]
        val = 0.5 * (ops.dot(w, g - st["h"]) + st["s"])
        d = self.n_features
        p = d + 1
        R = ops.empty((p + 1, d + 1), w)
        if self.method == "eigh":
            g_hat = U.T @ g
            u = U @ (F * g_hat)
            outer = g_hat[:, None] * b_hat[None, :]
            # G o sym(g^ b^T) with G = -c^2 D (divided differences of F);
            # 2 S = -c^2 U (D o sym) U^T, first d columns.
            inner = divided() * (outer + outer.T)
            R[:p, :d] = (U @ inner) @ U[:d].T
        else:
            Kg = self._krylov(M, g)
            u = c * Kg.sum(0)
            # The same sums in the original basis: sum_{s+t<=T-2} M^s g b^T M^t,
            # and 2 S = -c^2 (P + P^T).
            P = ops.triangle(Kg, Kb, st.get("K"))
            ops.add(P[:, :d], P[:d].T, out=R[:p, :d])
        R[:p, :d] *= -c * c
        R[p, :d] = u[:d]
        R[:p, d] = u
        R[p, d] = 0.0
        return w, (val, R)

    def train(self, X_p, y_p) -> dict[str, torch.Tensor]:
        """``w_T = F(A) b`` as ``{"weight": (1, d), "bias": (1,)}`` (nn.Linear layout)."""
        X_p, y_p = self._poison(X_p, y_p)
        ops = self._ops
        with _small_cpu_threads(self.device, blas=self.backend == "numpy",
                                torch_=self._torch_compute):  # fmt: skip
            w, _ = self._weights(*self._gram(self._stack(X_p, y_p)), with_grad=False)
        return self._as_params(ops.to_torch(w, self.device))

    def value_and_grad(self, X_p, y_p):
        """Validation loss and its exact gradient (see the module docstring).

        Returns
        -------
        val_loss : Tensor, 0-d
        grad_X_p : Tensor of shape (n_p, n_features)
        grad_y_p : Tensor of shape (n_p,)
        """
        X_p, y_p = self._poison(X_p, y_p)
        d = self.n_features
        with _small_cpu_threads(self.device, blas=self.backend == "numpy",
                                torch_=self._torch_compute):  # fmt: skip
            W = self._stack(X_p, y_p)
            _, (val, R) = self._weights(*self._gram(W), with_grad=True)
            val = float(val)
            if not np.isfinite(val):
                raise DivergenceError(
                    "The inner training diverged (non-finite validation loss)."
                )
            # [grad_X, grad_y] = W R: grad_Z = 2 Z_p S + y_p u^T (first d
            # columns) and grad_y = Z_p u, as one product with
            #     R = [[2 S[:, :d], u], [u[:d]^T, 0]]    ((p + 1) x (d + 1)).
            # One BLAS thread for this product and W^T W too: with torch's
            # OpenMP workers still spinning from the caller's work, a second
            # BLAS thread on few cores made a Loan batch 10-20x slower.
            G = W @ self._to_data(R)
        if self._data_ops is _NumpyOps:
            # Views of G, sliced in NumPy (cheaper than slicing tensors).
            return (
                torch.from_numpy(np.asarray(val, dtype=G.dtype)),
                torch.from_numpy(G[:, :d]),
                torch.from_numpy(G[:, d]),
            )
        return (
            torch.tensor(val, dtype=self.dtype, device=self.device),
            G[:, :d],
            G[:, d],
        )


# Up to this T the sums are the plain powers mu^s (T x p, fast for small T);
# above it, the closed forms of skpoison.models._closed_form (cost independent of T).
_POWER_SUMS_MAX_T = 256


_SYEVD: dict = {}


def _host_eigh(A):
    """Eigenvalues (ascending) and eigenvectors of a symmetric host matrix.

    LAPACK's ``?syevd`` through SciPy's thin wrapper: the same routine as
    ``np.linalg.eigh`` with less overhead per call (4-8 us of 25-30 us for the
    17 x 17 matrices of the Appliances shape). A non-finite ``A`` gives NaN
    eigenvalues, which the caller reports as divergence.
    """
    f = _SYEVD.get(A.dtype.char)
    if f is None:
        f = _SYEVD[A.dtype.char] = scipy.linalg.lapack.get_lapack_funcs("syevd", (A,))
    lam, U, info = f(A)
    if info != 0 and np.isfinite(lam).all():
        raise np.linalg.LinAlgError(f"LAPACK ?syevd did not converge (info={info}).")
    return lam, U


class _NumpyOps:
    """NumPy versions of the few array functions the spectral algebra uses."""

    eigh = staticmethod(_host_eigh)
    eigvalsh = staticmethod(np.linalg.eigvalsh)
    abs = staticmethod(np.abs)

    @staticmethod
    def from_torch(t):
        return t.detach().cpu().numpy()

    @staticmethod
    def to_torch(a, device):
        a = np.asarray(a)  # keeps 0-d values 0-d (ascontiguousarray would not)
        return torch.from_numpy(a if a.flags.c_contiguous else a.copy()).to(device)

    @staticmethod
    def empty(shape, like):
        return np.empty(shape, dtype=like.dtype)

    @staticmethod
    def cumprod_rows(V):
        return np.multiply.accumulate(V, axis=0, out=V)

    @staticmethod
    def dot(a, b):
        return np.dot(a, b)

    add = staticmethod(np.add)

    @staticmethod
    def fro(A):
        return np.sqrt(np.vdot(A, A))

    @staticmethod
    def triangle(P, Q, K=None):
        # sum_{s+t<=T-2} P_s^T Q_t = P[:-1]^T K Q[:-1] (one BLAS call, small T),
        # or sum_s P_s^T (sum_{t<=T-2-s} Q_t): reversed cumulative sums of Q,
        # O(T p) memory instead of K's T^2.
        if K is not None:
            return P[:-1].T @ (K @ Q[:-1])
        return P[:-1].T @ np.cumsum(Q[:-1], axis=0)[::-1]


class _TorchOps:
    """The torch versions (any device)."""

    eigh = staticmethod(torch.linalg.eigh)
    eigvalsh = staticmethod(torch.linalg.eigvalsh)
    abs = staticmethod(torch.abs)

    @staticmethod
    def from_torch(t):
        return t

    @staticmethod
    def to_torch(t, device):
        return t.contiguous()

    @staticmethod
    def empty(shape, like):
        return like.new_empty(shape)

    @staticmethod
    def cumprod_rows(V):
        return torch.cumprod(V, dim=0)

    @staticmethod
    def dot(a, b):
        return torch.dot(a, b)

    add = staticmethod(torch.add)

    @staticmethod
    def fro(A):
        return torch.linalg.matrix_norm(A)

    @staticmethod
    def triangle(P, Q, K=None):
        if K is not None:
            return P[:-1].T @ (K @ Q[:-1])
        return P[:-1].T @ torch.cumsum(Q[:-1], dim=0).flip(0)


def _blas_switches():
    """``(get, set)`` thread-count functions of each BLAS library NumPy loaded.

    threadpoolctl finds the libraries. For OpenBLAS its C entry points are
    called directly (about 0.4 us for a get/set/set cycle against 2 us
    through threadpoolctl's Python layer, which matters at 0.15 ms per call);
    other libraries go through threadpoolctl's API.
    """
    from threadpoolctl import ThreadpoolController

    out = []
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        get = set_ = None
        symbol = getattr(lib, "_get_symbol", None)
        if symbol is not None and getattr(lib, "internal_api", "") == "openblas":
            try:
                get = symbol("openblas_get_num_threads")
                set_ = symbol("openblas_set_num_threads")
            except Exception:  # pragma: no cover - other threadpoolctl versions
                get = set_ = None
        if get is None or set_ is None:
            get, set_ = (lambda lib=lib: lib.num_threads), lib.set_num_threads
        out.append((get, set_, lib.set_num_threads))
    return out


class _small_cpu_threads:
    """Run Gram-sized (``p x p``) CPU algebra on one thread (torch and NumPy's BLAS).

    These matrices are far too small to gain from threads, and on a busy
    machine threads that wait for each other make a 90 x 90
    eigendecomposition ten to a hundred times slower.
    """

    _switches = None

    def __init__(self, device, blas: bool = False, torch_: bool = True):
        self.active = torch_ and device.type == "cpu"
        self.blas = blas
        self.limit = None

    def __enter__(self):
        if self.active:
            self.saved = torch.get_num_threads()
            if self.saved != 1:
                torch.set_num_threads(1)
        if self.blas:
            if _small_cpu_threads._switches is None:
                _small_cpu_threads._switches = _blas_switches()
            # OpenBLAS's setter is not thread-safe: outside the main thread go
            # through threadpoolctl, which lets one thread control it.
            main = threading.current_thread() is threading.main_thread()
            self.limit = []
            for get, set_, safe_set in _small_cpu_threads._switches:
                n = get()
                if n != 1:
                    (set_ if main else safe_set)(1)
                    self.limit.append((set_ if main else safe_set, n))
        return self

    def __exit__(self, *exc):
        for set_, n in self.limit or ():
            set_(n)
        if self.active and self.saved != 1:
            torch.set_num_threads(self.saved)
        return False


def make_engine(
    model,
    X_fixed,
    y_fixed,
    X_val,
    y_val,
    *,
    n_steps: int,
    lr: float,
    l2: float = 0.0,
    engine: str = "auto",
    hidden_layer_sizes: Sequence[int] = (32, 8),
    negative_slope: float = 0.01,
    init_params=None,
    random_state=None,
    dtype=torch.float64,
    device="cpu",
    fixed_gram=None,
    val_gram=None,
):
    """Build the right hypergradient engine for ``model``.

    ``engine="auto"`` picks :class:`LinearSpectralEngine` for ``model="linear"``
    and :class:`UnrolledEngine` otherwise; ``"spectral"`` and ``"unrolled"``
    force one (``"spectral"`` requires ``model="linear"``). A scikit-learn
    estimator as ``model`` (``LinearRegression``, ``Ridge``, ``Lasso``,
    ``ElasticNet``) gets the exact
    :class:`~skpoison.attacks._implicit.ImplicitLinearEngine` (``engine``
    must be ``"auto"``; ``n_steps``, ``lr`` and ``l2`` do not apply).
    ``fixed_gram`` and ``val_gram`` (statistics of the fixed rows, with
    ``X_fixed = y_fixed = None``, and of the validation set) are for the
    engines that need the rows only through them: the spectral engine and the
    implicit one for ``LinearRegression`` and ``Ridge``.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.ones((4, 2)), np.zeros(4)
    >>> type(make_engine("linear", X, y, X, y, n_steps=3, lr=0.1)).__name__
    'LinearSpectralEngine'
    """
    if engine not in ("auto", "spectral", "unrolled"):
        raise ValueError(
            f"engine must be 'auto', 'spectral' or 'unrolled', got {engine!r}."
        )
    if isinstance(model, BaseEstimator):
        from ._implicit import ImplicitLinearEngine

        if engine != "auto":
            raise ValueError(
                f"engine={engine!r} is for the gradient-descent victims; a "
                "scikit-learn estimator takes engine='auto'."
            )
        return ImplicitLinearEngine(
            model, X_fixed, y_fixed, X_val, y_val, dtype=dtype, device=device,
            fixed_gram=fixed_gram, val_gram=val_gram,
        )  # fmt: skip
    is_linear = isinstance(model, str) and model == "linear"
    if engine == "spectral" and not is_linear:
        raise ValueError("engine='spectral' is exact for model='linear' only.")
    common = dict(n_steps=n_steps, lr=lr, l2=l2, dtype=dtype, device=device)
    if is_linear and engine in ("auto", "spectral"):
        return LinearSpectralEngine(
            X_fixed, y_fixed, X_val, y_val, fixed_gram=fixed_gram,
            val_gram=val_gram, **common,
        )  # fmt: skip
    if fixed_gram is not None or val_gram is not None:
        raise ValueError("The unrolled engine needs the rows, not fixed_gram/val_gram.")
    return UnrolledEngine(
        model, X_fixed, y_fixed, X_val, y_val,
        hidden_layer_sizes=hidden_layer_sizes, negative_slope=negative_slope,
        init_params=init_params, random_state=random_state, **common,
    )  # fmt: skip
