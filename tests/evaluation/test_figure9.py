"""Fig. 9 over several seeds: the same rows in this process and on workers."""

import pandas as pd
import pytest

from skpoison.evaluation import _curve
from skpoison.evaluation._figure9 import figure_9, figure_9_seeds

SETTINGS = dict(n_outer_steps=2, ratios=(0.2, 0.3))


@pytest.fixture(scope="module")
def in_process():
    return figure_9_seeds([4, 5, 6], plot_seed=5, **SETTINGS)


def test_seeds_are_figure_9_runs_in_order(in_process):
    table, draw = in_process
    assert table.columns[0] == "random_state"
    assert table["random_state"].unique().tolist() == [4, 5, 6]
    one, fig = figure_9(random_state=5, **SETTINGS)
    mine = table[table["random_state"] == 5].drop(columns="random_state")
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), one)
    drawn = draw()
    assert drawn.get_suptitle() == fig.get_suptitle()  # the plot seed's figure
    assert figure_9_seeds([4], **SETTINGS)[1] is None  # no plot seed, no drawing


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_workers_give_the_same_rows(in_process, backend, monkeypatch):
    from joblib import Parallel

    calls = []

    class Spy(Parallel):
        def __call__(self, iterable):
            calls.append(self.n_jobs)
            return super().__call__(iterable)

    monkeypatch.setattr("joblib.Parallel", Spy)
    # As after the studies of `skpoison reproduce`: loky's workers are running.
    monkeypatch.setattr(_curve, "warm_workers", lambda backend: 2)
    table, draw = figure_9_seeds(
        [4, 5, 6], plot_seed=5, n_jobs=2, backend=backend, **SETTINGS
    )
    assert calls == [2]
    pd.testing.assert_frame_equal(table, in_process[0])
    assert draw().get_suptitle() == in_process[1]().get_suptitle()


def test_no_new_workers_for_a_few_seeds(in_process, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("workers started for Fig. 9")

    monkeypatch.setattr("joblib.Parallel", refuse)
    monkeypatch.setattr(_curve, "warm_workers", lambda backend: 0)
    table, _ = figure_9_seeds([4, 5, 6], plot_seed=5, n_jobs=2, **SETTINGS)
    pd.testing.assert_frame_equal(table, in_process[0])
