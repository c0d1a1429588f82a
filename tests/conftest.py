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
