"""Specifications of the shipped loaders (Heart, Boston Housing, Appliances)."""

import gzip
import shutil

import numpy as np
import pytest

from skpoison.datasets import (
    ChecksumError,
    _base,
    load_appliances,
    load_boston_housing,
    load_heart,
)

# Table I of the paper: (n_samples, n_features); first / last feature name.
LOADERS = [
    pytest.param(
        load_heart, 3198, 28, "x00", "x27", "heart_disease.csv.gz", id="heart"
    ),
    pytest.param(
        load_boston_housing, 506, 13, "CRIM", "LSTAT", "boston.csv.gz", id="boston"
    ),
    pytest.param(
        load_appliances,
        19735,
        16,
        "T2",
        "Press_mm_hg",
        "appliances.csv.gz",
        id="appliances",
    ),
]


@pytest.mark.parametrize("loader, n, d, first, last, filename", LOADERS)
def test_bunch_has_table_i_shape_and_float64_finite_values(
    loader, n, d, first, last, filename
):
    bunch = loader()
    assert bunch.data.shape == (n, d)
    assert bunch.target.shape == (n,)
    assert bunch.data.dtype == np.float64 and bunch.target.dtype == np.float64
    assert np.isfinite(bunch.data).all() and np.isfinite(bunch.target).all()
    assert len(bunch.feature_names) == d
    assert (bunch.feature_names[0], bunch.feature_names[-1]) == (first, last)
    assert len(set(bunch.feature_names)) == d
    assert len(bunch.target_names) == 1
    assert bunch.frame is None
    # DESCR documents the paper's split sizes and the data's source.
    assert "Table I" in bunch.DESCR and "Source" in bunch.DESCR


@pytest.mark.parametrize("loader, n, d, first, last, filename", LOADERS)
def test_loading_is_deterministic_and_return_x_y_matches_bunch(
    loader, n, d, first, last, filename
):
    bunch = loader()
    X, y = loader(return_X_y=True)
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)
    # A fresh copy each call: mutating one result does not leak into the next.
    X[0, 0] = np.nan
    assert np.isfinite(loader().data[0, 0])


@pytest.mark.parametrize("loader, n, d, first, last, filename", LOADERS)
def test_as_frame_gives_pandas_objects_with_the_same_values(
    loader, n, d, first, last, filename
):
    pd = pytest.importorskip("pandas")
    bunch = loader(as_frame=True)
    X, y = loader(return_X_y=True)
    assert isinstance(bunch.frame, pd.DataFrame)
    assert bunch.frame.shape == (n, d + 1)
    assert isinstance(bunch.data, pd.DataFrame) and isinstance(bunch.target, pd.Series)
    assert list(bunch.data.columns) == list(bunch.feature_names)
    assert bunch.target.name == bunch.target_names[0]
    np.testing.assert_array_equal(bunch.data.to_numpy(), X)
    np.testing.assert_array_equal(bunch.target.to_numpy(), y)
    X_df, y_s = loader(return_X_y=True, as_frame=True)
    assert isinstance(X_df, pd.DataFrame) and isinstance(y_s, pd.Series)


def test_min_max_scaled_files_span_zero_to_one():
    # Every column of Heart and Appliances was min-max scaled over the whole
    # file (a few maxima are 1 - 2**-53, as written by the upstream scaling).
    for loader in (load_heart, load_appliances):
        X, y = loader(return_X_y=True)
        values = np.column_stack([X, y])
        np.testing.assert_array_equal(values.min(axis=0), 0.0)
        np.testing.assert_allclose(values.max(axis=0), 1.0, rtol=0, atol=1e-15)


def test_appliances_raw_units_undo_the_min_max_scaling():
    _, scaled = load_appliances(return_X_y=True)
    _, watt_hours = load_appliances(return_X_y=True, raw_units=True)
    np.testing.assert_allclose(watt_hours, 10.0 + 1070.0 * scaled)
    assert (watt_hours.min(), watt_hours.max()) == (10.0, 1080.0)
    # The raw Appliances readings are multiples of 10 Wh.
    np.testing.assert_allclose(
        watt_hours / 10.0, np.round(watt_hours / 10.0), atol=1e-9
    )


@pytest.mark.parametrize("loader, n, d, first, last, filename", LOADERS)
def test_corrupted_file_raises_checksum_error_naming_file_and_hashes(
    loader, n, d, first, last, filename, tmp_path, monkeypatch
):
    source = _base._DATA_DIR / filename
    copy = tmp_path / filename
    with source.open("rb") as src, copy.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    content = bytearray(copy.read_bytes())
    content[len(content) // 2] ^= 0xFF
    copy.write_bytes(bytes(content))
    monkeypatch.setattr(_base, "_DATA_DIR", tmp_path)
    with pytest.raises(ChecksumError) as info:
        loader()
    message = str(info.value)
    assert filename in message
    assert _base._SHA256[filename] in message
    assert "sha256" in message


def test_intact_copy_outside_the_package_loads(tmp_path, monkeypatch):
    # The checksum error above comes from the changed byte, not from the new place.
    filename = "boston.csv.gz"
    (tmp_path / filename).write_bytes((_base._DATA_DIR / filename).read_bytes())
    monkeypatch.setattr(_base, "_DATA_DIR", tmp_path)
    assert load_boston_housing().data.shape == (506, 13)


def test_values_read_back_exactly_as_python_parses_the_csv():
    content = gzip.decompress((_base._DATA_DIR / "boston.csv.gz").read_bytes())
    lines = content.decode().splitlines()
    header = lines[0].split(",")
    expected = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    bunch = load_boston_housing()
    assert header[:-1] == list(bunch.feature_names)
    assert header[-1] == "target"
    np.testing.assert_array_equal(bunch.data, expected[:, :-1])
    np.testing.assert_array_equal(bunch.target, expected[:, -1])
