"""The stealthy poisoning attack (Section IV, Appendices A-C, Alg. 1-4).

The attacker replaces ``n_p`` of the ``n_tr`` training points by optimised points
``(x_p, y_p)`` (``poison_fraction = n_p / n_tr``) so as to maximise

.. math::

    A_d = \\alpha \\frac{L(D_{val}, w^*)}{L_{ref}} - (1 - \\alpha) \\frac{R}{R_{ref}},

where ``w*`` is the model trained by ``T`` full-batch gradient-descent steps
(learning rate ``eta``, the paper's initialisation; :mod:`skpoison.models._training`)
on the poisoned training set, and ``R`` the detectability risk of Eq. (5)
(:mod:`skpoison.attacks._risk`).

How the pieces map to the paper
-------------------------------
Batches (Alg. 2)
    The ``n_p`` points are crafted in batches of ``B_p`` (``batch_size``), one
    after another; a finished batch is fixed in the training set. The last batch
    may be smaller.
Replaced points and initialisation (Alg. 4, ``initDp``)
    One random permutation of the training indices (drawn once from
    ``random_state``) orders the points to replace: batch ``i`` replaces the next
    ``B_p`` still-clean points of it (``P^(i)``), and its poison points start as
    copies of exactly those points. So ``initDp`` clones points sampled uniformly
    without duplicates, and the starting training set of every batch is the set
    poisoned so far. Because the permutation does not depend on ``n_p``, a run at
    15% extends the run at 7.5% (the paper's cumulative ratios).
Normalisation (Alg. 1 and 2, Appendix A)
    ``L_ref`` of batch ``i`` is the validation loss of the model trained on the
    set poisoned so far (``loss_ref_``). ``R_ref`` is the largest risk of a
    batch of the ``alpha = 1`` attack: fitting with ``alpha < 1`` first runs the
    ``alpha = 1`` attack on the same split and permutation, unless ``risk_ref``
    is given. (Alg. 1 sets ``L_ref = 1`` for ``alpha = 1``; since the ascent
    direction is normalised per point, a positive scale does not change it, and
    ``loss_ref_`` is recorded the same way for every ``alpha``.)
Clean model
    ``R`` uses the clean model ``w_cl``: the attacker trains it with the *same*
    procedure as the victim (``T`` steps, learning rate ``eta``, the engine's
    ``train``) on the clean training set, so "clean" means what the victim
    learns without poisoning. ``sigma`` is its residual standard error with
    ``n_tr - p - 1`` degrees of freedom, ``p`` the number of input features (the
    paper defines ``df`` for LR only; the MLP uses the same ``p``).
Ascent (Alg. 4, Eq. 6)
    ``T_out`` steps of projected hypergradient ascent with step ``gamma``. The
    hypergradient of each point, the row ``[d A_d / d x_k, d A_d / d y_k]``, is
    divided by its L2 norm (Appendix E: "normalized with respect to their L2
    norm"; a zero row stays zero), then the point is clipped to the feasible box
    (by default the per-column minimum and maximum of the clean training
    features and target).
Hypergradients (Alg. 3)
    From :mod:`skpoison.attacks._hypergradient`: the exact spectral engine for
    the linear model (``engine="auto"``), reverse-mode differentiation through
    the unrolled ``T`` steps otherwise. ``R`` needs no unrolling: its gradient is
    autograd through one forward pass of the clean model.
"""

from __future__ import annotations

import numbers

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._metadata_requests import RequestMethod
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.validation import check_is_fitted, check_X_y

from .._validation import (
    check_bounds,
    check_target,
    resolve_device,
    resolve_dtype,
    validate_regression_data,
)
from ..exceptions import DivergenceError
from ._hypergradient import make_engine
from ._presets import get_preset
from ._risk import detectability_risk, residual_std, risk_and_grad

__all__ = ["StealthyPoisoner"]

# Parameters that may change between warm-started fits without invalidating the
# batches computed so far.
_WARM_FREE = ("poison_fraction", "verbose", "warm_start", "device")


