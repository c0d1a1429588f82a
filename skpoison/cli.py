"""The ``skpoison`` command: poisoning studies from the shell.

Argument parsing only; the work is done by :mod:`skpoison.evaluation`.

Subcommands
-----------
``skpoison evaluate``
    One study (dataset or CSV file, model, attacks, alphas, ratios, defenses,
    repetitions) written to a folder: ``results.csv``, ``timings.csv``,
    ``report.md`` and the figures; resumable.
``skpoison reproduce``
    The paper's studies (LR on the four datasets, DNN on Loan and Heart), or
    with ``--quick`` a reduced one on Boston Housing that runs in minutes.
``skpoison figure-9``
    The paper's Fig. 9: BayesClean against TRIM on the synthetic set at 20 %,
    24 % and 30 % poisoning.
``skpoison findings``
    Each of the paper's findings against finished studies: measured, criterion,
    verdict.
``skpoison sensitivity``
    Each setting the paper leaves open varied alone from the defaults: which
    findings flip.

Run ``skpoison <subcommand> --help`` for the options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

__all__ = ["build_parser", "main"]

_DATASET_CHOICES = ("loan", "heart", "boston_housing", "appliances", "synthetic")
_DEFAULT_DEFENSES = ("none", "bayesclean", "trim", "sever", "proda", "duti", "huber")
_ALL_DEFENSES = (*_DEFAULT_DEFENSES[:2], "bayesclean_paper", *_DEFAULT_DEFENSES[2:])
# Defenses beyond the paper's: accepted by --defenses (and 'all'), not run by
# the paper's reproduction.
_KNOWN_DEFENSES = (*_ALL_DEFENSES, "itrim")
_PAPER_ALPHAS = (1.0, 0.5, 0.3, 0.1)
_PAPER_RATIOS = (0.0, 0.075, 0.15, 0.225, 0.3, 0.375, 0.45)

# --quick: Boston Housing (shipped, the smallest set), 2 repetitions, the alphas
# of the paper's figures (1, 0.3, 0.1), all ratios and defenses. One measured run
# (`time skpoison reproduce --quick --n-jobs 2`, 2 cores shared with other jobs,
# load average 4, 2026-12-02) took 27 s.
QUICK = dict(
    dataset="boston_housing",
    alphas=(1.0, 0.3, 0.1),
    n_repetitions=2,
    defenses=_ALL_DEFENSES,
)

# The times `reproduce --help` quotes, from doc/reproduction.md's generated
# time table (tests/test_cli.py checks them against it).
_TIMES = dict(
    where="doc/reproduction.md",
    run="doc/reproduce.sh --commit b01fe26 with its defaults",
    lr_reps=20,
    lr="3 minutes together",
    dnn_reps=10,
    dnn="15 minutes",
)

_EPILOG = """\
examples:
  skpoison evaluate --dataset boston_housing --reps 10 --n-jobs 2 --out results/boston
  skpoison evaluate --data mydata.csv --target price --alphas 1 0.3 --out results/mine
  skpoison reproduce --quick --out results/quick
  skpoison figure-9 --out results/fig9
  skpoison findings results/boston results/heart --figure9 results/fig9
