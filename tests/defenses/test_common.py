"""scikit-learn's estimator checks, run over every defense in one place.

To add a defense: append a configured instance to ``DEFENSES`` and, if some
check cannot pass, name it with the reason in ``EXPECTED_FAILED_CHECKS`` under
the class name.
"""

from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from skpoison.defenses import BayesCleanFilter, DefendedRegressor, TrimRegressor

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
]

# {class name: {check name: why it cannot pass}}
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(DEFENSES, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
