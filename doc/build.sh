#!/usr/bin/env bash
# Build the documentation as CI does: warnings are errors.
#
#   doc/build.sh            # incremental build into doc/_build/html
#   doc/build.sh clean      # remove every build output first
#
# Needs the package and its doc extra: pip install -e ".[doc]"
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "clean" ]; then
    rm -rf _build generated auto_examples gen_modules sg_execution_times.rst
fi
# The gallery runs small torch models: a few threads are faster than many on a
# shared CI machine.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" MPLBACKEND=Agg
# -E: always re-read every page (a stale environment can hide or invent
# warnings); the gallery still reruns only the examples that changed.
exec python -m sphinx -E -W --keep-going -b html -j 1 . _build/html
