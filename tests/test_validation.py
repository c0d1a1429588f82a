import numpy as np
import pytest
import torch

from skpoison._validation import (
    check_bounds,
    check_n_from_fraction,
    resolve_device,
    resolve_dtype,
)


def test_fraction_to_count():
    assert check_n_from_fraction(0.45, 100, name="f") == 45
    assert check_n_from_fraction(0, 100, name="f") == 0
    assert check_n_from_fraction(7, 100, name="f") == 7


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan")])
def test_fraction_out_of_range_names_parameter(bad):
    with pytest.raises(ValueError, match="reject_fraction"):
        check_n_from_fraction(bad, 10, name="reject_fraction")


def test_fraction_leaving_no_points():
    with pytest.raises(ValueError, match="must remain"):
        check_n_from_fraction(10, 10, name="n_reject")
    with pytest.raises(TypeError, match="n_reject"):
        check_n_from_fraction("half", 10, name="n_reject")


def test_bounds_broadcast_and_errors():
    low, high = check_bounds((-1, [1, 2, 3]), 3)
    np.testing.assert_array_equal(low, [-1, -1, -1])
    with pytest.raises(ValueError, match="low > high"):
        check_bounds(([0, 2], [1, 1]), 2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        check_bounds((0, [1, 2, 3]), 2)
    with pytest.raises(ValueError, match="pair"):
        check_bounds(5, 2)


def test_device_and_dtype():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_dtype(np.float32) is torch.float32
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8")


def test_check_target_converts_numeric_strings_and_names_y_otherwise():
    from skpoison._validation import check_target

    np.testing.assert_array_equal(check_target(np.array(["1.5", "-2"])), [1.5, -2.0])
    with pytest.raises(ValueError, match=r"y_val must be numeric.*could not convert"):
        check_target(np.array(["1.5", "abc"]), name="y_val")
    with pytest.raises(ValueError, match="Input y contains NaN"):
        check_target(np.array(["1.5", "nan"]))


def test_validate_regression_data_gives_float64_y_and_keeps_sklearn_checks():
    from sklearn.linear_model import LinearRegression

    from skpoison._validation import validate_regression_data

    est = LinearRegression()
    X, y = validate_regression_data(est, [[0.0], [1.0]], np.array(["3", "4"]))
    assert y.dtype == np.float64 and est.n_features_in_ == 1
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        validate_regression_data(est, [[0.0], [1.0]], [1.0])
