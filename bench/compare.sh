#!/usr/bin/env bash
# One run of both benchmarks on the same synthesized weights, then the atelier/diffusers ratios.
# Usage: bench/compare.sh [RUNS] [ONLY]   (needs python3 with torch, diffusers, transformers)
# Env: ATELIER_BENCH_ARGS adds flags to `atelier bench` (e.g. "--profile"); BENCH_DIR keeps
# the weights and JSON files.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
only=${2:-}
work=${BENCH_DIR:-$(mktemp -d)}
python=${PYTHON:-python3}
cargo build --release -p atelier
only_args=(); [ -n "$only" ] && only_args=(--only "$only")
# shellcheck disable=SC2086
./target/release/atelier bench --runs "$runs" --write-weights "$work/weights" --json "$work/atelier.json" "${only_args[@]}" ${ATELIER_BENCH_ARGS:-}
# bf16 operands with f32 accumulation, where the CPU has AVX512-BF16.
ours="$work/atelier.json"
# shellcheck disable=SC2086
if ./target/release/atelier bench --runs "$runs" --cpu-math bf16 --json "$work/atelier-bf16.json" "${only_args[@]}" ${ATELIER_BENCH_ARGS:-}; then
  ours="$ours,$work/atelier-bf16.json"
fi
for dt in float32 bfloat16; do
  "$python" bench/reference/diffusers_bench.py "$work/weights" --runs "$runs" --dtype "$dt" --json "$work/diffusers-$dt.json" "${only_args[@]}"
done
"$python" bench/table.py "$ours" "$work/diffusers-float32.json" "$work/diffusers-bfloat16.json" | tee "$work/table.md"
