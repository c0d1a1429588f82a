"""Fill the generated blocks of ``doc/reproduction.md`` from a reproduction run.

The numbers of the reproduction page are never typed in: ``doc/reproduce.sh``
runs every study from a clean export of one commit, then this script writes
each generated block of the page from the run's files. A block sits between
two HTML comments (invisible in the rendered page)::

    <!-- BEGIN generated:findings -->
    ...
    <!-- END generated:findings -->

and everything between them is replaced. The blocks (:data:`BLOCKS`):

``crosscheck``
    the independent NumPy cross-check of the attack
    (``crosscheck/crosscheck_attack_*.json``);
``provenance``
    the commit, the dates, the package versions and the machine
    (``provenance.json``);
``commands``
    the command that regenerated the page and the commands it ran;
``studies``
    links to each study's report (``repro/index.json``);
``time``
    wall time of each study, Fig. 9, the sensitivity study and the whole run;
``findings``
    the findings table (``repro/findings.md``, its caveat included);
``bayesclean-rules``
    BayesClean's two accept rules side by side (the end of the same file);
``sensitivity``
    the sensitivity table (``sensitivity/sensitivity.md``).

Usage (what ``doc/reproduce.sh`` runs)::

    python doc/sphinxext/reproduction_page.py provenance RUN --commit SHA ...
    python doc/sphinxext/reproduction_page.py fill RUN --page doc/reproduction.md
    python doc/sphinxext/reproduction_page.py fill RUN --page doc/reproduction.md --check

``--check`` changes nothing and fails when the page's blocks differ from what
the run gives (a hand-edited number, or a page from another run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

# One CPU probe for the benchmarks and this page (a script and a Sphinx extension).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _provenance import cpu_model

BLOCKS = (
    "crosscheck",
    "provenance",
    "commands",
    "studies",
    "time",
    "findings",
    "bayesclean-rules",
    "sensitivity",
)

_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN generated:(?P<name>[\w-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END generated:(?P=name) -->)",
    re.S,
)
_PACKAGES = ("skpoison", "torch", "sklearn", "numpy", "scipy", "pandas", "matplotlib")
_NAMES = {"sklearn": "scikit-learn"}


# ----------------------------------------------------------------- provenance
def _blas() -> list[str]:
    """The BLAS libraries loaded and the kernels they chose for this CPU.

    OpenBLAS picks its kernels by CPU model, so the same commit rounds its
    last bits differently on another machine: the record says which ran.
    """
    try:
        import numpy  # noqa: F401  (loads its BLAS, so that it is listed)
        from threadpoolctl import threadpool_info  # a scikit-learn dependency
    except ImportError:
        return []
    return sorted(
        {
            " ".join(
                str(x)
                for x in (
                    i.get("internal_api"),
                    i.get("version"),
                    i.get("architecture"),
                )
                if x
            )
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        }
    )


def write_provenance(run: Path, *, commit, ref, subject, command, settings) -> dict:
    """Write ``run/provenance.json`` from the steps ``doc/reproduce.sh`` logged.

    ``run/steps.jsonl`` holds one JSON object per step (``name``,
    ``command``, ``started``, ``finished``, ``seconds``, ``status``); the
    versions are those of the interpreter that runs this function, the one
    that ran the steps.
    """
    import importlib

    steps_file = run / "steps.jsonl"
    steps = []
    if steps_file.exists():
        steps = [json.loads(line) for line in steps_file.read_text().splitlines()]
    versions = {"python": platform.python_version()}
    where = None
    for name in _PACKAGES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        versions[_NAMES.get(name, name)] = getattr(module, "__version__", "?")
        if name == "skpoison":
            where = str(Path(module.__file__).resolve().parent)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    prov = dict(
        commit=commit,
        ref=ref,
        subject=subject,
        command=command,
        settings=settings,
        started=steps[0]["started"] if steps else None,
        finished=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        steps=steps,
        versions=versions,
        skpoison_imported_from=where,
        machine=dict(
            cores=os.cpu_count(),
            platform=platform.platform(),
            processor=platform.processor() or platform.machine(),
            cpu_model=cpu_model(),
            blas=_blas(),
            load_average_at_end=[round(x, 2) for x in load] if load else None,
        ),
    )
    (run / "provenance.json").write_text(json.dumps(prov, indent=1) + "\n")
    return prov


# --------------------------------------------------------------------- blocks
def _minutes(seconds) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    if m < 90:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _utc(stamp: str) -> str:
    return stamp.replace("T", " ").replace("Z", " UTC") if stamp else "?"


def _provenance_block(prov) -> str:
    v = prov["versions"]
    names = [f"{k} {v[k]}" for k in ("python", "torch", "scikit-learn") if k in v]
    names += [f"{k} {v[k]}" for k in ("numpy", "scipy", "pandas") if k in v]
    m = prov["machine"]
    load = m.get("load_average_at_end")
    loads = (
        f", load average {load[0]} / {load[1]} / {load[2]} at the end" if load else ""
    )
    # Runs recorded before the CPU model and BLAS were: the architecture only.
    cpu = m.get("cpu_model") or m["processor"]
    blas = f"; BLAS: {', '.join(m['blas'])}" if m.get("blas") else ""
    return (
        f"The numbers on this page come from commit `{prov['commit'][:7]}` "
        f"(`{prov['commit']}`), run from a clean export of that commit "
        f"(`git archive`) from {_utc(prov['started'])} to {_utc(prov['finished'])}, "
        f"with skpoison imported from the export. {', '.join(names)}; "
        f"{m['cores']} CPU cores ({cpu}, {m['platform']}){loads}{blas}. "
        "Every file of the run, `provenance.json` included, is under "
        "`doc/_static/reproduction/`."
    )


def _commands_block(prov) -> str:
    lines = [
        "```bash",
        "# regenerates every table and figure of this page",
        prov["command"],
    ]
    lines += ["", "# which runs, from the export of that commit:"]
    lines += [step["command"] for step in prov["steps"]]
    lines.append("```")
    return "\n".join(lines)


def _label(study) -> str:
    names = {"heart": "Heart", "boston_housing": "Boston Housing", "loan": "Loan",
             "appliances": "Appliances"}  # fmt: skip
    model = {"linear": "LR", "mlp": "DNN"}.get(study["model"], study["model"])
    return f"{names.get(study['dataset'], study['dataset'])} ({model})"


def _studies_block(index) -> str:
    links = [
        f"{{download}}`{_label(s)} <_static/reproduction/{s['folder']}/report.md>` "
        f"({s['repetitions']} repetition{'s' if s['repetitions'] != 1 else ''})"
        for s in index["studies"]
    ]
    text = "Reports: " + ", ".join(links) + "; "
    text += (
        "{download}`the index <_static/reproduction/index.md>`, "
        "{download}`figure9.csv <_static/reproduction/figure9.csv>` "
        f"({index['figure9']['seeds']} seeds) and "
        "{download}`provenance.json <_static/reproduction/provenance.json>`."
    )
    text += "".join(f"\n\n- {s}" for s in index.get("skipped", []))
    return text


def _time_block(prov, index) -> str:
    rows = [
        "| what | repetitions | rows | diverged | wall time |",
        "|---|---|---|---|---|",
    ]
    for s in index["studies"]:
        n_rows = f"{s['rows']:,}".replace(",", " ")
        rows.append(
            f"| {_label(s)} | {s['repetitions']} | {n_rows} | {s['diverged']} "
            f"| {_minutes(s['wall_time_s'])} |"
        )
    f9 = index["figure9"]
    rows.append(f"| Fig. 9 | {f9['seeds']} seeds | | | {_minutes(f9['wall_time_s'])} |")
    for step in prov["steps"]:
        if step["name"] == "sensitivity":
            rows.append(f"| sensitivity study | | | | {_minutes(step['seconds'])} |")
    total = sum(float(step["seconds"]) for step in prov["steps"])
    rows.append(f"| **everything** | | | | **{_minutes(total)}** |")
    return "\n".join(rows)


_RULES = "BayesClean's two accept rules"


def _crosscheck_block(run) -> str:
    files = sorted((run / "crosscheck").glob("crosscheck_attack_*.json"))
    if not files:
        return "The cross-check was not run in this reproduction."
    checks = [json.loads(f.read_text()) for f in files]
    commits = ", ".join(sorted({c["commit"][:7] for c in checks}))
    parts = [
        f"{c['dataset']}: {c['n_poison']} poison points in batches of {c['batch']}, "
        f"T_out {c['preset']['n_outer_steps']}, largest difference "
        f"{c['max_abs_diff_x']:.1e} in the features and {c['max_abs_diff_y']:.1e} "
        f"in the labels (the points moved up to {c['max_move_from_start']:.1f} "
        "standardised units from their starts)"
        for c in checks
    ]
    return (
        "**The attack is cross-checked.** `benchmarks/crosscheck_attack.py` writes "
        "the alpha = 1 attack on LR again from the paper, in plain NumPy and "
        "sharing no code with skpoison (the victim's T gradient-descent steps, the "
        "hypergradient by hand-written reverse-mode differentiation, the "
        "normalised projected ascent, the batches), and runs it on the same split "
        "(the first repetition of the LR study) and the same replaced rows as "
        "`StealthyPoisoner`, with Table II's settings. The two give the same "
        "poison points: " + "; ".join(parts) + f" (commit `{commits}`)."
    )


def _findings_blocks(run) -> tuple[str, str]:
    """``findings.md`` cut before its BayesClean-rules table."""
    text = (run / "repro" / "findings.md").read_text()
    findings, _, rules = text.partition(_RULES)
    rules = (_RULES + rules).strip() if rules else "No BayesClean study in this run."
    return findings.strip(), rules


def _sensitivity_block(run) -> str:
    path = run / "sensitivity" / "sensitivity.md"
    if not path.exists():
        return "Not run in this reproduction (`doc/reproduce.sh --no-sensitivity`)."
    text = path.read_text()
    # Drop the file's own title and command (the page has both), demote headings.
    body = text.split("\n", 1)[1]
    body = re.sub(r"\nProduced by:\n\n```\n.*?\n```\n", "\n", body, flags=re.S)
    return re.sub(r"^## ", "### ", body.strip(), flags=re.M)


def blocks_from_run(run) -> dict[str, str]:
    """The text of every block of :data:`BLOCKS`, from the run folder ``run``."""
    run = Path(run)
    prov = json.loads((run / "provenance.json").read_text())
    index = json.loads((run / "repro" / "index.json").read_text())
    findings, rules = _findings_blocks(run)
    return {
        "crosscheck": _crosscheck_block(run),
        "provenance": _provenance_block(prov),
        "commands": _commands_block(prov),
        "studies": _studies_block(index),
        "time": _time_block(prov, index),
        "findings": findings,
        "bayesclean-rules": rules,
        "sensitivity": _sensitivity_block(run),
    }


def fill(page: str, blocks: dict[str, str]) -> str:
    """``page`` with the body of each generated block replaced by ``blocks``.

    Every block of the page must be given and every given block must be in the
    page (a renamed marker would otherwise leave stale numbers).
    """
    found = [m["name"] for m in _BLOCK.finditer(page)]
    if len(set(found)) != len(found):
        raise ValueError(f"generated blocks appear twice in the page: {found}")
    missing = sorted(set(found) - set(blocks))
    unused = sorted(set(blocks) - set(found))
    if missing or unused:
        raise ValueError(
            f"the page's generated blocks {found} do not match the run's "
            f"{sorted(blocks)} (missing: {missing}, not in the page: {unused})"
        )

    def body(m):
        return m["begin"] + blocks[m["name"]].strip() + "\n" + m["end"]

    return _BLOCK.sub(body, page)


# ------------------------------------------------------------------------ CLI
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    pv = sub.add_parser("provenance", help="write RUN/provenance.json")
    pv.add_argument("run", type=Path)
    for name in ("--commit", "--ref", "--subject", "--command"):
        pv.add_argument(name, required=name != "--subject", default="")
    pv.add_argument("--settings", default="{}", help="a JSON object")
    fl = sub.add_parser("fill", help="fill the page's generated blocks")
    fl.add_argument("run", type=Path)
    fl.add_argument("--page", type=Path, required=True)
    fl.add_argument("--out", type=Path, default=None, help="default: --page itself")
    fl.add_argument("--check", action="store_true", help="only compare")
    args = p.parse_args(argv)
    if args.what == "provenance":
        write_provenance(
            args.run,
            commit=args.commit,
            ref=args.ref,
            subject=args.subject,
            command=args.command,
            settings=json.loads(args.settings),
        )
        return 0
    page = args.page.read_text()
    filled = fill(page, blocks_from_run(args.run))
    if args.check:
        if filled != page:
            print(
                f"{args.page}: generated blocks differ from {args.run}", file=sys.stderr
            )
            return 1
        return 0
    (args.out or args.page).write_text(filled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
