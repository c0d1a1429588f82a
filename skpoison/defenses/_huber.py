"""The Huber baseline of the paper: sklearn's HuberRegressor with a tuned epsilon.

The paper (Appendix E) uses Huber regression (Huber, 1964) with
``alpha = 1e-4`` (``lambda_Huber``), ``max_iter = 1e4`` (``T_Huber``) and
``epsilon`` explored in ``[1.1, 10]``. No new estimator is needed: this module
only builds the :class:`~sklearn.model_selection.GridSearchCV` that does it.

How epsilon is chosen. Jagielski et al.'s reference code (``manip-ml``) picks
epsilon by the R^2 of each fit *on its own inliers* (the points Huber does not
flag as outliers). That criterion is measured on a different subset for every
epsilon, on the training data itself, and favours small epsilons that call
many points outliers. We choose epsilon instead by cross-validated
:func:`~sklearn.metrics.mean_squared_error` (``scoring="neg_mean_squared_error"``),
the usual model-selection rule, on the (possibly poisoned) training data that a
defender actually has. Pass ``scoring`` or ``cv`` to change it; in the
evaluation layer one can also pass a ``PredefinedSplit`` over a clean
validation set.

Robust criteria. The validation folds are poisoned too, and their mean squared
error rewards an epsilon that fits the poison: the largest epsilon (least
squares) can win, and then Huber gives no protection. Two criteria that ignore
the worst residuals of each fold are offered: ``scoring="trimmed"`` (the mean
of the ``1 - trim_fraction`` smallest squared errors of the fold, the loss
TRIM minimises) and ``scoring="median"`` (the median squared error). The
default stays ``"neg_mean_squared_error"``, the criterion of the reproduction,
until a study shows on the paper's attacks which one protects better.

Warm start. L-BFGS from zero for each of 5 epsilons and 3 folds was a third
of a linear study unit's time. With ``warm_start=True`` each fold fits the
epsilons in increasing order, each starting from the previous solution, and
the chosen epsilon is refitted from zero on all the data as ``GridSearchCV``
does. L-BFGS stops at its tolerance, so the
validation scores differ from the cold search's (up to 4e-5 relative) and a
near tie could be decided the other way; on 16 poisoned Boston Housing
training sets of the study's shape both searches chose the same epsilon every
time and the final coefficients were identical, the search 1.28x faster
(``python benchmarks/bench_huber.py`` at c164973; against the plain loop below,
1.13x on 32 sets at 23c4e93, ``--n-sets 32``, results in
``benchmarks/results/huber.json``). But in the full protocol on Boston Housing
(``python benchmarks/bench_study.py --shape boston`` at 39b1fd4,
rebased as 9663c8e; 280 Huber rows, ``benchmarks/results/study_boston.json``) 2 searches chose another
epsilon than the cold search (test NMSE off by up to 6.3e-4), so the default
stays ``warm_start=False``, the plain ``GridSearchCV``, whose results do not
depend on L-BFGS's tolerance.

Bad data. ``GridSearchCV`` catches the error of every failed fit and reports
only "All the N fits failed" followed by tracebacks, so the search returned here
checks, before searching, what ``HuberRegressor`` cannot fit: a non-numeric
target (a string ``y`` is converted to float64 or gets a ``ValueError`` naming
``y``) and data whose squares overflow float64 (|values| beyond about 1e154:
L-BFGS fails on such ``X``, and on such ``y`` it returns meaningless
coefficients while the cross-validated squared errors are infinite): a
``ValueError`` saying to standardise the data. NaN and infinity, which
scikit-learn's own check refuses unless ``assume_finite=True`` is set, get
their own message.

The plain loop. Without fit parameters, on float64 data, with one job, a
refit and a single-metric scorer (sklearn's or ours), the search runs its
(epsilon x fold) fits as a plain loop instead of through
``GridSearchCV.fit``: no joblib dispatch per search, the data validated once
and the folds fitted and scored under ``assume_finite`` and
``skip_parameter_validation``. The fits, scores, ``best_*`` attributes and
``cv_results_`` (built by ``GridSearchCV``'s own ``_format_results``) are
those of ``GridSearchCV.fit`` bit for bit (tested); any other setting, and a
fit that fails, goes through ``GridSearchCV.fit``. On the study's searches it
is 1.12x faster than ``GridSearchCV.fit``, with the same result on all 32 sets
(``python benchmarks/bench_huber.py --n-sets 32`` at 23c4e93, load average
1.0-1.4 on 2 cores): the 16 L-BFGS fits themselves are most of a search.
"""

from __future__ import annotations

import numbers
import time

