"""Evaluation: poisoning curves, defenses by name, checkpoints, plots and reports.

:func:`poisoning_curve` runs the paper's protocol (Appendix E), for one attack
or several (:func:`build_attack`), and returns a tidy table;
:func:`plot_poisoning_curve` and :func:`write_report` turn it into the paper's
figures and tables, with 95 % intervals and paired tests
(:func:`mean_interval`, :func:`paired_test`, :func:`holm`,
:func:`best_defense`). The ``skpoison`` command wraps them.
"""

from ._checkpoint import StudyStore
from ._curve import DATASETS, PAPER_ALPHAS, PAPER_RATIOS, load_dataset, poisoning_curve
from ._figure9 import figure_9
from ._plots import (
    plot_adaptive_gain,
    plot_defense_gain,
    plot_detection,
    plot_nmse,
    plot_poisoning_curve,
)
from ._registry import (
    ATTACK_NAMES,
    DEFENSE_NAMES,
    PAPER_TRUSTED_ITEMS,
    build_attack,
    build_defense,
    n_trusted_items,
)
from ._report import summarize, write_report
from ._sensitivity import SENSITIVITY_SETTINGS, sensitivity_study
from ._stats import MIN_REPETITIONS, best_defense, holm, mean_interval, paired_test

__all__ = [
    "ATTACK_NAMES",
    "DATASETS",
    "DEFENSE_NAMES",
    "MIN_REPETITIONS",
    "PAPER_ALPHAS",
    "PAPER_RATIOS",
    "PAPER_TRUSTED_ITEMS",
    "SENSITIVITY_SETTINGS",
    "StudyStore",
    "best_defense",
    "build_attack",
    "build_defense",
    "figure_9",
    "holm",
    "load_dataset",
    "mean_interval",
    "n_trusted_items",
    "paired_test",
    "plot_adaptive_gain",
    "plot_defense_gain",
    "plot_detection",
    "plot_nmse",
    "plot_poisoning_curve",
    "poisoning_curve",
    "sensitivity_study",
    "summarize",
    "write_report",
]
