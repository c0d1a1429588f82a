import subprocess
import sys

import skpoison


def test_subpackages_load_on_attribute_access():
    for name in ("attacks", "datasets", "defenses", "evaluation", "metrics", "models"):
        assert getattr(skpoison, name).__name__ == f"skpoison.{name}"
        assert name in dir(skpoison)


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError, match="no_such_thing"):
        skpoison.no_such_thing  # noqa: B018


def test_import_is_light():
    code = "import sys, skpoison; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
