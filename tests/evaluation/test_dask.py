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
