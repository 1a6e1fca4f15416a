#!/usr/bin/env bash
# One run of both benchmarks on the same synthesized weights, then the atelier/diffusers ratios.
# Usage: bench/compare.sh [RUNS] [ONLY]   (needs python3 with torch, diffusers, transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
only=${2:-}
work=${BENCH_DIR:-$(mktemp -d)}
python=${PYTHON:-python3}
cargo build --release -p atelier
only_args=(); [ -n "$only" ] && only_args=(--only "$only")
./target/release/atelier bench --runs "$runs" --write-weights "$work/weights" --json "$work/atelier.json" "${only_args[@]}"
"$python" bench/reference/diffusers_bench.py "$work/weights" --runs "$runs" --json "$work/diffusers.json" "${only_args[@]}"
"$python" - "$work/atelier.json" "$work/diffusers.json" <<'PY'
import json, sys
a, d = (json.load(open(p)) for p in sys.argv[1:3])
dm = {r["component"]: r for r in d["components"]}
print(f"\nf32 matmul ceiling: atelier {a['matmul_gflops']:.1f} GFLOP/s, torch {d['matmul_gflops']:.1f} GFLOP/s")
print(f"{'component':<30} {'atelier s':>10} {'diffusers s':>12} {'ratio':>7}")
for r in a["components"]:
    ref = dm.get(r["component"])
    if ref:
        print(f"{r['component']:<30} {r['seconds']:>10.3f} {ref['seconds']:>12.3f} {r['seconds'] / ref['seconds']:>6.2f}x")
print("ratio = atelier time / diffusers time (lower is better; < 1 means atelier is faster)")
PY
