"""TRIM: trimmed least squares by alternating minimisation (Jagielski et al., 2018).

TRIM assumes at most ``k`` of the ``n`` training points are poisoned and solves

    min_{theta, S : |S| = n - k}  (1 / (n - k)) sum_{i in S} (y_i - f(x_i; theta))^2

by alternating the two minimisations: fit the model on the kept set ``S``, then
keep the ``n - k`` points with the smallest squared residuals under that model.
For least squares neither step can increase the objective (the refit minimises
over ``theta`` on ``S``; the re-selection minimises over ``S`` for ``theta``), so
the *trimmed loss* (the mean of the ``n - k`` smallest squared residuals of the
current model) is non-increasing and the kept set settles after finitely many
steps. The loop stops when the kept set stops changing, when it returns to a
kept set it has already fitted (a cycle), when the trimmed loss improves by at
most ``tol`` (relative, so that it does not depend on the units of ``y``), or
after ``max_iter`` fits. A *rise* of the loss does not stop it: with inexact
inner fits (a neural network, a gradient-descent victim) the loss can rise by
noise after a step that is still on the way to a much better minimum, and the
reference rule (stop as soon as the loss fails to improve, ``manip-ml``)
then stops after two fits. Each start returns its best iterate by trimmed loss
(for least squares, the last one).

Starts. The first start fits on all points, as the reference code does. A start
from the first ``n - k`` indices must never be used: when the poison is appended
at the end of the training set, that start is an oracle (a bug of an early
version of the reference code). Further starts (``n_init > 1``) begin from random
subsets of ``n - k`` points drawn with ``random_state``; the start with the lowest
trimmed loss wins.

Fast path for least squares. When the model is ordinary least squares (or ridge)
with an intercept, each fit only needs the Gram statistics of the kept set (see
:mod:`skpoison.defenses._linear`). Between two iterations only a few points enter
or leave the kept set, so the statistics are updated from those rows,
``ZtZ += Z_in^T Z_in - Z_out^T Z_out``, in ``O(m d^2)`` for ``m`` changed points,
and each iteration costs one ``(d+1) x (d+1)`` solve plus one pass over the data
for the residuals. Updates subtract, so rounding error accumulates with the size
of the rows that were added and removed; the statistics are recomputed from
scratch from the kept rows when that accumulated size grows large against the
current statistics, after a fixed number of updates, or when many points change
at once. All of it happens in the data's :class:`~skpoison.defenses._linear.LinearFrame`
(medians removed where they are far from 0, columns in ``[-1, 1]``), and the
final model is as accurate as a refit from scratch in two passes: the last Gram
solution refined against the data, or the two-pass refit where that is needed
(:func:`~skpoison.defenses._linear.refit_least_squares`), so large offsets,
tiny or huge units and constant columns of the kept set give scikit-learn's
solution.

The paper's GD victim (``T`` gradient-descent steps from zero,
:class:`~skpoison.models.TorchLinearRegressor`) runs on the same statistics: its
weights are ``F(H) g`` with ``H`` and ``g`` from the kept rows' Gram matrix in
the original units (:mod:`skpoison.models._closed_form`), so an iteration costs
a ``(d+1) x (d+1)`` eigendecomposition instead of a refit of the victim.
"""

from __future__ import annotations

import hashlib
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import RegressorMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, RealNotInt

from .._state import atomic_fit
from .._validation import (
    check_n_from_fraction,
    check_predictions,
    validate_regression_data,
)
from ._base import BaseDefense, PredictWithEstimatorMixin, mask_keep_lowest
from ._linear import (
    _CHUNK_ROWS,
    LinearFrame,
    gram_statistics,
    refit_least_squares,
    solve_gram,
    squared_residuals,
)

__all__ = ["TrimRegressor"]


