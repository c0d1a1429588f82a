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
    One random permutation of the replaceable training rows (drawn once from
    ``random_state`` by :class:`~skpoison.attacks.BasePoisoner`, which owns
    the sampler contract) orders the points to replace: batch ``i`` replaces the next
    ``B_p`` still-clean points of it (``P^(i)``), and its poison points start as
    copies of exactly those points. So ``initDp`` clones points sampled uniformly
    without duplicates, and the starting training set of every batch is the set
    poisoned so far. Because the permutation does not depend on ``n_p``, a run at
    15% extends the run at 7.5% (the paper's cumulative ratios). That is
    ``init="copy"``, the default; ``init="inverse_flip"``, ``"boundary_flip"``
    or ``"random"`` start the batch instead from Jagielski et al.'s points
    (:mod:`skpoison.attacks._init`, shared with
    :class:`~skpoison.attacks.OptPPoisoner`): drawn from the other points of the
    current training set, targets flipped (or mirrored) in the box. Their draws
    come from a stream of their own per batch (seeded by ``init_seed_`` and the
    batch's position in the permutation), so the ``alpha = 1`` reference run
    and the attack start alike, and a smaller ratio stays a prefix.
Normalisation (Alg. 1 and 2, Appendix A)
    ``L_ref`` of batch ``i`` is the validation loss of the model trained on the
    set poisoned so far (``loss_ref_``; with a Jagielski start, on that set
    with the batch's starting points in place). ``R_ref`` is the largest risk of a
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
    paper defines ``df`` for LR only; the MLP uses the same ``p``);
    ``sigma_ddof`` changes the divisor to ``n_tr - sigma_ddof``.
Ascent (Alg. 4, Eq. 6)
    ``T_out`` steps of projected hypergradient ascent with step ``gamma``. The
    hypergradient of each point, the row ``[d A_d / d x_k, d A_d / d y_k]``, is
    divided by its L2 norm (Appendix E: "normalized with respect to their L2
    norm"; a zero row stays zero), then the point is clipped to the feasible box
    (by default the per-column minimum and maximum of the clean training
    features and target).
Victims users deploy
    ``model`` may also be a scikit-learn ``LinearRegression``, ``Ridge``,
    ``Lasso`` or ``ElasticNet``: the inner problem and the clean model are then
    that estimator's own solution (:mod:`skpoison.attacks._implicit`), not
    ``T`` gradient-descent steps.
Hypergradients (Alg. 3)
    From :mod:`skpoison.attacks._hypergradient`: the exact spectral engine for
    the linear model (``engine="auto"``), reverse-mode differentiation through
    the unrolled ``T`` steps otherwise. ``R`` needs no unrolling: its gradient is
    autograd through one forward pass of the clean model.
Large training sets
    The linear victims' engines (the spectral engine, ``LinearRegression``,
    ``Ridge``) need the fixed rows only through their Gram statistics. From
    ``_GRAM_UPDATE_MIN_ROWS`` (50,000) training rows on, the attack computes
    the statistics of the clean set and of ``D_val`` once per fit and, between
    batches, updates those of its current training set by the rows the last
    batch replaced (:mod:`skpoison.attacks._gram`): ``O(B_p d^2)`` per batch
    instead of ``O(n d^2)`` and no copy of the fixed rows. Below the threshold
    every batch's engine is built from its rows, as before, so results there
    (every dataset of the reproduction) are unchanged bit for bit; above it
    they agree with that build to rounding.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    RealNotInt,
    StrOptions,
)

from .._state import atomic_fit
from .._validation import (
    resolve_device,
    resolve_dtype,
)
from ..exceptions import DivergenceError
from . import _adaptive as adaptive
from ._adaptive import (
    AdaptiveObjective,
    prepare_defense,
    surrogate_victim,
    temperatures,
)
from ._base import BasePoisoner, _count_from_fraction, check_validation_set
from ._gram import RowGram
from ._hypergradient import make_engine
from ._init import JAGIELSKI_INITS, start_points
from ._presets import OPTP_OPTIONS, _model_key, get_preset
from ._risk import detectability_risk, residual_std, risk_and_grad

__all__ = ["StealthyPoisoner"]

#: From this many training rows on, the linear victims' engines get the fixed
#: rows' Gram statistics by row updates between batches (``_updates_gram``).
#: Every dataset of the reproduction (doc/reproduction.md) is far below it.
_GRAM_UPDATE_MIN_ROWS = 50_000


class StealthyPoisoner(BasePoisoner):
    """Stealthy bilevel poisoning attack on regression (Carnerero-Cano et al.).

    Replaces a fraction of the training points by points optimised to maximise
    ``alpha * L(D_val, w*) / L_ref - (1 - alpha) * R / R_ref``: the validation
    loss of the model trained on the poisoned set (effectiveness) against the
    detectability risk ``R`` of Eq. (5) (stealth). ``alpha=1`` is the classic,
    most effective attack; small ``alpha`` keeps the points near the clean data.
    A sampler in the sense of imbalanced-learn: inside
    ``imblearn.pipeline.Pipeline`` it poisons the training folds only.

    The user guide (:ref:`attack`) says how each step follows the paper.

    Parameters
    ----------
    poison_fraction : float in [0, 1), default=0.075
        ``n_p / n_tr``: the fraction of the training points (the rows passed
        to ``fit``) that are replaced; ``n_p = round(poison_fraction * n_tr)``.
    alpha : float in [0, 1], default=1.0
        The stealth factor ``alpha`` of Eq. (4); 1 ignores detectability.
    model : {"linear", "mlp"}, callable or scikit-learn estimator, default="linear"
        The victim's architecture: linear regression, the paper's MLP
        (``n_features x hidden_layer_sizes x 1``, LeakyReLU), or a callable
        ``model(n_features) -> torch.nn.Module``, each trained by ``T``
        gradient-descent steps; or an unfitted ``LinearRegression``, ``Ridge``,
        ``Lasso`` or ``ElasticNet`` instance (any valid parameters), the model
        users deploy: the inner problem is then that estimator's own solution
        and the clean model is that estimator fitted on the clean training set,
        with exact hypergradients
        (:class:`~skpoison.attacks.ImplicitLinearEngine`). ``n_inner_steps``
        and ``inner_lr`` do not apply to an estimator and must keep their
        defaults (a ``ValueError`` otherwise); ``engine`` must be ``"auto"``.
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
    init : {"copy", "inverse_flip", "boundary_flip", "random"}, default="copy"
        Where each batch's ascent starts. ``"copy"`` (the paper's ``initDp``):
        copies of the clean points the batch replaces. The others are
        Jagielski et al.'s starts (as in
        :class:`~skpoison.attacks.OptPPoisoner`), drawn from the rest of the
        current training set and mapped through the feasible box:
        ``"inverse_flip"`` draws points of high leverage (hat-matrix row sums)
        with far targets, ``"boundary_flip"`` draws uniformly, both flip the
        target to the far end of the box; ``"random"`` draws uniformly and
        mirrors the target (``low + high - y``).
    validation_fraction : float in (0, 1) or None, default=None
        The attacker's validation set ``D_val`` when ``X_val`` is not passed to
        ``fit``. ``None``: the objective is evaluated on the clean training
        data itself. A float holds this fraction of the rows (rounded up) out
        as ``D_val``: they are never replaced and stay in the output as clean
        rows (the victim trains on them, so they are fixed training points of
        the inner problem too). Ignored when ``X_val`` is passed, which is the
        paper's protocol (a separate ``D_val``; see Notes).
    bounds : (low, high) or None, default=None
        The feasible box of the poison points: scalars or arrays of length
        ``n_features + 1`` (the last entry for the target). ``None`` uses the
        per-column minimum and maximum of the clean training features and
        target.
    sigma_ddof : int >= 0 or None, default=None
        Delta degrees of freedom of ``sigma``, the clean model's residual
        standard error in the risk (Eq. 5): ``sqrt(sum r^2 / (n_tr - sigma_ddof))``.
        None is Eq. (5)'s ``n_tr - p - 1`` (``p`` features); 0 the maximum
        likelihood estimate. The paper leaves it open for the MLP.
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
        Seeds the held-out validation rows, the points replaced, the MLP's
        initialisation and the draws of a Jagielski ``init``. A fixed value gives bit-identical poison points on CPU.
    verbose : int, default=0
        Show tqdm progress bars over batches and outer steps when > 0.
    warm_start : bool, default=False
        Reuse the batches of the previous fit (same data and parameters other
        than ``poison_fraction``, ``verbose`` and ``device``; an int
        ``random_state``) and only compute the new ones, so a run at 15%
        extends one at 7.5%. A smaller ``poison_fraction`` returns a prefix.
        For ``alpha < 1`` without ``risk_ref`` the ``R_ref`` of the first fit is
        kept.
    defense : skpoison defense or None, default=None
        ``None``: the paper's (non-adaptive) attack, which targets the
        undefended victim. An unfitted
        :class:`~skpoison.defenses.BayesCleanFilter`,
        :class:`~skpoison.defenses.TrimRegressor`,
        :class:`~skpoison.defenses.SeverFilter`,
        :class:`~skpoison.defenses.ProdaRegressor` or
        :class:`~skpoison.defenses.DutiFilter`: the adaptive attack, which
        maximises the same objective for the victim trained on the rows that
        defense keeps (:mod:`skpoison.attacks._adaptive`; DUTI's trusted items
        are ``fit``'s ``X_trusted``, ``y_trusted``, the defender's own, or
        without them the attacker's validation set). Needs a linear victim
        (``model="linear"``, modelled by least squares in the gradient, or a
        scikit-learn linear estimator). Its parameters are tunable as
        ``defense__<param>``.
    adaptive_temperature : (float, float), default=(1.0, 0.05)
        Start and end temperature of the relaxed defense, annealed
        geometrically over the outer steps (used with ``defense`` only).

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when ``X`` has string column names.
    validation_indices_ : ndarray of shape (n_val,)
        Rows held out as the attacker's validation set (``validation_fraction``
        without ``X_val``), never replaced; empty otherwise.
    poison_indices_ : ndarray of shape (n_poison,)
        Rows of ``X`` (and of the resampled output, which has every row of
        ``X``) that were replaced, in batch order.
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
        parameters as the model the attacker trained. With a Jagielski
        ``init`` it also seeds the starting points.
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
        ``alpha = 1`` reference run included; the adaptive attack runs three
        ascents per batch).
    best_step_ : ndarray of shape (n_batches,)
        Outer step of each batch's returned iterate: ``n_outer_steps`` without
        ``defense``; with it, the step with the best true (hard-defense)
        objective of the better start.
    defense_ : defense or None
        The ``defense`` fitted on the final poisoned set (``None`` without
        ``defense``).

    Notes
    -----
    **Every row is returned.** ``fit_resample`` gives back all ``n_tr`` rows it
    was given, ``n_p`` of them replaced, so the poisoned model trains on as
    many points as the clean one: the attack's effect is not mixed with data
    loss. How the paper's protocol maps to the parameters: the paper splits
    each dataset into ``D_tr`` (poisoned), ``D_val`` (the attacker's objective)
    and ``D_test``; pass ``D_tr`` as ``X, y`` and ``D_val`` as ``X_val, y_val``
    (what :func:`~skpoison.evaluation.poisoning_curve` does). Without a
    separate ``D_val`` the default evaluates the objective on the clean
    training data (an attacker who knows the training set), and
    ``validation_fraction`` holds a subset out instead, which stays clean in
    the output.

    Inside ``imblearn.pipeline.Pipeline`` the attacker's objective uses the
    training fold (as above) unless ``D_val`` is routed explicitly: with
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
    ((80, 1), (12,), 2)
    """

    _parameter_constraints: dict = {
        **BasePoisoner._parameter_constraints,
        "alpha": [Interval(numbers.Real, 0, 1, closed="both")],
        "model": [StrOptions({"linear", "mlp"}), callable, BaseEstimator],
        "hidden_layer_sizes": ["array-like"],
        "n_inner_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "inner_lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_outer_steps": [Interval(numbers.Integral, 0, None, closed="left")],
        "outer_lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "init": [StrOptions({"copy", *JAGIELSKI_INITS})],
        "validation_fraction": [None, Interval(numbers.Real, 0, 1, closed="neither")],
        "sigma_ddof": [None, Interval(numbers.Integral, 0, None, closed="left")],
        "risk_ref": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "engine": [StrOptions({"auto", "spectral", "unrolled"})],
        "device": [str, torch.device],
        "dtype": [StrOptions({"float64", "float32"})],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "defense": [None, HasMethods(["fit"])],
        "adaptive_temperature": [tuple, list],
    }

    _warm_free = (*BasePoisoner._warm_free, "device")

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
        init: str = "copy",
        validation_fraction: float | None = None,
        bounds=None,
        sigma_ddof: int | None = None,
        risk_ref: float | None = None,
        engine: str = "auto",
        device="auto",
        dtype: str = "float64",
        random_state=None,
        verbose: int = 0,
        warm_start: bool = False,
        defense=None,
        adaptive_temperature=(1.0, 0.05),
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
        self.init = init
        self.validation_fraction = validation_fraction
        self.bounds = bounds
        self.sigma_ddof = sigma_ddof
        self.risk_ref = risk_ref
        self.engine = engine
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.defense = defense
        self.adaptive_temperature = adaptive_temperature

    @classmethod
    def from_preset(cls, dataset: str, model="linear", **overrides):
        """An attack with the paper's Table II settings for ``dataset``, or OptP's options.

        Parameters
        ----------
        dataset : {"loan", "heart", "boston", "appliances", "optp"}
            The paper's dataset (Table II), or ``"optp"``: the option set
            :data:`~skpoison.attacks.OPTP_OPTIONS` (not the paper's), under
            which the attack plays Jagielski et al.'s OptP game: their
            ``init="inverse_flip"``, all points in one batch
            (``batch_size=1.0``), ``n_outer_steps=25`` of ``outer_lr=0.1``
            and ``validation_fraction=None`` (fit it without ``X_val`` for
            OptP's objective on the clean training data).
        model : {"linear", "mlp"} or scikit-learn estimator, default="linear"
            The victim model. An estimator (``LinearRegression()``, ...) gets
            the outer settings of the ``"linear"`` row only: ``n_inner_steps``
            and ``inner_lr`` do not apply to it.
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
        >>> from sklearn.linear_model import LinearRegression
        >>> attack = StealthyPoisoner.from_preset("optp", LinearRegression())
        >>> attack.get_params()["init"], attack.get_params()["batch_size"]
        ('inverse_flip', 1.0)
        """
        estimator = isinstance(model, BaseEstimator)
        if str(dataset).lower() == "optp":
            params = dict(OPTP_OPTIONS)
            if not estimator:
                params["model"] = _model_key(model)
        else:
            params = get_preset(dataset, "linear" if estimator else model)
        if estimator:
            for key in ("n_inner_steps", "inner_lr"):
                params.pop(key, None)
            params["model"] = model
        return cls(**{**params, **overrides})

    # ------------------------------------------------------------------ fitting
    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, X_val=None, y_val=None, X_trusted=None, y_trusted=None):
        """Craft the poison points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean training data: every row is a training row of the victim.
        y : array-like of shape (n_samples,)
            Clean targets.
        X_val : array-like of shape (n_val, n_features), default=None
            The attacker's validation set ``D_val`` (the paper's protocol).
            Without it the objective is evaluated on the clean training data
            itself, or on the held-out ``validation_fraction`` of it.
        y_val : array-like of shape (n_val,), default=None
            Its targets (required with ``X_val``).
        X_trusted : array-like of shape (n_trusted, n_features), default=None
            The trusted items of a ``defense`` that takes them (DUTI), as the
            defender passes them: the attacker who knows the defense models
            the one that runs. Without them the attacker assumes the defender
            trusts its validation set. Unused without such a ``defense``.
        y_trusted : array-like of shape (n_trusted,), default=None
            Their targets (required with ``X_trusted``).

        Returns
        -------
        self : StealthyPoisoner
        """
        return self._fit(
            X, y, X_val=X_val, y_val=y_val, X_trusted=X_trusted, y_trusted=y_trusted
        )

    def fit_resample(
        self, X, y, X_val=None, y_val=None, X_trusted=None, y_trusted=None
    ):
        """Craft the poison points and return the poisoned training set.

        Parameters
        ----------
        X, y, X_val, y_val, X_trusted, y_trusted
            As in :meth:`fit`.

        Returns
        -------
        X_poisoned : ndarray or DataFrame of shape (n_samples, n_features)
            Every row of ``X`` (held-out validation rows included, clean), with
            the rows ``poison_indices_`` replaced by the poison points; a
            DataFrame stays a DataFrame. The input is never modified.
        y_poisoned : ndarray or Series of shape (n_samples,)
            The matching targets.
        """
        # Named arguments (not **kwargs) so that metadata routing sees them.
        return super().fit_resample(
            X, y, X_val=X_val, y_val=y_val, X_trusted=X_trusted, y_trusted=y_trusted
        )

    # ------------------------------------------------------------------- hooks
    def _check_fit_params(
        self, X, X_val=None, y_val=None, X_trusted=None, y_trusted=None
    ):
        X_val, y_val = check_validation_set(X, X_val, y_val)
        out = dict(X_val=X_val, y_val=y_val)
        if X_trusted is not None or y_trusted is not None:
            X_trusted, y_trusted = check_validation_set(
                X, X_trusted, y_trusted, names=("X_trusted", "y_trusted")
            )
            out.update(X_trusted=X_trusted, y_trusted=y_trusted)
        return out

    def _warm_key(self):
        key = super()._warm_key()
        if self.alpha >= 1:
            key.pop("risk_ref")
        return key

    def _held_out_rows(self, X, y, rng, X_val=None, y_val=None, **trusted):
        """The ``validation_fraction`` rows kept clean as the attacker's ``D_val``."""
        if X_val is not None or self.validation_fraction is None:
            return super()._held_out_rows(X, y, rng)
        n = X.shape[0]
        n_val = int(np.ceil(self.validation_fraction * n))
        n_p = _count_from_fraction(self.poison_fraction, n)
        if n - n_val < max(n_p, 1):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} holds out {n_val} "
                f"of {n} samples, leaving {n - n_val} to replace; "
                f"poison_fraction={self.poison_fraction} needs {n_p}. Pass X_val, "
                "y_val, a smaller validation_fraction or more data."
            )
        return np.sort(rng.permutation(n)[:n_val])

    def _prepare(self, st, rng, X_val=None, y_val=None, **trusted):
        """The attacker's validation set, the inner problem's seed, the clean model."""
        X, y = st["X"], st["y"]
        n_tr, d = X.shape
        defaults = StealthyPoisoner.__init__.__kwdefaults__
        gd = {k: getattr(self, k) for k in ("n_inner_steps", "inner_lr")}
        if isinstance(self.model, BaseEstimator) and any(
            v != defaults[k] for k, v in gd.items()
        ):
            raise ValueError(
                f"n_inner_steps and inner_lr ({gd}) set the gradient-descent "
                f"victims; model={self.model!r} is fitted to its optimum by "
                "scikit-learn. Leave them at their defaults."
            )
        if X_val is None:
            held = st["held_out"]
            X_val, y_val = (X[held], y[held]) if held.size else (X, y)
        if n_tr < d + 2:
            raise ValueError(
                f"The attacker's training set has {n_tr} samples; the residual "
                f"standard error of Eq. (5) needs at least n_features + 2 = {d + 2}."
            )
        st.update(
            X_val=np.asarray(X_val, dtype=np.float64),
            y_val=np.asarray(y_val, dtype=np.float64),
            seed=int(rng.randint(np.iinfo(np.int32).max)),
            risk_ref=None,
            n_iter=0,
        )
        if self.defense is not None:
            self._prepare_adaptive(st, trusted)
        # The clean model, trained exactly as the victim trains (engine.train).
        first = st["order"][: self._batch_count(st)]
        fixed = np.ones(n_tr, dtype=bool)
        fixed[first] = False
        gram = None
        if self._updates_gram(n_tr):
            # Large n: the statistics of the clean rows and of D_val, once per
            # fit; each batch's engine then gets its fixed rows' statistics by
            # row updates (_fixed_gram).
            st["clean_gram"] = RowGram.of(X, y)
            st["val_gram"] = (
                st["clean_gram"]
                if st["X_val"] is X
                else RowGram.of(st["X_val"], st["y_val"], shift=st["clean_gram"].shift)
            )
            gram = st["clean_gram"].without(X, y, first)
        engine = self._engine(st, fixed, X, y, gram)
        try:
            params = engine.train(X[first], y[first])
        except DivergenceError as exc:
            raise _diverged(self.inner_lr, exc) from exc
        predict = _predictor(engine, params)
        with torch.no_grad():
            pred = predict(_tensor(X, engine)).cpu().numpy()
        if not np.isfinite(pred).all():  # the clean model's own training diverged
            raise _diverged(self.inner_lr, None)
        st["clean_params"] = _detach(params)
        st["sigma"] = residual_std(pred - y, d, ddof=self.sigma_ddof)

    def _prepare_adaptive(self, st, trusted):
        """The defense the attacker adapts to, its fit parameters, the surrogate."""
        schedule = self.adaptive_temperature
        if len(schedule) != 2 or not all(
            isinstance(t, numbers.Real) and np.isfinite(t) and t > 0 for t in schedule
        ):
            raise ValueError(
                "adaptive_temperature must be (start, end), two finite numbers "
                f"> 0; got {schedule!r}."
            )
        if not hasattr(self.defense, "_relaxed_acceptance"):
            raise TypeError(
                f"defense={self.defense!r} has no relaxation of its accept "
                "decision; the adaptive attack supports BayesCleanFilter, "
                "TrimRegressor, SeverFilter, ProdaRegressor and DutiFilter."
            )
        if self.engine != "auto":
            raise ValueError(
                f"engine={self.engine!r}: the adaptive attack (defense=) takes "
                "engine='auto'."
            )
        surrogate = surrogate_victim(self.model)
        defense, fit_params = prepare_defense(
            self.defense, st["seed"], st["X_val"], st["y_val"], trusted
        )
        st["adaptive"] = dict(
            defense=defense, fit_params=fit_params, surrogate=surrogate
        )

    def _batch_count(self, st) -> int:
        if isinstance(self.batch_size, numbers.Integral):
            return int(self.batch_size)
        return max(1, _count_from_fraction(self.batch_size, st["n_train"]))

    def _extend(self, st, batches, n_p, desc="attack"):
        """Alg. 2 (Alg. 1 for ``alpha = 1``), after ``R_ref`` for ``alpha < 1``."""
        if self.alpha < 1:
            if self.risk_ref is not None:
                st["risk_ref"] = float(self.risk_ref)
            elif st["risk_ref"] is None:
                # Alg. 1: the alpha = 1 attack on the same split and permutation.
                ref = {**st, "alpha": 1.0, "risk_ref": None}
                reference = super()._extend(ref, [], n_p, "R_ref (alpha=1)")
                ref.pop("_row_gram", None)  # it holds the run's X_current
                st["risk_ref"] = _max_risk(reference)
                st["n_iter"] += len(reference) * self._steps_per_batch()
        st["alpha"] = float(self.alpha)
        n_before = len(batches)
        try:
            super()._extend(st, batches, n_p, desc)
        finally:
            # The row-updated statistics follow one X_current: drop them (and
            # the reference to it) with the run.
            st.pop("_row_gram", None)
        st["n_iter"] += (len(batches) - n_before) * self._steps_per_batch()
        return batches

    def _steps_per_batch(self) -> int:
        # The adaptive attack runs the non-adaptive ascent and two adaptive starts.
        return self.n_outer_steps * (1 if self.defense is None else 3)

    def _craft(self, st, idx):
        """One batch: ascend from its starting points (``init``; initDp by default)."""
        X_cur, y_cur = st["X_current"], st["y_current"]
        fixed = np.ones(st["n_train"], dtype=bool)
        fixed[idx] = False
        gram = self._fixed_gram(st, idx) if "clean_gram" in st else None
        engine = self._engine(st, fixed, X_cur, y_cur, gram)
        X0, y0 = X_cur[idx], y_cur[idx]
        if self.init != "copy":
            # A stream per batch, keyed by its place in the permutation: the
            # R_ref run and the attack (and every ratio) draw the same starts.
            offset = int(np.flatnonzero(st["order"] == idx[0])[0])
            rng = np.random.RandomState([st["seed"], offset])
            X0, y0 = start_points(
                self.init, X_cur[fixed], y_cur[fixed], idx.size, st["bounds"], rng
            )
        batch = self._ascend(st, engine, X0, y0, *self._objective_terms(st))
        if self.defense is not None:
            batch = self._adapt(st, engine, idx, (X0, y0), batch)
        return batch.pop("X"), batch.pop("y"), batch

    def _updates_gram(self, n_train) -> bool:
        """Whether the engines get their fixed rows' statistics by row updates.

        For the victims whose engines need the rows only through their Gram
        statistics (the spectral engine of ``model="linear"``, and
        ``LinearRegression`` and ``Ridge``), from ``_GRAM_UPDATE_MIN_ROWS``
        training rows on. Below, each batch's engine is built from its rows,
        as before: there that costs little, and the summation order of that
        build defines the reference results (doc/reproduction.md), which the
        updated statistics match to rounding only.
        """
        if n_train < _GRAM_UPDATE_MIN_ROWS:
            return False
        model = self.model
        if isinstance(model, BaseEstimator):
            return type(model) in (LinearRegression, Ridge)
        return (
            isinstance(model, str) and model == "linear" and self.engine != "unrolled"
        )

    def _fixed_gram(self, st, idx):
        """Statistics of the current training set without the rows ``idx``.

        One :class:`~skpoison.attacks._gram.RowGram` of ``X_current`` per run
        of batches, updated by the rows the previous batch replaced (the base
        class writes them between two ``_craft`` calls): ``O(B_p d^2)`` per
        batch instead of ``O(n d^2)``.
        """
        X_cur, y_cur = st["X_current"], st["y_current"]
        cache = st.get("_row_gram")
        if cache is None or cache["X"] is not X_cur:
            if idx.size and st["order"][0] == idx[0]:
                # The run's first batch: the current set is the clean one.
                gram = st["clean_gram"].copy()
            else:  # a warm start: batches already in place
                gram = RowGram.of(X_cur, y_cur, shift=st["clean_gram"].shift)
            cache = st["_row_gram"] = dict(X=X_cur, gram=gram, pending=None)
        elif cache["pending"] is not None:
            rows, X_old, y_old = cache["pending"]
            cache["gram"].replace(X_old, y_old, X_cur[rows], y_cur[rows])
        # Fancy indexing copies: the rows as they are before this batch.
        cache["pending"] = (idx, X_cur[idx], y_cur[idx])
        return cache["gram"].without(X_cur, y_cur, idx)

    def _objective_terms(self, st):
        """``(alpha, risk_ref, show)`` of the ascents of the current run."""
        return st["alpha"], st["risk_ref"], bool(self.verbose)

    def _adapt(self, st, engine, idx, start, plain):
        """The batch against the defense: two starts, each kept at its best step.

        ``start`` is the non-adaptive ascent's start (``init``), ``plain`` the
        non-adaptive batch, the second start (see
        :mod:`skpoison.attacks._adaptive`).
        """
        X_cur, y_cur = st["X_current"], st["y_current"]
        ad = st["adaptive"]
        d = X_cur.shape[1]
        empty = (np.empty((0, d)), np.empty(0))

        def victim_value(X, y, mask):
            # The victim as the defender trains it, on the rows kept.
            return self._value_and_grad(
                self._engine(st, mask, X, y), *empty, grad=False
            )[0]

        objective = AdaptiveObjective(
            ad["defense"], ad["fit_params"], X_cur, y_cur, idx, st["X_val"],
            st["y_val"], victim_value, ad["surrogate"],
            temperatures(self.adaptive_temperature, self.n_outer_steps),
            _tensor(np.zeros(1), engine),
        )  # fmt: skip
        loss_ref = objective.true_value(X_cur[idx], y_cur[idx])
        runs = [
            self._ascend(
                st,
                engine,
                X0,
                y0,
                *self._objective_terms(st),
                objective=objective,
                loss_ref=loss_ref if loss_ref > 0 else 1.0,
                keep_best=True,
                lr=adaptive.STEP_SCALE * self.outer_lr,
            )
            for X0, y0 in (start, (plain["X"], plain["y"]))
        ]
        scores = [r["best_objective"] for r in runs]
        chosen = int(np.argmax(np.nan_to_num(scores, nan=-np.inf)))
        best = runs[chosen]
        best["start"] = chosen
        return best

    def _set_batch_attributes(self, kept):
        st = self._state
        self.validation_indices_ = st["held_out"]
        self.loss_ref_ = np.array([b["loss_ref"] for b, _ in kept])
        self.risk_ = np.array(
            [detectability_risk(b["residuals"][:t], st["sigma"]) for b, t in kept]
        )
        self.history_ = [b["history"] for b, _ in kept]
        self.sigma_ = st["sigma"]
        self.init_seed_ = st["seed"]
        self.n_iter_ = st["n_iter"]
        self.best_step_ = np.array([b["best_step"] for b, _ in kept], dtype=int)
        self.defense_ = self._fit_final_defense(kept)
        if self.alpha >= 1:
            self.risk_ref_ = float(self.risk_.max()) if kept else float("nan")
        else:
            rr = st["risk_ref"]
            self.risk_ref_ = float("nan") if rr is None else float(rr)

    def _fit_final_defense(self, kept):
        """The adapted-to defense fitted on the poisoned set of ``kept`` batches."""
        if self.defense is None:
            return None
        st = self._state
        X, y = st["X"].copy(), st["y"].copy()
        for b, t in kept:
            X[b["indices"][:t]], y[b["indices"][:t]] = b["X"][:t], b["y"][:t]
        ad = st["adaptive"]
        return clone(ad["defense"]).fit(X, y, **ad["fit_params"])

    # ---------------------------------------------------------------- internals
    def _engine(self, st, fixed_rows, X_cur, y_cur, gram=None):
        """The engine on the rows ``fixed_rows``, or on their statistics ``gram``."""
        if gram is None:
            data = dict(X_fixed=X_cur[fixed_rows], y_fixed=y_cur[fixed_rows])
        else:
            data = dict(X_fixed=None, y_fixed=None, fixed_gram=gram,
                        val_gram=st["val_gram"])  # fmt: skip
        try:
            return make_engine(
                self.model,
                X_val=st["X_val"],
                y_val=st["y_val"],
                **data,
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

    def _ascend(
        self, st, engine, X0, y0, alpha, risk_ref, show, *,
        objective=None, loss_ref=None, keep_best=False, lr=None,
    ):  # fmt: skip
        """Alg. 4: projected, per-point normalised hypergradient ascent.

        ``objective(Xp, yp, step, grad) -> (val, gX, gy)`` replaces the
        engine's validation loss and hypergradient (the adaptive attack);
        ``loss_ref`` fixes ``L_ref`` (default: the value at the start);
        ``keep_best`` returns the step with the best objective, not the last;
        ``lr`` replaces ``outer_lr``.
        """
        from tqdm.auto import tqdm

        low, high = (_tensor(v, engine) for v in st["bounds"])
        Xp = torch.clamp(_tensor(X0, engine), low[:-1], high[:-1])
        yp = torch.clamp(_tensor(y0, engine), low[-1], high[-1])
        clean = _predictor(engine, _to(st["clean_params"], engine))
        sigma = st["sigma"]
        w_risk = 0.0 if alpha >= 1 else (1.0 - alpha) / risk_ref
        rec = {"objective": [], "val_loss": [], "effectiveness": [], "risk": []}
        if objective is None:

            def objective(Xp, yp, step, grad):
                return self._value_and_grad(engine, Xp, yp, grad=grad)

        best = None
        steps = tqdm(
            range(self.n_outer_steps + 1),
            desc="outer steps",
            leave=False,
            disable=not show,
        )
        for step in steps:
            last = step == self.n_outer_steps
            # The last pass only records the final values: no gradients needed.
            val, gX, gy = objective(Xp, yp, step, not last)
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
            # A NaN objective (the defended learner diverged) is never kept
            # over a number.
            obj = rec["objective"][-1]
            if keep_best and (
                best is None or obj > best[0] or (np.isnan(best[0]) and obj == obj)
            ):
                if not (last or w_risk == 0.0):
                    with torch.no_grad():
                        residuals = (clean(Xp) - yp).cpu().numpy().astype(np.float64)
                best = (obj, step, Xp, yp, risk, residuals)
            if last:
                break
            GX = (alpha / loss_ref) * gX
            Gy = (alpha / loss_ref) * gy
            if w_risk:
                GX = GX - w_risk * rX
                Gy = Gy - w_risk * ry
            norm = torch.sqrt((GX * GX).sum(dim=1) + Gy * Gy)
            step_size = self.outer_lr if lr is None else lr
            scale = step_size / torch.where(norm > 0, norm, torch.ones_like(norm))
            Xp = torch.clamp(Xp + scale[:, None] * GX, low[:-1], high[:-1])
            yp = torch.clamp(yp + scale * Gy, low[-1], high[-1])
        best_step = self.n_outer_steps
        best_objective = rec["objective"][-1]
        if keep_best:
            best_objective, best_step, Xp, yp, risk, residuals = best
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
            best_step=int(best_step),
            best_objective=float(best_objective),
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
    a = np.ascontiguousarray(a)  # torch refuses negative strides
    return torch.as_tensor(a, dtype=engine.dtype, device=engine.device)


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
