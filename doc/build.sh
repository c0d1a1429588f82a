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
exec python -m sphinx -W --keep-going -b html -j 1 . _build/html
