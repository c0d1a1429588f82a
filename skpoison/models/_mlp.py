"""TorchMLPRegressor: the paper's neural-network victim (LeakyReLU MLP)."""

from __future__ import annotations

from numbers import Real

from sklearn.utils._param_validation import Interval

from ._base import BaseTorchRegressor
from ._training import build_mlp, init_paper_params

__all__ = ["TorchMLPRegressor"]


class TorchMLPRegressor(BaseTorchRegressor):
    """A LeakyReLU network trained by full-batch gradient descent, as in the paper.

    The architecture is ``n_features x hidden_layer_sizes x 1`` (the paper's
    DNN is ``n_features x 32 x 8 x 1``), with Xavier-uniform weights and biases
    ``1e-2`` (Appendix E), trained on Eq. (1) by ``n_epochs`` full-batch steps.
    The attack's inner problem with ``model="mlp"`` runs the same code.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(32, 8)
        Widths of the hidden layers.
    learning_rate : float, default=0.1
        ``eta`` in the paper.
    n_epochs : int, default=100
        Number of full-batch steps (Table III).
    l2 : float, default=0.0
        ``lambda`` in Eq. (1), on the weight matrices only.
    negative_slope : float, default=0.01
        Slope of the LeakyReLU for negative inputs.
    device : str or torch.device, default="cpu"
        Where to train: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    dtype : {"float64", "float32"}, default="float64"
        Precision of training.
    random_state : int, RandomState instance or None, default=None
        Seeds the Xavier initialisation.

    Attributes
    ----------
    module_ : torch.nn.Sequential
        The trained network (a standard module on the CPU, usable with
        ``torch.func``); :func:`~skpoison.models.build_mlp` rebuilds the
        architecture from the parameters.
    loss_curve_ : list of float
        Training loss (Eq. (1)) before each step.
    n_iter_ : int
        Number of steps taken (``n_epochs``).
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string column names.

    See Also
    --------
    TorchLinearRegressor : The paper's linear victim.
    sklearn.neural_network.MLPRegressor : Mini-batch training, other inits.

    References
    ----------
    .. [1] J. Carnerero-Cano, L. Muñoz-González, P. Spencer and E. C. Lupu,
       "Stealthy Poisoning Attacks Bypass Defenses in Regression Settings",
       Appendix E.

    Examples
    --------
    >>> import numpy as np
    >>> from skpoison.models import TorchMLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, size=(200, 2))
    >>> y = np.abs(X[:, 0]) - X[:, 1]
    >>> reg = TorchMLPRegressor(n_epochs=300, random_state=0).fit(X, y)
    >>> reg.loss_curve_[-1] < reg.loss_curve_[0]
    True
    """

    _parameter_constraints: dict = {
        **BaseTorchRegressor._parameter_constraints,
        "hidden_layer_sizes": ["array-like"],
        "negative_slope": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        hidden_layer_sizes=(32, 8),
        learning_rate=0.1,
        n_epochs=100,
        l2=0.0,
        negative_slope=0.01,
        device="cpu",
        dtype="float64",
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.l2 = l2
        self.negative_slope = negative_slope
        self.device = device
        self.dtype = dtype
        self.random_state = random_state

    def _build_module(self, n_features, generator):
        sizes = tuple(self.hidden_layer_sizes)
        if not sizes:  # () is linear regression: TorchLinearRegressor
            raise ValueError(
                f"hidden_layer_sizes must be a non-empty sequence of positive ints, "
                f"got {self.hidden_layer_sizes!r}."
            )
        module = build_mlp(n_features, sizes, self.negative_slope).double()
        return init_paper_params(module, generator=generator)
