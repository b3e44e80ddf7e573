#!/usr/bin/env bash
# The cost of metrics (issue 8), on `seidra up` with SQLite:
#
#   bench/metrics.sh [--jobs 10000] [--samples 300]
#       render time of `/metrics` after N jobs went through the real path (submit → claim →
#       run → complete, noop engine).
#   bench/metrics.sh --overhead [--rounds 3] [--rate 1000] [--duration 10]
#       what metrics add to request latency: the same requests against a server with metrics on
#       and one started with SEIDRA_METRICS_ENABLED=false (no recorder, no per-request
#       accounting), alternating on/off each round; fixed-rate latency (open loop, seidra-loadgen)
#       and closed-loop throughput of `GET /api/auth/me` and `GET /api/jobs?limit=50`.
#
# SEIDRA_BENCH_BIN=path uses that binary (else `cargo build --release -p seidra`);
# SEIDRA_BENCH_LOADGEN=path a prebuilt seidra-loadgen. Needs curl, jq. Prints JSON lines and
# Markdown rows; method and numbers: docs/BENCHMARKS.md, "/metrics cost".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS=10000
SAMPLES=300
OVERHEAD=false
ROUNDS=3
RATE=1000
DURATION=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;;
    --overhead) OVERHEAD=true; shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    *) echo "usage: bench/metrics.sh [--jobs N] [--samples N] | --overhead [--rounds N] [--rate R] [--duration S]" >&2; exit 2 ;;
  esac
done
if [[ -n ${SEIDRA_BENCH_BIN:-} ]]; then
  BIN="$SEIDRA_BENCH_BIN"
else
  cargo build --quiet --release -p seidra --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/seidra"
fi
WORK="$(mktemp -d)"
PASSWORD="a-long-enough-passphrase"
PID=""
stop_server() {
  if [[ -n $PID ]]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
  fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

# Starts `seidra up` on a fresh data dir with metrics on ($1 = true) or off, and logs in:
# sets BASE and TOKEN.
start_server() {
  local metrics=$1 port data
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  data="$(mktemp -d -p "$WORK")"
  BASE="http://127.0.0.1:$port"
  SEIDRA_BIND="127.0.0.1:$port" SEIDRA_DATA_DIR="$data" SEIDRA_ADMIN_PASSWORD="$PASSWORD" \
    SEIDRA_RATE_LIMIT__ENABLED=false SEIDRA_ENGINES__NOOP=true SEIDRA_LOG_LEVEL=warn \
    SEIDRA_QUEUE__MAX_QUEUED_PER_USER=1000000 SEIDRA_QUEUE__MAX_RUNNING_PER_USER=100000 \
    SEIDRA_WORKER__CONCURRENCY=16 SEIDRA_METRICS_ENABLED="$metrics" "$BIN" up >"$data/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null && break; sleep 0.1; done
  TOKEN="$(curl -fsS -X POST "$BASE/api/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | jq -r .access_token)"
}

# Submits N noop jobs in batches of 8 (the API's largest batch), 4 at a time, and waits for them.
run_jobs() {
  local n=$1 done_jobs=0
  local job='{"prompt":"metrics","engine":"noop","width":64,"height":64,"num_inference_steps":1}'
  printf '{"requests":[%s,%s,%s,%s,%s,%s,%s,%s]}\n' "$job" "$job" "$job" "$job" "$job" "$job" "$job" "$job" >"$WORK/batch.json"
  seq $(((n + 7) / 8)) | xargs -P4 -I{} curl -fsS -o /dev/null -X POST "$BASE/api/generate/batch" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' --data-binary "@$WORK/batch.json"
  for _ in $(seq 1200); do
    done_jobs="$(curl -fsS "$BASE/api/jobs/stats" -H "authorization: Bearer $TOKEN" | jq '[.by_status.succeeded // 0] | add')"
    [[ $done_jobs -ge $n ]] && break
    sleep 0.5
  done
  [[ $done_jobs -ge $n ]] || { echo "only $done_jobs of $n jobs finished" >&2; exit 1; }
  DONE_JOBS=$done_jobs
}

