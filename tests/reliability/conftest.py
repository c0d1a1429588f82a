"""Configuration of the reliability suite.

Every call made through :func:`reliability_helpers.call` checks that the inputs
were not modified in place, and is recorded (subject, category of input,
outcome). Set ``SKPOISON_RELIABILITY_LOG=path.json`` to have the records written
at the end of the session; ``python tests/reliability/count_inputs.py`` does
that and prints the per-subject counts quoted in ``doc/reliability.md``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# The helpers live next to the tests (tests/ is not a package).
sys.path.insert(0, str(Path(__file__).parent))

from reliability_helpers import RECORDS


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("SKPOISON_RELIABILITY_LOG")
    if path and RECORDS:
        Path(path).write_text(json.dumps(RECORDS), encoding="utf-8")
