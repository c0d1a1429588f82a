"""Count the inputs the reliability suite tries, per public estimator or function.

Runs ``pytest tests/reliability`` (slow tests excluded unless ``--slow``) with
``SKPOISON_RELIABILITY_LOG`` set, so that every call made through
``reliability_helpers.call`` / ``record`` is logged, then prints one markdown
table: for each estimator or function, how many inputs of each kind were
tried, and what came back (``finite`` results or the exception types).

Usage (from the repository root)::

    python tests/reliability/count_inputs.py            # run, then count
    python tests/reliability/count_inputs.py --log F    # count an existing log
    python tests/reliability/count_inputs.py --matrix   # and the fault matrix

The numbers in ``doc/reliability.md`` come from this command.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

GROUPS = {
    "hypothesis": "random data",
    "parameter": "bad parameters",
    "trusted set": "bad parameters",
    "scale": "numerical",
    "inner learning rate": "numerical",
    "learning rate": "numerical",
    "victim learning rate": "numerical",
    "near-singular X^T X": "numerical",
    "known bug": "bad data",
    "fixed bug": "bad data",
}
COLUMNS = [
    "bad data",
    "bad parameters",
    "random data",
    "numerical",
    "determinism",
    "persistence",
    "fault tolerance",
]


def _group(category: str) -> str:
    if category in GROUPS:
        return GROUPS[category]
    if category.startswith(("X_val", "X_val ", "y_val")):
        return "bad parameters"
    if category.startswith("determinism"):
        return "determinism"
    if category.startswith(("persistence", "export")):
        return "persistence"
    if "resume" in category or category.startswith("failed refit"):
        return "fault tolerance"
    return "bad data"


def _name(subject: str) -> str:
    base = subject.split("(")[0]
    return {"save/load_poisoned_dataset": "save_poisoned_dataset"}.get(base, base)


def summarise(records: list[dict]) -> str:
    counts = collections.defaultdict(collections.Counter)
    outcomes = collections.defaultdict(collections.Counter)
    for rec in records:
        name = _name(rec["subject"])
        counts[name][_group(rec["category"])] += 1
        outcome = rec["outcome"]
        outcomes[name]["finite" if "units saved" in outcome else outcome] += 1
    lines = [
        "| estimator / function | " + " | ".join(COLUMNS) + " | total | outcomes |",
        "|---" * (len(COLUMNS) + 3) + "|",
    ]
    for name in sorted(counts, key=str.lower):
        row = [str(counts[name][c]) for c in COLUMNS]
        total = sum(counts[name].values())
        seen = ", ".join(f"{k} {v}" for k, v in outcomes[name].most_common())
        lines.append(f"| `{name}` | " + " | ".join(row) + f" | {total} | {seen} |")
    total = sum(sum(c.values()) for c in counts.values())
    lines.append(f"\n{total} inputs tried on {len(counts)} estimators and functions.")
    return "\n".join(lines)


ABBREV = {
    "finite": "ok",
    "non-finite": "NaN/inf",
    "ValueError": "VE",
    "TypeError": "TE",
    "DivergenceError": "DE",
    "InvalidParameterError": "IPE",
}


def fault_matrix(records: list[dict]) -> str:
    """Bad-data faults x subjects: what each call returned (one call per cell)."""
    sys.path.insert(0, str(HERE))
    from test_bad_input import FAULTS, KNOWN_BUGS

    cells, subjects = {}, []
    for rec in records:
        if rec["category"] in FAULTS:
            cells[rec["subject"], rec["category"]] = rec["outcome"]
            if rec["subject"] not in subjects:
                subjects.append(rec["subject"])
    lines = [
        "| fault | " + " | ".join(f"`{s}`" for s in subjects) + " |",
        "|---" * (len(subjects) + 1) + "|",
    ]
    for fault in FAULTS:
        row = []
        for subject in subjects:
            outcome = cells.get((subject, fault))
            text = "-" if outcome is None else ABBREV.get(outcome, outcome)
            row.append(text + (" (bug)" if (subject, fault) in KNOWN_BUGS else ""))
        lines.append(f"| {fault} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", help="count an existing log instead of running pytest")
    parser.add_argument("--slow", action="store_true", help="include slow tests")
    parser.add_argument(
        "--matrix", action="store_true", help="also print faults x subjects outcomes"
    )
    args = parser.parse_args(argv)
    if args.log:
        log = Path(args.log)
    else:
        log = Path(tempfile.mkdtemp()) / "reliability.json"
        # Derandomised examples (tests/conftest.py): the same counts every run.
        env = dict(
            os.environ,
            SKPOISON_RELIABILITY_LOG=str(log),
            SKPOISON_HYPOTHESIS_PROFILE="counts",
        )
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(HERE),
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        if args.slow:
            cmd += ["-m", "slow or not slow"]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        print(proc.stdout.strip().splitlines()[-1], file=sys.stderr)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], file=sys.stderr)
            return proc.returncode
    records = json.loads(log.read_text(encoding="utf-8"))
    print(summarise(records))
    if args.matrix:
        print()
        print(fault_matrix(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
