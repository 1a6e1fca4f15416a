#!/usr/bin/env bash
# One run of both benchmarks on the same synthesized weights, then the atelier/diffusers ratios,
# then peak memory and load time of a real `atelier generate` on those weights.
# Usage: bench/compare.sh [RUNS] [ONLY]   (needs python3 with torch, diffusers, transformers)
# Env: ATELIER_BENCH_ARGS adds flags to `atelier bench` (e.g. "--profile"); BENCH_DIR keeps
# the weights and JSON files; PYTHON picks the interpreter; SKIP_MEMORY=1 skips the last part.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
only=${2:-}
work=${BENCH_DIR:-$(mktemp -d)}
python=${PYTHON:-python3}
cargo build --release -p atelier
only_args=(); [ -n "$only" ] && only_args=(--only "$only")
# Each run measures its own convolution choices (in its warm-up) instead of reusing a tuning
# file left by an earlier run.
export ATELIER_TUNING_FILE="$work/conv-algo.json"
rm -f "$ATELIER_TUNING_FILE"
# f32, 3x3 convolutions on the direct path only: the parity-tested numerics.
# shellcheck disable=SC2086
ATELIER_WINOGRAD=off ./target/release/atelier bench --runs "$runs" --write-weights "$work/weights" --json "$work/atelier-direct.json" "${only_args[@]}" ${ATELIER_BENCH_ARGS:-}
ours="$work/atelier-direct.json"
# f32 with Winograd where it measures faster (the default).
# shellcheck disable=SC2086
./target/release/atelier bench --runs "$runs" --json "$work/atelier.json" "${only_args[@]}" ${ATELIER_BENCH_ARGS:-}
ours="$ours,$work/atelier.json"
# bf16 operands with f32 accumulation, where the CPU has AVX512-BF16 (Winograd convs stay f32).
# shellcheck disable=SC2086
if ./target/release/atelier bench --runs "$runs" --cpu-math bf16 --json "$work/atelier-bf16.json" "${only_args[@]}" ${ATELIER_BENCH_ARGS:-}; then
  ours="$ours,$work/atelier-bf16.json"
fi
for dt in float32 bfloat16; do
  "$python" bench/reference/diffusers_bench.py "$work/weights" --runs "$runs" --dtype "$dt" --json "$work/diffusers-$dt.json" "${only_args[@]}"
done
"$python" bench/table.py "$ours" "$work/diffusers-float32.json" "$work/diffusers-bfloat16.json" | tee "$work/table.md"
if [ -z "${SKIP_MEMORY:-}" ]; then
  bench/memory.sh "$work/weights" | tee "$work/memory.md"
fi