"""


class _Formatter(
    argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """Show defaults, except the uninformative None and False."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_run_options(p: argparse.ArgumentParser, n_jobs: int = 1) -> None:
    g = p.add_argument_group("execution")
    g.add_argument(
        "--n-jobs",
        type=int,
        default=n_jobs,
        help="units of work (one attack each) run in parallel; -1 = all cores",
    )
    g.add_argument(
        "--backend",
        default=None,
        choices=("loky", "threading", "multiprocessing", "dask"),
        help="joblib backend (if not given: joblib's, i.e. loky processes)",
    )
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="dask.distributed scheduler address, e.g. tcp://10.0.0.1:8786 "
        "(with --backend dask; without it a local cluster is started)",
    )
    g.add_argument(
        "--device",
        default="cpu",
        help="torch device of the attack and victims: cpu, cuda, cuda:N",
    )
    g.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="root seed; every split, attack and defense seed derives from it",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="discard a different study found in the output folder "
        "(by default a rerun resumes the same study and refuses another)",
    )
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_study_options(
    g,
    *,
    scope: str,
    reps=10,
    reps_note: str | None = None,
    alphas=_PAPER_ALPHAS,
    alphas_note: str | None = None,
    defenses=_DEFAULT_DEFENSES,
    ratios=_PAPER_RATIOS,
    t_out_help: str | None = None,
) -> None:
    """The study options of ``evaluate``, ``reproduce`` and ``sensitivity``, declared once.

    ``scope`` ends each help (``" of every study"`` for ``reproduce``); a
    default that depends on other options is None, and ``*_note`` says what it
    is (the formatter shows the others).
    """

    def note(text):
        return f" (default: {text})" if text else ""

    g.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=None if alphas is None else list(alphas),
        metavar="A",
        help=f"attack stealth factors in (0, 1]{scope}; 1 = most effective"
        + note(alphas_note),
    )
    g.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=list(ratios),
        metavar="R",
        help=f"poisoning ratios in [0, 1){scope}: cumulative whole batches of "
        "poison points (a batch is the smallest step between the ratios, or "
        "Table II's for the paper's 7.5%% steps); a note says when one is "
        "rounded by more than half a point",
    )
    g.add_argument(
        "--defenses",
        nargs="+",
        default=list(defenses),
        metavar="NAME",
        help=f"defenses{scope} among {', '.join(_KNOWN_DEFENSES)}, or 'all'; "
        "'none' is always included (reference of the gain)",
    )
    g.add_argument(
        "--reps",
        type=_positive_int,
        default=reps,
        help=f"repetitions (random splits){scope}" + note(reps_note),
    )
    g.add_argument(
        "--n-outer-steps",
        type=_positive_int,
        default=None,
        metavar="T_OUT",
        help=t_out_help
        or f"override the attack's T_out{scope} (default: Table II's) - fewer "
        "is faster, weaker",
    )


