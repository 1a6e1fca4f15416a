#!/usr/bin/env bash
# Fuzzing (issue 13): runs every target in crates/fuzz under libFuzzer for a fixed budget each,
# growing fuzz/corpus/<target>; a crash stops that target and its input is copied to
# fuzz/regressions/<target>/ (tests/corpus.rs in crates/fuzz replays both in CI). Then the
# corpus is minimised. Not part of CI: it takes minutes per target.
# Needs cargo-fuzz (installed if missing); the stable toolchain runs libFuzzer's flags with
# RUSTC_BOOTSTRAP=1. No sanitizer (-s none): atelier is safe Rust, so panics, aborts on
# allocation, timeouts and memory blow-ups are what this looks for.
# Usage: bench/fuzz.sh [seconds per target (120)] [target ...]
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-120}
shift || true
TARGETS=${*:-$(ls fuzz_targets | sed 's/\.rs$//')}
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz
export RUSTC_BOOTSTRAP=1
FLAGS=(-s none --release --debug-assertions)
cargo fuzz build "${FLAGS[@]}" 2>&1 | tail -n 3
mkdir -p logs
printf '%-20s %8s %12s %8s %8s %s\n' target seconds execs exec/s corpus result
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(ls "corpus/$t" | wc -l)
  # New inputs go to corpus/ (the first folder); the hand-written seeds are read too.
  cargo fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$SECS" -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -timeout=10 -max_len=65536 -print_final_stats=1 > "logs/$t.log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -n 1)
  secs=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -n 1)
  result=ok
  if [ "$rc" != 0 ]; then
    mkdir -p "regressions/$t"
    for a in artifacts/"$t"/*; do
      [ -f "$a" ] && cp "$a" "regressions/$t/" && result="CRASH $(basename "$a"): $(grep -m1 -E 'panicked at|ERROR: libFuzzer' "logs/$t.log" | cut -c1-160)"
    done
  fi
  # Keep only inputs that add coverage.
  cargo fuzz cmin "${FLAGS[@]}" "$t" "corpus/$t" >> "logs/$t.log" 2>&1 || true
  printf '%-20s %8s %12s %8s %8s %s\n' "$t" "$SECS" "${execs:-?}" "${secs:-?}" "$before->$(ls "corpus/$t" | wc -l)" "$result"
done
