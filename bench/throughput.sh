#!/usr/bin/env bash
# Images per minute through `atelier serve` with worker batching off and on, at 1 and 4
# concurrent requests, on SD-Turbo-shaped random weights (timing does not depend on values).
# Usage: bench/throughput.sh [WEIGHTS_DIR] [SIZE] [IMAGES]   (defaults: a temp dir, 512, 8)
# Env: CONFIGS (default "1x1,1x4,4x4": max batch x concurrency), STEPS (1), BATCH_WAIT_MS (0,
# for rows with max batch > 1), ATELIER_CPU_MATH.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$(mktemp -d)/sd-turbo}
size=${2:-512}
images=${3:-8}
cargo build --release -p atelier
if [ ! -f "$dir/unet/diffusion_pytorch_model.safetensors" ]; then
  ./target/release/atelier bench --count-only --write-weights "$dir"
fi
# The synthesized folder has SD-Turbo's tokenizer config but no vocabulary; the fixtures carry
# CLIP's (the same BPE vocabulary SD-Turbo uses).
cp tests/fixtures/sd15-tiny/tokenizer/vocab.json tests/fixtures/sd15-tiny/tokenizer/merges.txt "$dir/tokenizer/"
export ATELIER_TUNING_FILE=${ATELIER_TUNING_FILE:-$(mktemp -u)}
python3 bench/throughput.py --weights "$dir" --size "$size" --images "$images" \
  --steps "${STEPS:-1}" --configs "${CONFIGS:-1x1,1x4,4x4}" --batch-wait-ms "${BATCH_WAIT_MS:-0}"