def _add_adaptive_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="also run, for each of BayesClean, TRIM, SEVER, Proda and DUTI, the "
        "stealthy attack adapted to that defense (it knows the defense, its "
        "settings and DUTI's trusted items) and evaluate it on that defense; "
        "results.csv gets the columns adaptive and undefended_nmse, report.md a "
        "section per study with each defense's gain against both attacks, and "
        "adaptive_gain.png the same as curves",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``skpoison`` command."""
    parser = argparse.ArgumentParser(
        prog="skpoison",
        description="Stealthy data-poisoning attacks and defenses for regression "
        "(Carnerero-Cano et al.): run the paper's evaluation protocol.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ev = sub.add_parser(
        "evaluate",
        help="one poisoning study: test NMSE and defense gain vs poisoning ratio",
        description=(
            "Run the paper's protocol (Appendix E): per repetition a random "
            "50/15/35 split standardised on the clean training part, the stealthy "
            "attack with Table II's settings for each alpha (ratios are cumulative "
            "batches of one attack), each defense trained on the poisoned set and "
            "the victim (Table III) on what it keeps. Writes results.csv (one row "
            "per repetition x alpha x ratio x defense), timings.csv, report.md "
            "and nmse.png / defense_gain.png / detection.png (each with a PDF twin) "
            "to --out. Finished "
            "units are saved as they complete: rerunning the same command resumes."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    src = ev.add_argument_group("data (one of --dataset or --data)")
    src_x = src.add_mutually_exclusive_group(required=True)
    src_x.add_argument(
        "--dataset",
        choices=_DATASET_CHOICES,
        help="a dataset of the paper (loan is downloaded once) or the "
        "synthetic 1-d set",
    )
    src_x.add_argument(
        "--data",
        metavar="FILE.csv",
        help="your own data: a CSV file with a header row and numeric columns",
    )
    src.add_argument(
        "--target",
        metavar="COLUMN",
        help="with --data: the column to predict (all others are features)",
    )
    st = ev.add_argument_group("study")
    st.add_argument(
        "--model",
        choices=("linear", "mlp", "ols", "ridge", "lasso", "elasticnet"),
        default="linear",
        help="victim: the paper's linear regression or DNN (32 x 8, LeakyReLU), "
        "trained by gradient descent; or scikit-learn's LinearRegression, Ridge, "
        "Lasso, ElasticNet fitted by scikit-learn",
    )
    st.add_argument(
        "--alpha-penalty",
        type=float,
        default=None,
        metavar="ALPHA",
        help="alpha of the ridge, lasso and elasticnet victims (scikit-learn's default: 1)",
    )
    st.add_argument(
        "--l1-ratio",
        type=float,
        default=None,
        help="l1_ratio of the elasticnet victim (scikit-learn's default: 0.5)",
    )
    st.add_argument(
        "--attacks",
        nargs="+",
        default=["stealthy"],
        metavar="NAME",
        # Not imported here (the registry pulls in torch): an unknown name is
        # refused, with the known ones, before any work.
        help="attacks by name, from skpoison.evaluation.ATTACK_NAMES; one with "
        "a stealth factor runs at every alpha, the others once (reported at alpha 1)",
    )
    _add_study_options(st, scope="")
    st.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_adaptive_option(st)
    _add_run_options(ev)

    rp = sub.add_parser(
        "reproduce",
        help="the paper's studies (or --quick: a reduced one in minutes)",
        description=(
            "Reproduce the paper's experiments: LR on Loan, Heart, Boston Housing "
            "and Appliances (alphas 1, 0.5, 0.3, 0.1; ratios 0-45%; all defenses "
            "plus BayesClean's literal Alg. 5 rule; 10 repetitions) and, without "
            "--quick and --no-dnn, the DNN on Loan and Heart; then Fig. 9. "
            f"Measured wall times are in {_TIMES['where']}'s time table (2 cores, "
            f"{_TIMES['run']}: the LR study on the three shipped datasets, "
            f"{_TIMES['lr_reps']} repetitions each, {_TIMES['lr']}; the DNN study on "
            f"Heart, {_TIMES['dnn_reps']} repetitions, {_TIMES['dnn']}); the DNN "
            "study is the long one (use --n-jobs on more cores). "
            "Loan is downloaded once (fetch_loan) and skipped with a message when "
            "that is impossible. "
            "--quick runs Boston Housing only, 2 repetitions, alphas 1, 0.3 and "
            "0.1. Each study goes to its own subfolder "
            "of --out with the files of 'skpoison evaluate'; --out also gets "
            "README.md (an index with wall times), index.json (the same for "
            "scripts: each study's repetitions, rows, divergences, wall time) and "
            "findings.md (each of the paper's findings, what was measured, agree "
            "or not). The study settings below shrink the run for a fast check "
            "(doc/reproduce.sh --tiny)."
        ),
        formatter_class=_Formatter,
    )
    rp.add_argument(
        "--quick", action="store_true", help="reduced study on Boston Housing"
    )
    rp.add_argument(
        "--out", default="skpoison-reproduction", metavar="DIR", help="output folder"
    )
    rp.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        metavar="NAME",
        choices=_DATASET_CHOICES[:-1],
        help="restrict the LR study to these datasets",
    )
    rp.add_argument("--no-dnn", action="store_true", help="skip the DNN study")
    rs = rp.add_argument_group(
        "study settings (defaults: the paper's; smaller ones for a fast check)"
    )
    _add_study_options(
        rs,
        scope=" of every study",
        reps=None,
        reps_note="10, or 2 with --quick",
        alphas=None,
        alphas_note="1 0.5 0.3 0.1, or 1 0.3 0.1 with --quick",
        defenses=_ALL_DEFENSES,
    )
    rs.add_argument(
        "--dnn-reps",
        type=_positive_int,
        default=None,
        metavar="K",
        help="repetitions of the DNN study (default: --reps)",
    )
    rs.add_argument(
        "--dnn-datasets",
        nargs="+",
        default=["loan", "heart"],
        choices=("loan", "heart", "boston_housing", "appliances"),
        metavar="NAME",
        help="datasets of the DNN study",
    )
    rs.add_argument(
        "--figure9-seeds",
        type=_positive_int,
        default=None,
        metavar="N",
        help="Fig. 9 seeds: 10, or 1 with --quick (a verdict needs 6)",
    )
    rs.add_argument(
        "--figure9-n-outer-steps",
        type=_positive_int,
        default=100,
        metavar="T_OUT",
        help="T_out of the Fig. 9 attack",
    )
    _add_adaptive_option(rp)
    _add_run_options(rp, n_jobs=-1)

    f9 = sub.add_parser(
        "figure-9",
        help="the paper's Fig. 9: BayesClean vs TRIM at 20/24/30%% poisoning",
        description=(
            "Synthetic set (x ~ U(-5, 5), y = 0.8 x + N(0, 1.2^2)), 100 training "
            "points, linear regression by gradient descent (eta 0.1, 40 epochs); "
            "the attack replaces 20%, 24% and 30% of the points (cumulative "
            "batches of 2); TRIM is told the true number of poison points. Writes "
            "figure9.png (and figure9.pdf) and figure9.csv (per ratio and defense: poison and clean "
            "points rejected, fitted slope, test NMSE) to --out."
        ),
        formatter_class=_Formatter,
    )
    f9.add_argument(
        "--out", default="skpoison-figure9", metavar="DIR", help="output folder"
    )
    f9.add_argument(
        "--alpha",
        type=float,
        default=1.0,
        help="the attack's stealth factor (the paper's figure: see the docs)",
    )
    f9.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=[0.20, 0.24, 0.30],
        metavar="R",
        help="poisoning ratios",
    )
    f9.add_argument(
        "--n-outer-steps",
        type=_positive_int,
        default=100,
        metavar="T_OUT",
        help="the attack's T_out",
    )
    f9.add_argument(
        "--random-state", type=int, default=0, help="seed of data and attack"
    )
    f9.add_argument(
        "--reps",
        type=_positive_int,
        default=1,
        help="seeds to run (random-state, +1, ...); figure9.csv holds them all",
    )
    f9.add_argument(
        "--plot-rep",
        type=int,
        default=0,
        help="which of the --reps seeds the figure draws (0 = random-state)",
    )

    fi = sub.add_parser(
        "findings",
        help="check the paper's findings against finished studies",
        description=(
            "Read the results.csv of finished studies (folders written by "
            "'skpoison evaluate' or 'skpoison reproduce') and the figure9.csv of "
            "'skpoison figure-9', and print for each of the paper's findings what "
            "was measured, the criterion and the verdict, then BayesClean's two "
            "accept rules side by side."
        ),
        formatter_class=_Formatter,
    )
    fi.add_argument(
        "studies", nargs="+", metavar="DIR", help="study folders holding results.csv"
    )
    fi.add_argument(
        "--figure9", metavar="DIR", default=None, help="folder holding figure9.csv"
    )
    fi.add_argument(
        "--out",
        metavar="FILE.md",
        default=None,
        help="also write the table to this file",
    )
    _add_sensitivity_parser(sub)
    return parser


def _add_sensitivity_parser(sub) -> None:
    from .evaluation._sensitivity import SENSITIVITY_SETTINGS

    se = sub.add_parser(
        "sensitivity",
        help="vary each setting the paper leaves open: which findings flip",
        description=(
            "Run a baseline study (LR on --dataset, and Fig. 9 over --figure9-seeds "
            "seeds) and, for each setting, the same study with that setting alone "
            "changed; judge the paper's findings on each run (as 'skpoison "
            "findings') and report which verdicts differ from the baseline's. "
            "Writes sensitivity.md, sensitivity.csv (one row per setting) and "
            "verdicts.csv (one row per run and finding) to --out; each study is "
            "checkpointed in a subfolder, so a rerun resumes. Verdicts need at "
            "least 6 repetitions to be anything but inconclusive. Settings: "
            + ", ".join(
                s.name + ("" if s.target else " (not supported yet)")
                for s in SENSITIVITY_SETTINGS
            )
            + "."
        ),
        formatter_class=_Formatter,
    )
    se.add_argument(
        "--dataset", choices=_DATASET_CHOICES, default="boston_housing", help="data"
    )
    se.add_argument(
        "--settings",
        nargs="+",
        default=None,
        metavar="NAME",
        help="settings to vary (default: every supported one)",
    )
    _add_study_options(
        se.add_argument_group("each study"),
        scope=" of each study",
        reps=6,
        alphas=(1.0, 0.1),
        defenses=_ALL_DEFENSES,
        ratios=(0.0, 0.075, 0.15, 0.3, 0.45),
        # The T_out setting varies it around the baseline's.
        t_out_help="the baseline's T_out (default: Table II's)",
    )
    se.add_argument(
        "--figure9-seeds",
        type=int,
        default=6,
        help="seeds of each Fig. 9 run (0 skips Fig. 9)",
    )
    se.add_argument(
        "--figure9-n-outer-steps", type=_positive_int, default=100, metavar="T_OUT"
    )
    se.add_argument(
        "--out", default="skpoison-sensitivity", metavar="DIR", help="output folder"
    )
    _add_run_options(se, n_jobs=-1)


@contextlib.contextmanager
def _dask_client(backend, scheduler):
    if backend != "dask":
        if scheduler:
            raise ValueError("--scheduler needs --backend dask.")
        yield
        return
    try:
        from distributed import Client
    except ImportError:
        raise ValueError(
            "--backend dask needs dask.distributed: pip install 'skpoison[dask]'."
        ) from None
    client = Client(scheduler) if scheduler else Client(processes=False)
    try:
        yield
    finally:
        client.close()


def _check_out(out: str, option: str = "--out") -> Path:
    """The output folder, refused before any work if it cannot be one."""
    if not out.strip():
        raise ValueError(f"{option} must name a folder, got {out!r}.")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {out} is a file, not a folder.")
    return path


def _check_device(device: str) -> None:
    """Refuse a device torch cannot use before any file is written."""
    from ._validation import resolve_device

    try:
        resolve_device(device)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--device {device}: {exc}") from None


def _note(message, category, filename, lineno, file=None, line=None):
    print(f"skpoison: note: {message}", file=sys.stderr)


def _read_csv(path: str, target: str | None):
    import numpy as np
    import pandas as pd

    if not target:
        raise ValueError("--data needs --target COLUMN (the column to predict).")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty (no header row, no data).") from None
    if frame.empty:
        raise ValueError(f"{path} has a header row but no data rows.")
    if str(frame.columns[0]).startswith("Unnamed: "):
        # pandas writes its index as a first column without a header
        # (to_csv's default index=True) and reads it back as "Unnamed: 0".
        print(
            f"skpoison: note: {path}: dropped the first column, which has no "
            "header (an index written by pandas' to_csv).",
            file=sys.stderr,
        )
        frame = frame.drop(columns=frame.columns[0])
    if target not in frame.columns:
        raise ValueError(
            f"--target {target!r} is not a column of {path}; columns: {list(frame.columns)}."
        )
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValueError(f"{path}: non-numeric columns {bad}; encode them first.")
    if frame.isna().to_numpy().any():
        cols = frame.columns[frame.isna().any()].tolist()
        raise ValueError(f"{path}: missing values in columns {cols}.")
    y = frame[target].to_numpy(dtype=np.float64)
    X = frame.drop(columns=[target]).to_numpy(dtype=np.float64)
    if X.shape[1] == 0:
        raise ValueError(f"{path}: no feature column besides {target!r}.")
    return X, y


class _Renderer:
    """One background thread that draws figures and writes reports, in order.

    ``skpoison reproduce`` renders a finished study while the next one runs.
    The figures are drawn with matplotlib's object API (``Figure`` and its
    Agg canvas, never pyplot's state), and only this thread draws while it
    runs, so the temporary ``rc_context`` of the drawing functions is never
    entered by two threads at once. Leaving the ``with`` block waits for the
    thread and re-raises the first error of a job (unless the block itself
    raised: then the jobs not started are dropped).
    """

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._jobs = []

    def __call__(self, fn, *args, **kwargs):
        self._jobs.append(self._pool.submit(fn, *args, **kwargs))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)
        if exc_type is None:
            for job in self._jobs:
                job.result()
        return False


def _now(fn, *args, **kwargs):
    """Run ``fn`` here and now (where no :class:`_Renderer` is used)."""
    fn(*args, **kwargs)


def _write_outputs(
    df, out: Path, *, title, command, wall_time, notes=None, render=_now, done=None
) -> None:
    """Write the study's tables now, then ``render`` its figures and report.

    ``render(fn, *args)`` runs ``fn(*args)`` (here, or on a :class:`_Renderer`);
    ``done(files)`` is called there once every file is written.
    """
    from .evaluation._checkpoint import atomic_write_text
    from .evaluation._curve import ADAPTIVE_COLUMNS, RESULT_COLUMNS

    out.mkdir(parents=True, exist_ok=True)
    # results.csv holds only what the arguments decide (bit-identical on a
    # resumed run); run times go to timings.csv.
    adaptive = [c for c in ADAPTIVE_COLUMNS if c in df.columns]
    columns = [*RESULT_COLUMNS, *adaptive]
    atomic_write_text(out / "results.csv", df[columns].to_csv(index=False))
    timing_cols = ["repetition", "attack", "alpha", "ratio", "defense"]
    timing_cols += adaptive[:1]
    timing_cols += ["fit_time", "attack_time"]
    atomic_write_text(out / "timings.csv", df[timing_cols].to_csv(index=False))
    report = dict(title=title, command=command, wall_time=wall_time, notes=notes)
    # A copy: the caller goes on with its table while the renderer reads this.
    render(_render_study, df.copy(), out, report, done)


def _render_study(df, out: Path, report: dict, done) -> None:
    from .evaluation._plots import plot_poisoning_curve
    from .evaluation._report import write_report

    figures = plot_poisoning_curve(df, out)
    write_report(df, out / "report.md", figures=figures, **report)
    if done is not None:
        done(["results.csv", "timings.csv", "report.md", *figures])


def _run_study(
    data,
    *,
    out,
    model,
    alphas,
    ratios,
    defenses,
    reps,
    args,
    title,
    n_outer_steps=None,
    command=None,
    victim_params=None,
    attacks=("stealthy",),
    adaptive=False,
    render=_now,
):
    from .evaluation import poisoning_curve
    from .evaluation._checkpoint import atomic_write_text

    attack_params = {} if n_outer_steps is None else {"n_outer_steps": n_outer_steps}
    units = Path(out) / "units"
    n_before = len(list(units.glob("*.json")))
    t0 = time.perf_counter()
    with _dask_client(args.backend, args.scheduler), _cli_wording():
        df = poisoning_curve(
            data,
            model=model,
            alphas=alphas,
            ratios=ratios,
            defenses=defenses,
            attacks=list(attacks),
            n_repetitions=reps,
            attack_params=attack_params,
            victim_params=victim_params,
            random_state=args.random_state,
            n_jobs=args.n_jobs,
            backend=args.backend,
            out_dir=out,
            overwrite=args.overwrite,
            device=args.device,
            progress=not args.no_progress,
            adaptive=adaptive,
        )
    wall = time.perf_counter() - t0
    # A rerun that computed nothing keeps the wall time of the run that did.
    wall_file = Path(out) / "wall_time.json"
    rerun = len(list(units.glob("*.json"))) == n_before and wall_file.exists()
    if rerun:
        wall = json.loads(wall_file.read_text(encoding="utf-8"))["wall_time_s"]
    else:
        atomic_write_text(wall_file, json.dumps({"wall_time_s": wall}) + "\n")
    n_div = int(df["diverged"].sum())

    def done(files):
        print(
            f"{title}: {len(df)} rows, {n_div} diverged, {wall:.1f} s"
            f"{' (finished before: nothing left to run)' if rerun else ''} -> "
            f"{Path(out) / 'report.md'} ({', '.join(files)})",
            flush=True,
        )

    _write_outputs(
        df, Path(out), title=title, command=command, wall_time=wall,
        render=render, done=done,
    )  # fmt: skip
    return df, wall


@contextlib.contextmanager
def _cli_wording():
    """Name the CLI's option, not the API's argument, in a refused study."""
    from .evaluation._checkpoint import DifferentStudyError

    try:
        yield
    except DifferentStudyError as exc:
        raise DifferentStudyError(
            exc.out_dir, exc.differences, remedy="pass --overwrite"
        ) from None


def _defense_list(names):
    names = list(_KNOWN_DEFENSES) if names == ["all"] else list(names)
    unknown = [n for n in names if n not in _KNOWN_DEFENSES]
    if unknown:
        raise ValueError(
            f"unknown defenses {unknown}; choose among {list(_KNOWN_DEFENSES)} or "
            "'all'."
        )
    return names


def _cmd_evaluate(args, argv) -> int:
    _check_out(args.out)
    _check_device(args.device)
    if args.data is not None:
        data = _read_csv(args.data, args.target)
        name = Path(args.data).stem
    else:
        if args.target:
            raise ValueError("--target goes with --data, not with --dataset.")
        data = name = args.dataset
    _run_study(
        data,
        out=args.out,
        model=args.model,
        alphas=args.alphas,
        ratios=args.ratios,
        defenses=_defense_list(args.defenses),
        attacks=args.attacks,
        reps=args.reps,
        args=args,
        title=f"Poisoning study: {name} ({args.model})",
        n_outer_steps=args.n_outer_steps,
        command="skpoison " + shlex.join(argv),
        victim_params=_penalty_params(args),
        adaptive=args.adaptive,
    )
    return 0


def _penalty_params(args):
    """``--alpha-penalty`` / ``--l1-ratio`` as the scikit-learn victim's parameters."""
    params = {}
    if args.alpha_penalty is not None:
        if args.model not in ("ridge", "lasso", "elasticnet"):
            raise ValueError(
                "--alpha-penalty needs --model ridge, lasso or elasticnet."
            )
        params["alpha"] = args.alpha_penalty
    if args.l1_ratio is not None:
        if args.model != "elasticnet":
            raise ValueError("--l1-ratio needs --model elasticnet.")
        params["l1_ratio"] = args.l1_ratio
    return params or None


