"""Specifications of NMSE (Eq. 7), the defense gain (Eq. 8) and the scorer."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, cross_validate

from skpoison.exceptions import UncentredTargetWarning
from skpoison.metrics import defense_gain, nmse, nmse_scorer, vnmse_scorer

# The hand-picked targets below are small and uncentred; the warning has its own tests.
pytestmark = pytest.mark.filterwarnings(
    "ignore::skpoison.exceptions.UncentredTargetWarning"
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def pairs(draw):
    n = draw(st.integers(1, 40))
    y_true = draw(arrays(np.float64, n, elements=finite))
    y_pred = draw(arrays(np.float64, n, elements=finite))
    assume(np.sum(y_true**2) > 1e-6)
    return y_true, y_pred


@given(pairs())
def test_nmse_is_non_negative_and_matches_eq_7(pair):
    y_true, y_pred = pair
    value = nmse(y_true, y_pred)
    assert value >= 0
    n = len(y_true)
    expected = np.mean((y_true - y_pred) ** 2) / (np.linalg.norm(y_true) ** 2 / n)
    assert value == pytest.approx(expected, rel=1e-9)


@given(pairs())
def test_nmse_of_a_perfect_prediction_is_zero(pair):
    y_true, _ = pair
    assert nmse(y_true, y_true.copy()) == 0.0


@given(pairs(), st.floats(1e-3, 1e3), st.booleans())
def test_nmse_is_invariant_to_scaling_both_by_the_same_factor(pair, factor, negate):
    y_true, y_pred = pair
    c = -factor if negate else factor
    assert nmse(c * y_true, c * y_pred) == pytest.approx(
        nmse(y_true, y_pred), rel=1e-9, abs=1e-12
    )


def test_nmse_is_not_a_variance_normalised_error():
    # ||y||^2 / n, not the variance: shifting y_true and y_pred together changes it.
    y, p = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.5])
    with pytest.warns(UncentredTargetWarning):
        assert nmse(y, p) == pytest.approx((0.5 / 3) / (14 / 3))
        assert nmse(y + 10, p + 10) != pytest.approx(nmse(y, p))


def test_nmse_does_not_overflow_on_huge_targets():
    y = np.array([1e200, -2e200, 3e200])
    assert nmse(y, 1.1 * y) == pytest.approx(0.01)


def test_nmse_predicting_zero_is_one():
    assert nmse([3.0, -4.0], [0.0, 0.0]) == 1.0


def test_sample_weight_weights_both_means():
    y, p, w = (
        np.array([1.0, 2.0, 4.0]),
        np.array([0.0, 2.0, 5.0]),
        np.array([2.0, 1.0, 0.0]),
    )
    # Integer weights equal repeating rows.
    assert nmse(y, p, sample_weight=w) == pytest.approx(
        nmse([1.0, 1.0, 2.0], [0.0, 0.0, 2.0])
    )
    with pytest.raises(ValueError, match="(?i)negative.*sample_weight"):
        nmse(y, p, sample_weight=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="non-zero"):
        nmse(y, p, sample_weight=[0.0, 0.0, 0.0])


def test_column_vectors_are_accepted():
    y = np.array([[1.0], [2.0]])
    assert nmse(y, np.array([1.0, 3.0])) == pytest.approx(nmse([1.0, 2.0], [1.0, 3.0]))


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        ([0.0, 0.0], [1.0, 1.0], "all zeros"),
        ([1.0, np.nan], [1.0, 1.0], "y_true.*NaN"),
        ([1.0, 1.0], [1.0, np.inf], "y_pred.*infinity"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], "inconsistent numbers of samples"),
        (np.ones((3, 2)), np.ones((3, 2)), "1-d"),
        ([], [], "0 sample"),
    ],
)
def test_nmse_bad_input_gives_a_clear_error(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        nmse(y_true, y_pred)


@given(st.floats(1e-6, 1e6), st.floats(0, 1e6))
def test_defense_gain_matches_eq_8(reference, defended):
    assert defense_gain(reference, defended) == pytest.approx(
        (reference - defended) / reference * 100
    )


@given(st.floats(1e-6, 1e6))
def test_defense_gain_is_zero_for_equal_nmse(value):
    assert defense_gain(value, value) == 0.0


def test_defense_gain_is_vectorised_with_broadcasting():
    reference = np.array([[1.0], [2.0]])
    defended = np.array([0.5, 1.0, 2.0])
    gain = defense_gain(reference, defended)
    assert gain.shape == (2, 3)
    np.testing.assert_allclose(gain, 100 * (reference - defended) / reference)
    assert isinstance(defense_gain(1.0, 0.5), float)


@pytest.mark.parametrize(
    "reference, defended, match",
    [
        (0.0, 0.5, "nmse_no_defense must be > 0"),
        ([1.0, 0.0], [0.5, 0.5], "nmse_no_defense must be > 0"),
        (-1.0, 0.5, "nmse_no_defense must be >= 0"),
        (1.0, -0.5, "nmse_defense must be >= 0"),
        (np.nan, 0.5, "nmse_no_defense must be finite"),
        (1.0, np.inf, "nmse_defense must be finite"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "do not broadcast"),
    ],
)
def test_defense_gain_bad_input_gives_a_clear_error(reference, defended, match):
    with pytest.raises(ValueError, match=match):
        defense_gain(reference, defended)


def test_scorer_is_negated_nmse():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=40)
    model = LinearRegression().fit(X, y)
    assert nmse_scorer(model, X, y) == pytest.approx(-nmse(y, model.predict(X)))


def test_scorer_works_in_cross_validate_and_grid_search():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    y = X @ np.array([2.0, 1.0]) + 0.1 * rng.normal(size=60)
    scores = cross_validate(LinearRegression(), X, y, cv=3, scoring=nmse_scorer)
    assert (scores["test_score"] <= 0).all()
    search = GridSearchCV(Ridge(), {"alpha": [1e-3, 1e3]}, cv=3, scoring=nmse_scorer)
    search.fit(X, y)
    # Greater is better: the small penalty (lower NMSE) wins.
    assert search.best_params_ == {"alpha": 1e-3}


@st.composite
def spread_pairs(draw):
    """Pairs whose y_true is not constant (the variance normaliser is > 0)."""
    y_true, y_pred = draw(pairs())
    assume(len(y_true) > 1 and np.std(y_true) > 1e-3 * np.max(np.abs(y_true)))
    return y_true, y_pred


@given(spread_pairs(), st.floats(-1e4, 1e4))
def test_variance_nmse_is_invariant_to_shifting_both(pair, shift):
    y_true, y_pred = pair
    assert nmse(y_true + shift, y_pred + shift, normalize="variance") == pytest.approx(
        nmse(y_true, y_pred, normalize="variance"), rel=1e-6, abs=1e-9
    )


@given(spread_pairs())
def test_variance_nmse_is_one_minus_r2_and_rescales_eq_7(pair):
    y_true, y_pred = pair
    variance_nmse = nmse(y_true, y_pred, normalize="variance")
    assert variance_nmse == pytest.approx(1 - r2_score(y_true, y_pred), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncentredTargetWarning)
        eq_7 = nmse(y_true, y_pred)
    ratio = np.mean(y_true**2) / np.var(y_true)
    assert variance_nmse == pytest.approx(eq_7 * ratio, rel=1e-6, abs=1e-12)


@given(spread_pairs(), st.floats(0.0, 3.0))
def test_eq_7_warns_exactly_when_the_mean_exceeds_half_a_std(pair, offset):
    y_true, y_pred = pair
    centred = y_true - y_true.mean()
    assume(abs(offset - 0.5) > 1e-6)
    shifted = centred + offset * centred.std()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nmse(shifted, y_pred)
        nmse(shifted, y_pred, normalize="variance")
    flagged = [w for w in caught if issubclass(w.category, UncentredTargetWarning)]
    assert len(flagged) == (1 if offset > 0.5 else 0)
    if flagged:
        assert "normalize='variance'" in str(flagged[0].message)


def test_a_standardised_test_split_does_not_warn():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncentredTargetWarning)
        nmse(y[:150], 0.9 * y[:150])


@pytest.mark.parametrize(
    "y_true, normalize, match",
    [
        ([2.0, 2.0], "variance", "constant"),
        ([1.0, 2.0], "std", "normalize must be one of"),
    ],
)
def test_variance_nmse_bad_input_gives_a_clear_error(y_true, normalize, match):
    with pytest.raises(ValueError, match=match):
        nmse(y_true, [1.0, 1.0], normalize=normalize)


def test_variance_scorer_is_negated_variance_nmse_on_an_offset_target():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = 100.0 + X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=40)
    model = LinearRegression().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncentredTargetWarning)
        score = vnmse_scorer(model, X, y)
    assert score == pytest.approx(-nmse(y, model.predict(X), normalize="variance"))
    with pytest.warns(UncentredTargetWarning):
        nmse_scorer(model, X, y)