def _linear_penalty(estimator) -> float | None:
    """The ridge penalty if ``estimator`` is a least-squares model TRIM can run on
    Gram statistics, else None.

    Only the exact classes are recognised (a subclass may change ``fit``), with an
    intercept, no positivity constraint and a scalar penalty.
    """
    if estimator is None:
        return 0.0
    if type(estimator) is LinearRegression:
        if estimator.fit_intercept and not estimator.positive:
            return 0.0
    elif type(estimator) is Ridge:
        alpha = estimator.alpha
        if np.ndim(alpha) == 0 and not np.isfinite(float(alpha)):
            # Ridge itself refuses it in fit; the fast path never calls that fit.
            raise ValueError(f"estimator Ridge(alpha={alpha!r}): alpha must be finite.")
        if (
            estimator.fit_intercept
            and not estimator.positive
            and np.ndim(alpha) == 0
            and float(alpha) >= 0
        ):
            return float(alpha)
    return None


class _GenericEngine:
    """Fits a clone of any regressor on the kept rows; residuals by ``predict``."""

    loss_scale = 1.0

    def __init__(self, estimator, X, y):
        self.estimator, self.X, self.y = estimator, X, y

    def fit(self, mask):
        return clone(self.estimator).fit(self.X[mask], self.y[mask])

    def residuals(self, model):
        pred = check_predictions(
            np.asarray(model.predict(self.X), dtype=np.float64).reshape(-1),
            self.y.shape[0], estimator=self.estimator,
            why=" on the training set; TRIM cannot rank the points.",
        )  # fmt: skip
        return (self.y - pred) ** 2

    def finalize(self, model, mask):
        return model, self.residuals(model)


