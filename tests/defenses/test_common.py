"""scikit-learn's estimator checks, run over every defense in one place.

To add a defense: append a configured instance to ``DEFENSES`` and, if some
check cannot pass, name it with the reason in ``EXPECTED_FAILED_CHECKS`` under
the class name.
"""

from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from skpoison.defenses import (
    BayesCleanFilter,
    DefendedRegressor,
    DutiFilter,
    ITrimRegressor,
    ProdaRegressor,
    SeverFilter,
    TrimRegressor,
)

DEFENSES = [
    BayesCleanFilter(),
    BayesCleanFilter(flagged="keep", rule="paper"),
    DefendedRegressor(BayesCleanFilter(flagged="keep"), Ridge()),
    DefendedRegressor(TrimRegressor(reject_fraction=0.1), Ridge()),
    TrimRegressor(),
    TrimRegressor(Ridge(alpha=0.1), reject_fraction=3, n_init=2, random_state=0),
    TrimRegressor(
        MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
        reject_fraction=0.1,
        max_iter=2,
    ),
    ITrimRegressor(),
    ITrimRegressor(Ridge(alpha=0.1), max_poison_fraction=0.2, step=0.05),
    SeverFilter(),
    SeverFilter(Ridge(alpha=1.0), reject_fraction=2, n_rounds=2),
    DefendedRegressor(SeverFilter(reject_fraction=0.1), Ridge()),
    ProdaRegressor(random_state=0),
    ProdaRegressor(n_groups=5, n_refits=2, random_state=0),
    DutiFilter(),
]

# {class name: {check name: why it cannot pass}}
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}

# DutiFilter cannot fit without its trusted set (fit parameters X_trusted,
# y_trusted), which sklearn's checks never pass. tests/defenses/test_duti.py
# runs all these checks on a test-only subclass that binds a trusted set.
_NEEDS_TRUSTED = "fit needs the trusted set (X_trusted, y_trusted); see test_duti.py"
EXPECTED_FAILED_CHECKS["DutiFilter"] = {
    name: _NEEDS_TRUSTED
    for name in (
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_dtype_object",
        "check_estimators_dtypes",
        "check_estimators_fit_returns_self",
        "check_estimators_nan_inf",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_fit2d_1feature",
        "check_fit2d_1sample",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_fit_score_takes_y",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_n_features_in",
        "check_n_features_in_after_fitting",
        "check_pipeline_consistency",
        "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input",
    )
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(DEFENSES, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
