"""One command regenerates the reproduction page: skpoison reproduce's settings,
doc/sphinxext/reproduction_page.py's generated blocks, doc/reproduce.sh."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from skpoison.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "doc" / "reproduction.md"


def _page_tool():
    path = ROOT / "doc" / "sphinxext" / "reproduction_page.py"
    spec = importlib.util.spec_from_file_location("reproduction_page", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rp = _page_tool()

TINY = ["--datasets", "boston_housing", "--reps", "2", "--alphas", "1", "0.1",
        "--ratios", "0", "0.075", "--defenses", "none", "trim", "bayesclean",
        "bayesclean_paper", "--n-outer-steps", "1", "--figure9-seeds", "1",
        "--figure9-n-outer-steps", "1", "--no-dnn", "--n-jobs", "1",
        "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder as doc/reproduce.sh leaves it, without the sensitivity study."""
    run = tmp_path_factory.mktemp("run")
    assert main(["reproduce", "--out", str(run / "repro"), *TINY]) == 0
    step = dict(name="reproduce", command="skpoison reproduce --out repro " +
                " ".join(TINY), started="2026-12-02T10:00:00Z",
                finished="2026-12-02T10:00:09Z", seconds=9.0, status=0)  # fmt: skip
    (run / "steps.jsonl").write_text(json.dumps(step) + "\n")
    rp.write_provenance(run, commit="0123456789abcdef" * 2 + "01234567", ref="HEAD",
                        subject="a subject", command="doc/reproduce.sh --tiny",
                        settings={"tiny": True})  # fmt: skip
    return run


# The tiny run takes about 8 s (Fig. 9, the figures): slow.
@pytest.mark.slow
def test_reproduce_runs_the_settings_it_is_given(tiny_run):
    index = json.loads((tiny_run / "repro" / "index.json").read_text())
    (study,) = index["studies"]
    assert (study["dataset"], study["model"], study["repetitions"]) == (
        "boston_housing", "linear", 2)  # fmt: skip
    df = pd.read_csv(tiny_run / "repro" / "boston_housing-linear" / "results.csv")
    assert len(df) == study["rows"] == 2 * 2 * 2 * 4
    assert set(df["alpha"]) == {1.0, 0.1} and set(df["ratio"]) == {0.0, 0.075}
    assert set(df["defense"]) == {"none", "trim", "bayesclean", "bayesclean_paper"}
    fig9 = pd.read_csv(tiny_run / "repro" / "figure9" / "figure9.csv")
    assert (
        sorted(fig9["random_state"].unique())
        == [0]
        == list(range(index["figure9"]["seeds"]))
    )


@pytest.mark.slow
def test_the_page_is_filled_from_the_run(tiny_run):
    blocks = rp.blocks_from_run(tiny_run)
    assert set(blocks) == set(rp.BLOCKS)
    page = PAGE.read_text()
    filled = rp.fill(page, blocks)
    assert "commit `0123456`" in filled and "doc/reproduce.sh --tiny" in filled
    findings = (tiny_run / "repro" / "findings.md").read_text()
    table = findings[findings.index("| paper's finding") :].split("\n\n")[0]
    assert table in filled and "| Boston Housing (LR) | 2 | 32 | 0 |" in filled
    assert "| study | alpha | gain % (residual rule)" in filled
    assert "Not run in this reproduction" in filled  # no sensitivity folder
    assert "The cross-check was not run" in filled
    # outside the blocks nothing changed, and filling again changes nothing
    strip = rp._BLOCK.sub("", page)
    assert rp._BLOCK.sub("", filled) == strip
    assert rp.fill(filled, blocks) == filled
    out = tiny_run / "page.md"
    out.write_text(filled)
    assert rp.main(["fill", str(tiny_run), "--page", str(out), "--check"]) == 0
    out.write_text(filled.replace("| 2 | 32 | 0 |", "| 2 | 33 | 0 |"))  # hand-edited
    assert rp.main(["fill", str(tiny_run), "--page", str(out), "--check"]) == 1