class _GramEngine:
    """Least squares with intercept on Gram statistics of the kept set.

    Works in the :class:`~skpoison.defenses._linear.LinearFrame` of the data:
    models, residuals and losses are in the frame's units (``loss_scale``
    converts losses back), coefficients are mapped back in :meth:`finalize`.
    """

    # Recompute from scratch after this many incremental updates.
    refresh_every = 25
    # ... or when the rows touched since the last recompute outweigh the current
    # statistics by this factor (a bound on the cancellation in the updates).
    max_touched_ratio = 1e3

    def __init__(self, X, y, ridge, template):
        # Least squares does not depend on the frame, only its rounding does:
        # the origin may come from a small sample.
        self.frame, self.X, self.y = LinearFrame.from_data(X, y, sample_rows=2048)
        self.ridge, self.template = ridge, template
        self.loss_scale = self.frame.squared_scale()
        self._full = None
        # |z_i|^2 + y_i^2 per row: the size of what an update adds or removes.
        self.row_size = np.einsum("ij,ij->i", self.X, self.X) + 1.0 + self.y**2
        self.mask = None
        self.stats = None
        self.n_updates = 0
        self.touched = 0.0

    def _recompute(self, mask):
        if mask.all():
            if self._full is None:
                self._full = gram_statistics(self.X, self.y)
            stats = self._full
        else:
            stats = gram_statistics(self.X, self.y, mask)
        self.stats, self.mask = stats, mask.copy()
        self.n_updates = 0
        self.touched = float(self.row_size[mask].sum())

    def _stats_for(self, mask):
        if self.mask is not None and np.array_equal(mask, self.mask):
            return self.stats
        if self.mask is None or self.n_updates >= self.refresh_every:
            self._recompute(mask)
            return self.stats
        added = np.flatnonzero(mask & ~self.mask)
        removed = np.flatnonzero(self.mask & ~mask)
        n_kept = int(mask.sum())
        if added.size + removed.size >= n_kept:
            self._recompute(mask)
            return self.stats
        ZtZ, Zty, yty, n = self.stats
        for idx, sign in ((added, 1.0), (removed, -1.0)):
            if idx.size:
                dZtZ, dZty, dyty, dn = self._rows_gram(idx)
                ZtZ = ZtZ + sign * dZtZ
                Zty = Zty + sign * dZty
                yty = yty + sign * dyty
                n = n + int(sign) * dn
        self.touched += float(self.row_size[added].sum() + self.row_size[removed].sum())
        current = float(np.trace(ZtZ)) + max(yty, 0.0)
        self.stats, self.mask = (ZtZ, Zty, yty, n), mask.copy()
        self.n_updates += 1
        if self.touched > self.max_touched_ratio * current:
            self._recompute(mask)
        return self.stats

    def _rows_gram(self, idx):
        if idx.size <= _CHUNK_ROWS:
            return gram_statistics(self.X[idx], self.y[idx])
        # Many rows (the first step from all points): read them in blocks
        # rather than copying them all at once.
        rows = np.zeros(self.X.shape[0], dtype=bool)
        rows[idx] = True
        return gram_statistics(self.X, self.y, rows)

    def fit(self, mask):
        ZtZ, Zty, _, _ = self._stats_for(mask)
        return solve_gram(ZtZ, Zty, self.ridge, column_scale=self.frame.x_scale)

    def residuals(self, theta):
        return squared_residuals(self.X, self.y, theta)

    def finalize(self, theta, mask):
        """The final model on ``mask``, as accurate as a refit from scratch.

        ``theta`` (the Gram solution of ``mask``) is refined against the data
        (:func:`~skpoison.defenses._linear.refit_least_squares`), which falls
        back to the two-pass refit where that is needed.
        """
        theta, scores = refit_least_squares(
            self.X, self.y, mask, self._stats_for(mask), theta, self.ridge,
            column_scale=self.frame.x_scale,
        )  # fmt: skip
        with np.errstate(under="ignore", over="ignore"):
            scores *= self.loss_scale
        return self._as_estimator(theta, mask), scores

    def _as_estimator(self, theta, mask):
        # The solution of the normal equations, presented as a fitted instance of
        # the estimator the user asked for (not refitted: that would cost a full
        # sklearn fit on the kept rows, the very cost this path avoids).
        est = LinearRegression() if self.template is None else clone(self.template)
        d = self.X.shape[1]
        theta_orig = self.frame.to_original(theta)
        est.coef_ = theta_orig[:-1]
        est.intercept_ = float(theta_orig[-1])
        est.n_features_in_ = d
        if isinstance(est, LinearRegression):
            # Singular values of the centred kept design, from its Gram matrix
            # in the frame, in the original units: D C' D with D = x_scale.
            ZtZ = self._stats_for(mask)[0]
            n = ZtZ[d, d]
            mean = ZtZ[:d, d] / n
            top = self.frame.x_scale.max(initial=0.0) or 1.0
            Dn = self.frame.x_scale / top
            centred = (ZtZ[:d, :d] - n * np.outer(mean, mean)) * np.outer(Dn, Dn)
            eig = np.clip(np.linalg.eigvalsh(centred)[::-1], 0.0, None)
            est.singular_ = top * np.sqrt(eig)
            cutoff = eig.max(initial=0.0) * max(int(n), d) * np.finfo(float).eps
            est.rank_ = int(np.sum(eig > cutoff))
        else:
            est.n_iter_ = None
            est.solver_ = "cholesky"
        return est


def _closed_form_victim(estimator):
    """``estimator`` if it is the paper's GD linear victim in closed form, else None.

    Its fit on a kept set is a function of that set's Gram statistics (see
    :mod:`skpoison.models._closed_form`), so TRIM runs it on them instead of
    refitting it; ``solver="gd"`` keeps the loop, refitted each iteration.
    """
    from ..models import TorchLinearRegressor

    if type(estimator) is TorchLinearRegressor and estimator.solver == "closed_form":
        return estimator
    return None


