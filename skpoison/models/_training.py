"""How every model in skpoison trains: one place, shared by victims and attack.

The paper trains its victims (Table III) and the inner problem of its attack
(Table II, Alg. 2-4) with the *same* procedure, and so does this library: the
sklearn victims in :mod:`skpoison.models` and the hypergradient engines in
:mod:`skpoison.attacks._hypergradient` call the functions below.

Loss
    The paper's Eq. (1) with ``lambda = l2``::

        L(w) = 1 / (2 n) * sum_i (f(x_i, w) - y_i) ** 2 + l2 / 2 * sum ||W_k||^2

    where the penalty covers weight matrices only (no biases). The ``1/2`` is
    not cosmetic: the gradient of a plain mean of squares is twice as large, so
    gradient descent with the paper's learning rates would take twice the step,
    and on Appliances (``eta = 0.2``) it diverges even on clean data.

Optimiser
    Full-batch gradient descent, ``w <- w - eta * grad L(w)`` for ``T`` steps
    (the paper's algorithm boxes say SGD; its Appendix E says full batch). For a
    linear model with ``Z = [X, 1]`` one step is
    ``w <- w - (eta / n) Z^T (Z w - y)``.

Initialisation (Appendix E)
    Zeros for linear regression; for the MLP (``n_features x 32 x 8 x 1``,
    LeakyReLU) Xavier-uniform weights and biases filled with ``1e-2``.

Divergence
    Gradient descent on a quadratic is stable iff
    ``eta * lambda_max(Z^T Z / n + l2 P) < 2`` (``P`` masks the bias); linear
    models check it before training (:func:`check_linear_stability`). Every model
    checks its loss curve afterwards, the loss at the trained parameters included
    (:func:`check_training`): a non-finite or exploding loss raises :class:`~skpoison.exceptions.DivergenceError`, so no
    NaN is ever returned silently.

The code is functional: parameters are a list of tensors in the order of
``module.parameters()``; :func:`loss_and_grad_fn` returns a function computing
the loss and its gradient. For the paper's architectures (``nn.Sequential`` of
``nn.Linear`` and ``nn.LeakyReLU``) the gradient is written out by hand (plain
matrix products, so autograd can differentiate *through* it once, which is what
the attack's reverse-mode hypergradient needs); for any other module it falls
back to ``torch.autograd.grad`` through ``torch.func.functional_call``.

Cost of one step under reverse mode. The products with the training inputs
``X`` (``n x d`` times ``d x h``) dominate. Plain autograd through
``torch.autograd.grad(create_graph=True)`` forms six of them per step: the
forward layer and the weight gradient, then, in the backward pass, two for the
weights and two for ``X``, whose gradient it forms for all ``n`` rows. The
hand-written gradient with :class:`RowBlocks` inputs (fixed rows, poison rows)
forms four and differentiates only the ``n_p`` poison rows; that ratio, 1.5, is
the floor of the speed-up where these products dominate (wide first layers on
the CPU), and the rest comes from fewer operations per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral

import torch
from torch import nn
from torch.nn import functional as F

from ..exceptions import DivergenceError

__all__ = [
    "RowBlocks",
    "chain_thread_count",
    "build_mlp",
    "check_hessian_stability",
    "check_linear_stability",
    "check_loss_curve",
    "check_training",
    "gradient_descent",
    "init_paper_params",
    "linear_normal_equations",
    "loss_and_grad_fn",
    "squared_loss",
    "torch_threads",
]

#: A loss curve that grows beyond this factor of its first value has exploded.
EXPLOSION_FACTOR = 1e8

#: Floating-point work of one first-layer product (``2 n (d + 1) h_1``) that
#: earns each torch thread beyond the first: about 2 ms of one core.
THREAD_WORK = 5e7

LossGrad = Callable[
    [Sequence[torch.Tensor], torch.Tensor, torch.Tensor],
    tuple[torch.Tensor, list[torch.Tensor]],
]


def squared_loss(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's Eq. (1) without penalty: ``sum (pred - y)^2 / (2 n)``.

    Examples
    --------
    >>> import torch
    >>> squared_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    tensor(2.5000)
    """
    r = pred - y
    return 0.5 * torch.mean(r * r)


