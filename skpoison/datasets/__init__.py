"""The paper's datasets, its synthetic set and its split / standardisation protocol.

Shipped with the package (no network needed): :func:`load_heart`,
:func:`load_boston_housing` and :func:`load_appliances`. Downloaded once and
cached: :func:`fetch_loan`. Synthetic: :func:`make_poisoning_regression_1d`.
Protocol (Appendix E, Table I): :func:`train_val_test_split`,
:class:`PaperStandardizer` and :func:`split_and_standardize`.
Poisoned sets: :func:`save_poisoned_dataset` and :func:`load_poisoned_dataset`
(``.npz`` or ``.csv`` with an ``is_poison`` column).
"""

from ._base import ChecksumError, load_appliances, load_boston_housing, load_heart
from ._loan import clear_data_home, fetch_loan, get_data_home
from ._poisoned import load_poisoned_dataset, save_poisoned_dataset
from ._split import PaperStandardizer, split_and_standardize, train_val_test_split
from ._synthetic import make_poisoning_regression_1d

__all__ = [
    "ChecksumError",
    "PaperStandardizer",
    "clear_data_home",
    "fetch_loan",
    "get_data_home",
    "load_appliances",
    "load_boston_housing",
    "load_heart",
    "load_poisoned_dataset",
    "make_poisoning_regression_1d",
    "save_poisoned_dataset",
    "split_and_standardize",
    "train_val_test_split",
]
