"""Input checks shared across estimators.

Every public estimator validates its parameters through sklearn's
``_parameter_constraints``; the checks here are the ones that depend on the data
(bounds against the number of features, fractions against the number of samples,
devices against what torch can see) and so cannot be written as constraints.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_bounds",
    "check_n_from_fraction",
    "check_not_datetime",
    "check_target",
    "resolve_device",
    "resolve_dtype",
    "validate_regression_data",
]


def check_target(y, *, name: str = "y") -> np.ndarray:
    """Convert a regression target to a float64 array, naming it in errors.

    sklearn's ``validate_data(..., y_numeric=True)`` converts only object-dtype
    targets: a string array (``dtype.kind == "U"``) would reach the numerics
    and fail with an unrelated ufunc ``TypeError``. Here every target goes
    through ``check_array(dtype=float64)``, so non-numeric strings raise a
    ``ValueError`` naming ``name`` (numeric strings such as ``"1.5"`` are
    converted, as sklearn does for object arrays).

    Examples
    --------
    >>> check_target(np.array(["1.5", "2"]))
    array([1.5, 2. ])
    """
    from sklearn.utils.validation import check_array

    try:
        return check_array(y, ensure_2d=False, dtype=np.float64, input_name=name)
    except ValueError as exc:
        if "could not convert" in str(exc):
            raise ValueError(f"{name} must be numeric: {exc}") from None
        raise


def check_not_datetime(X, *, name: str = "X") -> None:
    """Refuse datetime / timedelta features, naming the input and its columns.

    ``check_array(dtype=float64)`` casts a ``datetime64`` array silently to
    its integer ticks (nanoseconds, days, ...: the unit decides the numbers)
    and fails on a DataFrame's datetime column with NumPy's
    ``DTypePromotionError``. Neither is what a user means: convert first.

    Examples
    --------
    >>> check_not_datetime(np.array(["2020-01-01"], dtype="datetime64[D]").reshape(1, 1))
    Traceback (most recent call last):
    ...
    TypeError: X has datetime64/timedelta64 values ...
    """
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "items"):  # a DataFrame
        bad = [
            str(col)
            for col, dt in dtypes.items()
            if getattr(dt, "kind", "") in "mM" or "datetime" in str(dt)
        ]
    elif isinstance(X, np.ndarray) and X.dtype.kind in "mM":
        bad = ["all"]
    else:
        return
    if bad:
        raise TypeError(
            f"{name} has datetime64/timedelta64 values (columns: {', '.join(bad)}); "
            "convert them to numbers first (e.g. seconds since a reference time, "
            "then standardise)."
        )


def check_predictions(pred, n_rows: int, *, estimator, why: str) -> np.ndarray:
    """``pred`` (an estimator's predictions) as float64, refused unless finite and of shape ``(n_rows,)``.

    ``why`` ends the error message: what the caller cannot do without them.

    Examples
    --------
    >>> from sklearn.dummy import DummyRegressor
    >>> model = DummyRegressor().fit([[0.0], [1.0]], [1.0, 3.0])
    >>> check_predictions(model.predict([[5.0]]), 1, estimator=model, why=".")
    array([2.])
    """
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != (n_rows,) or not np.isfinite(pred).all():
        raise ValueError(
            f"estimator {type(estimator).__name__} returned non-finite or "
            f"wrongly shaped predictions{why}"
        )
    return pred


def validate_regression_data(estimator, X, y, **kwargs):
    """``validate_data(estimator, X, y, y_numeric=True, **kwargs)`` with a float64 ``y``.

    The one place where the package's ``fit`` methods validate ``(X, y)``:
    sklearn's checks (shapes, NaN/inf, sparse, ``n_features_in_``), then
    :func:`check_target` so that a string target gets a clear error.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = validate_regression_data(LinearRegression(), [[0.0], [1.0]], ["1", "2"])
    >>> y
    array([1., 2.])
    """
    from sklearn.utils.validation import validate_data

    kwargs.setdefault("y_numeric", True)
    check_not_datetime(X)
    X, y = validate_data(estimator, X, y, **kwargs)
    return X, check_target(y)


def check_n_from_fraction(
    value: float | int,
    n_samples: int,
    *,
    name: str,
    min_remaining: int = 1,
) -> int:
    """Turn a fraction in [0, 1) or a count into a number of samples.

    Parameters
    ----------
    value : float or int
        A fraction of ``n_samples`` (a float in ``[0, 1)``) or a count (an int).
    n_samples : int
        The number of samples the fraction refers to.
    name : str
        The parameter's name, used in error messages.
    min_remaining : int, default=1
        How many samples must be left over (``n_samples - n >= min_remaining``).

    Returns
    -------
    n : int
        ``floor(value * n_samples)`` for a fraction, ``value`` for a count.

    Examples
    --------
    >>> check_n_from_fraction(0.4, 10, name="reject_fraction")
    4
    >>> check_n_from_fraction(3, 10, name="reject_fraction")
    3
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        n = int(value)
        if n < 0:
            raise ValueError(f"{name} must be >= 0 as a count, got {value}.")
    elif isinstance(value, numbers.Real):
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value}.")
        n = int(np.floor(float(value) * n_samples))
    else:
        raise TypeError(f"{name} must be a float in [0, 1) or an int, got {value!r}.")
    if n_samples - n < min_remaining:
        raise ValueError(
            f"{name}={value} leaves {n_samples - n} of {n_samples} samples; "
            f"at least {min_remaining} must remain."
        )
    return n


