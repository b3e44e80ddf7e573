#!/usr/bin/env bash
# SEIDRA job-system benchmarks: the "Performance" goals of issue 3.
#
#   latency     submit -> job.started seen on the WebSocket, 50 submits/s (noop engine)
#   throughput  noop jobs/s, batch submits from several users, a few worker settings
#   ws          1,000 WebSocket clients each following its own job: event delivery latency
#   list        GET /api/jobs?limit=50 with 100,000 jobs: max req/s and p99 at 1,000 req/s
#   media       GET /api/media?limit=50 with 100,000 items: max req/s; full-text search p99
#               (issue 4)
#   mixed       everyday API traffic of 8 users, 25 % writes (list/get/search media and jobs,
#               submit, tag, edit persona, notifications, stats): max req/s, per-operation
#               latency at a fixed rate (issue 9)
#
# Results: bench/results/jobs-latest.json and a Markdown table on stdout.
# Method and measured numbers: docs/BENCHMARKS-jobs.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'EOF'
usage: bench/jobs.sh [options]

  --only LIST            scenarios, comma-separated: latency,throughput,ws,list,media,mixed
                         (default: all)
  --backend NAME         sqlite | postgres | both (default: both)
  --jobs N               jobs per throughput run (default: 5000; a run stops after 90 s)
  --sqlite-configs LIST  throughput settings on SQLite, EMBEDDED_WORKERSxCONCURRENCY
                         (default: 1x8,1x32,2x16)
  --pg-configs LIST      throughput settings on PostgreSQL, WORKER_PROCESSESxCONCURRENCY
                         (default: 1x16,2x16)
  --ws-clients N         WebSocket clients (default: 1000), one account each
  --ws-spread-ms MS      the clients' submits are spread evenly over this time (default: 1000)
  --samples N            measured submits of the latency scenario (default: 600, after 100 warm-up)
  --list-jobs N          jobs seeded for the list scenario (default: 100000)
  --media-items N        library items seeded for the media scenario (default: 100000)
  --search-rate N        requests/s of the fixed-rate full-text search run (default: 200)
  --mixed-rate N         requests/s of the fixed-rate mixed run (default: 300)
  --noop-models LIST     noop-engine models of the throughput runs: `empty` (no output: the
                         queue alone) and/or `noop` (an 8×8 PNG per job: storage, media row and
                         thumbnails included) (default: empty,noop)
  --duration SECONDS     measured seconds of each list run (default: 10)
  --rev REV               benchmark a committed revision (git archive, built in its own target
                         dir) instead of the working tree
  --wait-idle SECONDS     before each measurement, wait up to this long for the CPUs to be
                         < 25 % busy (for machines shared with other work; default: 0)
  --output FILE          JSON results (default: bench/results/jobs-latest.json)
  -h, --help             this help

environment:
  SEIDRA_BENCH_BIN         use this seidra binary instead of building one
  SEIDRA_JOBS_BENCH_BIN    use this seidra-jobs-bench binary instead of building one
  SEIDRA_JOBS_TARGET_DIR   cargo target dir for both builds (default: target/bench-jobs)
  SEIDRA_BENCH_PG_URL      PostgreSQL server, no database (default: postgres://postgres@127.0.0.1:5432)
  SEIDRA_BENCH_PG_PARAMS   connection parameters of the servers' database URL (default:
                           sslmode=disable: TLS on a loopback connection only costs CPU; set it
                           empty for sqlx's default, sslmode=prefer, as before session 7)
  SEIDRA_BENCH_REDIS_URL   give the servers this Redis for live events (default: none)
  SEIDRA_JOBS_BENCH_PORT   first port to try for servers (default: 18580)
EOF
}

die() {
  echo "jobs-bench: $*" >&2
  exit 1
}

note() {
  printf 'jobs-bench [%3ds]: %s\n' "$SECONDS" "$*" >&2
}

# ------------------------------------------------------------------------------------------
# Options

