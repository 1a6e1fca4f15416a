#!/usr/bin/env bash
# Checks that the `cuda` build compiles on a machine without a GPU or a system CUDA toolkit, with
# NVIDIA's compiler, NVVM and CUDA headers/libraries from PyPI (the wheels torch also uses).
# Usage: bench/cuda-check.sh [CUDA_VERSION_GLOB]   (default 13.2.*; cudarc 0.19 knows up to 13.4)
# Env: PYTHON (default python3), CUDA_WORK (default a temp dir), CUDA_TARGET (cargo target dir,
# default under CUDA_WORK). Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ver=${1:-13.2.*}
python=${PYTHON:-python3}
work=${CUDA_WORK:-$(mktemp -d)}
"$python" -m venv "$work/venv"
# A check compiles candle's CUDA kernels to PTX (nvcc, NVVM, headers) but links nothing.
"$work/venv/bin/pip" install -q "nvidia-cuda-nvcc==$ver" "nvidia-nvvm==$ver" "nvidia-cuda-crt==$ver" \
  "nvidia-cuda-runtime==$ver" "nvidia-cuda-cccl==$ver"
root=$("$work/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
chmod +x "$root"/bin/* "$root"/nvvm/bin/* 2>/dev/null || true
export PATH="$root/bin:$PATH" CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
nvcc --version | tail -1
cargo check -p atelier --features cuda --target-dir "${CUDA_TARGET:-$work/target}"
echo "cuda build compiles (checked with nvcc from $root)"