def test_the_page_has_every_generated_block_once():
    names = [m["name"] for m in rp._BLOCK.finditer(PAGE.read_text())]
    assert sorted(names) == sorted(rp.BLOCKS)


def test_the_crosscheck_block_quotes_the_json(tmp_path):
    (tmp_path / "crosscheck").mkdir()
    check = dict(commit="abcdef0123", dataset="heart", n_poison=720, batch=120,
                 preset={"n_outer_steps": 50}, max_abs_diff_x=6.77e-12,
                 max_abs_diff_y=0.0, max_move_from_start=5.26)  # fmt: skip
    path = tmp_path / "crosscheck" / "crosscheck_attack_heart.json"
    path.write_text(json.dumps(check))
    text = rp._crosscheck_block(tmp_path)
    assert "heart: 720 poison points in batches of 120, T_out 50" in text
    assert "largest difference 6.8e-12 in the features" in text
    assert "(commit `abcdef0`)" in text


def test_provenance_names_the_cpu_and_its_blas(tmp_path):
    # Results depend on the BLAS kernels at rounding level: the record says which.
    prov = rp.write_provenance(tmp_path, commit="f" * 40, ref="HEAD", subject="s",
                               command="c", settings={})  # fmt: skip
    machine = json.loads((tmp_path / "provenance.json").read_text())["machine"]
    assert machine == prov["machine"]
    assert machine["cpu_model"] and isinstance(machine["cpu_model"], str)
    assert machine["blas"], "numpy's BLAS is loaded, so it is listed"
    prov["started"] = prov["finished"]
    block = rp._provenance_block(prov)
    assert machine["cpu_model"] in block and machine["blas"][0] in block
    # A record from before these fields still renders.
    del prov["machine"]["cpu_model"], prov["machine"]["blas"]
    assert prov["machine"]["processor"] in rp._provenance_block(prov)


def test_fill_refuses_blocks_that_do_not_match():
    page = "a\n<!-- BEGIN generated:x -->\nold\n<!-- END generated:x -->\nb\n"
    assert rp.fill(page, {"x": "new"}) == page.replace("old", "new")
    with pytest.raises(ValueError, match="missing: \\['x'\\]"):
        rp.fill(page, {})
    with pytest.raises(ValueError, match="not in the page: \\['y'\\]"):
        rp.fill(page, {"x": "", "y": ""})
    with pytest.raises(ValueError, match="twice"):
        rp.fill(page + page, {"x": ""})


def test_reproduce_refuses_bad_settings(capsys):
    assert main(["reproduce", "--out", "x", "--defenses", "nope"]) == 2
    assert "unknown defenses" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_reproduce_sh_tiny_from_a_clean_export(tmp_path):
    """doc/reproduce.sh --tiny on HEAD: every step, provenance, the filled page."""
    run = tmp_path / "run"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    done = subprocess.run(
        ["bash", str(ROOT / "doc" / "reproduce.sh"), "--tiny", "--n-jobs", "1",
         "--out", str(run)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    prov = json.loads((run / "provenance.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert prov["commit"] == head
    assert prov["skpoison_imported_from"] == str((run / "src" / "skpoison").resolve())
    assert [s["name"] for s in prov["steps"]] == [
        "crosscheck-boston_housing", "crosscheck-heart", "reproduce", "sensitivity"]  # fmt: skip
    assert all(s["status"] == 0 and s["seconds"] > 0 for s in prov["steps"])
    page = (run / "reproduction.md").read_text()
    assert f"`{head}`" in page and "| trim_max_iter |" in page
    assert f"(commit `{head[:7]}`)" in page  # the cross-check ran at that commit
    assert rp.main(["fill", str(run), "--page", str(run / "reproduction.md"),
                    "--check"]) == 0  # fmt: skip