def _loan_available() -> str | None:
    """None if Loan can be loaded, else why not."""
    from .datasets import fetch_loan

    try:
        fetch_loan(download_if_missing=True)
    except (OSError, ConnectionError) as exc:  # offline, or a damaged download
        return str(exc)
    return None


def _cmd_reproduce(args, argv) -> int:
    from .evaluation._checkpoint import atomic_write_text
    from .evaluation._findings import paper_findings
    from .evaluation._report import markdown_table

    out = _check_out(args.out)
    _check_device(args.device)
    results = {}
    command = "skpoison " + shlex.join(argv)
    if args.quick:
        lr_sets = [QUICK["dataset"]]
        alphas, reps = QUICK["alphas"], args.reps or QUICK["n_repetitions"]
    else:
        lr_sets = ["loan", "heart", "boston_housing", "appliances"]
        alphas, reps = _PAPER_ALPHAS, args.reps or 10
    alphas = tuple(args.alphas) if args.alphas else alphas
    defenses = _defense_list(args.defenses)
    if args.datasets:
        lr_sets = [d for d in args.datasets if d != "synthetic"]
    studies = [(d, "linear", reps) for d in lr_sets]
    if not (args.quick or args.no_dnn):
        studies += [(d, "mlp", args.dnn_reps or reps) for d in args.dnn_datasets]
    index, skipped, record = [], [], []
    loan_problem = (
        _loan_available() if any(d == "loan" for d, _, _ in studies) else None
    )
    # Each study's figures and report are drawn while the next study runs;
    # leaving the block waits for them (and re-raises a rendering error).
    with _Renderer() as render:
        for dataset, model, n_reps in studies:
            if dataset == "loan" and loan_problem is not None:
                msg = (
                    f"Loan ({model}) skipped: fetch_loan could not find or download "
                    f"the file ({loan_problem})"
                )
                print(msg, file=sys.stderr)
                skipped.append(msg)
                continue
            folder = out / f"{dataset}-{model}"
            df, wall = _run_study(
                dataset,
                out=folder,
                model=model,
                alphas=alphas,
                ratios=args.ratios,
                defenses=defenses,
                reps=n_reps,
                args=args,
                title=f"Reproduction: {dataset} ({model})",
                n_outer_steps=args.n_outer_steps,
                command=command,
                adaptive=args.adaptive,
                render=render,
            )
            results[(dataset, model)] = df
            index.append(
                [f"[{dataset} ({model})]({folder.name}/report.md)", f"{wall:.0f} s"]
            )
            record.append(
                dict(
                    dataset=dataset,
                    model=model,
                    folder=folder.name,
                    repetitions=n_reps,
                    rows=len(df),
                    attacks=int(df[["repetition", "alpha"]].drop_duplicates().shape[0]),
                    diverged=int(df["diverged"].sum()),
                    wall_time_s=round(wall, 1),
                )
            )
        t0 = time.perf_counter()
        # 10 seeds: a paired verdict on Fig. 9 needs at least MIN_REPETITIONS (6).
        fig9_reps = args.figure9_seeds or (1 if args.quick else 10)
        fig9 = _figure9(
            out / "figure9",
            args.random_state,
            1.0,
            (0.20, 0.24, 0.30),
            args.figure9_n_outer_steps,
            fig9_reps,
            n_jobs=args.n_jobs,
            # The dask client lives only while a study runs: Fig. 9 then
            # runs here (no loky worker is running).
            backend=None if args.backend == "dask" else args.backend,
            render=render,
        )
        fig9_wall = time.perf_counter() - t0
    index.append(
        [
            f"[Fig. 9](figure9/figure9.png) ({fig9_reps} seed(s): figure9/figure9.csv)",
            f"{fig9_wall:.0f} s",
        ]
    )
    summary = dict(
        command=command,
        studies=record,
        figure9=dict(seeds=fig9_reps, wall_time_s=round(fig9_wall, 1)),
        skipped=skipped,
    )
    atomic_write_text(out / "index.json", json.dumps(summary, indent=1) + "\n")
    text = [
        f"# skpoison reproduction{' (quick)' if args.quick else ''}",
        "",
        "Produced by:",
        "",
        "```",
        command,
        "```",
        "",
        markdown_table(["study", "wall time"], index),
        "",
    ]
    text += [f"- {s}" for s in skipped]
    findings = paper_findings(results, fig9)
    text += ["", "## The paper's findings", "", findings]
    atomic_write_text(out / "findings.md", findings)
    atomic_write_text(out / "README.md", "\n".join(text) + "\n")
    print(f"index: {out / 'README.md'}")
    return 0


