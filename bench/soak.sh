#!/usr/bin/env bash
# Soak (issue 13): starts `atelier serve` (embedded SQLite, tiny fixture model, one worker) and
# runs bench/soak.py against it: 10,000 tiny jobs paced over 30 minutes by default. Prints
# throughput, latency, errors and RSS (timeline in $OUT/rss.csv).
# Usage: bench/soak.sh [jobs (10000)] [minutes (30)]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-10000}
MINUTES=${2:-30}
OUT=${OUT:-target/soak}
BIN=${ATELIER_BIN:-target/debug/atelier}
[ -x "$BIN" ] || cargo build -q --workspace
rm -rf "$OUT" && mkdir -p "$OUT"
# SOAK_FROM: start from a copy of an earlier run's data folder (a server that has been up a
# while: its database already larger than SQLite's page caches), instead of an empty one.
if [ -n "${SOAK_FROM:-}" ]; then cp -r "$SOAK_FROM" "$OUT/data"; fi
KEY=$("$BIN" keys create --tenant soak --data "$OUT/data" 2>/dev/null)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$PORT" --data "$OUT/data" --models tests/fixtures/sd15-tiny \
  --no-c2pa > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
echo "binary: $BIN; $(nproc) cores"
echo "database at start: $(du -m "$OUT/data/atelier.db" 2>/dev/null | cut -f1) MiB"
python3 bench/soak.py "http://127.0.0.1:$PORT" "$KEY" "$SERVER" "$JOBS" "$MINUTES" "$OUT"
echo "database at end: $(du -m "$OUT/data/atelier.db" | cut -f1) MiB"
echo "errors in the server log: $(grep -c -E ' ERROR |internal error|panicked' "$OUT/server.log" || true)"
