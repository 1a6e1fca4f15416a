#!/usr/bin/env bash
# API fuzzing (issue 13): schemathesis against /openapi.json of a running `atelier serve` on the
# tiny fixture model, every operation, with an API key. Not part of CI (it takes minutes).
# Prints schemathesis's summary; the JUnit report and the server log land in $OUT. The per-key
# rate limit is off for this server (--rate-limit 0): it is tested on its own in tests/abuse.rs,
# and here it would answer most of the run with 429.
# Generation time grows with the size and steps a request asks for, so responses may take up to
# the request timeout (900 s: the debug build, behind a queue of large fuzzed jobs) without failing; speed is measured by the benchmarks instead.
# bench/api_fuzz_hooks.py teaches generation the rules a schema cannot state (real image and CSV
# files for uploads, a campaign's dates in order) for positive cases only; HOOKS=none leaves it
# out. ST_ARGS adds schemathesis options, e.g. ST_ARGS="--phases fuzzing".
# Usage: bench/api-fuzz.sh [seconds (420)] [examples per operation (15)]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-420}
N=${2:-15}
OUT=${OUT:-target/api-fuzz}
VENV=${ATELIER_FUZZ_VENV:-target/py-fuzz}
[ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/python" -c 'import PIL' 2>/dev/null \
  || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'schemathesis>=4.32' pillow; }
if [ "${HOOKS:-}" != none ]; then
  export PYTHONPATH="$PWD/bench${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=api_fuzz_hooks
fi
[ -x target/debug/atelier ] || cargo build -q --workspace
rm -rf "$OUT" && mkdir -p "$OUT"
KEY=$(target/debug/atelier keys create --tenant fuzz --data "$OUT/data" 2>/dev/null)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/atelier serve --listen "127.0.0.1:$PORT" --data "$OUT/data" \
  --models tests/fixtures/sd15-tiny --no-c2pa --rate-limit 0 > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" -H "Authorization: Bearer $KEY" \
  --checks all ${ST_ARGS:-} -n "$N" --max-time "$SECS" --request-timeout 900 --max-response-time 900 --report junit --report-dir "$OUT" \
  | sed -n '/SUMMARY/,$p' || true
echo "internal errors in the server log: $(grep -c 'internal error' "$OUT/server.log" || true)"
echo "panics in the server log: $(grep -c 'panicked' "$OUT/server.log" || true)"
