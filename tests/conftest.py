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
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


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