class _GDGramEngine(_GramEngine):
    """The GD linear victim on the Gram statistics of the kept set.

    ``T`` steps from zero are ``w_T = F(H) g`` with ``H``, ``g`` from the kept
    rows' ``Z^T Z`` and ``Z^T y`` *in the original units* (gradient descent,
    unlike least squares, depends on them): the frame's statistics are mapped
    back by ``Z = Z' M``, ``M = [[diag(x_scale), 0], [x_offset, 1]]``. Each fit
    checks the victim's stability condition on that ``H`` and raises its
    :class:`~skpoison.exceptions.DivergenceError`; the final model is the
    victim itself, fitted on the kept rows.
    """

    def __init__(self, X, y, victim):
        super().__init__(X, y, 0.0, victim)
        self.X_orig, self.y_orig, self.victim = X, y, victim
        f, d = self.frame, X.shape[1]
        self.M = np.eye(d + 1)
        self.M[:d, :d] = np.diag(f.x_scale)
        self.M[d, :d] = f.x_offset
        self.penalty = np.append(np.full(d, float(victim.l2)), 0.0)

    def fit(self, mask):
        import torch

        from ..models._closed_form import gd_closed_form
        from ..models._training import check_hessian_stability

        ZtZ, Zty, _, n = self._stats_for(mask)
        f, v, M = self.frame, self.victim, self.M
        H = (M.T @ ZtZ @ M) / n
        H = 0.5 * (H + H.T) + np.diag(self.penalty)
        g = M.T @ (f.y_scale * Zty + f.y_offset * ZtZ[:, -1]) / n
        check_hessian_stability(torch.from_numpy(H), v.learning_rate)
        w, _ = gd_closed_form(H, g, v.learning_rate, v.n_epochs)
        # The same model in the frame, where the residuals are taken.
        coef = w[:-1] * f.x_scale / f.y_scale
        return np.append(coef, (w[-1] + f.x_offset @ w[:-1] - f.y_offset) / f.y_scale)

    def finalize(self, theta, mask):
        model = clone(self.victim).fit(self.X_orig[mask], self.y_orig[mask])
        pred = np.asarray(model.predict(self.X_orig), dtype=np.float64)
        return model, (self.y_orig - pred) ** 2


class _Run:
    __slots__ = ("mask", "model", "loss", "path", "n_fits", "converged", "source")

    def __init__(self, mask, model, loss, path, n_fits, converged, source):
        self.mask, self.model, self.loss = mask, model, loss
        self.path, self.n_fits, self.converged = path, n_fits, converged
        # The kept set whose model selected ``mask`` (``mask`` itself for a
        # start): equal to ``mask`` when the loop settled.
        self.source = source


def _mask_key(mask) -> bytes:
    # A short digest of the kept set: cycles are found without storing masks.
    return hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest()


def _trim_run(engine, mask, n_reject, max_iter, tol) -> _Run:
    """Alternate fit and re-selection from the kept set ``mask`` (one start).

    Returns the iterate with the lowest trimmed loss (the latest among equals)
    among the fits on ``n - k`` points: the first fit of the default start, on
    all points, is a start, not a candidate.
    """
    model = engine.fit(mask)
    resid = engine.residuals(model)
    n_fits = 1
    new_mask = mask_keep_lowest(resid, n_reject)
    loss = float(resid[new_mask].mean())
    path = [loss]
    n_keep = mask.shape[0] - n_reject
    best = (loss, mask, model, mask) if int(mask.sum()) == n_keep else None
    seen = {_mask_key(mask)}
    converged = False
    while True:
        if np.array_equal(new_mask, mask):
            converged = True
            break
        key = _mask_key(new_mask)
        if key in seen:
            # A cycle: an inexact fit (e.g. gradient descent) came back to a kept
            # set it had already fitted; going on would repeat it.
            converged = True
            break
        if n_fits >= max_iter:
            break
        seen.add(key)
        source, mask = mask, new_mask
        model = engine.fit(mask)
        resid = engine.residuals(model)
        n_fits += 1
        new_mask = mask_keep_lowest(resid, n_reject)
        new_loss = float(resid[new_mask].mean())
        path.append(new_loss)
        improvement, loss = loss - new_loss, new_loss
        if best is None or loss <= best[0]:
            best = (loss, mask, model, source)
        # A rise (only possible for inexact fits) is not a reason to stop: the
        # best iterate is kept, and cycles and max_iter bound the loop.
        if 0.0 <= improvement <= tol * path[-2]:
            converged = True
            break
    if best is None:  # stopped at the start (a kept set equal to it)
        best = (loss, mask, model, mask)
    return _Run(best[1], best[2], best[0], path, n_fits, converged, best[3])