def build_mlp(
    n_features: int,
    hidden_layer_sizes: Sequence[int] = (32, 8),
    negative_slope: float = 0.01,
) -> nn.Sequential:
    """The paper's network: ``Linear`` layers with LeakyReLU between them.

    ``hidden_layer_sizes=()`` gives linear regression (one ``Linear(n, 1)``).
    This is also how a fitted :class:`~skpoison.models.TorchMLPRegressor` is
    rebuilt from its parameters.

    Examples
    --------
    >>> build_mlp(3, (4,))
    Sequential(
      (0): Linear(in_features=3, out_features=4, bias=True)
      (1): LeakyReLU(negative_slope=0.01)
      (2): Linear(in_features=4, out_features=1, bias=True)
    )
    """
    hidden = tuple(hidden_layer_sizes)
    # int(2.5) would silently make a width-2 layer and torch fails obscurely
    # on 0 or negative widths: refuse anything but positive integers.
    if not all(
        isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in hidden
    ):
        raise ValueError(
            f"hidden_layer_sizes must hold positive ints, got {hidden_layer_sizes!r}."
        )
    sizes = [int(n_features), *(int(h) for h in hidden), 1]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i > 0:
            layers.append(nn.LeakyReLU(negative_slope))
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


def init_paper_params(
    module: nn.Module, *, generator: torch.Generator | None = None
) -> nn.Module:
    """Initialise ``module`` in place as the paper does (Appendix E).

    A module with a single ``nn.Linear`` (linear regression) gets zeros. Any
    other module gets Xavier-uniform weights and biases ``1e-2`` in every
    ``nn.Linear``; the draw uses ``generator`` (on the CPU), so a seed fixes it.

    Examples
    --------
    >>> import torch
    >>> m = init_paper_params(build_mlp(2, ()))
    >>> float(m[0].weight.detach().abs().sum()), float(m[0].bias.detach().abs().sum())
    (0.0, 0.0)
    """
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        if len(linears) == 1 and len(list(module.parameters())) <= 2:
            for p in module.parameters():
                p.zero_()
            return module
        for lin in linears:
            fan_out, fan_in = lin.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            draw = torch.rand(
                lin.weight.shape, generator=generator, dtype=torch.float64
            )
            lin.weight.copy_((2.0 * draw - 1.0) * bound)
            if lin.bias is not None:
                lin.bias.fill_(1e-2)
    return module


def _sequential_slopes(module: nn.Module) -> list[float] | None:
    """Negative slopes between the layers of a Linear/LeakyReLU chain, else None."""
    if not isinstance(module, nn.Sequential):
        return None
    layers = list(module)
    if not layers or len(layers) % 2 == 0:
        return None
    slopes = []
    for i, layer in enumerate(layers):
        if i % 2 == 0:
            if type(layer) is not nn.Linear or layer.bias is None:
                return None
        elif type(layer) is nn.LeakyReLU:
            slopes.append(float(layer.negative_slope))
        else:
            return None
    if layers[-1].out_features != 1:
        return None
    return slopes


class RowBlocks:
    """Training inputs ``[X_fixed; X_poison]`` where only ``X_poison`` needs a gradient.

    The rows are concatenated once (detached) and multiplied as one matrix; the
    custom backward of :class:`_FirstLayer` and :class:`_FirstLayerGrad` then
    forms the gradient for the ``n_p`` poison rows only, never the full
    ``n x d`` one that plain autograd through ``torch.cat`` would compute.
    """

    def __init__(self, fixed: torch.Tensor, poison: torch.Tensor):
        self.fixed, self.poison = fixed, poison
        self.data = torch.cat([fixed, poison.detach()])
        self.n_fixed = fixed.shape[0]
        self.shape = self.data.shape
        self._joined = None

    def joined(self) -> torch.Tensor:
        """The concatenation, differentiable in ``poison`` (for plain autograd)."""
        if self._joined is None:
            self._joined = torch.cat([self.fixed, self.poison])
        return self._joined


