#!/usr/bin/env bash
# Cold start and idle memory (issue 9): `seidra up` on a fresh data directory (SQLite created and
# migrated, admin account made, embedded worker started) until `/readyz` answers 200, then the
# resident memory after it has sat idle.
#
#   bench/coldstart.sh [--runs 5] [--idle-secs 10]
#
# SEIDRA_BENCH_BIN=path uses that binary (else `cargo build --release -p seidra`). Prints one JSON
# line per run and a Markdown summary; numbers and method: docs/BENCHMARKS.md, "Cold start".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS=5
IDLE=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --idle-secs) IDLE="$2"; shift 2 ;;
    *) echo "usage: bench/coldstart.sh [--runs N] [--idle-secs S]" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/lib/common.sh
source "$ROOT/bench/lib/common.sh"
BIN="$(bench_seidra_bin)"
starts=()
rss=()
for run in $(seq "$RUNS"); do
  work="$(mktemp -d)"
  port="$(bench_free_port)"
  t0="$(date +%s%N)"
  SEIDRA_BIND="127.0.0.1:$port" SEIDRA_DATA_DIR="$work/data" SEIDRA_ADMIN_PASSWORD="a-long-enough-passphrase" \
    SEIDRA_LOG_LEVEL=warn "$BIN" up >"$work/server.log" 2>&1 &
  pid=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.005
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  sleep "$IDLE"
  kib="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
  starts+=("$ms")
  rss+=("$kib")
  echo "{\"run\":$run,\"ready_ms\":$ms,\"idle_rss_mib\":$(awk -v k="$kib" 'BEGIN{printf "%.1f", k/1024}')}"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}'; }
echo "| cold start to /readyz (fresh data dir, migrations, admin, worker) | median $(median "${starts[@]}") ms ($(range "${starts[@]}") ms, $RUNS runs) |"
echo "| idle RSS after ${IDLE} s | median $(awk -v k="$(median "${rss[@]}")" 'BEGIN{printf "%.1f", k/1024}') MiB |"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