def _figure9(
    out: Path,
    random_state,
    alpha,
    ratios,
    n_outer_steps,
    reps,
    plot_rep=0,
    *,
    n_jobs=None,
    backend=None,
    render=_now,
):
    """Fig. 9 over ``reps`` seeds: figure9.csv now, the figure by ``render``."""
    from .evaluation._checkpoint import atomic_write_text
    from .evaluation._figure9 import figure_9_seeds

    if not 0 <= plot_rep < reps:
        raise ValueError(f"--plot-rep must be in [0, {reps - 1}], got {plot_rep}.")
    out.mkdir(parents=True, exist_ok=True)
    table, draw = figure_9_seeds(
        range(random_state, random_state + reps),
        plot_seed=random_state + plot_rep,
        n_jobs=n_jobs,
        backend=backend,
        ratios=ratios,
        alpha=alpha,
        n_outer_steps=n_outer_steps,
    )
    atomic_write_text(out / "figure9.csv", table.to_csv(index=False))
    render(_save_drawing, draw, out / "figure9.png")
    return table


def _save_drawing(draw, path):
    from .evaluation._plots import save_figure

    save_figure(draw(), path)


def _cmd_figure9(args, argv) -> int:
    table = _figure9(
        _check_out(args.out),
        args.random_state,
        args.alpha,
        tuple(args.ratios),
        args.n_outer_steps,
        args.reps,
        args.plot_rep,
    )
    cols = [
        "ratio",
        "defense",
        "poison_rejected",
        "clean_rejected",
        "slope",
        "test_nmse",
    ]
    summary = table.groupby(["ratio", "defense"], sort=False)[cols[2:]].mean()
    print(summary.round(3).to_string())
    print(f"-> {Path(args.out) / 'figure9.png'}, {Path(args.out) / 'figure9.csv'}")
    return 0