class _FirstLayer(torch.autograd.Function):
    """``b + X W^T`` for ``X = RowBlocks``: gradients for ``b``, ``W`` and the poison rows."""

    @staticmethod
    def forward(ctx, b, W, data, poison, n_fixed):
        ctx.save_for_backward(W, data)
        ctx.n_fixed = n_fixed
        return torch.addmm(b, data, W.T)

    @staticmethod
    def backward(ctx, dz):
        W, data = ctx.saved_tensors
        db = dz.sum(0) if ctx.needs_input_grad[0] else None
        dW = dz.T @ data if ctx.needs_input_grad[1] else None
        dP = dz[ctx.n_fixed :] @ W if ctx.needs_input_grad[3] else None
        return db, dW, None, dP, None


class _FirstLayerGrad(torch.autograd.Function):
    """``delta^T X`` for ``X = RowBlocks``: gradients for ``delta`` and the poison rows."""

    @staticmethod
    def forward(ctx, delta, data, poison, n_fixed):
        ctx.save_for_backward(delta, data)
        ctx.n_fixed = n_fixed
        return delta.T @ data

    @staticmethod
    def backward(ctx, dG):
        delta, data = ctx.saved_tensors
        dd = data @ dG.T if ctx.needs_input_grad[0] else None
        dP = delta[ctx.n_fixed :] @ dG if ctx.needs_input_grad[2] else None
        return dd, None, dP, None


def _leaky_relu_backward(grad, z, slope):
    return torch.ops.aten.leaky_relu_backward(grad, z, slope, False)


def _chain_loss_and_grad(slopes: list[float]) -> LossGrad:
    """Hand-written loss and gradient of a Linear/LeakyReLU chain.

    Plain tensor algebra (no autograd inside), so differentiating it with
    autograd costs one ordinary backward pass per step instead of a double
    backward, and the LeakyReLU masks are computed once, detached (their
    derivative is zero almost everywhere). With :class:`RowBlocks` inputs no
    gradient is formed for the fixed rows. This is what makes the unrolled
    engine fast.
    """

    def loss_and_grad(params, X, y, l2=0.0):
        blocks = isinstance(X, RowBlocks)
        n = X.shape[-2]
        n_layers = len(params) // 2
        # A leading axis on X, y and every parameter: k problems at once.
        batched = not blocks and X.ndim == 3
        if blocks:
            z = _FirstLayer.apply(params[1], params[0], X.data, X.poison, X.n_fixed)
        elif batched:
            z = torch.baddbmm(params[1][:, None], X, params[0].mT)
        else:
            z = torch.addmm(params[1], X, params[0].T)
        hs, zs = [None], []
        for k in range(1, n_layers):
            # The LeakyReLU's derivative is piecewise constant: its backward
            # below reads the detached pre-activation, so reverse mode through
            # the step differentiates one op, not a mask computation.
            zs.append(z.detach())
            h = F.leaky_relu(z, slopes[k - 1])
            hs.append(h)
            if batched:
                z = torch.baddbmm(params[2 * k + 1][:, None], h, params[2 * k].mT)
            else:
                z = torch.addmm(params[2 * k + 1], h, params[2 * k].T)
        r = z[..., 0] - y
        loss = 0.5 * (torch.linalg.vecdot(r, r) if batched else torch.dot(r, r)) / n
        delta = (r / n).unsqueeze(-1)
        grads: list[torch.Tensor] = [None] * len(params)  # type: ignore[list-item]
        for k in range(n_layers - 1, -1, -1):
            W = params[2 * k]
            if k > 0:
                gW = delta.mT @ hs[k]
            elif blocks:
                gW = _FirstLayerGrad.apply(delta, X.data, X.poison, X.n_fixed)
            else:
                gW = delta.mT @ X
            if l2:
                gW = gW + l2 * W
            grads[2 * k] = gW
            grads[2 * k + 1] = delta.sum(-2)
            if k > 0:
                delta = _leaky_relu_backward(delta @ W, zs[k - 1], slopes[k - 1])
        if l2:
            loss = loss + 0.5 * l2 * sum(
                torch.sum(params[2 * k] ** 2, dim=(-2, -1)) for k in range(n_layers)
            )
        return loss, grads

    # No autograd inside: gradient_descent may run it in inference mode.
    loss_and_grad.autograd_free = True

    return loss_and_grad


