#!/usr/bin/env bash
# Regenerate every table and figure of doc/reproduction.md from a clean export
# of one commit, and record where they came from (provenance.json).
#
#   doc/reproduce.sh                      # HEAD: 20 LR repetitions, 10 Fig. 9
#                                         # seeds, DNN 10 repetitions, sensitivity
#   doc/reproduce.sh --commit a1b2c3d --dnn-reps 5 --install
#   doc/reproduce.sh --tiny               # the machinery only, under a minute
#
# Options:
#   --commit REF          commit to reproduce (default HEAD); it is exported with
#                         `git archive`, so uncommitted changes never leak in
#   --out DIR             run folder (default reproduction-<short sha>)
#   --reps N              LR study repetitions (default 20)
#   --fig9-seeds N        Fig. 9 seeds (default 10)
#   --dnn-reps K          DNN study repetitions (default 10)
#   --no-dnn              skip the DNN study
#   --sensitivity-reps N  repetitions of each sensitivity study (default 10)
#   --no-sensitivity      skip the sensitivity study
#   --n-jobs N            units run in parallel (default 2)
#   --python PATH         interpreter with skpoison's dependencies (default
#                         $PYTHON, else python3); skpoison itself comes from
#                         the export
#   --install             write the generated blocks into this working tree's
#                         doc/reproduction.md and the run's files into
#                         doc/_static/reproduction/
#   --tiny                tiny settings (1-2 repetitions, T_out 2, few
#                         defenses): checks the machinery, proves nothing
#
# The run folder gets src/ (the export), crosscheck/ (the attack written again
# in NumPy, benchmarks/crosscheck_attack.py), repro/ (skpoison reproduce),
# sensitivity/ (skpoison sensitivity), steps.jsonl, provenance.json and
# reproduction.md (the page with its generated blocks filled in).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel)"
commit_ref=HEAD out="" reps=20 fig9_seeds=10 dnn_reps=10 dnn=1 sens=1 sens_reps=10
n_jobs=2 install=0 tiny=0 python="${PYTHON:-python3}"
invocation="doc/reproduce.sh${*:+ $*}"
while [ $# -gt 0 ]; do
    case "$1" in
        --commit) commit_ref="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        --fig9-seeds) fig9_seeds="$2"; shift 2 ;;
        --dnn-reps) dnn_reps="$2"; shift 2 ;;
        --no-dnn) dnn=0; shift ;;
        --sensitivity-reps) sens_reps="$2"; shift 2 ;;
        --no-sensitivity) sens=0; shift ;;
        --n-jobs) n_jobs="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --install) install=1; shift ;;
        --tiny) tiny=1; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "doc/reproduce.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

sha="$(git -C "$repo" rev-parse --verify "${commit_ref}^{commit}")"
subject="$(git -C "$repo" log -1 --format=%s "$sha" | cut -c1-100)"
out="${out:-reproduction-${sha:0:7}}"
if [ -e "$out/provenance.json" ]; then
    echo "doc/reproduce.sh: $out already holds a finished run; pick another --out" >&2
    exit 2
fi
mkdir -p "$out/src"
out="$(cd "$out" && pwd)"
# A clean export: exactly the committed tree of $sha.
git -C "$repo" archive "$sha" | tar -x -C "$out/src"
: > "$out/steps.jsonl"

