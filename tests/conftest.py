"""Shared test configuration."""

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

# CI runs on 2 cores; keep hypothesis quick and deterministic there.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
# dev's examples, the same every run: tests/reliability/count_inputs.py counts
# with it (property tests that sample an estimator would otherwise spread
# their examples differently on each run, and the documented counts with them).
settings.register_profile("counts", max_examples=60, deadline=None, derandomize=True)
settings.load_profile(
    os.environ.get("SKPOISON_HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI") else "dev")
)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


#: Stored reference numbers are compared to this relative tolerance, not bit for
#: bit: they are bit-identical on the CPU that wrote them, but OpenBLAS picks
#: its kernels by CPU model, and another machine (a new CI host) rounds the
#: same computation differently in the last bits (seen: 1e-14 relative on the
#: attack's poison points). 1e-11 is far below any change of algorithm.
REFERENCE_RTOL = 1e-11


def assert_matches_reference(computed, stored, name=""):
    """``computed`` equals the stored reference ``stored`` up to last-bit rounding.

    Integer, boolean and string arrays must be identical; floating arrays
    agree to :data:`REFERENCE_RTOL` relative to the array's largest magnitude
    (so values that are 0 in the reference need not be bit-exact 0).
    """
    computed, stored = np.asarray(computed), np.asarray(stored)
    assert computed.shape == stored.shape, name
    if computed.dtype.kind != "f" or stored.dtype.kind != "f":
        assert np.array_equal(computed, stored), name
        return
    scale = np.nanmax(np.abs(stored), initial=0.0)
    np.testing.assert_allclose(
        computed, stored, rtol=REFERENCE_RTOL, atol=REFERENCE_RTOL * scale, err_msg=name
    )


@pytest.fixture
def assert_reference():
    return assert_matches_reference


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def two_threads():
    """torch on two threads for the test, the previous count restored after."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def reference_script():
    """Load a fixture-writing script (``data/make_*.py`` next to a test) as a module.

    Regression tests compare today's numbers with a file such a script wrote
    at an older commit; loading the script gives the exact computation again.
    """
    import importlib.util

    def load(path):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
