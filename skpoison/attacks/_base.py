"""The contract every poisoning attack follows.

An attack is a sampler of regression data (imbalanced-learn's ``fit_resample``
contract): ``fit(X, y)`` crafts poison points, ``fit_resample(X, y)`` returns
**every row it was given**, with ``n_p = round(poison_fraction * n_tr)`` of them
replaced by poison points (``n_tr`` is the number of rows passed in). Inside
``imblearn.pipeline.Pipeline`` an attack poisons the training folds only.

What :class:`BasePoisoner` owns, so that no attack writes it again:

- parameter validation (``_parameter_constraints``; subclasses extend the dict)
  and data validation (``n_features_in_``, ``feature_names_in_``);
- **which rows are replaced**: one random permutation of the replaceable rows,
  drawn once from ``random_state`` before anything else, so a larger
  ``poison_fraction`` extends a smaller one (the paper's cumulative ratios).
  A subclass may hold rows out (``_held_out_rows``): they stay clean;
- the feasible box ``bounds_`` (default: per-column minimum and maximum of the
  clean features and target); crafted points are projected onto it;
- batches: the points are crafted ``_batch_count`` at a time, each batch seeing
  the training set poisoned so far in ``state["X_current"]``,
  ``state["y_current"]``;
- ``warm_start`` (where the subclass has that parameter): a refit on the same
  data with only ``_warm_free`` parameters changed reuses the batches computed
  so far; a smaller ratio is a prefix;
- the fitted attributes ``poison_indices_`` (positions in the output, in batch
  order), ``X_poison_``, ``y_poison_``, ``batch_slices_``, ``n_batches_``,
  ``bounds_``, and :meth:`~BasePoisoner.resample_at` /
  :meth:`~BasePoisoner.poisoned_sets` (prefixes of the fitted run);
- the container round trip: a DataFrame ``X`` comes back as a DataFrame with the
  same columns and index, a Series ``y`` as a Series with its name and index;
- the tags (a target is required) and ``set_fit_resample_request`` for the
  named fit parameters of a subclass (routed through an imblearn Pipeline).

A subclass says only how poison points are chosen: the hooks are listed in
:class:`BasePoisoner`'s Notes.

Examples
--------
An attack that moves the target of each replaced point to the top of the box,
to show the contract (real attacks: :class:`~skpoison.attacks.StealthyPoisoner`):

>>> import numpy as np
>>> from skpoison.attacks import BasePoisoner
>>> class TopTarget(BasePoisoner):
...     def __init__(self, poison_fraction=0.1, *, bounds=None, random_state=None):
...         self.poison_fraction = poison_fraction
...         self.bounds = bounds
...         self.random_state = random_state
...     def _craft(self, state, indices):
...         high = state["bounds"][1]
...         return state["X_current"][indices], np.full(indices.size, high[-1])
>>> X = np.arange(10.0).reshape(5, 2); y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
>>> attack = TopTarget(0.4, random_state=0)
>>> X_pois, y_pois = attack.fit_resample(X, y)
>>> X_pois.shape, attack.poison_indices_, y_pois
((5, 2), array([2, 0]), array([4., 1., 4., 3., 4.]))
"""

from __future__ import annotations

import inspect
import numbers

import joblib
import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._metadata_requests import RequestMethod
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._state import atomic_fit
from .._validation import check_bounds, validate_regression_data

__all__ = ["BasePoisoner"]


def _count_from_fraction(fraction, n: int) -> int:
    """``round(fraction * n)``: the paper's ratios are whole numbers of batches.

    Table II's batch sizes are 7.5% of Table I's training sizes *rounded*
    (Boston: 0.075 * 253 = 18.975 -> 19), so rounding (not flooring) keeps the
    cumulative ratios 7.5%, 15%, ... aligned with whole batches.
    """
    if isinstance(fraction, numbers.Integral):
        return int(fraction)
    return int(np.floor(float(fraction) * n + 0.5))


def _fingerprint(value):
    """A comparable stand-in for a parameter value (callables may not pickle)."""
    try:
        return joblib.hash(value)
    except Exception:  # e.g. a local function as a parameter: compare identity
        return ("id", id(value))


def _container_of(X, y):
    """What the output must look like: DataFrame columns/index, Series name/index."""
    like = {}
    if hasattr(X, "columns") and hasattr(X, "iloc"):
        like["X"] = (X.columns, X.index)
    if hasattr(y, "name") and hasattr(y, "iloc") and getattr(y, "ndim", 1) == 1:
        like["y"] = (y.name, y.index)
    return like