# step NAME ARGS...: run `skpoison ARGS...` (or, when ARGS start with a .py
# path of the repository, that script) from the export, logging its times.
step() {
    local name="$1"; shift
    local started t0 status=0 shown
    started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; t0="$EPOCHREALTIME"
    if [[ "$1" == *.py ]]; then
        shown=python
        (cd "$out" && PYTHONPATH="$out/src" "$python" "$out/src/$1" "${@:2}") || status=$?
    else
        shown=skpoison
        (cd "$out" && PYTHONPATH="$out/src" "$python" -m skpoison.cli "$@") || status=$?
    fi
    "$python" - "$out/steps.jsonl" "$name" "$started" "$t0" "$EPOCHREALTIME" \
        "$status" "$shown" "$@" <<'PY'
import json, shlex, sys
from datetime import datetime, timezone
path, name, started, t0, t1, status, shown, *args = sys.argv[1:]
now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
rec = dict(name=name, command=shown + " " + shlex.join(args), started=started,
           finished=now, seconds=round(float(t1) - float(t0), 1), status=int(status))
with open(path, "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
    if [ "$status" -ne 0 ]; then
        echo "doc/reproduce.sh: step $name failed ($status)" >&2
        exit "$status"
    fi
}

run_opts=(--n-jobs "$n_jobs" --no-progress)
if [ "$tiny" = 1 ]; then
    # Boston only, tiny attacks, few defenses: every file, none of the evidence.
    study=(--datasets boston_housing --reps 2 --alphas 1 0.1 --ratios 0 0.075 0.15
           --defenses none trim bayesclean bayesclean_paper --n-outer-steps 2
           --figure9-seeds 2 --figure9-n-outer-steps 2 --dnn-datasets heart
           --dnn-reps 1)
    sens_args=(--dataset boston_housing --settings trim_max_iter sigma_dof --reps 1
               --alphas 1 --ratios 0 0.075 --defenses none trim --n-outer-steps 1
               --figure9-seeds 1 --figure9-n-outer-steps 1)
else
    # The DNN study on Heart only: Loan's download is not reachable from the
    # development machines, and its DNN study is the longest of all.
    study=(--reps "$reps" --figure9-seeds "$fig9_seeds" --dnn-reps "$dnn_reps"
           --dnn-datasets heart)
    sens_args=(--dataset boston_housing --reps "$sens_reps" --figure9-seeds "$fig9_seeds")
fi
[ "$dnn" = 1 ] || study+=(--no-dnn)

# The independent NumPy cross-check of the alpha = 1 attack (seconds).
export SKPOISON_COMMIT="$sha"
check_args=()
[ "$tiny" = 1 ] && check_args=(--n-batches 1)
for data in boston_housing heart; do
    step "crosscheck-$data" benchmarks/crosscheck_attack.py --dataset "$data" \
        "${check_args[@]}" --out crosscheck
done
step reproduce reproduce --out repro "${study[@]}" "${run_opts[@]}"
if [ "$sens" = 1 ]; then
    step sensitivity sensitivity --out sensitivity "${sens_args[@]}" "${run_opts[@]}"
fi

settings="{\"reps\": $reps, \"fig9_seeds\": $fig9_seeds, \"dnn_reps\": $([ "$dnn" = 1 ] && echo "$dnn_reps" || echo null), \"sensitivity_reps\": $([ "$sens" = 1 ] && echo "$sens_reps" || echo null), \"n_jobs\": $n_jobs, \"tiny\": $([ "$tiny" = 1 ] && echo true || echo false)}"
page_tool="$out/src/doc/sphinxext/reproduction_page.py"
PYTHONPATH="$out/src" "$python" "$page_tool" provenance "$out" --commit "$sha" \
    --ref "$commit_ref" --subject "$subject" --command "$invocation" \
    --settings "$settings"

template="$out/src/doc/reproduction.md"
[ "$install" = 1 ] && template="$repo/doc/reproduction.md"
"$python" "$page_tool" fill "$out" --page "$template" --out "$out/reproduction.md"

if [ "$install" = 1 ]; then
    static="$repo/doc/_static/reproduction"
    rm -rf "$static" && mkdir -p "$static"
    for study_dir in "$out"/repro/*/; do
        name="$(basename "$study_dir")"
        [ -f "$study_dir/report.md" ] || continue
        mkdir -p "$static/$name"
        cp "$study_dir"/report.md "$study_dir"/*.png "$static/$name/"
    done
    cp "$out/repro/figure9/figure9.png" "$out/repro/figure9/figure9.csv" "$static/"
    cp "$out/repro/README.md" "$static/index.md"
    cp "$out/repro/findings.md" "$out/provenance.json" "$out"/crosscheck/*.json "$static/"
    [ -f "$out/sensitivity/sensitivity.md" ] && cp "$out"/sensitivity/*.md "$out"/sensitivity/*.csv "$static/"
    cp "$out/reproduction.md" "$repo/doc/reproduction.md"
    echo "installed: doc/reproduction.md and doc/_static/reproduction/ (commit ${sha:0:7})"
fi
echo "done: $out/reproduction.md, $out/provenance.json"