import numpy as np
import scipy.sparse as sp
from joblib import effective_n_jobs
from scipy.stats import rankdata
from sklearn import config_context
from sklearn.base import clone
from sklearn.linear_model import HuberRegressor
from sklearn.metrics import check_scoring, make_scorer
from sklearn.model_selection import GridSearchCV, ParameterGrid, check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_array

from .._state import atomic_fit
from .._validation import check_not_datetime, check_target

__all__ = ["make_huber_baseline"]

#: The paper's fixed Huber settings (Appendix E).
HUBER_ALPHA = 1e-4
HUBER_MAX_ITER = 10_000


def _check_huber_can_fit(values, name: str) -> None:
    """Refuse non-finite values and values whose squares overflow float64."""
    with np.errstate(over="ignore"):
        squares_overflow = not np.isfinite(np.dot(values, values))
    if not squares_overflow:
        return
    # Only under ``assume_finite=True`` do NaN and infinity reach this check.
    if np.isnan(values).any():
        raise ValueError(
            f"{name} contains NaN: HuberRegressor cannot fit missing values. "
            "Remove or impute them first."
        )
    if np.isinf(values).any():
        raise ValueError(
            f"{name} contains infinity: HuberRegressor cannot fit it. "
            "Remove or clip those values first."
        )
    raise ValueError(
        f"{name} is too large for HuberRegressor in float64: its "
        "squares overflow (L-BFGS and the squared-error scores fail). "
        "Standardise (or rescale) the data."
    )


def _trimmed_squared_error(y_true, y_pred, *, trim_fraction: float) -> float:
    """Mean of the ``1 - trim_fraction`` smallest squared errors (at least one)."""
    r2 = (np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred)) ** 2
    n_keep = max(1, r2.size - int(np.floor(trim_fraction * r2.size)))
    return float(np.partition(r2, n_keep - 1)[:n_keep].mean())


def _median_squared_error(y_true, y_pred) -> float:
    return float(np.median((np.asarray(y_true, dtype=np.float64) - y_pred) ** 2))


def _scorer(scoring, trim_fraction):
    """Our robust criteria by name; anything else goes to GridSearchCV as is."""
    if isinstance(scoring, str) and scoring == "trimmed":
        if not 0.0 <= trim_fraction < 1.0:
            raise ValueError(f"trim_fraction must be in [0, 1), got {trim_fraction}.")
        return make_scorer(
            _trimmed_squared_error, greater_is_better=False, trim_fraction=trim_fraction
        )
    if isinstance(scoring, str) and scoring == "median":
        return make_scorer(_median_squared_error, greater_is_better=False)
    return scoring


#: The criteria of :func:`_scorer`: plain functions of (y_true, y_pred).
_OUR_CRITERIA = (_trimmed_squared_error, _median_squared_error)


