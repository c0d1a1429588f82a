"""Defenses against data poisoning in regression.

Every defense follows one contract (see :mod:`skpoison.defenses._base`): ``fit``
sets ``inlier_mask_`` and ``scores_``; ``fit_resample`` returns the kept points.
"""

from ._base import BaseDefense
from ._bayesclean import BayesCleanFilter
from ._defended import DefendedRegressor

__all__ = [
    "BaseDefense",
    "BayesCleanFilter",
    "DefendedRegressor",
]
