"""The README and the getting-started page work as a newcomer reads them.

Every Python block of README.md runs and prints what the README shows (the
same lines, names and ordering; numbers move with the attack, so they are not
compared); every ``skpoison`` command line parses; and every package the
Python blocks of README.md and doc/getting_started.rst import is installed by
the README's install command (the core dependencies plus the ``evaluation``
extra). The ``>>>`` blocks of getting_started.rst run in tests/test_docs.py.
"""

import ast
import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
GETTING_STARTED = (REPO / "doc" / "getting_started.rst").read_text(encoding="utf-8")

# Import name -> distribution name, where they differ.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "imblearn": "imbalanced-learn"}
_LINE = re.compile(r"^ *(?P<name>[\w ]+): test NMSE (?P<value>\d+\.\d{3})$")


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _example() -> tuple[str, str]:
    """README's Python example and the output shown right after it."""
    (match,) = re.findall(
        r"```python\n(.*?)```(?:(?!```).)*```text\n(.*?)```", README, re.S
    )
    return match


def _rst_blocks(text: str) -> list[str]:
    """The Python of ``.. code-block:: pycon`` blocks, prompts stripped."""
    blocks = re.findall(r"code-block:: pycon\n\n((?:   .*\n|\n)+)", text)
    return [
        "\n".join(
            ln.strip()[4:]
            for ln in b.splitlines()
            if ln.strip()[:4] in (">>> ", "... ")
        )
        for b in blocks
    ]


def _run(code: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    return buffer.getvalue()


def _parse(output: str) -> dict[str, float]:
    lines = output.strip().splitlines()
    matches = [_LINE.match(line) for line in lines]
    assert all(matches), f"unexpected README output lines: {lines}"
    return {m["name"].strip(): float(m["value"]) for m in matches}


def _installed_by_readme() -> set[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert 'pip install -e ".[evaluation]"' in README
    reqs = [*meta["dependencies"], *meta["optional-dependencies"]["evaluation"]]
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}


def _imports(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_readme_has_one_python_example_with_its_output():
    assert len(_blocks(README, "python")) == 1
    code, shown = _example()
    assert list(_parse(shown)) == ["no defense", "BayesCleanFilter", "TrimRegressor"]
    assert "n_outer_steps=30" in code


@pytest.mark.parametrize(
    "page, blocks",
    [("README.md", _blocks(README, "python")),
     ("getting_started.rst", _rst_blocks(GETTING_STARTED))],
)  # fmt: skip
def test_the_python_blocks_need_only_what_the_readme_installs(page, blocks):
    assert blocks, f"no Python block found in {page}"
    needed = set().union(*map(_imports, blocks)) - set(sys.stdlib_module_names)
    needed = {_DISTRIBUTIONS.get(n, n).lower() for n in needed} - {"skpoison"}
    missing = needed - _installed_by_readme()
    assert not missing, f"{page} imports {missing}, not in the README's install"


def test_the_readme_example_runs_quickly_and_prints_its_lines():
    code, shown = _example()
    fast = code.replace("n_outer_steps=30", "n_outer_steps=2")
    printed = _parse(_run(fast))
    assert list(printed) == list(_parse(shown))


@pytest.mark.slow
def test_the_readme_example_as_written_shows_the_defense_helping():
    code, shown = _example()
    printed = _parse(_run(code))
    assert list(printed) == list(_parse(shown))
    assert printed["BayesCleanFilter"] < printed["no defense"]


def _command_lines():
    for block in _blocks(README, "bash") + re.findall(
        r"code-block:: bash\n\n((?:   .*\n|\n)+)", GETTING_STARTED
    ):
        for chain in block.splitlines():
            for part in chain.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "skpoison":
                    yield words[1:]


@pytest.mark.parametrize("argv", list(_command_lines()), ids=" ".join)
def test_every_skpoison_command_line_parses(argv):
    from skpoison.cli import build_parser

    args = build_parser().parse_args(argv)
    assert args.command in {"evaluate", "reproduce", "figure-9", "findings"}
