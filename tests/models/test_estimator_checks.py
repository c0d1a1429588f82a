"""scikit-learn's common estimator checks for the victim models."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skpoison.models import TorchLinearRegressor, TorchMLPRegressor


# The common checks fit unscaled data (features up to ~100) on which gradient
# descent with the paper's learning rates diverges, which the models report with
# a DivergenceError by design; a small learning rate keeps every check meaningful
# instead of skipping them. No check is expected to fail.
@parametrize_with_checks(
    [
        TorchLinearRegressor(learning_rate=1e-5),
        TorchMLPRegressor(learning_rate=1e-5, hidden_layer_sizes=(4,), n_epochs=5),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