class _HuberSearchCV(GridSearchCV):
    """``GridSearchCV`` that refuses, with a clear message, data Huber cannot fit.

    With ``warm_start=True`` each fold fits the epsilons in increasing order,
    each fit starting from the previous one's solution (``HuberRegressor``'s
    own ``warm_start``), instead of every fit from zero; the chosen epsilon is
    then refitted from zero on all the data, as ``GridSearchCV`` does.
    """

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        warm_start=False,
    ):
        super().__init__(
            estimator,
            param_grid,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.warm_start = warm_start

    @atomic_fit
    def fit(self, X, y=None, **params):
        y = check_target(y)
        check_not_datetime(X)
        # DOK, LIL, DIA and BSR become CSR: HuberRegressor's L-BFGS and the
        # overflow check below need a format with a flat ``.data``.
        X_num = check_array(
            X, accept_sparse=["csr", "csc", "coo"], dtype=np.float64, input_name="X"
        )
        if sp.issparse(X):
            X = X_num
        for name, values in (
            ("X", X_num.data if sp.issparse(X_num) else X_num.ravel()),
            ("y", y.ravel()),
        ):
            _check_huber_can_fit(values, name)
        if self.warm_start and not params:
            return self._fit_warm(X, y)
        if not params and self._plain_loop_applies(X, X_num):
            with config_context(assume_finite=True, skip_parameter_validation=True):
                fitted = self._fit_plain(X_num.tocsr() if sp.issparse(X) else X, y)
            if fitted:
                return self
        return super().fit(X, y, **params)

    def _plain_loop_applies(self, X, X_num) -> bool:
        """Whether :meth:`_fit_plain` computes what ``GridSearchCV.fit`` would.

        Only float64 data (what HuberRegressor fits, unconverted, so every
        fold holds the same floats), one job, a refit, no verbosity, no train
        scores, no callbacks, and a single-metric scorer that is sklearn's or
        ours; anything else goes through ``GridSearchCV.fit``.
        """
        scoring = self.scoring
        ours = getattr(scoring, "_score_func", None) in _OUR_CRITERIA
        return (
            (sp.issparse(X) or X_num is X)
            and (scoring is None or isinstance(scoring, str) or ours)
            and effective_n_jobs(self.n_jobs) == 1
            and self.refit is True
            and not self.verbose
            and not self.return_train_score
            and not getattr(self, "_skl_callbacks", None)
            and not getattr(self.estimator, "_skl_callbacks", None)
        )

    def _fit_plain(self, X, y) -> bool:
        """The search as a plain loop over (epsilon, fold); False if a fit fails.

        The same fits, scores and ``cv_results_`` as ``GridSearchCV.fit``
        (sequential, ``n_jobs=None``), without its per-search joblib dispatch,
        per-fit parameter and finiteness checks (the data were checked once in
        :meth:`fit`; the caller runs this under ``assume_finite`` and
        ``skip_parameter_validation``, so the parameters are validated here,
        once). A failing fit or score returns False before any attribute is
        set, so that ``GridSearchCV.fit`` redoes the search with its own error
        handling (``error_score``, warnings).
        """
        try:
            self._validate_params()
            self.estimator._validate_params()
            scorer = (
                self.scoring
                if callable(self.scoring)
                else check_scoring(self.estimator, self.scoring)
            )
            cv = check_cv(self.cv, y, classifier=False)
            n_splits = cv.get_n_splits(X, y)
            splits = list(cv.split(X, y))
            candidates = list(ParameterGrid(self.param_grid))
            if len(splits) != n_splits or not candidates or not splits:
                return False
            folds = [
                (
                    _safe_indexing(X, train),
                    _safe_indexing(y, train),
                    _safe_indexing(X, test),
                    _safe_indexing(y, test),
                )
                for train, test in splits
            ]
            out = []
            for params in candidates:
                for X_tr, y_tr, X_te, y_te in folds:
                    est = clone(self.estimator).set_params(**clone(params, safe=False))
                    start = time.time()
                    est.fit(X_tr, y_tr)
                    fit_time = time.time() - start
                    score = scorer(est, X_te, y_te)
                    score = score.item() if hasattr(score, "item") else score
                    if not isinstance(score, numbers.Number):
                        return False
                    out.append(
                        dict(
                            test_scores=score,
                            fit_time=fit_time,
                            score_time=time.time() - start - fit_time,
                            n_test_samples=len(y_te),
                        )
                    )
        except Exception:
            return False
        results = self._format_results(candidates, n_splits, out)
        self._checked_cv_orig = cv
        self.n_splits_ = n_splits
        self.multimetric_ = False
        self.best_index_ = results["rank_test_score"].argmin()  # numpy int, as theirs
        self.best_score_ = results["mean_test_score"][self.best_index_]
        self.best_params_ = results["params"][self.best_index_]
        self.best_estimator_ = clone(self.estimator).set_params(
            **clone(self.best_params_, safe=False)
        )
        start = time.time()
        self.best_estimator_.fit(X, y)
        self.refit_time_ = time.time() - start
        self.scorer_ = scorer
        self.cv_results_ = results
        return True

    def _fit_warm(self, X, y):
        """The search along epsilon with warm starts (see the class docstring)."""
        candidates = list(ParameterGrid(self.param_grid))
        eps = np.array([c["epsilon"] for c in candidates], dtype=np.float64)
        cv = check_cv(self.cv, y, classifier=False)
        splits = list(cv.split(X, y))
        scorer = check_scoring(self.estimator, self.scoring)
        scores = np.empty((len(candidates), len(splits)))
        for s, (train, test) in enumerate(splits):
            X_tr, y_tr = _safe_indexing(X, train), _safe_indexing(y, train)
            X_te, y_te = _safe_indexing(X, test), _safe_indexing(y, test)
            est = clone(self.estimator).set_params(warm_start=True)
            for i in np.argsort(eps, kind="stable"):
                est.set_params(**candidates[i]).fit(X_tr, y_tr)
                scores[i, s] = scorer(est, X_te, y_te)
        mean = scores.mean(axis=1)
        # GridSearchCV's choice: the best mean score, the first among equals.
        rank = rankdata(-mean, method="min").astype(np.int32)
        self.best_index_ = int(np.argmin(rank))
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(mean[self.best_index_])
        results = {
            "params": candidates,
            "param_epsilon": np.ma.MaskedArray(eps, mask=False),
            "mean_test_score": mean,
            "std_test_score": scores.std(axis=1),
            "rank_test_score": rank,
        }
        for s in range(len(splits)):
            results[f"split{s}_test_score"] = scores[:, s]
        self.cv_results_ = results
        self.n_splits_ = len(splits)
        self.scorer_ = scorer
        self.multimetric_ = False
        start = time.perf_counter()
        self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_)
        self.best_estimator_.fit(X, y)
        self.refit_time_ = time.perf_counter() - start
        if hasattr(self.best_estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self


def make_huber_baseline(
    epsilon_grid=None,
    *,
    cv=5,
    scoring="neg_mean_squared_error",
    trim_fraction: float = 0.2,
    n_jobs=None,
    warm_start: bool = False,
) -> GridSearchCV:
    """Build the paper's Huber baseline: ``HuberRegressor`` with epsilon tuned in [1.1, 10].

    Parameters
    ----------
    epsilon_grid : array-like of float, default=None
        Candidate values of ``epsilon``, each in ``[1.1, 10]`` (the range of the
        paper). ``None`` uses 10 values spaced geometrically from 1.1 to 10.
    cv : int, cross-validation generator or iterable, default=5
        Passed to :class:`~sklearn.model_selection.GridSearchCV`.
    scoring : str or callable, default="neg_mean_squared_error"
        How a value of epsilon is judged on the validation folds (see the module
        docstring for why this differs from the reference code's R^2 on
        inliers). Besides scikit-learn's scorers: ``"trimmed"``, the mean of
        the ``1 - trim_fraction`` smallest squared errors of each fold, and
        ``"median"``, the median squared error; both ignore the poisoned points
        of the folds that the mean squared error rewards fitting.
    trim_fraction : float in [0, 1), default=0.2
        The fraction of each fold's largest squared errors that
        ``scoring="trimmed"`` ignores (the defender's assumed poisoning
        fraction); unused otherwise.
    n_jobs : int, default=None
        Passed to :class:`~sklearn.model_selection.GridSearchCV` (unused with
        ``warm_start=True``, whose folds run in sequence).
    warm_start : bool, default=False
        Fit the epsilons of each fold in increasing order, each from the
        previous solution, instead of each from zero; the chosen epsilon is
        refitted from zero on all the data either way, so when both choose
        the same epsilon the final model is the same. See the module
        docstring for what was measured.

    Returns
    -------
    search : GridSearchCV
        An unfitted search over ``HuberRegressor(alpha=1e-4, max_iter=10000)``;
        after ``fit`` it refits the best epsilon on all the data and predicts
        with it. Its ``fit`` first converts ``y`` to float64 and refuses ``X``
        or ``y`` whose squares overflow float64, with a ``ValueError`` naming the input
        (instead of ``GridSearchCV``'s "All the N fits failed").

    See Also
    --------
    sklearn.linear_model.HuberRegressor : The estimator being tuned.
    TrimRegressor : Trimmed least squares.

    References
    ----------
    .. [1] P. J. Huber, "Robust Estimation of a Location Parameter", The Annals
       of Mathematical Statistics 35(1), 73-101, 1964.
    .. [2] J. Carnerero-Cano et al., "Stealthy Poisoning Attacks Bypass Defenses
       in Regression Settings", Appendix E.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.defenses import make_huber_baseline
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2)); y = X @ [1.0, -2.0] + 0.1 * rng.normal(size=60)
    >>> y[:5] += 30.0
    >>> search = make_huber_baseline([1.35, 3.0], cv=3).fit(X, y)
    >>> search.best_estimator_.coef_.round(1)
    array([ 1., -2.])

    A robust choice of epsilon, by the trimmed squared error of each fold:

    >>> robust = make_huber_baseline([1.35, 3.0, 10.0], cv=3, scoring="trimmed")
    >>> robust.fit(X, y).best_params_["epsilon"] < 10.0
    True
    """
    if epsilon_grid is None:
        epsilon_grid = np.geomspace(1.1, 10.0, 10)
    grid = np.asarray(epsilon_grid, dtype=np.float64).ravel()
    if grid.size == 0:
        raise ValueError("epsilon_grid must contain at least one value.")
    if not np.isfinite(grid).all() or grid.min() < 1.1 or grid.max() > 10.0:
        raise ValueError(
            f"epsilon_grid values must lie in [1.1, 10] (the paper's range), got {grid}."
        )
    return _HuberSearchCV(
        HuberRegressor(alpha=HUBER_ALPHA, max_iter=HUBER_MAX_ITER),
        {"epsilon": grid.tolist()},
        cv=cv,
        scoring=_scorer(scoring, trim_fraction),
        n_jobs=n_jobs,
        warm_start=warm_start,
    )
