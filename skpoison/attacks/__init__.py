"""Poisoning attacks on regression.

:class:`StealthyPoisoner` is the paper's stealthy bilevel attack (Section IV);
:class:`StatPPoisoner`, :class:`FlipPoisoner` and :class:`NoisePoisoner` are the
literature's baselines; every attack subclasses :class:`BasePoisoner`, the
shared sampler contract;
the hypergradient engines behind it are public for benchmarks and research, and
the paper's experimental settings (Tables II and III) are available as presets.
"""

from ._base import BasePoisoner
from ._batched import BatchedUnrolledEngine
from ._flip import FlipPoisoner
from ._hypergradient import LinearSpectralEngine, UnrolledEngine, make_engine
from ._implicit import ImplicitLinearEngine
from ._noise import NoisePoisoner
from ._optp import OptPPoisoner
from ._presets import (
    ATTACK_PRESETS,
    OPTP_OPTIONS,
    VICTIM_PRESETS,
    get_preset,
    get_victim_preset,
)
from ._risk import detectability_risk, residual_std
from ._statp import StatPPoisoner
from ._stealthy import StealthyPoisoner

__all__ = [
    "ATTACK_PRESETS",
    "BasePoisoner",
    "BatchedUnrolledEngine",
    "FlipPoisoner",
    "ImplicitLinearEngine",
    "LinearSpectralEngine",
    "NoisePoisoner",
    "OPTP_OPTIONS",
    "OptPPoisoner",
    "StatPPoisoner",
    "StealthyPoisoner",
    "UnrolledEngine",
    "VICTIM_PRESETS",
    "detectability_risk",
    "get_preset",
    "get_victim_preset",
    "make_engine",
    "residual_std",
]
