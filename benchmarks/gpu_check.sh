#!/usr/bin/env bash
# CUDA check of the victim models and the hypergradient engines (< 5 minutes on an H100).
#
#   bash benchmarks/gpu_check.sh            # writes under benchmarks/results/
#   OUT=/some/dir bash benchmarks/gpu_check.sh
#   QUICK=1 bash benchmarks/gpu_check.sh    # small benchmark shapes (smoke test)
#
# 1. prints nvidia-smi and what torch sees;
# 2. runs the models and hypergradient tests (their device-parametrised tests add
#    a "cuda" case when torch.cuda.is_available());
# 3. runs the hypergradient benchmark on CUDA, then on this host's CPU (a quiet
#    many-core machine gives cleaner CPU timings than a shared CI box).
# Everything is logged to $OUT/gpu_check.log; the benchmark JSON goes next to it.
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/results}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
{
    echo "== $(date -u) on $(hostname)"
    nvidia-smi || echo "nvidia-smi not found"
    python - <<'PY'
import os, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"{p.total_memory / 2**30:.1f} GiB", "capability", f"{p.major}.{p.minor}")
print("cpu_count", os.cpu_count(), "torch threads", torch.get_num_threads())
for mod in ("sklearn", "hypothesis", "pytest", "scipy"):
    try:
        print(mod, __import__(mod).__version__)
    except Exception as exc:  # report, do not stop: the benchmark needs only torch/numpy
        print(mod, "MISSING", exc)
PY
    echo "== tests (cpu + cuda)"
    timeout 100 python -m pytest -q -p no:cacheprovider -o addopts="" -m "not slow" \
        tests/attacks/test_hypergradient.py tests/models/test_victims.py tests/models/test_training.py \
        || status=1
    echo "== benchmark, cuda"
    timeout 90 python benchmarks/bench_hypergradient.py --device cuda ${QUICK:+--quick} \
        --out "$OUT_DIR/hypergradient_cuda.json" || status=1
    echo "== benchmark, cpu of the GPU host"
    timeout 90 python benchmarks/bench_hypergradient.py --device cpu ${QUICK:+--quick} \
        --out "$OUT_DIR/hypergradient_cpu_gpuhost.json" || status=1
    echo "== done, status $status"
    exit "$status"
} 2>&1 | tee "$OUT_DIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
