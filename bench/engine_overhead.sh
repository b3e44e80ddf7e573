#!/usr/bin/env bash
# Engine overhead (issue 5 goal): for a remote engine that answers instantly, submit →
# job.succeeded p50 ≤ 30 ms. Runs the API with one in-process worker (release build) against a
# fake OpenAI-compatible server answering at once, and the same jobs on the in-process `noop`
# engine for comparison; prints p50/p95/max per engine. Run it on a quiet machine.
#
#   bench/engine_overhead.sh [--jobs N] [--backend sqlite|postgres] [--assert]
#
# PostgreSQL needs SEIDRA_TEST_DATABASE_URL (see crates/seidra-testkit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=200
backend=sqlite
assert=0
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --assert) assert=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

SEIDRA_BENCH_JOBS=$jobs SEIDRA_BENCH_BACKEND=$backend SEIDRA_BENCH_ASSERT=$assert \
  cargo test --release -p seidra-api --test engine_overhead -- --ignored --nocapture engine_overhead 2>&1 |
  grep -E '^engine_overhead |panicked|test result'
