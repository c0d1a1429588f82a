"""The documentation stays in step with the public API.

- Every public name (each subpackage's ``__all__``) has an entry in the API
  reference (``doc/api.rst``), and every entry there exists.
- Every gallery example imports only names that exist: ``doc/conf.py`` leaves
  out examples whose imports fail, and this test makes such a skip visible.

The Sphinx build itself (``doc/build.sh``) is run by CI separately; it needs
the ``doc`` extra.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import skpoison

REPO = Path(__file__).resolve().parents[1]
API_RST = REPO / "doc" / "api.rst"
EXAMPLES = sorted((REPO / "examples").glob("plot_*.py"))

PUBLIC_MODULES = [
    f"skpoison.{name}" for name in skpoison.__all__ if name != "__version__"
]
PUBLIC_MODULES.append("skpoison.exceptions")


def _documented_names() -> set[str]:
    """Fully qualified names listed in autosummary blocks of api.rst."""
    names: set[str] = set()
    module = None
    in_autosummary = False
    for line in API_RST.read_text(encoding="utf-8").splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current[1]
            in_autosummary = False
        elif line.startswith(".. autosummary::"):
            in_autosummary = True
        elif in_autosummary:
            stripped = line.strip()
            if line and not line.startswith(" "):
                in_autosummary = False
            elif stripped and not stripped.startswith(":"):
                names.add(f"{module}.{stripped}")
    return names


def _public_names() -> list[str]:
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names += [f"{module_name}.{n}" for n in getattr(module, "__all__", [])]
    return names


@pytest.mark.parametrize("name", _public_names())
def test_public_name_is_in_api_reference(name):
    assert name in _documented_names(), (
        f"{name} is public (in __all__) but missing from doc/api.rst"
    )


def test_api_reference_names_exist():
    missing = []
    for qualified in sorted(_documented_names()):
        module_name, _, name = qualified.rpartition(".")
        module = importlib.import_module(module_name)
        if name not in getattr(module, "__all__", ()) or not hasattr(module, name):
            missing.append(qualified)
    assert not missing, f"doc/api.rst lists names that are not public: {missing}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_imports_resolve(example):
    tree = ast.parse(example.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "skpoison"
        ):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), (
                    f"{example.name} imports {node.module}.{alias.name}, which does "
                    "not exist: the gallery would leave this example out"
                )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_has_gallery_header(example):
    """sphinx-gallery needs a module docstring whose first line is a title."""
    docstring = ast.get_docstring(ast.parse(example.read_text(encoding="utf-8")))
    assert docstring, f"{example.name} has no module docstring"
    lines = docstring.strip().splitlines()
    if set(lines[0]) == {"="}:  # an overline
        lines = lines[1:]
    title, underline = lines[:2]
    assert title.strip() and set(underline) == {"="}
    assert len(underline) >= len(title.rstrip())


@pytest.mark.parametrize("page", ["getting_started.rst"])
def test_code_on_page_runs(page):
    """The ``>>>`` examples of the narrative pages are doctests."""
    import doctest

    pytest.importorskip("imblearn")
    result = doctest.testfile(
        str(REPO / "doc" / page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
        report=True,
    )
    assert result.failed == 0, f"{result.failed} doctest(s) of doc/{page} failed"


# Public names whose docstring has no Examples section yet. Each is a strict
# xfail: the day its Examples section lands the test passes, pytest reports
# XPASS as a failure, and the name must be removed from this set.
MISSING_EXAMPLES: set[str] = set()


def _public_objects():
    import inspect

    for qualified in _public_names():
        module_name, _, name = qualified.rpartition(".")
        obj = getattr(importlib.import_module(module_name), name)
        if inspect.isfunction(obj) or (
            inspect.isclass(obj) and not issubclass(obj, BaseException)
        ):
            marks = []
            if qualified in MISSING_EXAMPLES:
                marks = [pytest.mark.xfail(strict=True, reason="no Examples yet")]
            yield pytest.param(obj, id=qualified, marks=marks)


@pytest.mark.parametrize("obj", list(_public_objects()))
def test_public_docstring_has_numpydoc_examples(obj):
    """Every public function and class shows how to use it (run as a doctest).

    Exceptions and warnings are exempt: their module docstring shows them.
    """
    import inspect

    doc = inspect.getdoc(obj) or ""
    assert re.search(r"^Examples\n-{8}", doc, re.M), (
        f"{obj.__module__}.{obj.__qualname__} has no numpydoc 'Examples' section"
    )
