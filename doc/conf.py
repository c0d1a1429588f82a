"""Sphinx configuration of the skpoison documentation.

Build with ``doc/build.sh`` (see ``doc/README.md``). The build must stay
warning-free: CI runs it with ``-W --keep-going``.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import warnings
from pathlib import Path

import skpoison

DOC_DIR = Path(__file__).resolve().parent
REPO_DIR = DOC_DIR.parent
sys.path.insert(0, str(DOC_DIR / "sphinxext"))

# -- Project ------------------------------------------------------------------

project = "skpoison"
author = "skpoison developers"
copyright = "2026, skpoison developers"
version = release = skpoison.__version__

# -- General ------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "sphinx_design",
    "skpoison_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "README.md",
    "**/README.md",
    "sg_execution_times.rst",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
    "auto_examples/*.codeobj.json",
]
default_role = "literal"
pygments_style = "sphinx"
# No intersphinx: the build must work offline. References to numpy/sklearn
# objects render as plain code (nitpicky is off, so they do not warn).
nitpicky = False

# -- autodoc / autosummary / numpydoc -------------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
# "fit_resample()" rather than "StealthyPoisoner.fit_resample()" in a page's TOC.
toc_object_entries_show_parents = "hide"
autodoc_typehints = "none"  # numpydoc sections already give the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- MyST (the markdown pages owned by other developers) -------------------------

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# Markdown reports link to repository files (results, scripts) that are not
# documentation pages; do not fail the build on those.
suppress_warnings = ["myst.xref_missing"]

# -- sphinx-gallery ---------------------------------------------------------------


def _missing_imports(example: Path) -> list[str]:
    """Names an example imports from skpoison that do not exist (yet)."""
    missing = []
    tree = ast.parse(example.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "skpoison"
        ):
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                missing.append(node.module)
                continue
            missing += [
                f"{node.module}.{a.name}"
                for a in node.names
                if not hasattr(module, a.name)
            ]
    return missing


# The API is written in parallel with these docs: an example whose imports do
# not resolve yet is left out of the gallery (tests/test_docs.py fails on it,
# so a renamed function cannot silently drop an example).
_skipped = {}
for _example in sorted((REPO_DIR / "examples").glob("plot_*.py")):
    _missing = _missing_imports(_example)
    if _missing:
        _skipped[_example.name] = _missing
if _skipped:
    print("skpoison docs: gallery examples left out (missing API):")
    for _name, _missing in _skipped.items():
        print(f"  {_name}: {', '.join(_missing)}")

sphinx_gallery_conf = {
    "examples_dirs": str(REPO_DIR / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": (
        r"(__init__\.py|"
        + "|".join(map(lambda n: n.replace(".", r"\."), _skipped))
        + ")"
        if _skipped
        else r"__init__\.py"
    ),
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("skpoison",),
    "reference_url": {"skpoison": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    # From a first attack to the paper's figures (doc/sphinxext/skpoison_docs.py).
    "within_subsection_order": "skpoison_docs.ExampleOrder",
    "show_memory": False,
    "min_reported_time": 1,
    "abort_on_example_error": True,
}

# Non-interactive backend for the gallery; torch must not grab every core.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")

# -- HTML -------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skpoison {version}"
html_static_path = ["_static"]
html_css_files = ["css/skpoison.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "light"}

# MathJax is served by the site itself, so that the math renders offline:
# sphinx-mathjax-offline (in the doc extra) ships MathJax 3 and copies it to
# _static/mathjax. Without it, or with SKPOISON_DOCS_MATHJAX naming another
# copy (a URL or file:// path), that copy or Sphinx's CDN is used, and a line
# says so.
if os.environ.get("SKPOISON_DOCS_MATHJAX"):
    mathjax_path = os.environ["SKPOISON_DOCS_MATHJAX"]
else:
    try:
        importlib.import_module("sphinx-mathjax-offline")
    except ImportError:
        print(
            "skpoison docs: sphinx-mathjax-offline is not installed, MathJax comes "
            "from a CDN (offline the math shows as TeX); pip install -e '.[doc]'."
        )
    else:
        extensions.append("sphinx-mathjax-offline")
