"""Where a benchmark result comes from: the commit it ran at."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def commit(*, full: bool = False, root: str | Path | None = None) -> str:
    """The commit the run is at, ``-dirty`` if tracked files differ from it.

    The short hash by default, the full 40 hex digits with ``full=True``;
    ``"unknown"`` outside a git checkout (or without git). ``root``: another
    checkout's (a benchmark's old side), instead of this one's.
    """
    here = Path(__file__).parent if root is None else Path(root)
    short = [] if full else ["--short"]
    try:
        head = subprocess.check_output(
            ["git", "rev-parse", *short, "HEAD"], text=True, cwd=here
        ).strip()
        dirty = subprocess.check_output(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            text=True,
            cwd=here,
        ).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
