#!/usr/bin/env bash
# Every GPU measurement in one call (for a machine with an NVIDIA GPU, CuPy and PyTorch):
#   1. the whole test suite on CuPy,  2. training speed at configs c and d against PyTorch eager (TF32 on
#   both sides),  3. generation speed.  Logs go to ${OUT:-gpu-results}/.
#   bash benchmarks/gpu_all.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/card.txt" 2>&1
python -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" >> "$out/card.txt" 2>&1
MINILM_DEVICE=cuda python -m pytest -q -p no:cacheprovider tests lessons > "$out/pytest_cuda.txt" 2>&1
echo "pytest on CuPy: exit $?" >> "$out/card.txt"
CUPY_TF32=1 python benchmarks/bench_train.py --device cuda --configs c d --nominal-peak-tflops 494 > "$out/bench_train_cuda.txt" 2>&1
python benchmarks/bench_train.py --device cuda --configs c --no-torch > "$out/bench_train_cuda_fp32.txt" 2>&1
cat "$out"/*.txt
