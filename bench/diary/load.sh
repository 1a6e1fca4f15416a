#!/usr/bin/env bash
# Diary-site read latency under load: seed 100,000 posts and 1,000,000 comments into a fresh
# SQLite data directory, start the server on it, and drive the lounge, Hot TOONs and
# recommendations (a random post per request) with wrk at 32 connections.
# Usage: bench/diary/load.sh [SECONDS] [PROFILE]   (PROFILE: release (default) or dev;
#        BIN=path/to/atelier skips the build; POSTS, COMMENTS, CONNS override the sizes)
# Needs wrk (apt-get install wrk). Prints wrk's latency distribution for each endpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
profile=${2:-release}
posts=${POSTS:-100000}
comments=${COMMENTS:-1000000}
conns=${CONNS:-32}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
if [ -n "${BIN:-}" ]; then
  bin=$BIN
elif [ "$profile" = release ]; then
  cargo build --release -p atelier; bin=${CARGO_TARGET_DIR:-target}/release/atelier
else
  cargo build -p atelier; bin=${CARGO_TARGET_DIR:-target}/debug/atelier
fi
work=${BENCH_DIR:-$(mktemp -d)}
rm -rf "$work/data"
echo "== seeding $posts posts, $comments comments into $work/data"
"$bin" diary seed --data "$work/data" --posts "$posts" --comments "$comments"
port=${PORT:-7871}
"$bin" serve --listen "127.0.0.1:$port" --data "$work/data" --models "$work/none" --no-c2pa \
  >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
grep 'recommendation index ready' "$work/server.log" | tail -1 || true
cat >"$work/rec.lua" <<LUA
math.randomseed(os.time())
request = function()
  local i = math.random(0, $posts - 1)
  return wrk.format("GET", string.format("/v1/diary/posts/seedpost%07d/recommended?k=5", i))
end
LUA
run() {
  echo; echo "== $1"
  wrk -t2 -c"$conns" -d"${secs}s" --latency "${@:2}" | sed -n '/Latency Distribution/,/Requests\/sec/p'
}
run "lounge (first page, 20 posts)" "http://127.0.0.1:$port/v1/diary/lounge"
run "hot (top 4 by comments in 7 days)" "http://127.0.0.1:$port/v1/diary/hot"
run "recommendations (random post, k=5; private posts answer 404)" -s "$work/rec.lua" "http://127.0.0.1:$port"
