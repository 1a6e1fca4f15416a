#!/usr/bin/env bash
# Peak resident memory and load time of `atelier generate` (one 512x512 SD-Turbo image, 1 step)
# on a folder written by `atelier bench --write-weights`, in f32 and bf16.
# Usage: bench/memory.sh WEIGHTS_DIR   (uses target/release/atelier and GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: bench/memory.sh WEIGHTS_DIR}
bin=./target/release/atelier
# The synthesized folder has SD-Turbo's tokenizer config but no vocabulary; the fixtures carry
# CLIP's (the same BPE vocabulary SD-Turbo uses).
cp tests/fixtures/sd15-tiny/tokenizer/vocab.json tests/fixtures/sd15-tiny/tokenizer/merges.txt "$dir/tokenizer/"
weights=$(find "$dir" -name '*.safetensors' -printf '%s\n' | awk '{s+=$1} END {print s}')
export ATELIER_TUNING_FILE=${ATELIER_TUNING_FILE:-$(mktemp -u)}
echo "| math | run | load s | generate s | peak RSS GiB | weights GiB (f32 files) | RSS - weights GiB |"
echo "|---|---|---:|---:|---:|---:|---:|"
for math in f32 bf16; do
  for run in first second; do
    log=$(mktemp)
    ATELIER_CPU_MATH=$math /usr/bin/time -v "$bin" generate --model "$dir" --prompt "a photo of a cat on a sofa" \
      --steps 1 --guidance 0 --width 512 --height 512 --no-watermark --out "$(mktemp -u).png" >"$log" 2>&1
    rss_kib=$(awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}' "$log")
    line=$(grep '^generated' "$log")
    gen=$(sed -E 's/.* in ([0-9.]+)s \(load.*/\1/' <<<"$line")
    load=$(sed -E 's/.*\(load ([0-9.]+)s.*/\1/' <<<"$line")
    awk -v m="$math" -v r="$run" -v l="$load" -v g="$gen" -v k="$rss_kib" -v w="$weights" \
      'BEGIN { printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %+.2f |\n", m, r, l, g, k/1048576, w/1073741824, k/1048576 - w/1073741824 }'
    rm -f "$log"
  done
done
echo
echo "first run: measures each large convolution's algorithm (both paths once); second: reads the tuning file"
