"""The skpoison command: help, outputs, bad input, and resuming a killed run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from skpoison.cli import build_parser, main
from skpoison.evaluation._curve import RESULT_COLUMNS

SMALL = [
    "--dataset", "synthetic", "--reps", "2", "--alphas", "1", "0.5",
    "--ratios", "0", "0.1", "--defenses", "none", "bayesclean", "trim",
    "--n-outer-steps", "3", "--no-progress",
]  # fmt: skip


@pytest.mark.parametrize("command", [[], ["evaluate"], ["reproduce"], ["figure-9"]])
def test_help_is_complete(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: skpoison" in text
    expected = {
        (): ["evaluate", "reproduce", "figure-9"],
        ("evaluate",): ["--dataset", "--data", "--target", "--model", "--attacks", "--alphas",
                        "--ratios", "--defenses", "--reps", "--n-jobs", "--out",
                        "--device", "--backend", "--scheduler", "results.csv"],
        ("reproduce",): ["--quick", "--out", "Loan"],
        ("figure-9",): ["--out", "--alpha", "TRIM"],
    }[tuple(command)]  # fmt: skip
    for word in expected:
        assert word in text


def test_evaluate_writes_every_file(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["evaluate", *SMALL, "--out", str(out)]) == 0
    for name in ["results.csv", "timings.csv", "report.md", "study.json",
                 "nmse.png", "defense_gain.png", "detection.png"]:  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert len(df) == 2 * 2 * 2 * 3
    assert set(df["attack"]) == {"stealthy"}  # the default of --attacks
    assert "attack" in pd.read_csv(out / "timings.csv").columns
    report = (out / "report.md").read_text()
    assert "skpoison evaluate" in report and "diverged runs: 0" in report
    assert "Defense gain" in report and "trim" in report
    assert "report.md" in capsys.readouterr().out


def test_evaluate_adaptive(tmp_path, capsys, monkeypatch):
    from adaptive_stand_in import KnowsDefense

    from skpoison.evaluation import _registry
    from skpoison.evaluation._curve import ADAPTIVE_COLUMNS

    # "stealthy" by name, built as an attack that takes a defense.
    monkeypatch.setitem(
        _registry._ATTACK_BUILDERS,
        "stealthy",
        lambda model, params: KnowsDefense(model=model, **params),
    )
    out = tmp_path / "study"
    assert main(["evaluate", *SMALL, "--adaptive", "--out", str(out)]) == 0
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == [*RESULT_COLUMNS, *ADAPTIVE_COLUMNS]
    adaptive = df[df["adaptive"]]
    assert sorted(set(adaptive["defense"])) == ["bayesclean", "trim"]
    assert len(adaptive) == 2 * 2 * 2 * 2  # reps x alphas x ratios x defenses
    assert "adaptive" in pd.read_csv(out / "timings.csv").columns
    assert (out / "adaptive_gain.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "skpoison evaluate" in report and "--adaptive" in report
    assert (
        "| ratio | bayesclean | bayesclean (adaptive) | trim | trim (adaptive) |"
        in (report)
    )
    assert "![adaptive_gain](adaptive_gain.png)" in report
    # Resumable like any study; the same command again computes nothing.
    assert main(["evaluate", *SMALL, "--adaptive", "--out", str(out)]) == 0
    assert "nothing left to run" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["evaluate", "reproduce"])
def test_adaptive_is_an_option(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--adaptive" in capsys.readouterr().out


def test_evaluate_on_a_csv_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "price": X @ [1.0, 2.0]})
    frame.to_csv(tmp_path / "mine.csv", index=False)
    args = ["evaluate", "--data", str(tmp_path / "mine.csv"), "--target", "price",
            "--reps", "1", "--alphas", "1", "--ratios", "0", "0.1", "--defenses",
            "none", "--n-outer-steps", "2", "--no-progress", "--out",
            str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(df["dataset"]) == {"custom"} and len(df) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{csv}"], "--target"),
        (["--data", "{csv}", "--target", "nope"], "not a column"),
        (["--dataset", "synthetic", "--target", "x"], "--target goes with --data"),
        (["--dataset", "synthetic", "--defenses", "magic"], "unknown defenses"),
        (["--dataset", "synthetic", "--attacks", "magic"], "Unknown attack 'magic'"),
        (["--dataset", "synthetic", "--alphas", "2"], "alphas"),
        (["--dataset", "synthetic", "--scheduler", "tcp://x:1"], "--backend dask"),
        (["--dataset", "synthetic", "--alpha-penalty", "1"], "--model ridge, lasso"),
        (
            ["--dataset", "synthetic", "--model", "ridge", "--l1-ratio", "0.5"],
            "--model elasticnet",
        ),
    ],
)
def test_bad_input_is_a_clear_error(args, message, tmp_path, capsys):
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(
        tmp_path / "d.csv", index=False
    )
    args = [a.replace("{csv}", str(tmp_path / "d.csv")) for a in args]
    assert main(["evaluate", *args, "--reps", "1", "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_a_scikit_learn_victim(tmp_path):
    args = ["evaluate", "--dataset", "synthetic", "--model", "elasticnet",
            "--alpha-penalty", "0.05", "--l1-ratio", "0.3", "--reps", "1",
            "--alphas", "1", "--ratios", "0", "0.1", "--defenses", "none", "trim",
            "--n-outer-steps", "2", "--no-progress", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 0
    df = pd.read_csv(tmp_path / "o" / "results.csv")
    assert set(df["model"]) == {"elasticnet"} and not df["diverged"].any()


def test_dataset_and_data_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--dataset", "heart", "--data", "x.csv",
                                   "--out", "o"])  # fmt: skip
    assert "not allowed with" in capsys.readouterr().err


def test_a_killed_run_resumes_to_the_same_results(tmp_path):
    args = ["evaluate", "--dataset", "synthetic", "--reps", "6", "--alphas", "1",
            "--ratios", "0", "0.1", "0.2", "--defenses", "none", "bayesclean",
            "--n-outer-steps", "30", "--no-progress"]  # fmt: skip
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main([*args, "--out", str(whole)]) == 0

    proc = subprocess.Popen(
        [sys.executable, "-m", "skpoison.cli", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    units = killed / "units"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if units.exists() and len(list(units.glob("*.json"))) >= 1:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_done = len(list(units.glob("*.json")))
    assert 1 <= n_done < 6, "the run should have been killed midway"
    assert not (killed / "results.csv").exists()

    assert main([*args, "--out", str(killed)]) == 0
    assert (killed / "results.csv").read_bytes() == (whole / "results.csv").read_bytes()


def test_figure_9_writes_the_figure_and_table(tmp_path, capsys):
    out = tmp_path / "f9"
    assert main(["figure-9", "--out", str(out), "--n-outer-steps", "2"]) == 0
    assert (out / "figure9.png").stat().st_size > 0
    table = pd.read_csv(out / "figure9.csv")
    assert set(table["defense"]) == {"none", "bayesclean", "trim"}
    assert sorted(table["ratio"].unique()) == [0.2, 0.24, 0.3]
    assert table["n_poison"].tolist()[::3] == [20, 24, 30]
    assert table[["poison_rejected", "clean_rejected"]].stack().between(0, 1).all()
    assert "figure9.png" in capsys.readouterr().out


def test_findings_reads_finished_studies(tmp_path, capsys):
    study = tmp_path / "study"
    assert main(["evaluate", *SMALL, "--out", str(study)]) == 0
    assert (
        main(["figure-9", "--out", str(tmp_path / "f9"), "--n-outer-steps", "2"]) == 0
    )
    capsys.readouterr()
    out = tmp_path / "findings.md"
    args = [
        "findings",
        str(study),
        "--figure9",
        str(tmp_path / "f9"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert out.read_text() in text
    assert "TRIM breaks above ~24%" in text and "synthetic (linear)" in text
    assert main(["findings", str(tmp_path / "nothing")]) == 2
    assert "no results.csv" in capsys.readouterr().err


TINY = [
    "--dataset", "synthetic", "--reps", "1", "--alphas", "1", "--ratios", "0",
    "0.1", "--defenses", "none", "--n-outer-steps", "2", "--no-progress",
]  # fmt: skip


@pytest.mark.parametrize(
    "command", [[], ["evaluate"], ["reproduce"], ["figure-9"], ["findings"]]
)
def test_help_prints_a_single_percent_sign(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert "%%" not in text
    if command in (["reproduce"], ["figure-9"]):
        assert "%" in text


@pytest.mark.parametrize("content", ["", "a,b,price\n"])
def test_an_empty_csv_is_an_error_naming_the_file(content, tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    args = ["evaluate", "--data", str(path), "--target", "price", *TINY[2:]]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and ("empty" in err or "no data rows" in err)


@pytest.mark.parametrize("command", [["evaluate", *TINY], ["figure-9"], ["reproduce"]])
def test_out_that_is_a_file_or_empty_is_refused_before_any_work(
    command, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    assert main([*command, "--out", "taken"]) == 2
    assert "--out taken is a file, not a folder" in capsys.readouterr().err
    assert main([*command, "--out", ""]) == 2
    assert "--out must name a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_unavailable_device_is_refused_before_any_file_is_written(
    tmp_path, capsys, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "study"
    assert main(["evaluate", *TINY, "--device", "cuda", "--out", str(out)]) == 2
    assert "--device cuda" in capsys.readouterr().err
    assert not out.exists()


def test_ratios_off_whole_batches_are_rounded_with_a_note(tmp_path, capsys):
    args = [*TINY[:7], "0.1", "0.15", *TINY[9:]]
    assert main(["evaluate", *args, "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    # 100 training points, a batch of 5: 0.1 and 0.15 fall on 2 and 3 batches,
    # so no note; 0.12 is 2.4 batches, rounded to 2 (0.1).
    assert "rounded" not in err
    args = [*TINY[:7], "0.05", "0.12", *TINY[9:]]
    assert main(["evaluate", *args, "--out", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "note: ratios rounded to whole batches" in err and "0.12 -> 0.1" in err


def test_rerunning_a_finished_study_keeps_its_wall_time(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["evaluate", *TINY, "--out", str(out)]) == 0
    first = [ln for ln in (out / "report.md").read_text().splitlines() if "wall" in ln]
    (out / "wall_time.json").write_text('{"wall_time_s": 123.4}\n')
    capsys.readouterr()
    assert main(["evaluate", *TINY, "--out", str(out)]) == 0
    assert "nothing left to run" in capsys.readouterr().out
    again = [ln for ln in (out / "report.md").read_text().splitlines() if "wall" in ln]
    assert len(first) == 1 and again == ["- wall time: 123.4 s"]


def test_a_different_study_error_names_what_differs_in_cli_words(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["evaluate", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    args = [*TINY[:2], "--reps", "2", *TINY[4:]]
    assert main(["evaluate", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different study (n_repetitions: 1 there, 2 now)" in err
    assert "--overwrite" in err and "overwrite=True" not in err


def test_a_pandas_index_column_is_dropped_with_a_note(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "price": X @ [1.0, 2.0]})
    frame.to_csv(tmp_path / "with_index.csv")  # index=True: pandas' default
    frame.to_csv(tmp_path / "without.csv", index=False)
    results = []
    for name in ("with_index", "without"):
        args = ["evaluate", "--data", str(tmp_path / f"{name}.csv"), "--target",
                "price", *TINY[2:], "--out", str(tmp_path / name)]  # fmt: skip
        assert main(args) == 0
        results.append(pd.read_csv(tmp_path / name / "results.csv"))
    assert "dropped the first column" in capsys.readouterr().err
    cols = ["ratio", "defense", "test_nmse"]
    pd.testing.assert_frame_equal(results[0][cols], results[1][cols])


def test_defenses_beyond_the_papers_run_by_name(tmp_path):
    from skpoison.cli import _defense_list

    assert "itrim" in _defense_list(["all"])
    args = ["evaluate", "--dataset", "synthetic", "--reps", "1", "--alphas", "1",
            "--ratios", "0", "0.1", "--defenses", "none", "itrim",
            "--attacks", "flip", "noise",
            "--n-outer-steps", "2", "--no-progress", "--out",
            str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(df["defense"]) == {"none", "itrim"}
    assert set(df["attack"]) == {"flip", "noise"}


def _seconds(text):
    """'1 min 49 s' or '62 s' as seconds."""
    import re

    m = re.fullmatch(r"(?:(\d+) min)? ?(?:(\d+) s)?", text.strip())
    return 60 * int(m.group(1) or 0) + int(m.group(2) or 0)


def test_reproduce_help_quotes_the_measured_times_of_the_doc(capsys):
    """The times ``reproduce --help`` states are those of doc/reproduction.md."""
    import re
    from pathlib import Path

    page = (Path(__file__).parents[1] / "doc" / "reproduction.md").read_text()
    block = page.split("<!-- BEGIN generated:time -->")[1].split("<!-- END")[0]
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in block.strip().splitlines()[2:]
    ]
    lr = [r for r in rows if r[0].endswith("(LR)")]
    dnn = [r for r in rows if r[0].endswith("(DNN)")]
    assert len(lr) == 3 and len(dnn) == 1
    lr_minutes = round(sum(_seconds(r[4]) for r in lr) / 60)
    dnn_minutes = round(_seconds(dnn[0][4]) / 60)  # to the minute, as the LR's
    commit = re.search(r"doc/reproduce\.sh --commit (\w+)", page).group(1)
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "doc/reproduction.md's time table" in text
    assert f"doc/reproduce.sh --commit {commit} " in text
    assert f"{lr[0][1]} repetitions each, {lr_minutes} minutes together" in text
    assert f"{dnn[0][1]} repetitions, {dnn_minutes} minutes" in text
    assert not re.search(r"about \d+ minutes|under \d+ minutes", text)


def _actions(command):
    sub = next(
        a
        for a in build_parser()._actions
        if a.__class__.__name__ == "_SubParsersAction"
    )
    return {a.option_strings[0]: a for a in sub.choices[command]._actions}


SHARED = ("--alphas", "--ratios", "--defenses", "--reps", "--n-outer-steps")


def test_evaluate_and_reproduce_share_their_study_options():
    from skpoison import cli

    ev, rp = _actions("evaluate"), _actions("reproduce")
    for opt in SHARED:
        a, b = ev[opt], rp[opt]
        assert (a.type, a.nargs, a.metavar) == (b.type, b.nargs, b.metavar), opt
    # Each command's defaults: the paper's, or None where --quick decides.
    paper_alphas, paper_ratios = list(cli._PAPER_ALPHAS), list(cli._PAPER_RATIOS)
    assert [ev[o].default for o in SHARED] == [
        paper_alphas, paper_ratios, list(cli._DEFAULT_DEFENSES), 10, None
    ]  # fmt: skip
    assert [rp[o].default for o in SHARED] == [
        None, paper_ratios, list(cli._ALL_DEFENSES), None, None
    ]  # fmt: skip
    for actions in (ev, rp):
        assert "(0, 1]" in actions["--alphas"].help
        assert "[0, 1)" in actions["--ratios"].help
        assert "'all'" in actions["--defenses"].help
        assert all(d in actions["--defenses"].help for d in cli._KNOWN_DEFENSES)
        assert "Table II" in actions["--n-outer-steps"].help
    # Where a default depends on --quick, the help says what it is.
    assert "10, or 2 with --quick" in rp["--reps"].help
    assert "1 0.5 0.3 0.1, or 1 0.3 0.1 with --quick" in rp["--alphas"].help


def test_reproduce_accepts_all_defenses_as_its_help_says():
    from skpoison.cli import _KNOWN_DEFENSES, _defense_list

    args = build_parser().parse_args(["reproduce", "--defenses", "all"])
    assert _defense_list(args.defenses) == list(_KNOWN_DEFENSES)


def test_the_renderer_runs_jobs_in_order_on_one_thread_and_reraises():
    import threading

    from skpoison.cli import _Renderer

    ran = []

    def job(k):
        ran.append((k, threading.current_thread().name))

    with _Renderer() as render:
        for k in range(3):
            render(job, k)
    assert [k for k, _ in ran] == [0, 1, 2]
    names = {name for _, name in ran}
    assert len(names) == 1 and names != {threading.current_thread().name}

    def fail():
        raise RuntimeError("a figure failed")

    with pytest.raises(RuntimeError, match="a figure failed"):
        with _Renderer() as render:
            render(fail)
            render(job, 3)
    assert ran[-1][0] == 3  # the later jobs still ran
    # An error of the block itself is the one raised.
    with pytest.raises(KeyError):
        with _Renderer() as render:
            render(fail)
            raise KeyError("the study failed")


def test_reproduce_renders_every_study_before_it_returns(tmp_path, capsys):
    out = tmp_path / "repro"
    code = main(
        ["reproduce", "--datasets", "boston_housing", "heart", "--reps", "1",
         "--alphas", "1", "--ratios", "0", "0.1", "--defenses", "none", "trim",
         "--n-outer-steps", "1", "--figure9-seeds", "1", "--figure9-n-outer-steps",
         "1", "--no-dnn", "--n-jobs", "1", "--out", str(out), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    for study in ("boston_housing-linear", "heart-linear"):
        for name in ("report.md", "nmse.png", "nmse.pdf", "defense_gain.png"):
            assert (out / study / name).stat().st_size > 0
        assert f"{study.split('-')[0]} (linear): " in text
    assert (out / "figure9" / "figure9.png").stat().st_size > 0
    assert text.rstrip().endswith(f"index: {out / 'README.md'}")
