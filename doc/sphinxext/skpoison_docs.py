"""Small Sphinx helpers for the skpoison documentation.

``doc/reproduction.md`` and ``doc/reliability.md`` are written by other
developers and may not exist yet when the documentation is built. The toctree
line ``.. skpoison-optional-pages:: reproduction reliability`` in a page is
replaced by toctree entries for those of the named pages that exist, so the
build stays warning-free either way (a missing document in a toctree is a
warning; an existing one outside every toctree is a warning too).
"""

from __future__ import annotations

import re
from pathlib import Path

_MARKER = re.compile(
    r"^(?P<indent>[ \t]*)\.\. skpoison-optional-pages::(?P<names>.*)$", re.M
)


def _expand_optional_pages(app, docname, source):
    srcdir = Path(app.srcdir)

    def replace(match):
        entries = [
            name
            for name in match["names"].split()
            if any((srcdir / f"{name}{suffix}").exists() for suffix in (".md", ".rst"))
        ]
        return "\n".join(match["indent"] + name for name in entries)

    source[0] = _MARKER.sub(replace, source[0])


def setup(app):
    app.connect("source-read", _expand_optional_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
