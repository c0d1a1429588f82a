"""The dask.distributed path, on a local in-process cluster."""

import pandas as pd
import pytest

from skpoison.evaluation import poisoning_curve
from skpoison.evaluation._curve import TIME_COLUMNS

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is an optional extra (skpoison[dask])"
)

SMALL = dict(
    ratios=[0.0, 0.1],
    alphas=[1.0, 0.5],
    defenses=["none", "bayesclean"],
    n_repetitions=2,
    attack_params={"n_outer_steps": 2},
)


def test_dask_backend_gives_the_same_results(tmp_path):
    local = poisoning_curve("synthetic", **SMALL)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2):
        remote = poisoning_curve("synthetic", backend="dask", out_dir=tmp_path, **SMALL)
    drop = list(TIME_COLUMNS)
    pd.testing.assert_frame_equal(local.drop(columns=drop), remote.drop(columns=drop))
    assert len(list((tmp_path / "units").glob("*.json"))) == 4


def test_cli_backend_dask_starts_a_local_cluster(tmp_path):
    from skpoison.cli import main

    args = ["evaluate", "--dataset", "synthetic", "--reps", "1", "--alphas", "1",
            "--ratios", "0", "0.1", "--defenses", "none", "--n-outer-steps", "2",
            "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--backend", "dask", "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "results.csv").read_bytes()
    assert a == (tmp_path / "b" / "results.csv").read_bytes()
