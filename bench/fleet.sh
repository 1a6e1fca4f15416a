#!/usr/bin/env bash
# Fleet figures: jobs/second through API nodes + worker processes on PostgreSQL and S3, and the
# claim latency (p50/p99 of each job's `metrics.claim_ms`) at 1, 3 and 8 workers, without
# chaos. Uses the fleet test's harness (crates/atelier/tests/fleet.rs) and its requirements:
# PostgreSQL (ATELIER_TEST_POSTGRES) and S3 (ATELIER_TEST_S3 or moto in ATELIER_TEST_PYTHON).
# Usage: bench/fleet.sh [jobs per run (300)] [worker counts ("1 3 8")]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-300}
COUNTS=${2:-"1 3 8"}
export ATELIER_TEST_PYTHON=${ATELIER_TEST_PYTHON:-$(bash tests/python/setup.sh)}
for w in $COUNTS; do
  ATELIER_FLEET_JOBS=$JOBS ATELIER_FLEET_WORKERS=$w ATELIER_FLEET_CHAOS=0 \
    cargo test -q --workspace --test fleet -- --nocapture 2>&1 | grep '^fleet:' \
    || { echo "run with $w workers failed" >&2; exit 1; }
done