def _count_from_fraction(fraction, n: int) -> int:
    """``round(fraction * n)``: the paper's ratios are whole numbers of batches.

    Table II's batch sizes are 7.5% of Table I's training sizes *rounded*
    (Boston: 0.075 * 253 = 18.975 -> 19), so rounding (not flooring) keeps the
    cumulative ratios 7.5%, 15%, ... aligned with whole batches.
    """
    if isinstance(fraction, numbers.Integral):
        return int(fraction)
    return int(np.floor(float(fraction) * n + 0.5))


class StealthyPoisoner(BaseEstimator):
    """Stealthy bilevel poisoning attack on regression (Carnerero-Cano et al.).

    Replaces a fraction of the training points by points optimised to maximise
    ``alpha * L(D_val, w*) / L_ref - (1 - alpha) * R / R_ref``: the validation
    loss of the model trained on the poisoned set (effectiveness) against the
    detectability risk ``R`` of Eq. (5) (stealth). ``alpha=1`` is the classic,
    most effective attack; small ``alpha`` keeps the points near the clean data.
    A sampler in the sense of imbalanced-learn: inside
    ``imblearn.pipeline.Pipeline`` it poisons the training folds only.

    See :mod:`skpoison.attacks._stealthy` for how each step follows the paper.

    Parameters
    ----------
    poison_fraction : float in [0, 1), default=0.075
        ``n_p / n_tr``: the fraction of the (attacker's) training points that
        are replaced; ``n_p = round(poison_fraction * n_tr)``.
    alpha : float in [0, 1], default=1.0
        The stealth factor ``alpha`` of Eq. (4); 1 ignores detectability.
    model : {"linear", "mlp"} or callable, default="linear"
        The victim's architecture: linear regression, the paper's MLP
        (``n_features x hidden_layer_sizes x 1``, LeakyReLU), or a callable
        ``model(n_features) -> torch.nn.Module``.
    hidden_layer_sizes : tuple of int, default=(32, 8)
        Hidden layers for ``model="mlp"`` (the paper's DNN).
    n_inner_steps : int, default=40
        ``T``: full-batch gradient-descent steps of the inner (training) problem.
    inner_lr : float, default=0.1
        ``eta``: learning rate of the inner problem.
    n_outer_steps : int, default=100
        ``T_out``: projected hypergradient-ascent steps per batch.
    outer_lr : float, default=0.9
        ``gamma``: the ascent step (each point moves by at most ``gamma`` per
        step, since hypergradients are normalised per point).
    batch_size : int or float in (0, 1], default=0.075
        ``B_p``: poison points optimised together; a float is a fraction of
        ``n_tr`` (rounded, at least 1). The defaults (the Boston LR settings of
        Table II, with the batch as 7.5% of ``n_tr``) follow the paper.
    validation_fraction : float in (0, 1), default=0.25
        When ``X_val`` is not passed to ``fit``, this fraction of the given
        data (rounded up) becomes the attacker's validation set and the rest its
        training set (Table I's ratio is about 0.23-0.25).
    bounds : (low, high) or None, default=None
        The feasible box of the poison points: scalars or arrays of length
        ``n_features + 1`` (the last entry for the target). ``None`` uses the
        per-column minimum and maximum of the clean training features and
        target.
    risk_ref : float > 0 or None, default=None
        ``R_ref`` for ``alpha < 1``. ``None`` computes it (Alg. 1) by first
        running the ``alpha = 1`` attack; pass the ``risk_ref_`` of a fitted
        ``alpha = 1`` attack on the same data to skip that run.
    engine : {"auto", "spectral", "unrolled"}, default="auto"
        Hypergradient engine: ``"auto"`` uses the exact spectral engine for the
        linear model and unrolled reverse-mode differentiation otherwise.
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
        Where the computation runs (``"auto"``: CUDA when available).
    dtype : {"float64", "float32"}, default="float64"
        Floating-point precision of the computation.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, the points replaced and the MLP's
        initialisation. A fixed value gives bit-identical poison points on CPU.
    verbose : int, default=0
        Show tqdm progress bars over batches and outer steps when > 0.
    warm_start : bool, default=False
        Reuse the batches of the previous fit (same data and parameters other
        than ``poison_fraction``, ``verbose`` and ``device``; an int
        ``random_state``) and only compute the new ones, so a run at 15%
        extends one at 7.5%. A smaller ``poison_fraction`` returns a prefix.
        For ``alpha < 1`` without ``risk_ref`` the ``R_ref`` of the first fit is
        kept.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit``.
    train_indices_ : ndarray of shape (n_tr,)
        Rows of the ``X`` passed to ``fit`` that form the attacker's training
        set, in the order of the resampled output.
    poison_indices_ : ndarray of shape (n_poison,)
        Positions (in the resampled output) of the replaced points, in batch
        order.
    X_poison_ : ndarray of shape (n_poison, n_features)
        The poison points, in the order of ``poison_indices_``.
    y_poison_ : ndarray of shape (n_poison,)
        Their targets.
    batch_slices_ : list of slice
        The slice of ``poison_indices_`` of each batch.
    n_batches_ : int
        Number of batches.
    bounds_ : tuple of ndarray
        ``(low, high)`` of shape (n_features + 1,), the feasible box used.
    sigma_ : float
        Residual standard error of the clean model.
    init_seed_ : int
        Seed of the inner problem's initialisation (the MLP's Xavier draw):
        ``TorchMLPRegressor(random_state=init_seed_)`` starts from the same
        parameters as the model the attacker trained.
    risk_ref_ : float
        ``R_ref``: for ``alpha = 1`` the largest risk of a batch (Alg. 1), else
        the value used. NaN when nothing was poisoned.
    loss_ref_ : ndarray of shape (n_batches,)
        ``L_ref`` of each batch.
    risk_ : ndarray of shape (n_batches,)
        ``R`` of each final batch.
    history_ : list of dict
        One dict per batch with arrays of length ``n_outer_steps + 1`` (entry
        ``k`` after ``k`` ascent steps): ``"objective"`` (``A_d``),
        ``"val_loss"`` (``L(D_val, w*)``), ``"effectiveness"``
        (``L / L_ref``) and ``"risk"`` (``R``).
    n_iter_ : int
        Ascent steps run in total (over all batches, warm starts and the
        ``alpha = 1`` reference run included).

    Notes
    -----
    Inside ``imblearn.pipeline.Pipeline`` the attacker's validation set is
    split from each training fold unless it is routed explicitly: with
    ``sklearn.set_config(enable_metadata_routing=True)``, call
    ``set_fit_request(X_val=True, y_val=True)`` and
    ``set_fit_resample_request(X_val=True, y_val=True)`` and pass ``X_val``,
    ``y_val`` to ``Pipeline.fit`` (or ``params=`` of ``cross_validate``).
    Without routing, imbalanced-learn 0.14 does not forward
    ``attack__X_val`` to ``fit_resample``.

    See Also
    --------
    skpoison.attacks.get_preset : the paper's Table II settings.
    skpoison.attacks.detectability_risk : Eq. (5).

    References
    ----------
    .. [1] J. Carnerero-Cano, L. Muñoz-González, P. Spencer and E. C. Lupu,
       "Stealthy Poisoning Attacks Bypass Defenses in Regression Settings".

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.attacks import StealthyPoisoner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-5, 5, size=(80, 1))
    >>> y = 0.8 * X[:, 0] + rng.normal(0, 1.2, size=80)
    >>> attack = StealthyPoisoner(0.15, n_outer_steps=10, random_state=0)
    >>> X_pois, y_pois = attack.fit_resample(X, y)
    >>> X_pois.shape, attack.poison_indices_.shape, attack.n_batches_
    ((60, 1), (9,), 2)
    """

    _parameter_constraints: dict = {
        "poison_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "alpha": [Interval(numbers.Real, 0, 1, closed="both")],
        "model": [StrOptions({"linear", "mlp"}), callable],
        "hidden_layer_sizes": ["array-like"],
        "n_inner_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "inner_lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_outer_steps": [Interval(numbers.Integral, 0, None, closed="left")],
        "outer_lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "bounds": [None, tuple, list],
        "risk_ref": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "engine": [StrOptions({"auto", "spectral", "unrolled"})],
        "device": [str, torch.device],
        "dtype": [StrOptions({"float64", "float32"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        poison_fraction: float = 0.075,
        alpha: float = 1.0,
        *,
        model="linear",
        hidden_layer_sizes=(32, 8),
        n_inner_steps: int = 40,
        inner_lr: float = 0.1,
        n_outer_steps: int = 100,
        outer_lr: float = 0.9,
        batch_size: int | float = 0.075,
        validation_fraction: float = 0.25,
        bounds=None,
        risk_ref: float | None = None,
        engine: str = "auto",
        device="auto",
        dtype: str = "float64",
        random_state=None,
        verbose: int = 0,
        warm_start: bool = False,
    ):
        self.poison_fraction = poison_fraction
        self.alpha = alpha
        self.model = model
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_inner_steps = n_inner_steps
        self.inner_lr = inner_lr
        self.n_outer_steps = n_outer_steps
        self.outer_lr = outer_lr
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.bounds = bounds
        self.risk_ref = risk_ref
        self.engine = engine
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    @classmethod
    def from_preset(cls, dataset: str, model: str = "linear", **overrides):
        """An attack with the paper's Table II settings for ``dataset``.

        Parameters
        ----------
        dataset : {"loan", "heart", "boston", "appliances"}
            The paper's dataset.
        model : {"linear", "mlp"}, default="linear"
            The victim model.
        **overrides
            Any other parameter of :class:`StealthyPoisoner` (they win over the
            preset).

        Returns
        -------
        attack : StealthyPoisoner

        Examples
        --------
        >>> StealthyPoisoner.from_preset("boston", alpha=0.3).get_params()["batch_size"]
        19
        """
        return cls(**{**get_preset(dataset, model), **overrides})

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, X_val=None, y_val=None):
        """Craft the poison points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean data. Without ``X_val`` it is split into the attacker's
            training set (``train_indices_``) and validation set.
        y : array-like of shape (n_samples,)
            Clean targets.
        X_val : array-like of shape (n_val, n_features), default=None
            The attacker's validation set; then all of ``X`` is training data.
        y_val : array-like of shape (n_val,), default=None
            Its targets (required with ``X_val``).

        Returns
        -------
        self : StealthyPoisoner
        """
        X, y = validate_regression_data(self, X, y, dtype=np.float64)
        if (X_val is None) != (y_val is None):
            raise ValueError("Pass both X_val and y_val, or neither.")
        if X_val is not None:
            X_val, y_val = check_X_y(X_val, y_val, y_numeric=True, dtype=np.float64)
            y_val = check_target(y_val, name="y_val")
            if X_val.shape[1] != X.shape[1]:
                raise ValueError(
                    f"X_val has {X_val.shape[1]} features, X has {X.shape[1]}."
                )
        key = self._warm_key()
        fingerprint = joblib.hash((X, y, X_val, y_val))
        reuse = (
            self.warm_start
            and getattr(self, "_state", None) is not None
            and self._state["fingerprint"] == fingerprint
            and self._state["key"] == key
        )
        if not reuse:
            self._state = self._prepare(X, y, X_val, y_val)
            self._state.update(fingerprint=fingerprint, key=key)
            self.n_iter_ = 0
        st = self._state
        n_p = _count_from_fraction(self.poison_fraction, st["n_train"])
        if n_p > st["n_train"] - 1:
            raise ValueError(
                f"poison_fraction={self.poison_fraction} would replace {n_p} of the "
                f"{st['n_train']} training points; at least one must stay clean."
            )
        done = sum(b["indices"].size for b in st["batches"])
        if n_p > done:
            if self.alpha < 1:
                if self.risk_ref is not None:
                    st["risk_ref"] = float(self.risk_ref)
                elif st["risk_ref"] is None:
                    reference = self._run(st, 1.0, None, n_p, [], "R_ref (alpha=1)")
                    st["risk_ref"] = _max_risk(reference)
            self._run(
                st, float(self.alpha), st["risk_ref"], n_p, st["batches"], "attack"
            )
        self._publish(n_p)
        return self

    def fit_resample(self, X, y, X_val=None, y_val=None):
        """Craft the poison points and return the poisoned training set.

        Parameters
        ----------
        X, y, X_val, y_val
            As in :meth:`fit`.

        Returns
        -------
        X_poisoned : ndarray of shape (n_tr, n_features)
            The attacker's training set (all of ``X`` when ``X_val`` is given,
            else the ``train_indices_`` rows, a fraction
            ``1 - validation_fraction`` of them) with the rows
            ``poison_indices_`` replaced by the poison points. The input is
            never modified.
        y_poisoned : ndarray of shape (n_tr,)
            The matching targets.
        """
        return self.fit(X, y, X_val, y_val).resample_at()

    def resample_at(self, poison_fraction=None):
        """The poisoned training set at a smaller ratio of this fitted run.

        Because batches are crafted one after another and fixed, the poisoned
        set at a smaller ratio is a prefix of this run: no recomputation. At a
        ratio that falls on a batch boundary it equals a fresh fit at that
        ratio with the same ``random_state``.

        Parameters
        ----------
        poison_fraction : float or int, default=None
            A fraction of ``n_tr`` (rounded as in ``fit``) or a count, at most
            the fitted one; ``None`` for the whole run.

        Returns
        -------
        X_poisoned : ndarray of shape (n_tr, n_features)
        y_poisoned : ndarray of shape (n_tr,)
        """
        check_is_fitted(self, "poison_indices_")
        n_fit = self.poison_indices_.size
        n = n_fit if poison_fraction is None else self._count(poison_fraction)
        if not 0 <= n <= n_fit:
            raise ValueError(
                f"poison_fraction={poison_fraction} asks for {n} poison points; "
                f"this fit has {n_fit}. Refit with a larger poison_fraction "
                "(warm_start=True reuses the batches computed so far)."
            )
        st = self._state
        X_out = st["X_train"].copy()
        y_out = st["y_train"].copy()
        idx = self.poison_indices_[:n]
        X_out[idx] = self.X_poison_[:n]
        y_out[idx] = self.y_poison_[:n]
        return X_out, y_out

    def poisoned_sets(self):
        """The cumulative poisoned sets after each batch (the paper's ratios).

        Returns
        -------
        sets : list of (n_poison, X_poisoned, y_poisoned)
            One entry per batch boundary, starting with the clean set
            (``n_poison = 0``).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(100, 2)), rng.normal(size=100)
        >>> attack = StealthyPoisoner(0.3, batch_size=0.1, n_outer_steps=5,
        ...                           validation_fraction=0.2, random_state=0)
        >>> [n for n, X_p, y_p in attack.fit(X, y).poisoned_sets()]
        [0, 8, 16, 24]
        """
        check_is_fitted(self, "poison_indices_")
        ends = [0] + [s.stop for s in self.batch_slices_]
        return [(n, *self.resample_at(n)) for n in ends]

    # ---------------------------------------------------------------- internals
    def _count(self, fraction) -> int:
        if isinstance(fraction, numbers.Integral):
            return int(fraction)
        if not 0 <= float(fraction) < 1:
            raise ValueError(f"poison_fraction must be in [0, 1), got {fraction}.")
        return _count_from_fraction(fraction, self._state["n_train"])

    def _warm_key(self):
        params = {k: v for k, v in self.get_params().items() if k not in _WARM_FREE}
        if self.alpha >= 1:
            params.pop("risk_ref")
        return {k: _fingerprint(v) for k, v in params.items()}

    def _prepare(self, X, y, X_val, y_val):
        """Split, permutation, bounds and the clean model: all drawn once."""
        rng = check_random_state(self.random_state)
        n = X.shape[0]
        if X_val is None:
            n_val = int(np.ceil(self.validation_fraction * n))
            if n_val < 1 or n - n_val < 2:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no "
                    f"usable split of {n} samples; pass X_val, y_val or more data."
                )
            perm = rng.permutation(n)
            train_idx = np.sort(perm[n_val:])
            val_idx = np.sort(perm[:n_val])
            X_val, y_val = X[val_idx], y[val_idx]
        else:
            train_idx = np.arange(n)
        X_tr, y_tr = X[train_idx], y[train_idx]
        n_tr, d = X_tr.shape
        if n_tr < d + 2:
            raise ValueError(
                f"The attacker's training set has {n_tr} samples; the residual "
                f"standard error of Eq. (5) needs at least n_features + 2 = {d + 2}."
            )
        if self.bounds is None:
            Xy = np.column_stack([X_tr, y_tr])
            low, high = Xy.min(axis=0), Xy.max(axis=0)
        else:
            low, high = check_bounds(self.bounds, d + 1)
        order = rng.permutation(n_tr)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        st = dict(
            n_train=n_tr,
            X_train=X_tr,
            y_train=y_tr,
            X_val=np.asarray(X_val, dtype=np.float64),
            y_val=np.asarray(y_val, dtype=np.float64),
            train_indices=train_idx,
            order=order,
            seed=seed,
            bounds=(low, high),
            batch=self._batch_count(n_tr),
            risk_ref=None,
            batches=[],
        )
        # The clean model, trained exactly as the victim trains (engine.train).
        first = order[: st["batch"]]
        engine = self._engine(st, np.setdiff1d(np.arange(n_tr), first), X_tr, y_tr)
        try:
            params = engine.train(X_tr[first], y_tr[first])
        except DivergenceError as exc:
            raise _diverged(self.inner_lr, exc) from exc
        predict = _predictor(engine, params)
        with torch.no_grad():
            pred = predict(_tensor(X_tr, engine)).cpu().numpy()
        if not np.isfinite(pred).all():  # the clean model's own training diverged
            raise _diverged(self.inner_lr, None)
        st["clean_params"] = _detach(params)
        st["sigma"] = residual_std(pred - y_tr, d)
        return st

    def _batch_count(self, n_tr: int) -> int:
        if isinstance(self.batch_size, numbers.Integral):
            return int(self.batch_size)
        return max(1, _count_from_fraction(self.batch_size, n_tr))

    def _engine(self, st, fixed_rows, X_cur, y_cur):
        try:
            return make_engine(
                self.model,
                X_cur[fixed_rows],
                y_cur[fixed_rows],
                st["X_val"],
                st["y_val"],
                n_steps=self.n_inner_steps,
                lr=self.inner_lr,
                engine=self.engine,
                hidden_layer_sizes=tuple(self.hidden_layer_sizes),
                random_state=st["seed"],
                dtype=resolve_dtype(self.dtype),
                device=resolve_device(self.device),
            )
        except DivergenceError as exc:
            raise _diverged(self.inner_lr, exc) from exc

    def _run(self, st, alpha, risk_ref, n_p, batches, desc):
        """Alg. 2 (Alg. 1 for ``alpha = 1``): craft batches until ``n_p`` points.

        Appends to ``batches`` (a list of dicts) and returns it.
        """
        from tqdm.auto import tqdm

        X_cur, y_cur = st["X_train"].copy(), st["y_train"].copy()
        for b in batches:
            X_cur[b["indices"]], y_cur[b["indices"]] = b["X"], b["y"]
        start = sum(b["indices"].size for b in batches)
        B = st["batch"]
        chunks = [st["order"][s : min(s + B, n_p)] for s in range(start, n_p, B)]
        show = bool(self.verbose)
        for idx in tqdm(chunks, desc=desc, unit="batch", disable=not show):
            fixed = np.ones(st["n_train"], dtype=bool)
            fixed[idx] = False
            engine = self._engine(st, fixed, X_cur, y_cur)
            batch = self._ascend(
                st, engine, X_cur[idx], y_cur[idx], alpha, risk_ref, show
            )
            batch["indices"] = idx
            X_cur[idx], y_cur[idx] = batch["X"], batch["y"]
            batches.append(batch)
            self.n_iter_ += self.n_outer_steps
        return batches

    def _ascend(self, st, engine, X0, y0, alpha, risk_ref, show):
        """Alg. 4: projected, per-point normalised hypergradient ascent."""
        from tqdm.auto import tqdm

        low, high = (_tensor(v, engine) for v in st["bounds"])
        Xp = torch.clamp(_tensor(X0, engine), low[:-1], high[:-1])
        yp = torch.clamp(_tensor(y0, engine), low[-1], high[-1])
        clean = _predictor(engine, _to(st["clean_params"], engine))
        sigma = st["sigma"]
        w_risk = 0.0 if alpha >= 1 else (1.0 - alpha) / risk_ref
        rec = {"objective": [], "val_loss": [], "effectiveness": [], "risk": []}
        loss_ref = None
        steps = tqdm(
            range(self.n_outer_steps + 1),
            desc="outer steps",
            leave=False,
            disable=not show,
        )
        for step in steps:
            last = step == self.n_outer_steps
            # The last pass only records the final values: no gradients needed.
            val, gX, gy = self._value_and_grad(engine, Xp, yp, grad=not last)
            if loss_ref is None:
                # The start is the set poisoned so far: this is L_ref (Alg. 2 line 8).
                loss_ref = val if val > 0 else 1.0
            if last or w_risk == 0.0:
                # The risk is recorded at every step, but its gradient is
                # needed only when it is part of the objective (alpha < 1).
                with torch.no_grad():
                    residuals = (clean(Xp) - yp).cpu().numpy().astype(np.float64)
                risk = detectability_risk(residuals, sigma)
            else:
                risk, rX, ry = risk_and_grad(clean, Xp, yp, sigma)
            rec["val_loss"].append(val)
            rec["effectiveness"].append(val / loss_ref)
            rec["risk"].append(risk)
            rec["objective"].append(alpha * val / loss_ref - w_risk * risk)
            if last:
                break
            GX = (alpha / loss_ref) * gX
            Gy = (alpha / loss_ref) * gy
            if w_risk:
                GX = GX - w_risk * rX
                Gy = Gy - w_risk * ry
            norm = torch.sqrt((GX * GX).sum(dim=1) + Gy * Gy)
            scale = self.outer_lr / torch.where(norm > 0, norm, torch.ones_like(norm))
            Xp = torch.clamp(Xp + scale[:, None] * GX, low[:-1], high[:-1])
            yp = torch.clamp(yp + scale * Gy, low[-1], high[-1])
        X_out, y_out = (
            Xp.cpu().numpy().astype(np.float64),
            yp.cpu().numpy().astype(np.float64),
        )
        if not (np.isfinite(X_out).all() and np.isfinite(y_out).all()):
            raise _diverged(self.inner_lr, None)
        return dict(
            X=X_out,
            y=y_out,
            loss_ref=float(loss_ref),
            risk=risk,
            residuals=residuals,
            history={k: np.asarray(v, dtype=np.float64) for k, v in rec.items()},
        )

    def _value_and_grad(self, engine, Xp, yp, *, grad=True):
        """The engine's validation loss (and hypergradient), never NaN."""
        try:
            if grad:
                val, gX, gy = engine.value_and_grad(Xp, yp)
            else:
                val, gX, gy = engine.value(Xp, yp), None, None
        except DivergenceError as exc:
            raise _diverged(self.inner_lr, exc) from exc
        val = float(val)
        finite = np.isfinite(val) and (not grad or _all_finite(gX, gy))
        if not finite:
            raise _diverged(self.inner_lr, None)
        return val, gX, gy

    def _publish(self, n_p):
        """Expose the first ``n_p`` poison points of the computed batches."""
        st = self._state
        kept, count = [], 0
        for b in st["batches"]:
            if count >= n_p:
                break
            take = min(b["indices"].size, n_p - count)
            kept.append((b, take))
            count += take
        d = st["X_train"].shape[1]

        def cat(key, shape):
            if not kept:
                return np.empty(shape)
            return np.concatenate([b[key][:t] for b, t in kept])

        self.train_indices_ = st["train_indices"]
        self.poison_indices_ = cat("indices", (0,)).astype(np.intp)
        self.X_poison_ = cat("X", (0, d))
        self.y_poison_ = cat("y", (0,))
        ends = np.cumsum([t for _, t in kept]).tolist()
        self.batch_slices_ = [slice(s, e) for s, e in zip([0, *ends[:-1]], ends)]
        self.n_batches_ = len(kept)
        self.loss_ref_ = np.array([b["loss_ref"] for b, _ in kept])
        self.risk_ = np.array(
            [detectability_risk(b["residuals"][:t], st["sigma"]) for b, t in kept]
        )
        self.history_ = [b["history"] for b, _ in kept]
        self.bounds_ = st["bounds"]
        self.sigma_ = st["sigma"]
        self.init_seed_ = st["seed"]
        if self.alpha >= 1:
            self.risk_ref_ = float(self.risk_.max()) if kept else float("nan")
        else:
            rr = st["risk_ref"]
            self.risk_ref_ = float("nan") if rr is None else float(rr)

    # imbalanced-learn registers ``fit_resample`` as a routed method when it is
    # imported, which may be after this class was created: declare the request
    # setter explicitly so ``set_fit_resample_request(X_val=True, y_val=True)``
    # routes the attacker's validation set through an imblearn Pipeline.
    set_fit_resample_request = RequestMethod("fit_resample", ["X_val", "y_val"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The attack needs the targets: it optimises them too.
        tags.target_tags.required = True
        return tags


def _fingerprint(value):
    """A comparable stand-in for a parameter value (callables may not pickle)."""
    try:
        return joblib.hash(value)
    except Exception:  # e.g. a local function as ``model``: compare identity
        return ("id", id(value))


def _max_risk(batches) -> float:
    risk = max((b["risk"] for b in batches), default=1.0)
    # A zero R_ref (every point exactly on the +-sigma band) would divide by 0.
    return risk if risk > 0 else 1.0


def _all_finite(*tensors) -> bool:
    """Whether every entry is finite (on the host NumPy checks it several times faster)."""
    for t in tensors:
        t = t.detach()
        if t.device.type == "cpu":
            if not np.isfinite(t.numpy()).all():
                return False
        elif not bool(torch.isfinite(t).all()):
            return False
    return True


def _tensor(a, engine):
    return torch.as_tensor(np.asarray(a), dtype=engine.dtype, device=engine.device)


def _detach(params):
    if isinstance(params, dict):
        return {k: v.detach().cpu() for k, v in params.items()}
    return [p.detach().cpu() for p in params]


def _to(params, engine):
    kw = dict(device=engine.device, dtype=engine.dtype)
    if isinstance(params, dict):
        return {k: v.to(**kw) for k, v in params.items()}
    return [p.to(**kw) for p in params]


def _predictor(engine, params):
    """Differentiable clean predictions ``X -> f(X, params)`` for the risk."""
    return lambda X: engine.predict(params, X)


def _diverged(inner_lr, exc):
    detail = f" ({exc})" if exc is not None else ""
    return DivergenceError(
        "The inner training problem diverged while crafting the poison points"
        f"{detail}. Use a smaller inner_lr (now {inner_lr}), standardise the data "
        "or tighten bounds."
    )