def _autograd_loss_and_grad(module: nn.Module) -> LossGrad:
    """Loss and gradient of any module through ``torch.func.functional_call``."""
    names = [name for name, _ in module.named_parameters()]
    is_weight = [p.ndim >= 2 for _, p in module.named_parameters()]

    def loss_and_grad(params, X, y, l2=0.0):
        if isinstance(X, RowBlocks):
            X = X.joined()
        create_graph = torch.is_grad_enabled() and any(
            t.requires_grad for t in (*params, X, y)
        )
        with torch.enable_grad():
            ps = [p if p.requires_grad else p.detach().requires_grad_() for p in params]
            out = torch.func.functional_call(module, dict(zip(names, ps)), (X,))
            loss = squared_loss(out.reshape(-1), y)
            if l2:
                loss = loss + 0.5 * l2 * sum(
                    torch.sum(p * p) for p, w in zip(ps, is_weight) if w
                )
            grads = torch.autograd.grad(loss, ps, create_graph=create_graph)
        if not create_graph:
            loss = loss.detach()
        return loss, list(grads)

    return loss_and_grad


def loss_and_grad_fn(module: nn.Module, *, force_autograd: bool = False) -> LossGrad:
    """Return ``f(params, X, y, l2) -> (loss, grads)`` for ``module``.

    Parameters
    ----------
    module : nn.Module
        The model; ``params`` are tensors in the order of ``module.parameters()``.
    force_autograd : bool, default=False
        Use ``torch.autograd.grad`` even when a hand-written gradient exists (the
        reference path, used by tests and benchmarks).

    Returns
    -------
    loss_and_grad : callable
        Computes Eq. (1) (plus the L2 term) and its gradient with respect to the
        parameters. The result is differentiable by autograd with respect to the
        parameters and ``X``, ``y`` whenever they require grad.
    """
    slopes = None if force_autograd else _sequential_slopes(module)
    if slopes is not None:
        return _chain_loss_and_grad(slopes)
    return _autograd_loss_and_grad(module)


