"""Where a benchmark result comes from: the commit it ran at."""

from __future__ import annotations

import subprocess
from pathlib import Path


def commit() -> str:
    """The short commit the run is at, ``-dirty`` if tracked files differ from it."""
    here = Path(__file__).parent
    try:
        head = subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], text=True, cwd=here
        ).strip()
        dirty = subprocess.check_output(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            text=True,
            cwd=here,
        ).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")