def _wrap(like, X_out, y_out):
    """Put ``X_out``, ``y_out`` back into the containers recorded by ``_container_of``."""
    if "X" in like or "y" in like:
        import pandas as pd

        if "X" in like:
            columns, index = like["X"]
            X_out = pd.DataFrame(X_out, columns=columns, index=index)
        if "y" in like:
            name, index = like["y"]
            y_out = pd.Series(y_out, name=name, index=index)
    return X_out, y_out


class BasePoisoner(BaseEstimator):
    """Base class of skpoison's poisoning attacks (samplers that replace rows).

    Owns the sampler contract shared by all attacks: ``fit_resample`` returns
    every row it was given, ``round(poison_fraction * n_tr)`` of them replaced
    in one order drawn once from ``random_state`` (so a larger ratio extends a
    smaller one), poison points inside the feasible box ``bounds_``, batches,
    ``warm_start`` where the subclass has it, and DataFrame in, DataFrame out.
    A subclass's ``__init__`` stores at least ``poison_fraction``, ``bounds``
    (``None``: the per-column range of the clean features and target) and
    ``random_state``; it says only how poison points are chosen.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features, when ``X`` has string column names.
    poison_indices_ : ndarray of shape (n_poison,)
        Positions (rows of the resampled output, which are the rows of ``X``)
        of the replaced points, in the order they were crafted.
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

    Notes
    -----
    A subclass says only how poison points are chosen:

    ``_craft(state, indices) -> (X_p, y_p)`` (required)
        The poison points that replace the rows ``indices`` of the current training
        set (``state["X_current"]``, ``state["y_current"]``; read only). May return
        a third item, a dict stored with the batch (``state["batches"]``).
    ``_prepare(state, rng, **fit_params)`` (optional)
        Called once per fresh fit, after the permutation was drawn: add what
        ``_craft`` needs to ``state`` (a clean model, a validation set, ...).
    ``_held_out_rows``, ``_batch_count``, ``_check_fit_params``, ``_set_batch_attributes``
        Optional hooks (signatures in the code): rows never replaced, batch size (default: all new points
        in one batch), validation of extra fit parameters, extra fitted attributes.

    ``state`` is a dict: ``X``, ``y`` (the clean float64 data), ``n_train``,
    ``order`` (the replacement order), ``held_out``, ``bounds`` (``(low, high)``
    of length ``n_features + 1``, the last entry for the target), ``rng`` and
    ``batches``. A randomised attack draws from ``state["rng"]``; drawing per
    row (not per batch) keeps a smaller ratio a prefix of a larger one.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.attacks import StealthyPoisoner
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(40, 2)), rng.normal(size=40)
    >>> attack = StealthyPoisoner(0.1, n_outer_steps=2, random_state=0)
    >>> isinstance(attack, BasePoisoner), attack.fit_resample(X, y)[0].shape
    (True, (40, 2))
    """

    _parameter_constraints: dict = {
        "poison_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "bounds": [None, tuple, list],
        "random_state": ["random_state"],
    }

    # Parameters that may change between warm-started fits without invalidating
    # the batches computed so far (subclasses extend the tuple).
    _warm_free: tuple = ("poison_fraction", "verbose", "warm_start")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # imbalanced-learn registers ``fit_resample`` as a routed method when it
        # is imported, which may be after the class was created: declare the
        # request setter for the subclass's named fit parameters explicitly.
        if "set_fit_resample_request" not in cls.__dict__:
            names = _named_fit_params(cls.fit)
            if names:
                cls.set_fit_resample_request = RequestMethod("fit_resample", names)

    # ------------------------------------------------------------------ fitting
    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Craft the poison points.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean training data.
        y : array-like of shape (n_samples,)
            Clean targets.

        Returns
        -------
        self : BasePoisoner
        """
        return self._fit(X, y)

    def fit_resample(self, X, y, **fit_params):
        """Craft the poison points and return the poisoned training set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean training data.
        y : array-like of shape (n_samples,)
            Clean targets.
        **fit_params : dict
            Passed on to ``fit`` (for example the attacker's validation set).

        Returns
        -------
        X_poisoned : ndarray or DataFrame of shape (n_samples, n_features)
            Every row of ``X``, with the rows ``poison_indices_`` replaced by the
            poison points; a DataFrame stays a DataFrame (same columns and
            index). The input is never modified.
        y_poisoned : ndarray or Series of shape (n_samples,)
            The matching targets (a Series keeps its name and index).
        """
        return self.fit(X, y, **fit_params).resample_at()

    def resample_at(self, poison_fraction=None):
        """The poisoned training set at a smaller ratio of this fitted run.

        The rows are replaced in one fixed order, so the poisoned set at a
        smaller ratio is a prefix of this run: no recomputation. For attacks
        whose batches do not depend on the later ones (all of skpoison's), at a
        ratio that falls on a batch boundary it equals a fresh fit at that ratio
        with the same ``random_state``.

        Parameters
        ----------
        poison_fraction : float or int, default=None
            A fraction of ``n_tr`` (rounded as in ``fit``) or a count, at most
            the fitted one; ``None`` for the whole run.

        Returns
        -------
        X_poisoned : ndarray or DataFrame of shape (n_tr, n_features)
        y_poisoned : ndarray or Series of shape (n_tr,)
        """
        check_is_fitted(self, "poison_indices_")
        n_fit = self.poison_indices_.size
        n = n_fit if poison_fraction is None else self._count(poison_fraction)
        if not 0 <= n <= n_fit:
            raise ValueError(
                f"poison_fraction={poison_fraction} asks for {n} poison points; "
                f"this fit has {n_fit}. Refit with a larger poison_fraction"
                + (
                    " (warm_start=True reuses the batches computed so far)."
                    if "warm_start" in self.get_params()
                    else "."
                )
            )
        st = self._state
        X_out, y_out = st["X"].copy(), st["y"].copy()
        idx = self.poison_indices_[:n]
        X_out[idx] = self.X_poison_[:n]
        y_out[idx] = self.y_poison_[:n]
        return _wrap(self._output_like, X_out, y_out)

    def poisoned_sets(self):
        """The cumulative poisoned sets after each batch (the paper's ratios).

        Returns
        -------
        sets : list of (n_poison, X_poisoned, y_poisoned)
            One entry per batch boundary, starting with the clean set
            (``n_poison = 0``).
        """
        check_is_fitted(self, "poison_indices_")
        ends = [0] + [s.stop for s in self.batch_slices_]
        return [(n, *self.resample_at(n)) for n in ends]

    # ------------------------------------------------------------------- hooks
    def _craft(self, state, indices):
        raise NotImplementedError(
            f"{type(self).__name__} must implement _craft(state, indices)."
        )

    def _prepare(self, state, rng, **fit_params):
        """Add what ``_craft`` needs to ``state`` (default: nothing)."""

    def _held_out_rows(self, X, y, rng, **fit_params):
        """Rows that are never replaced (default: none; draws nothing from ``rng``)."""
        return np.zeros(0, dtype=np.intp)

    def _batch_count(self, state) -> int | None:
        """Points crafted together; ``None``: all new points in one batch."""
        return None

    def _check_fit_params(self, X, **fit_params):
        """Validate the extra fit parameters; return them (default: none allowed)."""
        if fit_params:
            raise TypeError(
                f"{type(self).__name__}.fit got unexpected parameters "
                f"{sorted(fit_params)}."
            )
        return fit_params

    def _set_batch_attributes(self, kept):
        """Extra fitted attributes from ``kept``: (batch dict, points taken) pairs."""

    def _warm_key(self):
        params = self.get_params()
        return {
            k: _fingerprint(v) for k, v in params.items() if k not in self._warm_free
        }

    # ---------------------------------------------------------------- internals
    def _fit(self, X, y, **fit_params):
        """Validate, draw the replacement order once, craft the missing batches."""
        like = _container_of(X, y)
        X, y = validate_regression_data(self, X, y, dtype=np.float64)
        fit_params = self._check_fit_params(X, **fit_params)
        key = self._warm_key()
        fingerprint = joblib.hash((X, y, fit_params))
        old = getattr(self, "_state", None)
        reuse = (
            bool(self.get_params().get("warm_start", False))
            and old is not None
            and old["fingerprint"] == fingerprint
            and old["key"] == key
        )
        state = old if reuse else self._new_state(X, y, fit_params)
        state.update(fingerprint=fingerprint, key=key)
        n_p = _count_from_fraction(self.poison_fraction, state["n_train"])
        n_free = state["order"].size
        if n_p > min(n_free, state["n_train"] - 1):
            held = state["held_out"].size
            raise ValueError(
                f"poison_fraction={self.poison_fraction} would replace {n_p} of the "
                f"{state['n_train']} training points; at least one must stay clean"
                + (f" and {held} are held out, so at most {n_free}." if held else ".")
            )
        if n_p > sum(b["indices"].size for b in state["batches"]):
            self._extend(state, state["batches"], n_p)
        # Only a fit that succeeded replaces the fitted state.
        self._state, self._output_like = state, like
        self._publish(n_p)
        return self

    def _new_state(self, X, y, fit_params):
        rng = check_random_state(self.random_state)
        n, d = X.shape
        held_out = np.asarray(
            self._held_out_rows(X, y, rng, **fit_params), dtype=np.intp
        )
        free = np.arange(n)
        if held_out.size:
            replaceable = np.ones(n, dtype=bool)
            replaceable[held_out] = False
            free = free[replaceable]
        if self.bounds is None:
            # Per column, without a stacked copy of the data.
            bounds = (np.r_[X.min(axis=0), y.min()], np.r_[X.max(axis=0), y.max()])
        else:
            bounds = check_bounds(self.bounds, d + 1)
        state = dict(
            # Own copies: the user's arrays may change after fit (or be read-only
            # views of a DataFrame).
            X=X.copy(),
            y=y.copy(),
            n_train=n,
            held_out=held_out,
            order=free[rng.permutation(free.size)],
            bounds=bounds,
            rng=rng,
            batches=[],
        )
        self._prepare(state, rng, **fit_params)
        return state

    def _count(self, fraction) -> int:
        if isinstance(fraction, numbers.Integral):
            return int(fraction)
        if not 0 <= float(fraction) < 1:
            raise ValueError(f"poison_fraction must be in [0, 1), got {fraction}.")
        return _count_from_fraction(fraction, self._state["n_train"])

    def _extend(self, state, batches, n_p, desc="attack"):
        """Craft batches (appended to ``batches``) until there are ``n_p`` points.

        Each batch replaces the next still-clean rows of ``state["order"]`` and
        sees the set poisoned by the batches before it.
        """
        from tqdm.auto import tqdm

        X_cur, y_cur = state["X"].copy(), state["y"].copy()
        for b in batches:
            X_cur[b["indices"]], y_cur[b["indices"]] = b["X"], b["y"]
        start = sum(b["indices"].size for b in batches)
        size = self._batch_count(state) or (n_p - start)
        chunks = [
            state["order"][s : min(s + size, n_p)] for s in range(start, n_p, size)
        ]
        low, high = state["bounds"]
        verbose = bool(self.get_params().get("verbose", 0))
        for idx in tqdm(chunks, desc=desc, unit="batch", disable=not verbose):
            state["X_current"], state["y_current"] = X_cur, y_cur
            out = self._craft(state, idx)
            Xp = np.asarray(out[0], dtype=np.float64).reshape(idx.size, -1)
            yp = np.asarray(out[1], dtype=np.float64).reshape(idx.size)
            if not (np.isfinite(Xp).all() and np.isfinite(yp).all()):
                raise ValueError(
                    f"{type(self).__name__} crafted non-finite poison points; "
                    "check its parameters and that the data are finite and scaled."
                )
            # The projection onto the box is part of the contract (a no-op for
            # attacks that already project).
            Xp = np.clip(Xp, low[:-1], high[:-1])
            yp = np.clip(yp, low[-1], high[-1])
            batch = dict(out[2]) if len(out) > 2 else {}
            batch.update(indices=idx, X=Xp, y=yp)
            X_cur[idx], y_cur[idx] = Xp, yp
            batches.append(batch)
        state.pop("X_current", None), state.pop("y_current", None)
        return batches

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
        d = st["X"].shape[1]

        def cat(key, shape):
            if not kept:
                return np.empty(shape)
            return np.concatenate([b[key][:t] for b, t in kept])

        self.poison_indices_ = cat("indices", (0,)).astype(np.intp)
        self.X_poison_ = cat("X", (0, d))
        self.y_poison_ = cat("y", (0,))
        ends = np.cumsum([t for _, t in kept]).tolist()
        self.batch_slices_ = [slice(s, e) for s, e in zip([0, *ends[:-1]], ends)]
        self.n_batches_ = len(kept)
        self.bounds_ = st["bounds"]
        self._set_batch_attributes(kept)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # An attack needs the targets: it replaces them too.
        tags.target_tags.required = True
        return tags


def check_validation_set(X, X_val, y_val, *, names=("X_val", "y_val")):
    """The attacker's validation set ``(X_val, y_val)`` validated against ``X``.

    Both or neither (``(None, None)``); float64, finite targets, the features
    of ``X``. ``names``: what the errors call the two arrays (e.g. the
    trusted items of a defense).
    """
    from sklearn.utils.validation import check_X_y

    from .._validation import check_not_datetime, check_target

    x_name, y_name = names
    if (X_val is None) != (y_val is None):
        raise ValueError(f"Pass both {x_name} and {y_name}, or neither.")
    if X_val is None:
        return None, None
    check_not_datetime(X_val, name=x_name)
    X_val, y_val = check_X_y(X_val, y_val, y_numeric=True, dtype=np.float64)
    y_val = check_target(y_val, name=y_name)
    if X_val.shape[1] != X.shape[1]:
        raise ValueError(f"{x_name} has {X_val.shape[1]} features, X has {X.shape[1]}.")
    return X_val, y_val


def _named_fit_params(fit) -> list[str]:
    """Named parameters of ``fit`` beyond ``X`` and ``y`` (routable metadata)."""
    params = list(inspect.signature(fit).parameters.values())[1:]
    return [
        p.name
        for p in params
        if p.name not in ("X", "y") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
