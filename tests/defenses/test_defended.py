"""DefendedRegressor: a defense then a regressor, as one sklearn estimator."""

import numpy as np
import pytest
import sklearn
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skpoison.defenses import BayesCleanFilter, DefendedRegressor, TrimRegressor
from skpoison.defenses._base import BaseDefense
from skpoison.metrics import nmse_scorer


class RecordingDefense(BaseDefense):
    """Keeps the points with ``keep`` True (default all) and records its fit params."""

    def __init__(self, bad_mask=False):
        self.bad_mask = bad_mask

    def fit(self, X, y, keep=None):
        self.received_keep_ = keep
        n = len(y)
        self.inlier_mask_ = np.ones(n, dtype=bool) if keep is None else keep
        if self.bad_mask:
            self.inlier_mask_ = self.inlier_mask_.astype(int)
        self.scores_ = np.zeros(n)
        return self


class RecordingRegressor(LinearRegression):
    def fit(self, X, y, sample_weight=None):
        self.received_weight_ = sample_weight
        return super().fit(X, y, sample_weight=sample_weight)


def test_fit_params_go_to_the_defense(outlier_data):
    X, y, is_outlier = outlier_data
    model = DefendedRegressor(RecordingDefense(), RecordingRegressor())
    model.fit(X, y, keep=~is_outlier)
    np.testing.assert_array_equal(model.defense_.received_keep_, ~is_outlier)
    assert model.estimator_.received_weight_ is None
    np.testing.assert_array_equal(model.inlier_mask_, ~is_outlier)
    ref = LinearRegression().fit(X[~is_outlier], y[~is_outlier])
    np.testing.assert_allclose(model.predict(X), ref.predict(X))


def test_metadata_routing_subsets_sample_weight_to_the_kept_rows(outlier_data):
    X, y, is_outlier = outlier_data
    weight = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        defense = RecordingDefense().set_fit_request(keep=True)
        est = RecordingRegressor().set_fit_request(sample_weight=True)
        model = DefendedRegressor(defense, est)
        model.fit(X, y, keep=~is_outlier, sample_weight=weight)
    np.testing.assert_array_equal(model.defense_.received_keep_, ~is_outlier)
    np.testing.assert_array_equal(
        model.estimator_.received_weight_, weight[~is_outlier]
    )
    ref = LinearRegression().fit(
        X[~is_outlier], y[~is_outlier], sample_weight=weight[~is_outlier]
    )
    np.testing.assert_allclose(model.predict(X), ref.predict(X))


def test_defense_contract_violations_are_errors(outlier_data):
    X, y, _ = outlier_data
    with pytest.raises(TypeError, match="boolean inlier_mask_"):
        DefendedRegressor(RecordingDefense(bad_mask=True)).fit(X, y)
    with pytest.raises(ValueError, match="rejected every"):
        DefendedRegressor(RecordingDefense()).fit(X, y, keep=np.zeros(len(y), bool))


def test_grid_search_over_bayesclean_thresholds_with_nmse(outlier_data):
    X, y, _ = outlier_data
    grid = {"defense__c1": [0.5, 1.0], "defense__c2": [1.5, 3.0]}
    search = GridSearchCV(
        DefendedRegressor(BayesCleanFilter(), Ridge()),
        grid,
        scoring=nmse_scorer,
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all(np.isfinite(scores)) and np.all(scores <= 0)
    best = search.best_estimator_.defense_
    assert best.c1 == search.best_params_["defense__c1"]
    assert best.c2 == search.best_params_["defense__c2"]
    assert search.best_score_ == scores.max()


def test_matches_the_defense_as_an_imblearn_sampler(outlier_data):
    X, y, _ = outlier_data
    defended = make_pipeline(
        StandardScaler(), DefendedRegressor(BayesCleanFilter(), Ridge())
    )
    sampled = ImbPipeline(
        [
            ("scale", StandardScaler()),
            ("defense", BayesCleanFilter()),
            ("model", Ridge()),
        ]
    )
    cv = KFold(4, shuffle=True, random_state=0)
    a = cross_validate(defended, X, y, cv=cv, scoring=nmse_scorer)
    b = cross_validate(sampled, X, y, cv=cv, scoring=nmse_scorer)
    np.testing.assert_allclose(a["test_score"], b["test_score"])


def test_trim_as_a_sampler_in_imblearn_pipeline(outlier_data):
    X, y, is_outlier = outlier_data
    pipe = ImbPipeline(
        [("defense", TrimRegressor(reject_fraction=0.1)), ("model", Ridge())]
    ).fit(X, y)
    kept = pipe.named_steps["defense"].inlier_mask_
    assert not kept[is_outlier].any()
    assert pipe.predict(X).shape == y.shape
