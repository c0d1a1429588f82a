"""The sensitivity study: each setting alone, the findings that flip."""

import pandas as pd
import pytest
from test_findings import _contrary_inputs, _paper_like_inputs

from skpoison import cli
from skpoison.cli import main
from skpoison.evaluation import _sensitivity
from skpoison.evaluation._sensitivity import SENSITIVITY_SETTINGS, sensitivity_study

BASE = {"n_outer_steps": 100, "batch_size": 19, "inner_lr": 0.1, "learning_rate": 0.1}
TINY = dict(alphas=[1.0], ratios=[0.0, 0.1], defenses=["none", "trim", "bayesclean"],
            n_repetitions=1, n_outer_steps=1, figure9_seeds=0)  # fmt: skip


@pytest.mark.parametrize("setting", SENSITIVITY_SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_varied_away_from_its_default(setting):
    values = setting.values(BASE)
    assert values and setting.default(BASE) not in values
    if setting.target is None:
        assert setting.apply is None
        return
    assert setting.target in ("study", "figure9")
    for v in values:
        overrides = setting.apply(v)
        allowed = {"attack_params", "victim_params", "defenses", "model",
                   "ratio_convention"} if setting.target == "study" else {
            "alpha", "n_train"}  # fmt: skip
        assert overrides and set(overrides) <= allowed


def test_the_listed_open_settings_are_registered_and_supported():
    supported = {s.name for s in SENSITIVITY_SETTINGS if s.target}
    assert {"bayesclean_c1", "bayesclean_c2", "bayesclean_rule", "n_outer_steps",
            "batch_size", "bounds", "figure9_alpha", "figure9_n_train",
            "trim_n_init", "trim_max_iter", "loss_scaling", "ratio_convention",
            "victim", "sigma_dof"} <= supported  # fmt: skip


def test_the_four_model_settings_reach_poisoning_curve(monkeypatch):
    calls = []

    def fake_curve(**args):
        calls.append(args)
        return _paper_like_inputs()[0][("heart", "linear")]

    monkeypatch.setattr("skpoison.evaluation._curve.poisoning_curve", fake_curve)
    table, verdicts = sensitivity_study(
        "heart", settings=["loss_scaling", "ratio_convention", "victim", "sigma_dof"],
        n_repetitions=8, figure9_seeds=0)  # fmt: skip
    base, loss, ratio, victim, sigma = calls
    # the mean loss is the 1/(2n) loss at twice Table II's and III's learning rates
    assert loss["attack_params"] == {"n_outer_steps": 50, "inner_lr": 0.2}
    assert loss["victim_params"] == {"learning_rate": 0.2}
    assert base["victim_params"] == {} and "ratio_convention" not in base
    assert ratio["ratio_convention"] == "injection"
    assert (base["model"], victim["model"]) == ("linear", "ols")
    assert sigma["attack_params"] == {"n_outer_steps": 50, "sigma_ddof": 0}
    assert table["supported"].all() and (table["flips"] == "none").all()
    # the ols study is judged as the baseline's study (same key), so it can flip
    assert set(verdicts["study"]) == {"heart (linear)"}


def test_loss_scaling_needs_a_gradient_descent_victim(monkeypatch):
    with pytest.raises(ValueError, match="no preset to double"):
        _sensitivity._run_study(
            dict(model="ols", attack_params={}, defenses=["none"]),
            {"victim_params": {"learning_rate": "double"}},
            None,
            {"learning_rate": None},
        )


def test_variants_reach_the_study_and_flips_are_reported(monkeypatch):
    calls = []

    def fake_curve(**args):
        calls.append(args)
        studies, _ = (
            _contrary_inputs()
            if args["attack_params"].get("bounds")
            else _paper_like_inputs()
        )
        return studies[("heart", "linear")]

    def fake_fig9(fig9_args, overrides, seeds):
        return (_contrary_inputs() if overrides else _paper_like_inputs())[1]

    monkeypatch.setattr("skpoison.evaluation._curve.poisoning_curve", fake_curve)
    monkeypatch.setattr(_sensitivity, "_run_figure9", fake_fig9)
    table, verdicts = sensitivity_study(
        "heart", settings=["bounds", "bayesclean_c1", "figure9_alpha", "victim"],
        n_repetitions=8, figure9_seeds=8)  # fmt: skip
    by_name = table.set_index("setting")
    # bounds makes every finding of the study flip; Fig. 9's alpha only Fig. 9's.
    assert by_name.loc["bounds", "flips"].count("agree -> disagree") == 2 * 4
    assert by_name.loc["figure9_alpha", "flips"].count("fig9 (synthetic (Fig. 9))") == 2
    assert by_name.loc["bayesclean_c1", "flips"] == "none"
    assert by_name.loc["victim", "supported"] and calls[-1]["model"] == "ols"
    assert ("bayesclean", {"defense__c1": 0.25}) in calls[3]["defenses"]
    assert calls[1]["attack_params"]["bounds"] == (-2.0, 2.0)
    assert len(calls) == 1 + 2 + 2 + 1 and calls[0]["defenses"][1] == "bayesclean"
    base = verdicts[verdicts.setting == "baseline"]
    assert len(base) == 5 and not base.flipped.any()


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="Unknown settings"):
        sensitivity_study("synthetic", settings=["nope"], **TINY)


@pytest.mark.slow
def test_cli_writes_the_table(tmp_path, capsys):
    out = tmp_path / "sens"
    args = ["sensitivity", "--dataset", "synthetic", "--settings", "trim_max_iter",
            "figure9_n_train", "sigma_dof", "--alphas", "1", "--ratios", "0", "0.1",
            "--defenses", "none", "trim", "--reps", "1", "--n-outer-steps", "1",
            "--figure9-seeds", "1", "--figure9-n-outer-steps", "1", "--n-jobs", "1",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = (out / "sensitivity.md").read_text()
    assert text in capsys.readouterr().out
    assert "| sigma_dof |" in text and "not supported yet" not in text
    assert "6 runs of 1 repetitions (Fig. 9: 1 seeds) each" in text
    table = pd.read_csv(out / "sensitivity.csv")
    assert table.setting.tolist() == ["trim_max_iter", "figure9_n_train", "sigma_dof"]
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert set(verdicts.verdict) == {"inconclusive"}  # 1 repetition decides nothing
    assert len(verdicts[["setting", "value"]].drop_duplicates()) == 1 + 2 + 2 + 1


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--defenses", "all"], list(cli._KNOWN_DEFENSES)),
        (["--defenses", "none", "trim"], ["none", "trim"]),
        ([], list(cli._ALL_DEFENSES)),
    ],
)
def test_cli_defenses_are_those_of_evaluate(monkeypatch, tmp_path, argv, expected):
    # `sensitivity` declares its study options with `evaluate`'s: 'all' expands
    # to every known defense, as there, and the same other defaults hold.
    calls = []

    def fake_study(dataset, **kwargs):
        calls.append(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(
        "skpoison.evaluation._sensitivity.sensitivity_study", fake_study
    )
    with pytest.raises(SystemExit):
        main(["sensitivity", *argv, "--out", str(tmp_path / "s")])
    assert calls[0]["defenses"] == expected
    assert calls[0]["alphas"] == [1.0, 0.1] and calls[0]["n_repetitions"] == 6


def test_cli_refuses_an_unknown_defense(tmp_path, capsys):
    assert main(["sensitivity", "--defenses", "nope", "--out", str(tmp_path / "s")])
    assert "unknown defenses ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