ONLY="latency,throughput,ws,list,media,mixed"
MIXED_RATE=300
BACKEND="both"
JOBS=5000
SQLITE_CONFIGS="1x8,1x32,2x16"
PG_CONFIGS="1x16,2x16"
NOOP_MODELS="empty,noop"
WS_CLIENTS=1000
WS_SPREAD_MS=1000
SAMPLES=600
WARMUP=100
LIST_JOBS=100000
MEDIA_ITEMS=100000
SEARCH_RATE=200
DURATION=10
OUTPUT="$ROOT/bench/results/jobs-latest.json"
REV=""
WAIT_IDLE=0

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --only) need_value "$@"; ONLY="$2"; shift 2 ;;
    --backend) need_value "$@"; BACKEND="$2"; shift 2 ;;
    --jobs) need_value "$@"; JOBS="$2"; shift 2 ;;
    --sqlite-configs) need_value "$@"; SQLITE_CONFIGS="$2"; shift 2 ;;
    --pg-configs) need_value "$@"; PG_CONFIGS="$2"; shift 2 ;;
    --ws-clients) need_value "$@"; WS_CLIENTS="$2"; shift 2 ;;
    --ws-spread-ms) need_value "$@"; WS_SPREAD_MS="$2"; shift 2 ;;
    --samples) need_value "$@"; SAMPLES="$2"; shift 2 ;;
    --list-jobs) need_value "$@"; LIST_JOBS="$2"; shift 2 ;;
    --media-items) need_value "$@"; MEDIA_ITEMS="$2"; shift 2 ;;
    --search-rate) need_value "$@"; SEARCH_RATE="$2"; shift 2 ;;
    --duration) need_value "$@"; DURATION="$2"; shift 2 ;;
    --output) need_value "$@"; OUTPUT="$2"; shift 2 ;;
    --rev) need_value "$@"; REV="$2"; shift 2 ;;
    --wait-idle) need_value "$@"; WAIT_IDLE="$2"; shift 2 ;;
    --mixed-rate) need_value "$@"; MIXED_RATE="$2"; shift 2 ;;
    --noop-models) need_value "$@"; NOOP_MODELS="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

for s in ${ONLY//,/ }; do
  case "$s" in latency | throughput | ws | list | media | mixed) ;; *) die "--only: unknown scenario $s" ;; esac
done
case "$BACKEND" in
  sqlite) BACKENDS=(sqlite) ;;
  postgres) BACKENDS=(postgres) ;;
  both) BACKENDS=(sqlite postgres) ;;
  *) die "--backend must be sqlite, postgres or both" ;;
esac
for n in "$JOBS" "$WS_CLIENTS" "$WS_SPREAD_MS" "$SAMPLES" "$LIST_JOBS" "$MEDIA_ITEMS" "$SEARCH_RATE" "$DURATION" "$WAIT_IDLE" "$MIXED_RATE"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n"
done

wants() {
  [[ ",$ONLY," == *",$1,"* ]]
}

for tool in curl jq; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install -y $tool)"
done

PG_URL="${SEIDRA_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PG_URL="${PG_URL%/}"
PG_PARAMS="${SEIDRA_BENCH_PG_PARAMS-sslmode=disable}"
NEXT_PORT="${SEIDRA_JOBS_BENCH_PORT:-18580}"
TARGET_DIR="${SEIDRA_JOBS_TARGET_DIR:-$ROOT/target/bench-jobs}"
ADMIN_PASSWORD="bench-admin-password-1"
USER_PASSWORD="bench-user-password-1"

# 1,000 WebSocket clients need ~2 descriptors each (client and server side, same machine).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if wants ws && [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < WS_CLIENTS * 2 + 512)); then
  die "open-file limit $(ulimit -n) is too low for $WS_CLIENTS WebSocket clients (raise ulimit -n)"
fi

# ------------------------------------------------------------------------------------------
# Cleanup: every process we start, every database we create, the temp dir.

WORK="$(mktemp -d "${TMPDIR:-/tmp}/seidra-jobs-bench.XXXXXX")"
PIDS=()
DATABASES=()

