#!/usr/bin/env bash
# Load (issue 13): drives a running `atelier serve` (embedded SQLite, tiny fixture model, one
# worker) with wrk at 64 connections on the status, list, file and submit endpoints, then
# prints requests/s, p50/p99 latency and errors (non-2xx and socket errors) for each.
# Per-key rate limiting is off for this server (--rate-limit 0): it measures the server, not
# the limiter. Needs wrk (Debian package `wrk`).
# Usage: bench/load.sh [seconds per endpoint (30)] [connections (64)]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
CONNS=${2:-64}
OUT=${OUT:-target/load}
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
# The test build's binary (dependencies at opt-level 3, atelier's own crates unoptimised)
# unless ATELIER_BIN names another, e.g. target/release/atelier.
BIN=${ATELIER_BIN:-target/debug/atelier}
[ -x "$BIN" ] || cargo build -q --workspace
rm -rf "$OUT" && mkdir -p "$OUT"
KEY=$("$BIN" keys create --tenant load --data "$OUT/data" 2>/dev/null)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$PORT" --data "$OUT/data" --models tests/fixtures/sd15-tiny \
  --no-c2pa --rate-limit 0 --max-queue 1000000 > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.2; done
AUTH="Authorization: Bearer $KEY"
BODY='{"input":{"prompt":"a lighthouse at dusk","width":64,"height":64,"steps":2}}'
# A finished job to read back, and its output file.
JOB=$(curl -sf -H "$AUTH" -H 'Content-Type: application/json' -H 'Prefer: wait=60' \
  -d "$BODY" "$BASE/v1/models/atelier/text-to-image/predictions")
ID=$(echo "$JOB" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
FILE=$(echo "$JOB" | python3 -c 'import json,sys; print(json.load(sys.stdin)["output"]["images"][0])')
# 50 more so the list has pages to read.
for i in $(seq 1 50); do
  curl -sf -o /dev/null -H "$AUTH" -H 'Content-Type: application/json' -d "$BODY" \
    "$BASE/v1/models/atelier/text-to-image/predictions"
done
cat > "$OUT/submit.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
run() { # name url [script]
  local name=$1 url=$2
  shift 2
  wrk -t 2 -c "$CONNS" -d "${SECS}s" --latency -H "$AUTH" "$@" "$url" > "$OUT/$name.txt"
  python3 - "$name" "$OUT/$name.txt" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
t = open(path).read()
def lat(p):
    m = re.search(rf'^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$', t, re.M)
    if not m: return float('nan')
    return float(m.group(1)) * {'us': 0.001, 'ms': 1, 's': 1000}[m.group(2)]
rps = float(re.search(r'Requests/sec:\s+([\d.]+)', t).group(1))
total = int(re.search(r'(\d+) requests in', t).group(1))
non2xx = int((re.search(r'Non-2xx or 3xx responses: (\d+)', t) or [0, 0])[1])
sock = sum(int(x) for x in re.findall(r'(?:connect|read|write|timeout) (\d+)', t))
print(f"{name:8} {rps:10.1f} req/s  p50 {lat(50):8.2f} ms  p99 {lat(99):8.2f} ms  requests {total:8}  errors {non2xx + sock}")
PY
}
echo "binary: $BIN"
echo "wrk: $CONNS connections, ${SECS}s per endpoint, $(nproc) cores; server pid $SERVER"
run status "$BASE/v1/predictions/$ID"
run list "$BASE/v1/predictions"
run file "$FILE"
run submit "$BASE/v1/models/atelier/text-to-image/predictions" -s "$OUT/submit.lua"
echo "server RSS after load: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$SERVER/status)"
echo "errors in the server log: $(grep -c -E 'ERROR|internal error|panicked' "$OUT/server.log" || true)"
