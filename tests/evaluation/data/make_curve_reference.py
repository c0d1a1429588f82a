"""Write curve_reference.csv: a small poisoning_curve run, for the regression test.

``poisoning_curve`` learned to take several attacks; with the default (the
stealthy attack) its numbers must not change. This script was run at commit
ba23a5a (before the change; the attack base kept every bit, see
tests/attacks/data/make_stealthy_reference.py):

    python tests/evaluation/data/make_curve_reference.py

and ``tests/evaluation/test_curve.py::test_default_attack_numbers_are_unchanged``
compares today's results against the file.
"""

from pathlib import Path

from skpoison.evaluation import poisoning_curve

ARGS = dict(
    ratios=[0.0, 0.1, 0.2],
    alphas=[1.0, 0.5],
    defenses=["none", "trim"],
    n_repetitions=2,
    attack_params={"n_outer_steps": 3},
)
COLUMNS = ["repetition", "alpha", "ratio", "defense", "test_nmse", "risk_ref"]


def compute():
    return poisoning_curve("synthetic", **ARGS)[COLUMNS]


if __name__ == "__main__":
    path = Path(__file__).with_name("curve_reference.csv")
    # repr-exact floats: the test compares bit for bit.
    compute().to_csv(path, index=False, float_format="%.17g")
    print(f"wrote {path}")