cleanup() {
  local pid db
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for db in "${DATABASES[@]}"; do
    psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------
# Builds

if [[ -n ${SEIDRA_BENCH_BIN:-} ]]; then
  [[ -z $REV ]] || die "--rev and SEIDRA_BENCH_BIN exclude each other"
  BIN="$SEIDRA_BENCH_BIN"
elif [[ -n $REV ]]; then
  REV="$(git -C "$ROOT" rev-parse --verify "$REV^{commit}")" || die "--rev: unknown revision"
  # Each revision gets its own source *and* target dir: cargo fingerprints workspace crates by
  # their path relative to the workspace root, so two source trees sharing one target dir can
  # leave a stale build looking fresh.
  REV_DIR="$TARGET_DIR/rev/$REV"
  if [[ ! -f $REV_DIR/src/Cargo.toml ]]; then
    mkdir -p "$REV_DIR/src"
    git -C "$ROOT" archive --format=tar "$REV" | tar -x -C "$REV_DIR/src"
  fi
  note "building seidra (release) at ${REV:0:10} into $REV_DIR/target"
  CARGO_TARGET_DIR="$REV_DIR/target" cargo build --quiet --release -p seidra --manifest-path "$REV_DIR/src/Cargo.toml"
  BIN="$REV_DIR/target/release/seidra"
else
  note "building seidra (release) from the working tree into $TARGET_DIR"
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet --release -p seidra --manifest-path "$ROOT/Cargo.toml"
  BIN="$TARGET_DIR/release/seidra"
fi
if [[ -n ${SEIDRA_JOBS_BENCH_BIN:-} ]]; then
  LOADGEN="$SEIDRA_JOBS_BENCH_BIN"
else
  note "building seidra-jobs-bench (release)"
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet --release --manifest-path "$ROOT/bench/jobs/Cargo.toml"
  LOADGEN="$TARGET_DIR/release/seidra-jobs-bench"
fi
[[ -x $BIN ]] || die "no seidra binary at $BIN"
[[ -x $LOADGEN ]] || die "no load generator at $LOADGEN"

# ------------------------------------------------------------------------------------------
# Machine load: other work on a shared machine makes every number pessimistic.

# {"loadavg_1m": …, "cpu_busy_pct": … (1 s sample of all CPUs)}
sample_load() {
  local a b
  read -r -a a < <(head -n1 /proc/stat)
  sleep 1
  read -r -a b < <(head -n1 /proc/stat)
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do
    total=$((total + b[i] - a[i]))
  done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  jq -nc --argjson load "$(cut -d' ' -f1 /proc/loadavg)" --argjson busy "$(((total - idle) * 100 / (total > 0 ? total : 1)))" \
    '{loadavg_1m: $load, cpu_busy_pct: $busy}'
}

# Like sample_load, but first waits (up to --wait-idle seconds) for the machine to be < 25 %
# busy, not counting the idle server we just started. Prints the last sample.
measure_load() {
  local sample deadline=$((SECONDS + WAIT_IDLE))
  sample="$(sample_load)"
  while (($(jq .cpu_busy_pct <<<"$sample") >= 25 && SECONDS < deadline)); do
    sample="$(sample_load)"
  done
  echo "$sample"
}

# ------------------------------------------------------------------------------------------
# Servers

free_port() {
  local p="$NEXT_PORT"
  while (: >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
    p=$((p + 1))
  done
  NEXT_PORT=$((p + 1))
  echo "$p"
}

DB_SEQ=0
new_database() {
  DB_SEQ=$((DB_SEQ + 1))
  local name="seidra_jobsbench_$$_$DB_SEQ"
  psql "$PG_URL/postgres" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$name\"" >/dev/null
  DATABASES+=("$name")
  echo "$name"
}

# Server state (one at a time): SERVER_PIDS, BASE, DATA_DIR, DB_NAME, DB_URL.
SERVER_PIDS=()

# start_server BACKEND WORKERS CONCURRENCY
#   sqlite:   `seidra up` with WORKERS embedded workers of CONCURRENCY jobs each
#   postgres: `seidra migrate up`, `seidra serve`, WORKERS `seidra worker --concurrency CONCURRENCY`
start_server() {
  local backend="$1" workers="$2" concurrency="$3" port log
  port="$(free_port)"
  BASE="http://127.0.0.1:$port"
  DATA_DIR="$(mktemp -d "$WORK/data.XXXXXX")"
  local -a env_vars=(
    "PATH=$PATH" "HOME=$WORK"
    "SEIDRA_BIND=127.0.0.1:$port" "SEIDRA_DATA_DIR=$DATA_DIR"
    "SEIDRA_ADMIN_PASSWORD=$ADMIN_PASSWORD" "SEIDRA_ALLOW_REGISTRATION=true"
    "SEIDRA_RATE_LIMIT__ENABLED=false" "SEIDRA_LOG_LEVEL=warn" "SEIDRA_ENGINES__NOOP=true"
    "SEIDRA_QUEUE__MAX_QUEUED_PER_USER=1000000" "SEIDRA_QUEUE__MAX_RUNNING_PER_USER=100000"
    "SEIDRA_WORKER__CONCURRENCY=$concurrency" "SEIDRA_WORKER__EMBEDDED=$workers"
    "SEIDRA_ACCESS_TOKEN_TTL_SECS=7200" "SEIDRA_SHUTDOWN_GRACE_SECS=2" "SEIDRA_WORKER__GRACE_SECS=2"
  )
  # Live events over Redis instead of the database's own channel (PostgreSQL: LISTEN/NOTIFY).
  [[ -z ${SEIDRA_BENCH_REDIS_URL:-} ]] || env_vars+=("SEIDRA_REDIS_URL=$SEIDRA_BENCH_REDIS_URL")
  SERVER_PIDS=()
  if [[ $backend == sqlite ]]; then
    DB_NAME=""
    DB_URL=""
    log="$DATA_DIR/server.log"
    env -i "${env_vars[@]}" "$BIN" up >"$log" 2>&1 &
    SERVER_PIDS+=("$!")
  else
    DB_NAME="$(new_database)"
    DB_URL="$PG_URL/$DB_NAME${PG_PARAMS:+?$PG_PARAMS}"
    env_vars+=("SEIDRA_DATABASE_URL=$DB_URL" "SEIDRA_WORKER__EMBEDDED=0")
    env -i "${env_vars[@]}" "$BIN" migrate up >"$DATA_DIR/migrate.log" 2>&1 || die "migrate up failed: $(cat "$DATA_DIR/migrate.log")"
    log="$DATA_DIR/server.log"
    env -i "${env_vars[@]}" "$BIN" serve >"$log" 2>&1 &
    SERVER_PIDS+=("$!")
    local w
    for ((w = 0; w < workers; w++)); do
      env -i "${env_vars[@]}" "$BIN" worker --concurrency "$concurrency" >"$DATA_DIR/worker-$w.log" 2>&1 &
      SERVER_PIDS+=("$!")
    done
  fi
  PIDS+=("${SERVER_PIDS[@]}")
  local i
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; then
      ADMIN_TOKEN="$(curl -fsS -X POST "$BASE/api/auth/login" -H 'content-type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" | jq -r .access_token)"
      # Workers register asynchronously; give them a moment to subscribe.
      sleep 1
      return 0
    fi
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null || die "server exited early: $(tail -n 20 "$log")"
    done
    sleep 0.1
  done
  die "server did not become ready: $(tail -n 20 "$log")"
}

stop_server() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  # Anything the server logged at warn or above during the run is worth a look.
  local f
  for f in "$DATA_DIR"/*.log; do
    if grep -qE 'WARN|ERROR' "$f"; then
      note "$(basename "$f") logged warnings/errors (first 5):"
      grep -m 5 -E 'WARN|ERROR' "$f" >&2 || true
      mkdir -p "$WORK/logs"
      cp "$f" "$WORK/logs/$(basename "$DATA_DIR")-$(basename "$f")"
    fi
  done
  SERVER_PIDS=()
  if [[ -n $DB_NAME ]]; then
    psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$DATA_DIR"
}

pids_csv() {
  local IFS=,
  echo "${SERVER_PIDS[*]}"
}

pg_flag() {
  if [[ $1 == postgres ]]; then echo 1; else echo 0; fi
}

# ------------------------------------------------------------------------------------------
# Seeding the list scenario: clone one real finished job N times (plausible values, the
# request JSON the API wrote), spread over N × 10 s into the past, all `succeeded`.

seed_jobs() {
  local backend="$1" token="$2" count="$3" job
  job="$(curl -fsS -X POST "$BASE/api/generate/single" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' \
    -d '{"prompt":"a lighthouse at dusk, seed template","engine":"noop","width":64,"height":64,"num_inference_steps":1}' |
    jq -r '.job_ids[0]')"
  local i status=""
  for ((i = 0; i < 100; i++)); do
    status="$(curl -fsS "$BASE/api/jobs/$job" -H "authorization: Bearer $token" | jq -r .status)"
    [[ $status == succeeded ]] && break
    sleep 0.1
  done
  [[ $status == succeeded ]] || die "template job $job did not succeed ($status)"
  local columns="owner_id, job_type, status, priority, priority_rank, fair_seq, engine, model, persona_id, \
persona_version, request, prompt, negative_prompt, error, attempt, max_attempts, lease_owner, lease_expires_at, \
run_after, cancel_requested, progress, stage, eta_secs, retry_of, batch_id, wait_ms, run_ms, queued_at, started_at, \
finished_at, updated_at"
  if [[ $backend == sqlite ]]; then
    command -v sqlite3 >/dev/null || die "sqlite3 is required for seeding (apt-get install -y sqlite3)"
    local hex="${job//-/}"
    # Timestamps keep the server's RFC 3339 TEXT form; ids are random 16-byte BLOBs.
    sqlite3 "$DATA_DIR/seidra.db" <<SQL
.timeout 30000
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $count)
INSERT INTO jobs (id, $columns)
SELECT randomblob(16), t.owner_id, t.job_type, 'succeeded', t.priority, t.priority_rank,
       t.fair_seq - ($count + 1) + n.i, t.engine, t.model, NULL, NULL, t.request,
       t.prompt || ' #' || n.i, t.negative_prompt, NULL, 1, t.max_attempts, NULL, NULL,
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.queued_at, printf('%d seconds', -10 * ($count + 1 - n.i))),
       0, 1.0, 'done', 0, NULL, NULL, 4, 12,
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.queued_at, printf('%d seconds', -10 * ($count + 1 - n.i))),
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.queued_at, printf('%.3f seconds', -10.0 * ($count + 1 - n.i) + 0.004)),
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.queued_at, printf('%.3f seconds', -10.0 * ($count + 1 - n.i) + 0.016)),
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.queued_at, printf('%.3f seconds', -10.0 * ($count + 1 - n.i) + 0.016))
FROM jobs t, n WHERE t.id = X'$hex';
SQL
  else
    psql "$DB_URL" -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO jobs (id, $columns)
SELECT gen_random_uuid(), t.owner_id, t.job_type, 'succeeded', t.priority, t.priority_rank,
       t.fair_seq - ($count + 1) + n.i, t.engine, t.model, NULL, NULL, t.request,
       t.prompt || ' #' || n.i, t.negative_prompt, NULL, 1, t.max_attempts, NULL, NULL,
       t.queued_at - make_interval(secs => 10 * ($count + 1 - n.i)),
       FALSE, 1.0, 'done', 0, NULL, NULL, 4, 12,
       t.queued_at - make_interval(secs => 10 * ($count + 1 - n.i)),
       t.queued_at - make_interval(secs => 10 * ($count + 1 - n.i) - 0.004),
       t.queued_at - make_interval(secs => 10 * ($count + 1 - n.i) - 0.016),
       t.queued_at - make_interval(secs => 10 * ($count + 1 - n.i) - 0.016)
FROM jobs t, generate_series(1, $count) AS n(i) WHERE t.id = '$job';
-- What autovacuum would do shortly after such a bulk load.
ANALYZE jobs;
SQL
  fi
}

# Seeding the media scenario: clone one real generated item (with its thumbnails made) N times,
# spread over N × 10 s into the past. Every 50th prompt carries the word "harbour" and every
# 10th item the tag "portrait", so searches match a realistic share (2 %) of the library.

seed_media() {
  local backend="$1" token="$2" count="$3" job media thumbs="" i
  job="$(curl -fsS -X POST "$BASE/api/generate/single" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' \
    -d '{"prompt":"a lighthouse at dusk, library template","engine":"noop","width":64,"height":64,"num_inference_steps":1}' |
    jq -r '.job_ids[0]')"
  for ((i = 0; i < 100; i++)); do
    media="$(curl -fsS "$BASE/api/media?limit=1" -H "authorization: Bearer $token" | jq -r '.items[0].id // empty')"
    [[ -n $media ]] && thumbs="$(curl -fsS "$BASE/api/media/$media" -H "authorization: Bearer $token" | jq -r .thumbnail_state)"
    [[ $thumbs == ready ]] && break
    sleep 0.1
  done
  [[ $thumbs == ready ]] || die "the template item of job $job has no thumbnails ($thumbs)"
  local columns="owner_id, job_id, position, storage_key, mime, bytes, width, height, sha256, seed, created_at, kind, \
source, favorite, prompt, negative_prompt, engine, model, parameters, persona_id, persona_version, tags, updated_at, \
original_name, duration_ms, thumb_state, thumb_256_key, thumb_768_key, thumb_attempts, thumb_lease_until"
  local picked="t.owner_id, t.job_id, n.i, t.storage_key || '#' || n.i, t.mime, t.bytes, t.width, t.height, t.sha256, \
t.seed + n.i"
  local prompt="t.prompt || ' #' || n.i || CASE WHEN n.i % 50 = 0 THEN ' harbour' ELSE '' END"
  if [[ $backend == sqlite ]]; then
    local hex="${media//-/}"
    sqlite3 "$DATA_DIR/seidra.db" <<SQL
.timeout 30000
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $count)
INSERT INTO media (id, $columns)
SELECT randomblob(16), $picked,
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.created_at, printf('%d seconds', -10 * ($count + 1 - n.i))),
       t.kind, t.source, n.i % 7 = 0, $prompt, t.negative_prompt, t.engine, t.model, t.parameters, NULL, NULL,
       CASE WHEN n.i % 10 = 0 THEN '["portrait"]' ELSE '[]' END,
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.created_at, printf('%d seconds', -10 * ($count + 1 - n.i))),
       NULL, NULL, 'ready', t.thumb_256_key, t.thumb_768_key, 0, NULL
FROM media t, n WHERE t.id = X'$hex';
ANALYZE;
SQL
  else
    psql "$DB_URL" -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO media (id, $columns)
SELECT gen_random_uuid(), $picked,
       t.created_at - make_interval(secs => 10 * ($count + 1 - n.i)),
       t.kind, t.source, n.i % 7 = 0, $prompt, t.negative_prompt, t.engine, t.model, t.parameters, NULL, NULL,
       CASE WHEN n.i % 10 = 0 THEN '["portrait"]'::jsonb ELSE '[]'::jsonb END,
       t.created_at - make_interval(secs => 10 * ($count + 1 - n.i)),
       NULL, NULL, 'ready', t.thumb_256_key, t.thumb_768_key, 0, NULL
FROM media t, generate_series(1, $count) AS n(i) WHERE t.id = '$media';
ANALYZE media;
SQL
  fi
}

# ------------------------------------------------------------------------------------------
# Scenarios. Each appends {"backend","scenario",…} objects to $WORK/results.jsonl.

record() {
  # record BACKEND SCENARIO LOAD_JSON SETTINGS_JSON RESULT_FILE
  jq -c --arg backend "$1" --arg scenario "$2" --argjson load "$3" --argjson settings "$4" \
    '{backend: $backend, scenario: $scenario, load_before: $load, settings: $settings, result: .}' "$5" \
    >>"$WORK/results.jsonl"
}

run_main_scenarios() {
  local backend="$1" workers=1 concurrency=16 load settings
  start_server "$backend" "$workers" "$concurrency"
  settings="$(jq -nc --arg b "$backend" --argjson w "$workers" --argjson c "$concurrency" \
    'if $b == "sqlite" then {server: "seidra up", embedded_workers: $w, concurrency: $c}
     else {server: "seidra serve + seidra worker", worker_processes: $w, concurrency: $c} end')"
  local pids pg
  pids="$(pids_csv)"
  pg="$(pg_flag "$backend")"

  if wants latency; then
    "$LOADGEN" users --base "$BASE" --count 1 --prefix latency --password "$USER_PASSWORD" \
      --out "$WORK/latency-users.txt" >/dev/null
    load="$(measure_load)"
    note "$backend latency (load $load)"
    "$LOADGEN" latency --base "$BASE" --token "$(cut -d' ' -f2 "$WORK/latency-users.txt")" \
      --rate 50 --warmup "$WARMUP" --samples "$SAMPLES" --pids "$pids" --postgres "$pg" >"$WORK/out.json"
    record "$backend" latency "$load" "$settings" "$WORK/out.json"
  fi

  if wants ws; then
    note "$backend ws: registering $WS_CLIENTS accounts"
    "$LOADGEN" users --base "$BASE" --count "$WS_CLIENTS" --prefix wsuser --password "$USER_PASSWORD" \
      --concurrency 8 --out "$WORK/ws-users.txt" >"$WORK/users.json"
    note "$backend ws: $(jq -c . "$WORK/users.json")"
    load="$(measure_load)"
    note "$backend ws (load $load)"
    "$LOADGEN" ws --base "$BASE" --tokens "$WORK/ws-users.txt" --clients "$WS_CLIENTS" \
      --spread-ms "$WS_SPREAD_MS" --pids "$pids" --postgres "$pg" >"$WORK/out.json"
    record "$backend" ws "$load" "$settings" "$WORK/out.json"
  fi

  if wants list; then
    "$LOADGEN" users --base "$BASE" --count 1 --prefix lister --password "$USER_PASSWORD" \
      --out "$WORK/list-users.txt" >/dev/null
    local token
    token="$(cut -d' ' -f2 "$WORK/list-users.txt")"
    note "$backend list: seeding $LIST_JOBS jobs"
    seed_jobs "$backend" "$token" "$LIST_JOBS"
    load="$(measure_load)"
    note "$backend list (load $load)"
    "$LOADGEN" list --base "$BASE" --token "$token" --duration "$DURATION" --warmup 3 --connections 16 \
      --rate 1000 --pids "$pids" --postgres "$pg" >"$WORK/out.json"
    record "$backend" list "$load" "$settings" "$WORK/out.json"
  fi

  if wants media; then
    "$LOADGEN" users --base "$BASE" --count 1 --prefix librarian --password "$USER_PASSWORD" \
      --out "$WORK/media-users.txt" >/dev/null
    local token
    token="$(cut -d' ' -f2 "$WORK/media-users.txt")"
    note "$backend media: seeding $MEDIA_ITEMS library items"
    seed_media "$backend" "$token" "$MEDIA_ITEMS"
    load="$(measure_load)"
    note "$backend media list (load $load)"
    "$LOADGEN" list --base "$BASE" --token "$token" --path "/api/media?limit=50" --duration "$DURATION" --warmup 3 \
      --connections 16 --rate 1000 --pids "$pids" --postgres "$pg" >"$WORK/out.json"
    record "$backend" media "$load" "$settings" "$WORK/out.json"
    load="$(measure_load)"
    note "$backend media search (load $load)"
    "$LOADGEN" list --base "$BASE" --token "$token" --path "/api/media?limit=50&q=harbour" --duration "$DURATION" \
      --warmup 3 --connections 16 --rate "$SEARCH_RATE" --pids "$pids" --postgres "$pg" >"$WORK/out.json"
    record "$backend" media_search "$load" "$settings" "$WORK/out.json"
  fi

  if wants mixed; then
    "$LOADGEN" users --base "$BASE" --count 8 --prefix mixed --password "$USER_PASSWORD" \
      --concurrency 8 --out "$WORK/mixed-users.txt" >/dev/null
    load="$(measure_load)"
    note "$backend mixed (load $load)"
    "$LOADGEN" mixed --base "$BASE" --tokens "$WORK/mixed-users.txt" --duration "$DURATION" --warmup 3 \
      --connections 16 --rate "$MIXED_RATE" --pids "$pids" --postgres "$pg" >"$WORK/out.json"
    record "$backend" mixed "$load" "$settings" "$WORK/out.json"
  fi
  stop_server
}

run_throughput() {
  local backend="$1" configs="$2" config workers concurrency load settings model
  for config in ${configs//,/ }; do
    [[ $config =~ ^([0-9]+)x([0-9]+)$ ]] || die "bad throughput config $config (want NxC)"
    workers="${BASH_REMATCH[1]}"
    concurrency="${BASH_REMATCH[2]}"
    for model in ${NOOP_MODELS//,/ }; do
      start_server "$backend" "$workers" "$concurrency"
      "$LOADGEN" users --base "$BASE" --count 8 --prefix tp --password "$USER_PASSWORD" \
        --concurrency 8 --out "$WORK/tp-users.txt" >/dev/null
      settings="$(jq -nc --arg b "$backend" --argjson w "$workers" --argjson c "$concurrency" --arg m "$model" \
        'if $b == "sqlite" then {server: "seidra up", embedded_workers: $w, concurrency: $c}
         else {server: "seidra serve + seidra worker", worker_processes: $w, concurrency: $c} end
         + {clients: 8, batch: 8, model: $m}')"
      load="$(measure_load)"
      note "$backend throughput ${workers}x$concurrency model $model, $JOBS jobs (load $load)"
      "$LOADGEN" throughput --base "$BASE" --tokens "$WORK/tp-users.txt" --admin-token "$ADMIN_TOKEN" \
        --clients 8 --batch 8 --jobs "$JOBS" --timeout 90 --model "$model" --pids "$(pids_csv)" \
        --postgres "$(pg_flag "$backend")" >"$WORK/out.json"
      note "$backend throughput ${workers}x$concurrency $model: $(jq -c '{jobs_per_s, partial_jobs_per_s, submit_jobs_per_s, completed}' "$WORK/out.json")"
      record "$backend" throughput "$load" "$settings" "$WORK/out.json"
      stop_server
    done
  done
}

: >"$WORK/results.jsonl"
for backend in "${BACKENDS[@]}"; do
  if [[ $backend == postgres ]] && ! psql "$PG_URL/postgres" -qAt -c 'SELECT 1' >/dev/null 2>&1; then
    if [[ $BACKEND == both ]]; then
      note "PostgreSQL at $PG_URL is not reachable; skipping it"
      continue
    fi
    die "PostgreSQL at $PG_URL is not reachable"
  fi
  if wants latency || wants ws || wants list || wants media || wants mixed; then
    run_main_scenarios "$backend"
  fi
  if wants throughput; then
    if [[ $backend == sqlite ]]; then
      run_throughput sqlite "$SQLITE_CONFIGS"
    else
      run_throughput postgres "$PG_CONFIGS"
    fi
  fi
done

# ------------------------------------------------------------------------------------------
# Results

git_dirty=false
if [[ -n $REV ]]; then
  git_rev="$REV"
elif [[ -n ${SEIDRA_BENCH_BIN:-} ]]; then
  git_rev="unknown (SEIDRA_BENCH_BIN=$SEIDRA_BENCH_BIN)"
else
  git_rev="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    git_dirty=true
  fi
fi
mkdir -p "$(dirname "$OUTPUT")"
jq -s --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
  --argjson nproc "$(nproc)" --argjson mem_kb "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
  --arg rev "$git_rev" --argjson dirty "$git_dirty" --arg version "$("$BIN" --version)" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  '{generated_at: $date, seidra: {version: $version, git_commit: $rev, git_dirty: $dirty},
    machine: {cpu: $cpu, nproc: $nproc, mem_gib: (($mem_kb / 1048576 * 10 | round) / 10),
              pg_version: null},
    runs: .}' "$WORK/results.jsonl" >"$OUTPUT.tmp"
if psql "$PG_URL/postgres" -qAt -c 'SHOW server_version' >/dev/null 2>&1; then
  jq --arg v "$(psql "$PG_URL/postgres" -qAt -c 'SHOW server_version')" '.machine.pg_version = $v' "$OUTPUT.tmp" >"$OUTPUT"
  rm -f "$OUTPUT.tmp"
else
  mv "$OUTPUT.tmp" "$OUTPUT"
fi
note "results in $OUTPUT"

# Markdown table: each goal met / NOT met.
jq -r '
  def verdict(ok): if ok then "met" else "**NOT met**" end;
  def f(x): if x == null then "–" else (x * 10 | round / 10 | tostring) end;
  def load: "load \(.load_before.loadavg_1m), \(.load_before.cpu_busy_pct) % busy";
  (.runs | map(select(.scenario == "throughput")) | group_by([.backend, (.settings.model // "noop")])
    | map(max_by(.result.jobs_per_s // .result.partial_jobs_per_s // 0))) as $best
  | ["| scenario | backend | measured | goal | verdict | conditions |", "|---|---|---|---|---|---|"]
  + [.runs[] | select(.scenario == "latency") | .result as $r
     | (if .backend == "sqlite" then 5 else 20 end) as $goal
     | "| submit → job.started @ 50/s | \(.backend) | p50 \(f($r.submit_to_started.p50_ms)) ms, p95 \(f($r.submit_to_started.p95_ms)), p99 \(f($r.submit_to_started.p99_ms)) (n=\($r.samples), missing \($r.missing_started_events)) | p50 ≤ \($goal) ms | \(verdict(($r.submit_to_started.p50_ms // 1e9) <= $goal and $r.missing_started_events == 0)) | \(load) |"]
  + [$best[] | .result as $r | .settings as $s
     | (if .backend == "sqlite" then 1000 else 2000 end) as $goal
     | (if $r.completed then "\(f($r.jobs_per_s)) jobs/s" else "≤ \(f($r.partial_jobs_per_s)) jobs/s (timed out, \($r.succeeded) of \($r.accepted) done)" end) as $rate
     | "| throughput (noop engine, model `\(.settings.model // "noop")`) | \(.backend) | \($rate) (\($s.embedded_workers // $s.worker_processes)×\($s.concurrency), \($r.accepted) jobs, submit \(f($r.submit_jobs_per_s))/s) | ≥ \($goal) jobs/s | \(verdict(($r.jobs_per_s // 0) >= $goal and $r.completed)) | \(load) |"]
  + [.runs[] | select(.scenario == "ws") | .result as $r
     | ($r.missing_events | to_entries | map(.value) | add // 0) as $miss
     | (($r.submit_statuses | to_entries | map(select(.key != "202") | .value) | add) // 0) as $refused
     | "| \($r.clients) WebSocket clients, delivery | \(.backend) | p50 \(f($r.delivery.p50_ms)) ms, p99 \(f($r.delivery.p99_ms)), max \(f($r.delivery.max_ms)) (\($r.delivery.count) events, \($miss) lost, \($r.connected) connected, \($refused) submits refused) | p99 ≤ 50 ms | \(verdict(($r.delivery.p99_ms // 1e9) <= 50 and $miss == 0 and $r.connected == $r.clients)) | \(load) |"]
  + [.runs[] | select(.scenario == "list") | .result as $r
     | "| GET /api/jobs?limit=50, \($r.total_jobs) jobs: max | \(.backend) | \(f($r.max.requests_per_s)) req/s (p99 \(f($r.max.latency.p99_ms)) ms, \($r.max.connections) conns) | ≥ 3000 req/s | \(verdict(($r.max.requests_per_s // 0) >= 3000)) | \(load) |",
       "| GET /api/jobs?limit=50 @ \($r.fixed.rate_per_s)/s | \(.backend) | p50 \(f($r.fixed.latency.p50_ms)) ms, p99 \(f($r.fixed.latency.p99_ms)) | p99 ≤ 20 ms | \(verdict(($r.fixed.latency.p99_ms // 1e9) <= 20)) | \(load) |"]
  + [.runs[] | select(.scenario == "media") | .result as $r
     | "| GET /api/media?limit=50, \($r.total_jobs) items: max | \(.backend) | \(f($r.max.requests_per_s)) req/s (p99 \(f($r.max.latency.p99_ms)) ms, \($r.max.connections) conns) | ≥ 2000 req/s | \(verdict(($r.max.requests_per_s // 0) >= 2000)) | \(load) |"]
  + [.runs[] | select(.scenario == "media_search") | .result as $r
     | "| media full-text search (\($r.total_jobs) hits) @ \($r.fixed.rate_per_s)/s | \(.backend) | p50 \(f($r.fixed.latency.p50_ms)) ms, p99 \(f($r.fixed.latency.p99_ms)); max \(f($r.max.requests_per_s)) req/s | p99 ≤ 30 ms | \(verdict(($r.fixed.latency.p99_ms // 1e9) <= 30)) | \(load) |"]
  + [.runs[] | select(.scenario == "mixed") | .result as $r
     | "| mixed API, 25 % writes, \($r.accounts) users: max | \(.backend) | \(f($r.max.requests_per_s)) req/s (p99 \(f($r.max.latency.p99_ms)) ms, \($r.max.unexpected_statuses) unexpected statuses) | no goal | – | \(load) |",
       "| mixed API @ \($r.fixed.rate_per_s)/s | \(.backend) | p50 \(f($r.fixed.latency.p50_ms)) ms, p99 \(f($r.fixed.latency.p99_ms)); slowest op p99: \($r.fixed.ops | to_entries | max_by(.value.latency.p99_ms) | "\(.key) \(f(.value.latency.p99_ms)) ms") | no goal | – | \(load) |"]
  | .[]' "$OUTPUT"