class TrimRegressor(PredictWithEstimatorMixin, RegressorMixin, BaseDefense):
    """TRIM: fit a regressor on the ``n - k`` points it fits best.

    Alternates between fitting ``estimator`` on the kept points and keeping the
    ``n - k`` points with the smallest squared residuals, until the kept set stops
    changing (Jagielski et al., 2018). For least squares (the default) it runs
    on Gram statistics updated from the few points that change, so it converges
    in about the time of one :class:`~sklearn.linear_model.LinearRegression` fit.

    Parameters
    ----------
    estimator : regressor, default=None
        The model to trim. ``None`` means ordinary least squares. An exact
        :class:`~sklearn.linear_model.LinearRegression` or
        :class:`~sklearn.linear_model.Ridge` with ``fit_intercept=True``,
        ``positive=False`` (and a scalar ``alpha``) also takes the fast path, and
        so does the paper's GD victim
        :class:`~skpoison.models.TorchLinearRegressor` (``solver="closed_form"``):
        its ``T`` steps are a function of the kept set's Gram statistics, and
        only the final model is fitted by the victim itself. Any other
        regressor (a neural network included) is cloned and refitted at every
        iteration.
    reject_fraction : float in [0, 1) or int, default=0.4
        How many points to reject: a fraction of the training set (floored) or
        a count ``k``. The paper's experiments reject 40%.
    max_iter : int, default=400
        Maximum number of model fits per start (the reference code's limit).
    tol : float, default=1e-5
        Stop when the trimmed loss improves by at most ``tol`` times its previous
        value. A rise (possible for models other than least squares) does not
        stop the loop; a kept set seen before (a cycle) does, and the fit with
        the lowest trimmed loss is returned.
    n_init : int, default=1
        Number of starts. The first fits on all points; the others start from
        random subsets of ``n - k`` points. The start with the lowest trimmed
        loss is kept.
    random_state : int, RandomState instance or None, default=None
        Draws the random starts (used only when ``n_init > 1``). The estimator's
        own randomness is set through its parameters.

    Attributes
    ----------
    estimator_ : regressor
        The final model, trained on the points of ``inlier_mask_``. On the fast
        path it is an instance of the requested class (``LinearRegression`` for
        ``None``) whose ``coef_`` and ``intercept_`` are the least-squares
        solution on the kept points, as accurate as one computed from scratch
        (see :mod:`skpoison.defenses._linear`); it is not refitted by sklearn.
    inlier_mask_ : ndarray of shape (n_samples,), dtype=bool
        The ``n - k`` points ``estimator_`` was trained on. When the loop
        converged this is also the set of the ``n - k`` smallest ``scores_``.
    scores_ : ndarray of shape (n_samples,)
        Squared residuals of ``estimator_`` on the training points (higher is
        more suspicious).
    trimmed_loss_ : float
        Mean of the ``n - k`` smallest ``scores_``: TRIM's objective at the
        final model.
    trimmed_loss_path_ : ndarray of shape (n_iter_,)
        The trimmed loss after each fit of the winning start (non-increasing for
        least squares).
    n_iter_ : int
        Number of model fits of the winning start.
    n_reject_ : int
        The number ``k`` of rejected points.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.RANSACRegressor : Consensus of random minimal fits.
    sklearn.linear_model.HuberRegressor : Down-weights large residuals.
    BayesCleanFilter : Needs no estimate of the number of poisoning points.

    References
    ----------
    .. [1] M. Jagielski, A. Oprea, B. Biggio, C. Liu, C. Nita-Rotaru and B. Li,
       "Manipulating Machine Learning: Poisoning Attacks and Countermeasures
       for Regression Learning", IEEE S&P 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import TrimRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-5, 5, size=(200, 1))
    >>> y = 0.8 * X.ravel() + rng.normal(0, 1.2, size=200)
    >>> y[:20] += 30.0  # gross outliers
    >>> trim = TrimRegressor(reject_fraction=0.2).fit(X, y)
    >>> int(trim.inlier_mask_.sum()), bool(trim.inlier_mask_[:20].any())
    (160, False)
    >>> bool(abs(trim.estimator_.coef_[0] - 0.8) < 0.1)
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "reject_fraction": [
            Interval(RealNotInt, 0, 1, closed="left"),
            Interval(Integral, 0, None, closed="left"),
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        reject_fraction: float | int = 0.4,
        max_iter: int = 400,
        tol: float = 1e-5,
        n_init: int = 1,
        random_state=None,
    ):
        self.estimator = estimator
        self.reject_fraction = reject_fraction
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state

    @atomic_fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Run TRIM on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (possibly poisoned).
        y : array-like of shape (n_samples,)
            Training targets.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_regression_data(
            self, X, y, dtype=np.float64, ensure_min_samples=2
        )
        n = X.shape[0]
        n_reject = check_n_from_fraction(
            self.reject_fraction, n, name="reject_fraction", min_remaining=1
        )
        ridge = _linear_penalty(self.estimator)
        if ridge is not None:
            engine = _GramEngine(X, y, ridge, self.estimator)
        elif _closed_form_victim(self.estimator) is not None:
            engine = _GDGramEngine(X, y, self.estimator)
        else:
            engine = _GenericEngine(self.estimator, X, y)
        rng = check_random_state(self.random_state)

        best = None
        for start in range(self.n_init):
            if start == 0:
                mask = np.ones(n, dtype=bool)
            else:
                mask = np.zeros(n, dtype=bool)
                mask[rng.choice(n, n - n_reject, replace=False)] = True
            run = _trim_run(engine, mask, n_reject, self.max_iter, self.tol)
            if best is None or run.loss < best.loss:
                best = run
        if not best.converged:
            warnings.warn(
                f"TRIM stopped after max_iter={self.max_iter} fits before the kept "
                "set settled; increase max_iter.",
                ConvergenceWarning,
                stacklevel=2,
            )

        self.estimator_, self.scores_ = engine.finalize(best.model, best.mask)
        self.inlier_mask_ = best.mask
        # What selected the kept set (for the relaxation): the kept set of
        # the fit before, whose model's n - k smallest residuals it is.
        self._selected_by_ = best.source
        self.n_reject_ = n_reject
        n_keep = n - n_reject
        self.trimmed_loss_ = float(
            np.partition(self.scores_, n_keep - 1)[:n_keep].mean()
        )
        self.trimmed_loss_path_ = np.asarray(best.path) * engine.loss_scale
        self.n_iter_ = best.n_fits
        return self

    def _relaxed_acceptance(self, X, y, temperature):
        """Log soft accept weights (:mod:`skpoison.defenses._relaxation`).

        TRIM's last selection: the model of the kept set that selected
        ``inlier_mask_`` (``inlier_mask_`` itself when the loop settled), held
        fixed, and a soft rank of the absolute residuals under it. The model
        is the estimator's: least squares (ridge for a ``Ridge``), the GD
        victim's ``T`` steps for a
        :class:`~skpoison.models.TorchLinearRegressor`, least squares standing
        in for any other estimator.
        """
        import torch

        from ._relaxation import estimator_fit, log_soft_accept, rank_threshold

        source = getattr(self, "_selected_by_", self.inlier_mask_)
        kept = torch.as_tensor(source, dtype=X.dtype)
        ridge = _linear_penalty(self.estimator) or 0.0
        coef, intercept = estimator_fit(self.estimator, X, y, kept, ridge)
        r = (y - X @ coef - intercept).abs()
        t = rank_threshold(r, X.shape[0] - self.n_reject_)
        return log_soft_accept(t - r, temperature)
