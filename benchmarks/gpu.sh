#!/usr/bin/env bash
# The GPU jobs, one command each, unattended on a machine with an NVIDIA GPU and numba,
# numba-cuda, torch, CuPy and pytest installed (nothing is downloaded: nbloss runs from
# this checkout). Logs and results go to benchmarks/results/<gpu>/.
#
#   bash benchmarks/gpu.sh test    # the CUDA suite on the GPU (torch CUDA parity, CPU agreement)
#   bash benchmarks/gpu.sh bench   # nbloss vs torch CUDA vs CuPy vs a device copy
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM

gpu=$(python -c "
from numba import cuda
name = cuda.get_current_device().name
name = name.decode() if isinstance(name, bytes) else name
print('-'.join(name.lower().replace('nvidia', '').split()))")
out="benchmarks/results/$gpu"
mkdir -p "$out"

case "${1:-}" in
  test)
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" || true
    python -m pytest tests/cuda tests/test_cuda_compile.py -v -p no:cacheprovider 2>&1 | tee "$out/test-log.txt"
    ;;
  bench)
    python benchmarks/bench_cuda.py --out "$out" 2>&1 | tee "$out/bench-log.txt"
    ;;
  *)
    echo "usage: bash benchmarks/gpu.sh test|bench" >&2
    exit 2
    ;;
esac
