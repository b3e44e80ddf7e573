#!/usr/bin/env bash
# The cost of `/metrics` (issue 8): render time of the exposition after N jobs went through the
# real path (submit → claim → run → complete, noop engine), on `seidra up` with SQLite.
#
#   bench/metrics.sh [--jobs 10000] [--samples 300]
#
# SEIDRA_BENCH_BIN=path uses that binary (else `cargo build --release -p seidra`). Needs curl, jq.
# Prints a JSON line and a Markdown row; method and numbers: docs/BENCHMARKS.md, "/metrics cost".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS=10000
SAMPLES=300
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;;
    *) echo "usage: bench/metrics.sh [--jobs N] [--samples N]" >&2; exit 2 ;;
  esac
done
if [[ -n ${SEIDRA_BENCH_BIN:-} ]]; then
  BIN="$SEIDRA_BENCH_BIN"
else
  cargo build --quiet --release -p seidra --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/seidra"
fi
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
PASSWORD="a-long-enough-passphrase"
SEIDRA_BIND="127.0.0.1:$PORT" SEIDRA_DATA_DIR="$WORK/data" SEIDRA_ADMIN_PASSWORD="$PASSWORD" \
  SEIDRA_RATE_LIMIT__ENABLED=false SEIDRA_ENGINES__NOOP=true SEIDRA_LOG_LEVEL=warn \
  SEIDRA_QUEUE__MAX_QUEUED_PER_USER=1000000 SEIDRA_QUEUE__MAX_RUNNING_PER_USER=100000 \
  SEIDRA_WORKER__CONCURRENCY=16 "$BIN" up >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null && break; sleep 0.1; done
TOKEN="$(curl -fsS -X POST "$BASE/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | jq -r .access_token)"

# Submit in batches of 8 (the API's largest batch), 4 at a time.
job='{"prompt":"metrics","engine":"noop","width":64,"height":64,"num_inference_steps":1}'
batch="{\"requests\":[$job,$job,$job,$job,$job,$job,$job,$job]}"
printf '%s\n' "$batch" >"$WORK/batch.json"
seq $(((JOBS + 7) / 8)) | xargs -P4 -I{} curl -fsS -o /dev/null -X POST "$BASE/api/generate/batch" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary "@$WORK/batch.json"
for _ in $(seq 1200); do
  done_jobs="$(curl -fsS "$BASE/api/jobs/stats" -H "authorization: Bearer $TOKEN" | jq '[.by_status.succeeded // 0] | add')"
  [[ $done_jobs -ge $JOBS ]] && break
  sleep 0.5
done
[[ $done_jobs -ge $JOBS ]] || { echo "only $done_jobs of $JOBS jobs finished" >&2; exit 1; }

# Warm-up, then SAMPLES sequential scrapes; curl's own time_total (connect + render + transfer).
for _ in $(seq 20); do curl -fsS -o /dev/null "$BASE/metrics"; done
for _ in $(seq "$SAMPLES"); do curl -fsS -o /dev/null -w '%{time_total}\n' "$BASE/metrics"; done | sort -n >"$WORK/t.txt"
bytes="$(curl -fsS "$BASE/metrics" | wc -c)"
series="$(curl -fsS "$BASE/metrics" | grep -vc '^#')"
pick() { awk -v p="$1" '{a[NR]=$1} END {i=int(p*NR); if (i<1) i=1; printf "%.2f", a[i]*1000}' "$WORK/t.txt"; }
load="$(cut -d' ' -f1 /proc/loadavg)"
jq -cn --argjson jobs "$done_jobs" --argjson bytes "$bytes" --argjson series "$series" --arg load "$load" \
  --arg p50 "$(pick 0.5)" --arg p95 "$(pick 0.95)" --arg p99 "$(pick 0.99)" \
  '{jobs: $jobs, bytes: $bytes, series: $series, p50_ms: ($p50|tonumber), p95_ms: ($p95|tonumber), p99_ms: ($p99|tonumber), load_1m: ($load|tonumber)}'
echo "| /metrics after $done_jobs jobs | $(pick 0.5) ms p50, $(pick 0.95) ms p95, $(pick 0.99) ms p99 | $bytes bytes, $series series | load $load |"