if [[ $OVERHEAD == false ]]; then
  start_server true
  run_jobs "$JOBS"
  # Warm-up, then SAMPLES sequential scrapes; curl's own time_total (connect + render + transfer).
  for _ in $(seq 20); do curl -fsS -o /dev/null "$BASE/metrics"; done
  for _ in $(seq "$SAMPLES"); do curl -fsS -o /dev/null -w '%{time_total}\n' "$BASE/metrics"; done | sort -n >"$WORK/t.txt"
  bytes="$(curl -fsS "$BASE/metrics" | wc -c)"
  series="$(curl -fsS "$BASE/metrics" | grep -vc '^#')"
  pick() { awk -v p="$1" '{a[NR]=$1} END {i=int(p*NR); if (i<1) i=1; printf "%.2f", a[i]*1000}' "$WORK/t.txt"; }
  load="$(cut -d' ' -f1 /proc/loadavg)"
  jq -cn --argjson jobs "$DONE_JOBS" --argjson bytes "$bytes" --argjson series "$series" --arg load "$load" \
    --arg p50 "$(pick 0.5)" --arg p95 "$(pick 0.95)" --arg p99 "$(pick 0.99)" \
    '{jobs: $jobs, bytes: $bytes, series: $series, p50_ms: ($p50|tonumber), p95_ms: ($p95|tonumber), p99_ms: ($p99|tonumber), load_1m: ($load|tonumber)}'
  echo "| /metrics after $DONE_JOBS jobs | $(pick 0.5) ms p50, $(pick 0.95) ms p95, $(pick 0.99) ms p99 | $bytes bytes, $series series | load $load |"
  exit 0
fi

# --- overhead ----------------------------------------------------------------------------------
if [[ -n ${SEIDRA_BENCH_LOADGEN:-} ]]; then
  LOADGEN="$SEIDRA_BENCH_LOADGEN"
else
  CARGO_TARGET_DIR="$ROOT/target/bench-release" cargo build --quiet --release --manifest-path "$ROOT/bench/loadgen/Cargo.toml"
  LOADGEN="$ROOT/target/bench-release/release/seidra-loadgen"
fi
RESULTS="$WORK/overhead.jsonl"
for round in $(seq "$ROUNDS"); do
  # Alternate which setting goes first so a drift of the machine does not favour one side.
  if ((round % 2)); then order="true false"; else order="false true"; fi
  for metrics in $order; do
    start_server "$metrics"
    run_jobs 200 # a page of real jobs to list, and the job metrics' series exist
    export BENCH_BEARER="$TOKEN"
    # The list is ~30x dearer than /me: it runs at half the rate, well below its maximum.
    for spec in "/api/auth/me $RATE" "/api/jobs?limit=50 $((RATE / 2))"; do
      read -r path rate <<<"$spec"
      fixed="$("$LOADGEN" http --url "$BASE$path" --bearer-env BENCH_BEARER --rate "$rate" --connections 16 \
        --duration "$DURATION" --warmup 2)"
      max="$("$LOADGEN" http --url "$BASE$path" --bearer-env BENCH_BEARER --rate 0 --connections 16 \
        --duration "$DURATION" --warmup 2)"
      jq -cn --argjson round "$round" --argjson metrics "$metrics" --arg path "$path" --argjson rate "$rate" \
        --argjson fixed "$fixed" --argjson max "$max" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
        '{round: $round, metrics: $metrics, path: $path, rate: $rate, p50_ms: $fixed.latency_ms.p50, p99_ms: $fixed.latency_ms.p99,
          mean_ms: $fixed.latency_ms.mean, fixed_non_2xx: ($fixed.non_2xx + $fixed.io_errors + $fixed.dropped),
          max_rps: $max.achieved_rps, load_1m: ($load|tonumber)}' | tee -a "$RESULTS"
    done
    stop_server
  done
done

# Medians per (path, setting), then what metrics add relative to "off".
jq -rs '
  def median: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  def pct(on; off): ((on - off) / off * 100 * 10 | round) / 10;
  def r3: . * 1000 | round / 1000;
  group_by(.path)[] as $g
  | ($g | map(select(.metrics)) ) as $on | ($g | map(select(.metrics|not))) as $off
  | {p50: ($on|map(.p50_ms)|median), p99: ($on|map(.p99_ms)|median), rps: ($on|map(.max_rps)|median)} as $a
  | {p50: ($off|map(.p50_ms)|median), p99: ($off|map(.p99_ms)|median), rps: ($off|map(.max_rps)|median)} as $b
  | "| `GET \($g[0].path)` @ \($g[0].rate) req/s | p50 \($a.p50|r3) / \($b.p50|r3) ms (\(pct($a.p50; $b.p50)) %) | p99 \($a.p99|r3) / \($b.p99|r3) ms (\(pct($a.p99; $b.p99)) %) | max \($a.rps|round) / \($b.rps|round) req/s (\(pct($a.rps; $b.rps)) %) |"
' "$RESULTS"
