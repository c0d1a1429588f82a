"""Small Sphinx helpers for the skpoison documentation.

``doc/reproduction.md`` and ``doc/reliability.md`` are written by other
developers and may not exist yet when the documentation is built. The toctree
line ``.. skpoison-optional-pages:: Reproduction <reproduction>; reliability``
(entries separated by ``;``, each ``name`` or ``Title <name>``) in a page is
replaced by toctree entries for those of the named pages that exist, so the
build stays warning-free either way (a missing document in a toctree is a
warning; an existing one outside every toctree is a warning too). Likewise
``:optdoc:`the report <reproduction>``` becomes a ``:doc:`` link when the page
exists and plain text otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

# Cross-references in scikit-learn's own docstrings (inherited methods such as
# ``set_output`` or ``score``) point into scikit-learn's documentation, which an
# offline build cannot resolve: keep their text, drop the link.
_SKLEARN_ROLE = re.compile(r":(?:ref|term|doc):`(?:([^`<]*?)\s*<[^`>]*>|([^`<]*))`")

# ``of shape (n_features_in_,)`` without backticks: a trailing underscore makes
# ``n_features_in_`` a reST link target; quote such names.
_BARE_ATTRIBUTE_IN_SHAPE = re.compile(
    r"(shape \([^)]*?)(?<![`\w])([A-Za-z]\w*_)(?![`\w])"
)

# ``|x|`` written for an absolute value in docstring prose is a reST
# substitution reference (an error); outside inline literals, escape the bars.
_ABS_VALUE = re.compile(r"(?<![\\|])\|(?=[^\s|`])([^|`]*?[^\s|\\])\|(?!\|)")
_INLINE_LITERAL = re.compile(r"(``.+?``|`[^`]+`)")


def _escape_absolute_values(line: str) -> str:
    if line.lstrip().startswith(("|", "+")):  # a table row: leave it alone
        return line
    parts = _INLINE_LITERAL.split(line)
    for i in range(0, len(parts), 2):  # even parts are outside literals
        parts[i] = _ABS_VALUE.sub(r"\\|\1\\|", parts[i])
    return "".join(parts)


_MARKER = re.compile(
    r"^(?P<indent>[ \t]*)\.\. skpoison-optional-pages::(?P<names>.*)$", re.M
)


_OPTDOC = re.compile(r":optdoc:`(?P<title>[^`<]*?)\s*<(?P<target>[^`>]+)>`")


def _page_exists(srcdir: Path, name: str) -> bool:
    name = name.lstrip("/")
    return any((srcdir / f"{name}{suffix}").exists() for suffix in (".md", ".rst"))


def _expand_optional_pages(app, docname, source):
    srcdir = Path(app.srcdir)

    def replace(match):
        entries = []
        for item in filter(None, (i.strip() for i in match["names"].split(";"))):
            titled = re.fullmatch(r"(?P<title>.*?)\s*<(?P<name>[^>]+)>", item)
            name = titled["name"] if titled else item
            if _page_exists(srcdir, name):
                entries.append(item)
        return "\n".join(match["indent"] + entry for entry in entries)

    def link(match):
        if _page_exists(srcdir, match["target"]):
            return f":doc:`{match['title']} <{match['target']}>`"
        return match["title"]

    source[0] = _OPTDOC.sub(link, _MARKER.sub(replace, source[0]))


def _clean_docstring(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", "") or ""
    from_sklearn = module.startswith("sklearn") or name.startswith("sklearn")
    for i, line in enumerate(lines):
        if from_sklearn:
            line = _SKLEARN_ROLE.sub(lambda m: m[1] or m[2], line)
        while True:
            quoted = _BARE_ATTRIBUTE_IN_SHAPE.sub(r"\1`\2`", line)
            if quoted == line:
                break
            line = quoted
        lines[i] = _escape_absolute_values(line)


def setup(app):
    app.connect("source-read", _expand_optional_pages)
    app.connect("autodoc-process-docstring", _clean_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


class ExampleOrder:
    """Gallery order: from a first attack to the paper's figures, then the rest.

    A sort key for sphinx-gallery's ``within_subsection_order``.
    """

    ORDER = (
        "plot_attack_ridge_pipeline.py",
        "plot_stealth_tradeoff.py",
        "plot_bayesclean_grid_search.py",
        "plot_compare_defenses_boston.py",
        "plot_figure_9.py",
    )

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        rank = self.ORDER.index(name) if name in self.ORDER else len(self.ORDER)
        return (rank, name)

    def __repr__(self):
        return f"<{type(self).__name__}>"