def check_bounds(bounds, n_columns: int, *, name: str = "bounds"):
    """Validate a ``(low, high)`` pair of scalars or arrays of length ``n_columns``.

    Returns two float64 arrays of shape ``(n_columns,)``. ``low > high`` anywhere,
    non-finite values and wrong lengths raise a ``ValueError`` naming ``name``.

    Examples
    --------
    >>> low, high = check_bounds((0.0, [1.0, 2.0]), 2)
    >>> low.tolist(), high.tolist()
    ([0.0, 0.0], [1.0, 2.0])
    """
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (low, high) of scalars or arrays, got {bounds!r}."
        ) from None
    out = []
    for side, v in (("low", low), ("high", high)):
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} {side} must be numeric, got {v!r}.") from None
        if arr.ndim == 0:
            arr = np.full(n_columns, float(arr))
        if arr.shape != (n_columns,):
            raise ValueError(
                f"{name} {side} must be a scalar or have shape ({n_columns},), "
                f"got shape {arr.shape}."
            )
        if np.isnan(arr).any():
            raise ValueError(f"{name} {side} contains NaN.")
        out.append(arr.copy())
    low, high = out
    if np.any(low > high):
        bad = np.flatnonzero(low > high)[:5].tolist()
        raise ValueError(f"{name} has low > high at columns {bad}.")
    return low, high


def resolve_device(device):
    """Map ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device to a device.

    ``"auto"`` picks CUDA when available, else the CPU. Asking for CUDA where
    torch sees none, or for an unknown name, raises a ``ValueError``.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ValueError(
                f"device={device!r} is not a device name torch knows "
                "(use 'auto', 'cpu', 'cuda' or 'cuda:N')."
            ) from None
    else:
        raise TypeError(f"device must be a string or torch.device, got {device!r}.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but torch sees no CUDA GPU.")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: only 'cpu' and 'cuda' are supported.")
    return dev


def resolve_dtype(dtype):
    """Map ``"float64"``/``"float32"`` (or the torch/numpy dtypes) to a torch dtype.

    Examples
    --------
    >>> resolve_dtype("float64")
    torch.float64
    """
    import torch

    table = {
        "float64": torch.float64,
        "float32": torch.float32,
        "double": torch.float64,
        "float": torch.float32,
    }
    if isinstance(dtype, torch.dtype) and dtype in (torch.float32, torch.float64):
        return dtype
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in table:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}.")
    return table[key]
