"""Defenses against data poisoning in regression.

Every defense follows one contract (see :mod:`skpoison.defenses._base`): ``fit``
sets ``inlier_mask_`` and ``scores_``; ``fit_resample`` returns the kept points.
"""

from ._base import BaseDefense
from ._bayesclean import BayesCleanFilter
from ._defended import DefendedRegressor
from ._duti import DutiFilter
from ._huber import make_huber_baseline
from ._itrim import ITrimRegressor
from ._proda import ProdaRegressor, proda_n_groups
from ._sever import SeverFilter
from ._trim import TrimRegressor

__all__ = [
    "BaseDefense",
    "BayesCleanFilter",
    "DefendedRegressor",
    "DutiFilter",
    "ITrimRegressor",
    "ProdaRegressor",
    "SeverFilter",
    "make_huber_baseline",
    "proda_n_groups",
    "TrimRegressor",
]