def _cmd_findings(args, argv) -> int:
    import pandas as pd

    from .evaluation._checkpoint import atomic_write_text
    from .evaluation._findings import paper_findings

    studies = {}
    for folder in args.studies:
        path = Path(folder) / "results.csv"
        if not path.exists():
            raise ValueError(f"{folder} holds no results.csv (not a finished study).")
        df = pd.read_csv(path)
        key = (str(df["dataset"].iloc[0]), str(df["model"].iloc[0]))
        studies[key] = df
    fig9 = None
    if args.figure9:
        path = Path(args.figure9) / "figure9.csv"
        if not path.exists():
            raise ValueError(f"{args.figure9} holds no figure9.csv.")
        fig9 = pd.read_csv(path)
    text = paper_findings(studies, fig9)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


def _cmd_sensitivity(args, argv) -> int:
    from .evaluation._checkpoint import atomic_write_text
    from .evaluation._sensitivity import sensitivity_markdown, sensitivity_study

    defenses = _defense_list(args.defenses)  # before any folder is made
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with _dask_client(args.backend, args.scheduler):
        table, verdicts = sensitivity_study(
            args.dataset,
            settings=args.settings,
            alphas=args.alphas,
            ratios=args.ratios,
            defenses=defenses,
            n_repetitions=args.reps,
            n_outer_steps=args.n_outer_steps,
            figure9_seeds=args.figure9_seeds,
            figure9_n_outer_steps=args.figure9_n_outer_steps,
            random_state=args.random_state,
            n_jobs=args.n_jobs,
            backend=args.backend,
            device=args.device,
            out_dir=out / "studies",
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    command = "skpoison " + " ".join(shlex.quote(a) for a in argv)
    text = sensitivity_markdown(table, verdicts, command=command)
    atomic_write_text(out / "sensitivity.md", text)
    atomic_write_text(out / "sensitivity.csv", table.to_csv(index=False))
    atomic_write_text(out / "verdicts.csv", verdicts.to_csv(index=False))
    print(text)
    return 0


def main(argv=None) -> int:
    """Entry point of the ``skpoison`` command; returns the exit status."""
    import matplotlib

    matplotlib.use("Agg")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {
        "evaluate": _cmd_evaluate,
        "reproduce": _cmd_reproduce,
        "figure-9": _cmd_figure9,
        "findings": _cmd_findings,
        "sensitivity": _cmd_sensitivity,
    }
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _note
            return commands[args.command](args, argv)
    except (ValueError, OSError) as exc:
        print(f"skpoison {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; finished units are saved, rerun the same command to resume.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
