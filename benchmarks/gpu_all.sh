#!/usr/bin/env bash
# Every GPU measurement in one call, for a machine with an NVIDIA GPU, CuPy and PyTorch:
#   the CuPy checks (fused kernels against the readable code, CuPy against NumPy), training speed at
#   configs c and d against PyTorch eager (TF32 on both sides), a profile of config d's step, single
#   operations timed alone (benchmarks/gpu_micro.py), generation speed, and the whole test suite with
#   MINILM_DEVICE=cuda (the notebooks are left out: they need Jupyter, which that machine lacks). Logs go to ${OUT:-gpu-results}/.
#   bash benchmarks/gpu_all.sh
# Each stage has its own time limit, so one that hangs cannot take the others' results with it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
stage() {  # stage NAME SECONDS COMMAND...: run one measurement, log it, note its exit status
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$out/card.txt"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)"; } > "$out/card.txt" 2>&1
stage pytest_gpu_file 60 python -m pytest -q -p no:cacheprovider -o addopts= -rfE --tb=short tests/test_gpu.py
stage bench_train_tf32 90 env CUPY_TF32=1 python benchmarks/bench_train.py --device cuda --configs c d --nominal-peak-tflops 494
stage profile_d 30 env CUPY_TF32=1 python benchmarks/profile_step.py --device cuda --config d --steps 3
stage bench_generate 40 python benchmarks/bench_generate.py --device cuda
stage gpu_micro 40 env CUPY_TF32=1 python benchmarks/gpu_micro.py
stage pytest_cuda 240 env MINILM_DEVICE=cuda python -m pytest -q -p no:cacheprovider -o addopts= -m "not slow" \
    --continue-on-collection-errors -n 8 --timeout 120 -rfE --tb=short tests
tail -n 8 "$out"/bench_train_*.txt; tail -n 6 "$out"/bench_generate.txt; tail -n 15 "$out"/pytest_*.txt; cat "$out/card.txt"
