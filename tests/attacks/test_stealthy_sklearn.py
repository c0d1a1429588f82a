"""StealthyPoisoner against scikit-learn's fitted linear victims."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from skpoison.attacks import StealthyPoisoner

VICTIMS = [
    LinearRegression(),
    Ridge(alpha=3.0, fit_intercept=False),
    Lasso(alpha=0.05),
    ElasticNet(alpha=0.05, l1_ratio=0.5),
]


@pytest.fixture(scope="module")
def data():
    g = np.random.default_rng(0)
    X = g.normal(size=(160, 4)) * [1.0, 10.0, 0.1, 3.0] + 5.0  # not standardised
    y = X @ g.normal(size=4) + g.normal(size=160)
    return X, y, None


def _attack(est, **kw):
    return StealthyPoisoner(
        0.1, model=est, n_outer_steps=20, validation_fraction=0.25, random_state=0,
        **kw,
    )  # fmt: skip


@pytest.mark.parametrize("est", VICTIMS, ids=repr)
def test_attack_raises_the_deployed_estimators_validation_loss(est, data):
    X, y, _ = data
    attack = _attack(est, batch_size=1.0)
    X_p, y_p = attack.fit_resample(X, y)
    val = attack.history_[0]["val_loss"]
    assert val[-1] > 1.2 * val[0]
    # The recorded loss is that of the estimator refitted by scikit-learn on
    # the poisoned rows it returned (one batch here).
    assert attack.n_batches_ == 1
    v = attack.validation_indices_
    ref = clone(est).fit(X_p, y_p)
    loss = 0.5 * np.mean((ref.predict(X[v]) - y[v]) ** 2)
    assert val[-1] == pytest.approx(loss, rel=1e-5)
    assert not hasattr(est, "coef_")  # the user's instance is not fitted


def test_clean_model_is_the_estimator_on_the_clean_training_set(data):
    X, y, _ = data
    attack = _attack(Ridge(alpha=2.0)).fit(X, y)
    ref = Ridge(alpha=2.0).fit(X, y)  # every row passed in is training data
    res = ref.predict(X) - y
    sigma = np.sqrt(res @ res / (y.size - X.shape[1] - 1))
    assert attack.sigma_ == pytest.approx(sigma, rel=1e-8)


def test_clone_pickle_and_grid_search_over_alpha(data):
    X, y, _ = data
    attack = _attack(Ridge(alpha=1.0))
    assert clone(attack).get_params()["model"].alpha == 1.0
    a = pickle.loads(pickle.dumps(attack)).fit(X, y)
    b = attack.fit(X, y)
    np.testing.assert_array_equal(a.X_poison_, b.X_poison_)
    grid = GridSearchCV(attack, {"model__alpha": [0.1, 10.0]}, cv=2, scoring=None)
    assert "model__alpha" in grid.get_params()["estimator"].get_params()


def test_warm_start_extends_the_run(data):
    X, y, _ = data
    attack = _attack(Lasso(alpha=0.05), warm_start=True)
    attack.set_params(poison_fraction=0.05).fit(X, y)
    small = attack.X_poison_.copy()
    attack.set_params(poison_fraction=0.1).fit(X, y)
    np.testing.assert_array_equal(attack.X_poison_[: len(small)], small)


@pytest.mark.parametrize(
    "model, kw, err, match",
    [
        (SVR(), {}, TypeError, "LinearRegression, Ridge, Lasso or ElasticNet"),
        (make_pipeline(StandardScaler(), Ridge()), {}, TypeError, "Ridge, Lasso"),
        (Ridge(), {"n_inner_steps": 10}, ValueError, "n_inner_steps"),
        (Ridge(), {"inner_lr": 0.5}, ValueError, "inner_lr"),
        (Ridge(), {"engine": "spectral"}, ValueError, "engine='auto'"),
    ],
)
def test_unsupported_victims_and_conflicting_parameters(model, kw, err, match, data):
    X, y, _ = data
    with pytest.raises(err, match=match):
        _attack(model, **kw).fit(X, y)