def gradient_descent(
    loss_and_grad: LossGrad,
    params: Sequence[torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    n_steps: int,
    lr: float,
    l2: float = 0.0,
    differentiable: bool = False,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Full-batch gradient descent, ``w <- w - lr * grad L(w)``, ``n_steps`` times.

    Parameters
    ----------
    loss_and_grad : callable
        From :func:`loss_and_grad_fn`.
    params : sequence of Tensor
        Initial parameters (not modified).
    X : Tensor of shape (n_samples, n_features) or RowBlocks
        :class:`RowBlocks` (fixed points, then poison points) stand for their
        concatenation; only the poison rows get a gradient. For the paper's
        architectures ``X`` may also be of shape ``(k, n_samples, n_features)``,
        ``y`` of shape ``(k, n_samples)`` and every parameter of shape
        ``(k, *shape)``: ``k`` independent trainings of one shape in one loop
        of batched products.
    y : Tensor of shape (n_samples,)
    n_steps : int
        ``T`` in the paper (epochs for the victims).
    lr : float
        ``eta`` in the paper.
    l2 : float, default=0.0
        ``lambda`` in Eq. (1) (weights only).
    differentiable : bool, default=False
        Keep the autograd graph through all steps (for reverse-mode
        hypergradients); otherwise run under ``torch.no_grad``, or, for the
        hand-written gradients of the paper's architectures, under
        ``torch.inference_mode`` (no version counters or autograd metadata per
        operation; a Heart victim's fit 1.07x faster, 48.7 to 45.3 ms of CPU
        time: ``python benchmarks/bench_dnn_engine.py --old OLD --rounds 9``
        at commit f8566df, ``OLD`` a checkout of 7dfacf6), with the results
        cloned out of it as ordinary tensors.

    Returns
    -------
    params : list of Tensor
        The parameters after ``n_steps`` steps.
    losses : Tensor of shape (n_steps,) or (n_steps, k)
        The training loss *before* each step (detached). Check it with
        :func:`check_loss_curve`; no per-step host synchronisation happens here.
    """
    inference = not differentiable and getattr(loss_and_grad, "autograd_free", False)
    if differentiable:
        ctx = torch.enable_grad()
    else:
        ctx = torch.inference_mode() if inference else torch.no_grad()
    params = list(params)
    losses = []
    with ctx:
        for _ in range(n_steps):
            loss, grads = loss_and_grad(params, X, y, l2)
            losses.append(loss.detach())
            params = [torch.add(p, g, alpha=-lr) for p, g in zip(params, grads)]
        curve = torch.stack(losses) if losses else y.new_zeros(0)
    if inference:
        # Out of inference mode (no steps: the caller's own parameters).
        curve = curve.clone()
        if n_steps:
            params = [p.clone() for p in params]
    return params, curve


def check_loss_curve(
    losses: torch.Tensor, *, what: str = "training", lr_name: str = "learning_rate"
) -> None:
    """Raise :class:`DivergenceError` if a loss curve is non-finite or exploding.

    Examples
    --------
    >>> import torch
    >>> check_loss_curve(torch.tensor([1.0, 0.5]))
    >>> check_loss_curve(torch.tensor([1.0, float("nan")]))
    Traceback (most recent call last):
    ...
    skpoison.exceptions.DivergenceError: ...
    """
    if losses.numel() == 0:
        return
    if losses.ndim == 2:  # (n_steps, k): k trainings at once, each checked
        for j in range(losses.shape[1]):
            check_loss_curve(losses[:, j], what=what, lr_name=lr_name)
        return
    values = losses.detach().double().cpu()
    if not bool(torch.isfinite(values).all()):
        step = int((~torch.isfinite(values)).nonzero()[0, 0])
        raise DivergenceError(
            f"Gradient descent diverged: the {what} loss became non-finite at step "
            f"{step}. Lower {lr_name} or standardise the features."
        )
    first = float(values[0])
    worst = float(values.max())
    if worst > EXPLOSION_FACTOR * max(first, 1e-300):
        raise DivergenceError(
            f"Gradient descent diverged: the {what} loss grew from {first:.3g} to "
            f"{worst:.3g}. Lower {lr_name} or standardise the features."
        )


class torch_threads:
    """Run a block on ``n_threads`` torch threads and restore the count after.

    ``None`` leaves the count alone. The count is restored on error too.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """

    def __init__(self, n_threads: int | None):
        self.n_threads = n_threads
        self.saved: int | None = None

    def __enter__(self):
        n = torch.get_num_threads()
        if self.n_threads is not None and self.n_threads != n:
            self.saved = n
            torch.set_num_threads(self.n_threads)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            torch.set_num_threads(self.saved)
            self.saved = None
        return False


def chain_thread_count(
    n_samples: int, n_features: int, width: int, device: torch.device | str = "cpu"
) -> int | None:
    """Torch threads for the GD steps of a chain whose first layer is ``width`` wide.

    One thread per :data:`THREAD_WORK` flops of the largest product of a step
    (``2 n (d + 1) h_1``), at least one and at most torch's current count;
    ``None`` (leave it) off the CPU. The paper's shapes (Heart ``3e6``, Loan
    ``2e7``) get one thread: their products take well under a millisecond, and
    on a loaded 2-core machine a second thread that waits for a time slice at
    every product made the unrolled MLP engine 10-20x slower. Batched products
    (``bmm``) of ``k`` problems are not counted ``k`` times: torch splits them
    over problems, which gained nothing in the same measurements.

    Examples
    --------
    >>> chain_thread_count(1599, 28, 32)
    1
    """
    if torch.device(device).type != "cpu":
        return None
    work = 2.0 * n_samples * (n_features + 1) * width
    return int(max(1, min(torch.get_num_threads(), work // THREAD_WORK)))


def check_training(
    loss_and_grad: LossGrad,
    params: Sequence[torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    losses: torch.Tensor,
    *,
    l2: float = 0.0,
    what: str = "training",
    lr_name: str = "learning_rate",
) -> None:
    """:func:`check_loss_curve` on a whole run, the loss at its result included.

    The curve of :func:`gradient_descent` holds the loss *before* each step, so
    a run that explodes in its last steps returns parameters whose loss is far
    beyond the last value of the curve. This adds the loss at ``params`` (one
    more evaluation, without graph) and checks the lot: every model that
    trains by gradient descent (victims, the attack's clean model, its inner
    problem) is judged by this one criterion.

    Examples
    --------
    >>> import torch
    >>> X, y = torch.ones(4, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    >>> f = loss_and_grad_fn(build_mlp(1, ()))
    >>> w0 = [torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)]
    >>> params, losses = gradient_descent(f, w0, X, y, n_steps=3, lr=0.5)
    >>> check_training(f, params, X, y, losses)
    >>> params, losses = gradient_descent(f, w0, X, y, n_steps=20, lr=10.0)
    >>> check_training(f, params, X, y, losses)
    Traceback (most recent call last):
    ...
    skpoison.exceptions.DivergenceError: ...
    """
    with torch.no_grad():
        final, _ = loss_and_grad([p.detach() for p in params], X, y, l2)
    final = final.detach().to(losses).reshape(1, *losses.shape[1:])
    check_loss_curve(torch.cat([losses.detach(), final]), what=what, lr_name=lr_name)


def linear_normal_equations(
    X: torch.Tensor,
    y: torch.Tensor | None = None,
    l2: float = 0.0,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``H = Z^T Z / n + l2 P`` and ``g = Z^T y / n`` for ``Z = [X, 1]``.

    ``H`` is the Hessian of Eq. (1) for a linear model (``P`` masks the bias)
    and ``g`` its gradient at zero, negated; ``g`` is None without ``y``.
    With row weights ``weight`` (``W``): ``Z^T W Z / sum w`` and
    ``Z^T W y / sum w`` (for 0/1 weights, those of the rows kept).

    Raises
    ------
    skpoison.exceptions.DivergenceError
        When ``Z^T Z`` overflows (``|X|`` beyond about ``1e154``).

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    >>> H, g = linear_normal_equations(X, torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> H.tolist(), g.tolist()
    ([[5.0, 2.0], [2.0, 1.0]], [2.0, 1.0])
    """
    n, d = X.shape
    Z = torch.cat([X, X.new_ones(n, 1)], dim=1)
    if weight is None:
        Zw, n_s = Z, n
    else:
        Zw, n_s = weight[:, None] * Z, weight.sum()
    H = Z.T @ Zw / n_s
    if l2:
        H = H + torch.diag(torch.cat([X.new_full((d,), l2), X.new_zeros(1)]))
    if not bool(torch.isfinite(H).all()):
        # |X| beyond ~1e154: Z^T Z overflows and eigvalsh would fail obscurely.
        raise DivergenceError(
            "X is too large for gradient descent in floating point: Z^T Z "
            "overflows. Standardise the features."
        )
    return H, (None if y is None else Zw.T @ y / n_s)


def check_hessian_stability(H: torch.Tensor, lr: float) -> float:
    """Check ``lr * lambda_max(H) < 2`` for the Hessian ``H`` of a linear model.

    Returns ``lambda_max``; raises :class:`DivergenceError` otherwise (see
    :func:`check_linear_stability`).
    """
    lam_max = float(torch.linalg.eigvalsh(H)[-1])
    if not math.isfinite(lam_max) or lr * lam_max >= 2.0:
        raise DivergenceError(
            f"Gradient descent with learning_rate={lr} diverges on this data: "
            f"learning_rate * lambda_max(Z^T Z / n) = {lr * lam_max:.3g} >= 2 "
            f"(lambda_max = {lam_max:.3g}). Use learning_rate < {2.0 / lam_max:.3g} "
            "or standardise the features."
        )
    return lam_max


def check_linear_stability(X: torch.Tensor, lr: float, l2: float = 0.0) -> float:
    """Check ``lr * lambda_max(Z^T Z / n + l2 P) < 2`` for ``Z = [X, 1]``.

    This is the exact condition under which full-batch gradient descent on the
    linear least-squares loss of Eq. (1) does not diverge.

    Returns
    -------
    lam_max : float
        The largest eigenvalue of the (scaled) Hessian.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[10.0], [-10.0]], dtype=torch.float64)
    >>> check_linear_stability(X, 0.01)
    100.0
    >>> check_linear_stability(X, 0.1)
    Traceback (most recent call last):
    ...
    skpoison.exceptions.DivergenceError: ...
    """
    H, _ = linear_normal_equations(X, None, l2)
    return check_hessian_stability(H, lr)
