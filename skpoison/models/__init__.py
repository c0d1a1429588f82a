"""The victim models: full-batch gradient descent with the paper's initialisation.

The training convention (Eq. (1) with its ``1/2``, full-batch steps, zeros for
linear regression and Xavier/``1e-2`` for the MLP) lives in one place,
:mod:`skpoison.models._training`, shared with the attack's inner problem.
"""

from ._linear import TorchLinearRegressor
from ._mlp import TorchMLPRegressor
from ._training import build_mlp

__all__ = ["TorchLinearRegressor", "TorchMLPRegressor", "build_mlp"]
