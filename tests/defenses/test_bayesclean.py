"""BayesCleanFilter: the paper's Alg. 5 on top of sklearn's BayesianRidge."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.linear_model import BayesianRidge, LinearRegression, Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import cross_validate
from sklearn.preprocessing import StandardScaler

from skpoison.defenses import BayesCleanFilter
from skpoison.defenses._bayesclean import _standard_frame


def _random_problem(seed, n=60, d=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + rng.normal(scale=0.5, size=n)
    y[: n // 10] += rng.normal(scale=20.0, size=n // 10)
    return X, y


@given(
    seed=st.integers(0, 10_000),
    c1=st.floats(0.0, 3.0),
    extra=st.floats(0.0, 3.0),
    rule=st.sampled_from(["residual", "paper"]),
)
def test_masks_partition_the_samples(seed, c1, extra, rule):
    X, y = _random_problem(seed)
    bc = BayesCleanFilter(c1=c1, c2=c1 + extra, rule=rule).fit(X, y)
    stacked = np.stack([bc.accepted_mask_, bc.flagged_mask_, bc.rejected_mask_])
    assert stacked.dtype == bool
    np.testing.assert_array_equal(stacked.sum(axis=0), 1)


@given(seed=st.integers(0, 10_000), c1=st.floats(0.0, 2.0), c2=st.floats(0.0, 2.0))
def test_larger_thresholds_never_accept_fewer(seed, c1, c2):
    X, y = _random_problem(seed)
    # Only for the residual rule: the literal formula |y| <= |mu + c sigma| is
    # not monotone in c where mu < 0 (see test_paper_rule_is_not_monotone).
    c1, c2 = sorted((c1, c2))
    small = BayesCleanFilter(c1=c1, c2=c2, flagged="keep").fit(X, y)
    big = BayesCleanFilter(c1=c1 + 0.5, c2=c2 + 0.5, flagged="keep").fit(X, y)
    # Same Bayesian fit, wider bands: kept and accepted sets only grow.
    assert np.all(big.accepted_mask_ >= small.accepted_mask_)
    assert np.all(big.inlier_mask_ >= small.inlier_mask_)


def test_paper_rule_is_not_monotone_for_negative_means():
    # Documents the discrepancy: with mu < 0, widening c shrinks |mu + c sigma|.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X @ [1.0, -1.0] - 10.0 + rng.normal(size=200)
    small = BayesCleanFilter(c1=0.5, c2=1.5, rule="paper").fit(X, y)
    big = BayesCleanFilter(c1=1.0, c2=2.0, rule="paper").fit(X, y)
    assert (small.accepted_mask_ & ~big.accepted_mask_).any()


@given(seed=st.integers(0, 10_000))
def test_residual_rule_is_thresholding_the_scores(seed):
    X, y = _random_problem(seed)
    bc = BayesCleanFilter(c1=0.7, c2=1.9).fit(X, y)
    mu, sigma = bc.estimator_.predict(X, return_std=True)
    np.testing.assert_allclose(bc.scores_, np.abs(y - mu) / sigma)
    np.testing.assert_array_equal(bc.accepted_mask_, bc.scores_ <= 0.7)
    np.testing.assert_array_equal(bc.rejected_mask_, bc.scores_ > 1.9)


def test_paper_rule_is_the_literal_formula():
    X, y = _random_problem(3)
    y = y - 10.0  # negative predictive means, where the two rules differ
    bc = BayesCleanFilter(rule="paper").fit(X, y)
    mu, sigma = bc.predictive_mean_, bc.predictive_std_
    accept = np.abs(y) <= np.abs(mu + 0.5 * sigma)
    reject = (np.abs(y) > np.abs(mu + 1.5 * sigma)) & ~accept
    np.testing.assert_array_equal(bc.accepted_mask_, accept)
    np.testing.assert_array_equal(bc.rejected_mask_, reject)
    residual = BayesCleanFilter(rule="residual").fit(X, y)
    assert not np.array_equal(residual.accepted_mask_, bc.accepted_mask_)


def test_flagged_points_follow_the_flagged_option():
    X, y = _random_problem(1)
    rej = BayesCleanFilter(flagged="reject").fit(X, y)
    keep = BayesCleanFilter(flagged="keep").fit(X, y)
    assert rej.flagged_mask_.any()
    np.testing.assert_array_equal(rej.inlier_mask_, rej.accepted_mask_)
    np.testing.assert_array_equal(
        keep.inlier_mask_, keep.accepted_mask_ | keep.flagged_mask_
    )


def test_uses_the_papers_bayesian_ridge_settings():
    X, y = _random_problem(2)
    est = BayesCleanFilter().fit(X, y).estimator_
    assert isinstance(est, BayesianRidge)
    params = est.get_params()
    for name in ("alpha_1", "alpha_2", "lambda_1", "lambda_2"):
        assert params[name] == 1e-6
    assert params["max_iter"] == 300
    raw = BayesCleanFilter(standardize=False).fit(X, y).estimator_
    ref = BayesianRidge(max_iter=300).fit(X, y)
    np.testing.assert_allclose(raw.coef_, ref.coef_)


def test_standardized_model_is_the_standardized_fit_mapped_back():
    X, y = _random_problem(3)
    X = X * [1e3, 1e-2, 1.0] + [5e4, -3.0, 0.0]
    y = 250.0 * y + 1e4
    bc = BayesCleanFilter().fit(X, y)
    xs, ys = StandardScaler().fit(X), StandardScaler().fit(y[:, None])
    ref = BayesianRidge(max_iter=300).fit(
        xs.transform(X), ys.transform(y[:, None])[:, 0]
    )
    mu_s, std_s = ref.predict(xs.transform(X), return_std=True)
    mu, std = bc.estimator_.predict(X, return_std=True)
    np.testing.assert_allclose(mu, ys.inverse_transform(mu_s[:, None])[:, 0])
    np.testing.assert_allclose(std, std_s * ys.scale_[0])
    np.testing.assert_allclose(bc.predictive_mean_, mu)
    np.testing.assert_allclose(bc.predictive_std_, std)


@given(seed=st.integers(0, 10_000))
def test_result_does_not_depend_on_sample_order(seed):
    X, y = _random_problem(seed)
    perm = np.random.default_rng(seed).permutation(len(y))
    a = BayesCleanFilter(c1=0.8, c2=2.0).fit(X, y)
    b = BayesCleanFilter(c1=0.8, c2=2.0).fit(X[perm], y[perm])
    inv = np.argsort(perm)
    np.testing.assert_allclose(b.scores_[inv], a.scores_, rtol=1e-6, atol=1e-9)
    # Points on a threshold may flip with rounding; all others must agree.
    safe = (np.abs(a.scores_ - 0.8) > 1e-6) & (np.abs(a.scores_ - 2.0) > 1e-6)
    np.testing.assert_array_equal(b.inlier_mask_[inv][safe], a.inlier_mask_[safe])


@pytest.mark.parametrize("rule", ["residual", "paper"])
def test_rejects_gross_outliers(outlier_data, rule):
    X, y, is_outlier = outlier_data
    bc = BayesCleanFilter(rule=rule).fit(X, y)
    assert (~bc.inlier_mask_[is_outlier]).mean() >= 0.9


def test_model_error_near_ols_without_outliers(clean_data):
    X, y, X_test, y_test = clean_data
    ols = mean_squared_error(y_test, LinearRegression().fit(X, y).predict(X_test))
    X_kept, y_kept = BayesCleanFilter().fit_resample(X, y)
    defended = LinearRegression().fit(X_kept, y_kept).predict(X_test)
    assert mean_squared_error(y_test, defended) <= 1.1 * ols


def test_c1_above_c2_is_an_error():
    X, y = _random_problem(0)
    with pytest.raises(ValueError, match="c1 must be <= c2"):
        BayesCleanFilter(c1=2.0, c2=1.0).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"c1": -1.0}, "c1"),
        ({"flagged": "inspect"}, "flagged"),
        ({"rule": "other"}, "rule"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_parameters_are_named(params, match):
    X, y = _random_problem(0)
    with pytest.raises(ValueError, match=match):
        BayesCleanFilter(**params).fit(X, y)


def test_bad_input_is_rejected():
    X, y = _random_problem(0)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        BayesCleanFilter().fit(X_nan, y)
    with pytest.raises(ValueError):
        BayesCleanFilter().fit(X, y[:-1])
    with pytest.raises(ValueError):
        BayesCleanFilter().fit(X, np.c_[y, y])


def test_inputs_are_not_modified():
    X, y = _random_problem(0)
    X0, y0 = X.copy(), y.copy()
    BayesCleanFilter().fit_resample(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_in_imblearn_pipeline_cleans_training_folds_only(outlier_data):
    X, y, _ = outlier_data
    pipe = ImbPipeline([("defense", BayesCleanFilter()), ("model", Ridge())])
    res = cross_validate(pipe, X, y, cv=3, scoring="neg_mean_squared_error")
    assert np.isfinite(res["test_score"]).all()
    pipe.fit(X, y)
    # At predict time the sampler is skipped: every row gets a prediction.
    assert pipe.predict(X).shape == y.shape


def test_predictive_moments_are_bayesian_ridges_over_blocks():
    # Wide enough that the moments are computed over several row blocks.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 300))
    y = X @ rng.normal(size=300) + rng.normal(size=4000)
    bc = BayesCleanFilter().fit(X, y)
    mu, sigma = bc.estimator_.predict(X, return_std=True)
    np.testing.assert_allclose(bc.predictive_mean_, mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bc.predictive_std_, sigma, rtol=1e-12)


def test_exact_fit_on_unscaled_features_gives_finite_std_not_nan():
    # y fitted exactly on features of order 1e8: BayesianRidge's x^T sigma_ x
    # rounds to a negative number and predict(return_std=True) gives NaN there.
    X = np.arange(12.0).reshape(3, 4) * 1e8
    y = np.ones(3)
    bc = BayesCleanFilter().fit(X, y)
    floor = np.sqrt(1.0 / bc.estimator_.alpha_)
    assert np.isfinite(bc.predictive_std_).all() and np.isfinite(bc.scores_).all()
    assert (bc.predictive_std_ >= floor).all()
    _, sigma = bc.estimator_.predict(X, return_std=True)
    ok = np.isfinite(sigma)
    np.testing.assert_array_equal(bc.predictive_std_[ok], sigma[ok])


@pytest.mark.parametrize("scale_X, scale_y", [(1e300, 1e300), (1.0, 1e300)])
def test_data_whose_squares_overflow_is_refused(scale_X, scale_y):
    X, y = _random_problem(0)
    bc = BayesCleanFilter()
    with pytest.raises(ValueError, match="too large.*Standardise"):
        bc.fit(X * scale_X, y * scale_y)
    assert not hasattr(bc, "estimator_")


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    log_a=st.floats(-6, 6),
    sign=st.sampled_from([-1.0, 1.0]),
    b=st.floats(-1e4, 1e4),
    log_d=st.lists(st.floats(-6, 6), min_size=3, max_size=3),
    # Offsets up to 1e4 spreads: beyond, rounding X * D + c itself moves the
    # data by more than the tolerance.
    c=st.lists(st.floats(-1e4, 1e4), min_size=3, max_size=3),
    rule=st.sampled_from(["residual", "paper"]),
)
def test_decisions_do_not_depend_on_units_or_origins(
    seed, log_a, sign, b, log_d, c, rule
):
    X, y = _random_problem(seed)
    y[:6] += 4.0
    if rule == "paper":
        # The literal rule compares |y| with |mu + c sigma|: it depends on the
        # origin and the sign of y, only its scale is free.
        sign, b = 1.0, 0.0
    a = sign * 10.0**log_a
    # The offset of y in units of its new spread, like c for X (an offset of
    # 1e4 at a = 1e-5 would be 1e9 spreads: rounding a * y + b alone then
    # moves y by ~1e-7 of its spread).
    b = abs(a) * b
    D = 10.0 ** np.asarray(log_d)
    base = BayesCleanFilter(rule=rule).fit(X, y)
    moved = BayesCleanFilter(rule=rule).fit(X * D + np.multiply(c, D), a * y + b)
    np.testing.assert_allclose(moved.scores_, base.scores_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        moved.predictive_std_, abs(a) * base.predictive_std_, rtol=1e-6
    )
    # Points on a threshold may flip with rounding; all others must agree.
    if rule == "residual":
        margins = [base.scores_ - t for t in (0.5, 1.5)]
    else:
        mu, sigma = base.predictive_mean_, base.predictive_std_
        margins = [(np.abs(y) - np.abs(mu + t * sigma)) / sigma for t in (0.5, 1.5)]
    safe = (np.abs(margins[0]) > 1e-5) & (np.abs(margins[1]) > 1e-5)
    np.testing.assert_array_equal(moved.inlier_mask_[safe], base.inlier_mask_[safe])


def test_raw_fit_depends_on_the_units_of_y():
    # Why standardize=True is the default: the raw Gamma priors are not scale free.
    X, y = _random_problem(5, n=200)
    y[:20] += 4.0
    y = 1e-4 * y
    raw = BayesCleanFilter(standardize=False)
    kept = [raw.fit(X, s * y).inlier_mask_.sum() for s in (1.0, 1e4)]
    assert kept[0] != kept[1]
    std = BayesCleanFilter()
    kept = [std.fit(X, s * y).inlier_mask_.sum() for s in (1.0, 1e4)]
    assert kept[0] == kept[1]


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 3000),
    log_unit=st.floats(-200, 150),
    offset=st.sampled_from([0.0, 3.0, 1e6]),
    constant=st.sampled_from(["no", "exactly", "up to rounding"]),
    centre=st.booleans(),
)
def test_standard_frame_is_standard_scalers(
    seed, n, log_unit, offset, constant, centre
):
    # One pass from a sampled origin (or two where that is inaccurate): the
    # moments of StandardScaler on the columns divided by their units, a
    # constant column included (scale: its unit). The units are powers of two,
    # so that "a few ulps apart" stays so.
    rng = np.random.default_rng(seed)
    A = rng.standard_t(3, size=(n, 3)) + offset
    if constant == "exactly":
        A[:, 1] = 5.0
    elif constant == "up to rounding":  # a few ulps apart: constant for sklearn
        A[:, 1] = 5.0 + np.spacing(5.0) * rng.integers(0, 3, size=n)
    A *= 2.0 ** np.round(log_unit * np.log2(10.0))
    mean, scale = _standard_frame(A, centre)
    unit = 2.0 ** np.frexp(np.abs(A).max(axis=0))[1]
    ref = StandardScaler(with_mean=centre).fit(A / unit)
    np.testing.assert_allclose(scale, ref.scale_ * unit, rtol=1e-9)
    if centre:
        # Equal up to rounding: of the spread (the mean may be ~0), and of the
        # sums of the reference (StandardScaler sums the raw values).
        ref_mean = ref.mean_ * unit
        bound = 1e-9 * ref.scale_ * unit + 1e-12 * np.abs(ref_mean)
        assert np.all(np.abs(mean - ref_mean) <= bound)
    else:
        np.testing.assert_array_equal(mean, 0.0)


def test_filter_fits_its_own_copy_and_leaves_estimator_copying():
    # copy_X=False is only for the fit on the filter's standardised copy: the
    # user's arrays stay as they were and a refit of estimator_ copies.
    X, y = _random_problem(4)
    X0, y0 = X.copy(), y.copy()
    bc = BayesCleanFilter().fit(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert bc.estimator_.get_params()["copy_X"] is True
