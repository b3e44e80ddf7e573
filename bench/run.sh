#!/usr/bin/env bash
# SEIDRA benchmark harness: measures the foundation performance goals.
#
#   startup  `seidra up` on an empty data dir: spawn -> first 200 from GET /readyz, idle RSS
#   me       GET /api/auth/me with a JWT: max throughput (wrk) and latency at a fixed rate
#   login    POST /api/auth/login (argon2id): sequential latency and max rate (wrk)
#
# Results: bench/results/latest.json (machine-readable) and a Markdown table on stdout.
# See bench/README.md for the method and docs/BENCHMARKS.md for measured numbers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'EOF'
usage: bench/run.sh [options]

  --only LIST         scenarios, comma-separated: startup,me,login (default: all)
  --backend NAME      sqlite | postgres | both (default: both)
  --duration SECONDS  measured seconds of each HTTP load run (default: 10)
  --runs N            timed startup runs per backend (default: 5)
  --rate N            fixed request rate for the latency run, req/s (default: 2000)
  --target URL        run the HTTP scenarios (me, login) against an already running server
  --token JWT         access token for --target (else: log in with the credentials below)
  --username NAME     account for login (default: admin)
  --password PASS     its password (default: $SEIDRA_BENCH_PASSWORD or bench-admin-password-1)
  --wait-idle SECONDS before each measurement, wait up to this long for the CPUs to be
                      idle (< 20 % busy) — for machines shared with other work (default: 0)
  --rev REV           benchmark a committed revision (git archive into a temp dir) instead
                      of the working tree
  --output FILE       JSON results file (default: bench/results/latest.json)
  --merge FILE        keep the results in FILE for every scenario/backend not measured in
                      this run (e.g. re-measure only PostgreSQL after a disturbed run)
  --report FILE       only print the Markdown table of an existing results file
  -h, --help          this help

environment:
  SEIDRA_BENCH_BIN              use this seidra binary instead of building one
  SEIDRA_BENCH_TARGET_DIR       cargo target dir for the builds (default: target/bench-release)
  SEIDRA_BENCH_PG_URL           PostgreSQL server, no database (default: postgres://postgres@127.0.0.1:5432)
  SEIDRA_BENCH_PORT             first port to try for local servers (default: random in 20000-29999)
  SEIDRA_BENCH_WRK_THREADS      wrk threads for the throughput runs (default: 2)
  SEIDRA_BENCH_WRK_CONNECTIONS  wrk connections for GET /api/auth/me (default: 64)
  SEIDRA_BENCH_ME_REPEATS       max-throughput runs of GET /api/auth/me; the median is reported (default: 3)
EOF
}

die() {
  echo "bench: $*" >&2
  exit 1
}

note() {
  printf 'bench [%3ds]: %s\n' "$SECONDS" "$*" >&2
}

# Prints the Markdown summary of a results file.
print_table() {
  jq -r '
    def r(n): if . == null then "n/a" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
    def mark($ok): if $ok then "met" else "**NOT met**" end;
    def errs: (.non_2xx // 0) + (.io_errors // 0) + ((.errors // {}) | [.[]] | add // 0);
    def errnote: if errs > 0 then " (" + (errs | tostring) + " errors)" else "" end;
    def cpunote: if .cpu == null then "" elif .cpu.server_pct == null then "; CPU: load gen \(.cpu.load_generator_pct)%" else
      "; CPU: server \(.cpu.server_pct)%" + (if (.cpu.postgres_pct // 0) > 0 then ", postgres \(.cpu.postgres_pct)%" else "" end)
      + ", load gen \(.cpu.load_generator_pct)%, other \(.cpu.other_pct)%"
      + (if .cpu.server_us_per_request then "; CPU per request: server \(.cpu.server_us_per_request) µs"
           + (if (.cpu.postgres_us_per_request // 0) > 0 then " + postgres \(.cpu.postgres_us_per_request) µs" else "" end)
         else "" end)
      + (if (.cpu.other_pct // 0) > 10 then " ⚠ contended" else "" end) end;
    def contnote: if (.cpu.other_pct // 0) > 10 then " ⚠ contended (other load \(.cpu.other_pct)%)" else "" end;
    def mib: if . == null then "n/a" else (. / 1024 | r(0) | tostring) + " MiB" end;
    "| Scenario | Backend | Measured | Goal | Result |",
    "|---|---|---|---|---|",
    ((.startup // {}) | to_entries[] |
      "| `seidra up` → `/readyz` 200, median [min–max] of \(.value.runs | length) | \(.key) | \(.value.ready_ms.median | r(1)) ms [\(.value.ready_ms.min | r(1))–\(.value.ready_ms.max | r(1))] | ≤ 1000 ms | \(mark(.value.ready_ms.median <= 1000)) |",
      "| Idle RSS after ready, median [min–max] | \(.key) | \(.value.rss_mib.median | r(1)) MiB [\(.value.rss_mib.min | r(1))–\(.value.rss_mib.max | r(1))] | ≤ 40 MiB | \(mark(.value.rss_mib.median <= 40)) |"),
    ((.me // {}) | to_entries[] |
      "| `GET /api/auth/me` max throughput (wrk), median of \(.value.max.runs | length) [min–max] | \(.key) | \(.value.max.rps | r(0)) req/s [\(.value.max.rps_min | r(0))–\(.value.max.rps_max | r(0))]\(.value.max | errnote)\(.value.max | cpunote) | ≥ 15000 req/s | \(mark(.value.max.rps >= 15000)) |",
      "| reference: `GET /healthz` max throughput (no auth, no DB) | \(.key) | \(.value.healthz_max.rps | r(0)) req/s\(.value.healthz_max | errnote)\(.value.healthz_max | cpunote) | — | — |",
      "| reference: `GET /api/auth/me`, bad JWT signature → 401 (no DB) | \(.key) | \(.value.bad_signature_max.rps | r(0)) req/s (all 401 by design)\(.value.bad_signature_max | cpunote) | — | — |",
      "| `GET /api/auth/me` p99 @ \(.value.fixed.target_rps) req/s (p50 / p99.9) | \(.key) | \(.value.fixed.latency_ms.p99 | r(2)) ms (\(.value.fixed.latency_ms.p50 | r(2)) / \(.value.fixed.latency_ms.p999 | r(2)))\(.value.fixed | errnote)\(.value.fixed | contnote) | ≤ 5 ms | \(mark(.value.fixed.latency_ms.p99 <= 5)) |"),
    ((.login // {}) | to_entries[] |
      "| `POST /api/auth/login` sequential p50 / p99 | \(.key) | \(.value.sequential.latency_ms.p50 | r(1)) / \(.value.sequential.latency_ms.p99 | r(1)) ms\(.value.sequential | errnote)\(.value.sequential | contnote) | none (argon2id) | — |",
      "| `POST /api/auth/login` max rate (wrk, p50) | \(.key) | \(.value.max.rps | r(1)) req/s (\(.value.max.latency_ms.p50 | r(0)) ms)\(.value.max | errnote)\(.value.max | cpunote) | none (argon2id) | — |",
      "| Server RSS before → after the login runs | \(.key) | \(.value.server_memory_before.rss_kib | mib) → \(.value.server_memory_after.rss_kib | mib) | none | — |")
  ' "$1"
}

# ------------------------------------------------------------------------------------------
# Options

ONLY="startup,me,login"
BACKEND="both"
DURATION=10
RUNS=5
RATE=2000
TARGET=""
TOKEN="${SEIDRA_BENCH_TOKEN:-}"
USERNAME="admin"
PASSWORD="${SEIDRA_BENCH_PASSWORD:-bench-admin-password-1}"
OUTPUT="$ROOT/bench/results/latest.json"
REV=""
WAIT_IDLE=0
MERGE=""
REPORT=""

PG_URL="${SEIDRA_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
PG_URL="${PG_URL%/}"
# A random default port: sessions sharing a machine should not meet on a well-known one.
PORT="${SEIDRA_BENCH_PORT:-$((20000 + RANDOM % 10000))}"
FIRST_PORT=$PORT
WRK_THREADS="${SEIDRA_BENCH_WRK_THREADS:-2}"
WRK_CONNECTIONS="${SEIDRA_BENCH_WRK_CONNECTIONS:-64}"
ME_REPEATS="${SEIDRA_BENCH_ME_REPEATS:-3}"  # max-throughput runs of GET /api/auth/me (median reported)
FIXED_CONNECTIONS=16   # loadgen connections for the fixed-rate run
LOGIN_CONNECTIONS=8    # wrk connections for the login max-rate run
IDLE_SECS=3            # idle time before reading RSS
WARMUP_SECS=3          # untimed load before each HTTP measurement

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while (($# > 0)); do
  case "$1" in
    --only) need_value "$@"; ONLY="$2"; shift 2 ;;
    --backend) need_value "$@"; BACKEND="$2"; shift 2 ;;
    --duration) need_value "$@"; DURATION="$2"; shift 2 ;;
    --runs) need_value "$@"; RUNS="$2"; shift 2 ;;
    --rate) need_value "$@"; RATE="$2"; shift 2 ;;
    --target) need_value "$@"; TARGET="${2%/}"; shift 2 ;;
    --token) need_value "$@"; TOKEN="$2"; shift 2 ;;
    --username) need_value "$@"; USERNAME="$2"; shift 2 ;;
    --password) need_value "$@"; PASSWORD="$2"; shift 2 ;;
    --output) need_value "$@"; OUTPUT="$2"; shift 2 ;;
    --rev) need_value "$@"; REV="$2"; shift 2 ;;
    --wait-idle) need_value "$@"; WAIT_IDLE="$2"; shift 2 ;;
    --merge) need_value "$@"; MERGE="$2"; shift 2 ;;
    --report) need_value "$@"; REPORT="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

for n in DURATION RUNS RATE WRK_THREADS WRK_CONNECTIONS ME_REPEATS PORT; do
  [[ ${!n} =~ ^[0-9]+$ && ${!n} -gt 0 ]] || die "$n must be a positive integer (got '${!n}')"
done
[[ $WAIT_IDLE =~ ^[0-9]+$ ]] || die "--wait-idle must be a number of seconds"

DO_STARTUP=false DO_ME=false DO_LOGIN=false
IFS=',' read -r -a only_list <<<"$ONLY"
for s in "${only_list[@]}"; do
  case "$s" in
    startup) DO_STARTUP=true ;;
    me) DO_ME=true ;;
    login) DO_LOGIN=true ;;
    *) die "--only: unknown scenario '$s' (startup, me, login)" ;;
  esac
done

if [[ -n $REPORT ]]; then
  [[ -r $REPORT ]] || die "--report: cannot read $REPORT"
  print_table "$REPORT"
  exit 0
fi
if [[ -n $MERGE ]]; then
  jq -e '.schema == 1' "$MERGE" >/dev/null 2>&1 || die "--merge: $MERGE is not a results file of this script"
fi

case "$BACKEND" in
  sqlite) BACKENDS=(sqlite) ;;
  postgres) BACKENDS=(postgres) ;;
  both) BACKENDS=(sqlite postgres) ;;
  *) die "--backend must be sqlite, postgres or both" ;;
esac

if [[ -n $TARGET ]]; then
  [[ $TARGET == http://* ]] || die "--target must be an http:// URL"
  if $DO_STARTUP; then
    if [[ $ONLY == startup ]]; then die "the startup scenario needs a local server; drop --target"; fi
    note "--target given: skipping the startup scenario"
    DO_STARTUP=false
  fi
  BACKENDS=(external)
fi

for tool in curl jq wrk cargo; do
  if [[ $tool == cargo && -n ${SEIDRA_BENCH_BIN:-} && -n ${SEIDRA_BENCH_LOADGEN:-} ]]; then continue; fi
  command -v "$tool" >/dev/null || die "'$tool' is required (wrk: apt-get install -y wrk)"
done

# ------------------------------------------------------------------------------------------
# Cleanup: every process, temp dir and database this script creates is recorded here.

TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/seidra-bench.XXXXXX")"
SERVER_PID=""
SERVER_DB=""
SERVER_LOG=""
CREATED_DBS=()
STARTUP_PID_FILE="$TMP_DIR/startup.pid"

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

pg_admin() {
  psql "$PG_URL/postgres" -v ON_ERROR_STOP=1 -qAtX "$@"
}

drop_db() {
  local name=$1 kept=() db
  pg_admin -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null || note "could not drop database $name"
  for db in "${CREATED_DBS[@]}"; do
    [[ $db == "$name" ]] || kept+=("$db")
  done
  CREATED_DBS=("${kept[@]}")
}

cleanup() {
  local status=$? db
  set +e
  trap - EXIT INT TERM
  if [[ $status -ne 0 && -n $SERVER_PID && -f $SERVER_LOG ]]; then
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench: the server (pid $SERVER_PID) was still running; its log ends with:" >&2
    else
      echo "bench: the server (pid $SERVER_PID) is no longer running; its log ends with:" >&2
    fi
    tail -n 20 "$SERVER_LOG" >&2
  fi
  if [[ -n $SERVER_PID ]]; then stop_pid "$SERVER_PID"; fi
  if [[ -f $STARTUP_PID_FILE ]]; then stop_pid "$(cat "$STARTUP_PID_FILE")"; fi
  for db in "${CREATED_DBS[@]}"; do drop_db "$db"; done
  rm -rf "$TMP_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------------
# Build

BENCH_TARGET_DIR="${SEIDRA_BENCH_TARGET_DIR:-$ROOT/target/bench-release}"
SOURCE_DIR="$ROOT"
if [[ -n $REV ]]; then
  [[ -z ${SEIDRA_BENCH_BIN:-} ]] || die "--rev and SEIDRA_BENCH_BIN exclude each other"
  REV="$(git -C "$ROOT" rev-parse --verify "$REV^{commit}")" || die "--rev: unknown revision"
  # A stable path per revision, so a second run reuses the compiled workspace crates.
  SOURCE_DIR="$BENCH_TARGET_DIR/rev-src/$REV"
  if [[ ! -f $SOURCE_DIR/.bench-extracted ]]; then
    rm -rf "$SOURCE_DIR"
    mkdir -p "$SOURCE_DIR"
    git -C "$ROOT" archive --format=tar "$REV" | tar -x -C "$SOURCE_DIR"
    touch "$SOURCE_DIR/.bench-extracted"
  fi
fi
if [[ -n $TARGET ]]; then
  BIN=""   # the server under test is already running elsewhere
elif [[ -n ${SEIDRA_BENCH_BIN:-} ]]; then
  BIN="$SEIDRA_BENCH_BIN"
else
  note "building seidra (release) from ${REV:-the working tree} into $BENCH_TARGET_DIR"
  CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --quiet --release -p seidra --manifest-path "$SOURCE_DIR/Cargo.toml"
  BIN="$BENCH_TARGET_DIR/release/seidra"
fi
[[ -n $TARGET || -x $BIN ]] || die "no executable seidra binary at $BIN"

if [[ -n ${SEIDRA_BENCH_LOADGEN:-} ]]; then
  LOADGEN="$SEIDRA_BENCH_LOADGEN"
else
  note "building bench/loadgen (release)"
  CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --quiet --release --manifest-path "$ROOT/bench/loadgen/Cargo.toml"
  LOADGEN="$BENCH_TARGET_DIR/release/seidra-loadgen"
fi
[[ -x $LOADGEN ]] || die "no executable loadgen at $LOADGEN"
WRK_SCRIPT="$ROOT/bench/wrk/json.lua"

# What was measured: a --rev snapshot, or the working tree (dirty when it has local changes).
# With SEIDRA_BENCH_BIN the binary's origin is unknown to this script.
git_dirty=false
if [[ -n $REV ]]; then
  git_rev="$REV"
else
  git_rev="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then git_dirty=true; fi
fi
if [[ -n $TARGET ]]; then
  git_rev="unknown (--target $TARGET)"
  git_dirty=null
elif [[ -n ${SEIDRA_BENCH_BIN:-} ]]; then
  git_rev="unknown (SEIDRA_BENCH_BIN=$SEIDRA_BENCH_BIN)"
  git_dirty=null
fi

# ------------------------------------------------------------------------------------------
# Is anything else using the CPUs? Server and load generator share them, so other work
# (a compiler, a test suite) shows up directly in the numbers.

CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# Machine-wide "busy total" jiffies (USER_HZ); busy includes steal.
cpu_jiffies() {
  awk '/^cpu / {idle = $5 + $6; busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + idle; exit}' /proc/stat
}

# Busy share of all CPUs over one second, percent.
cpu_busy_pct() {
  local b0 t0 b1 t1
  read -r b0 t0 < <(cpu_jiffies)
  sleep 1
  read -r b1 t1 < <(cpu_jiffies)
  if ((t1 > t0)); then echo $((100 * (b1 - b0) / (t1 - t0))); else echo 0; fi
}

# With --wait-idle, waits (up to that many seconds) until the CPUs are < 20 % busy.
wait_idle() {
  ((WAIT_IDLE > 0)) || return 0
  local waited=0 busy
  while true; do
    busy="$(cpu_busy_pct)"
    ((busy < 20)) && return 0
    waited=$((waited + 1))
    if ((waited >= WAIT_IDLE)); then
      note "WARNING: CPUs still ${busy}% busy after waiting ${WAIT_IDLE}s; measuring anyway"
      return 0
    fi
  done
}

BUSY_BEFORE="$(cpu_busy_pct)"
LOADAVG_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
if ((BUSY_BEFORE > 15)); then
  note "WARNING: the CPUs were ${BUSY_BEFORE}% busy before the run (load $LOADAVG_BEFORE); results will be noisy"
fi

# ------------------------------------------------------------------------------------------
# Local servers

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

if [[ -z $TARGET ]]; then
  for ((tries = 0; tries < 50; tries++)); do
    port_in_use "$PORT" || break
    PORT=$((PORT + 1))
  done
  port_in_use "$PORT" && die "no free port found from $FIRST_PORT"
fi
LOCAL_URL="http://127.0.0.1:$PORT"

if [[ -z $TARGET ]] && [[ " ${BACKENDS[*]} " == *" postgres "* ]]; then
  if ! pg_admin -c 'SELECT 1' >/dev/null 2>&1; then
    [[ $BACKEND == both ]] || die "PostgreSQL is not reachable at $PG_URL (SEIDRA_BENCH_PG_URL)"
    note "PostgreSQL is not reachable at $PG_URL: skipping the postgres backend"
    BACKENDS=(sqlite)
  fi
fi

DB_SEQ=0
# Creates an empty database; its name is left in DB_NAME.
create_db() {
  DB_SEQ=$((DB_SEQ + 1))
  DB_NAME="seidra_bench_$$_${DB_SEQ}"
  pg_admin -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null
  CREATED_DBS+=("$DB_NAME")
}

# Fills ENV_ARGS with a clean environment for a server: backend, data dir, database name,
# rate limiting on/off.
server_env() {
  local backend=$1 data_dir=$2 db=$3 rate_limit=$4
  ENV_ARGS=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}"
    "SEIDRA_BIND=127.0.0.1:$PORT" "SEIDRA_DATA_DIR=$data_dir"
    "SEIDRA_ADMIN_PASSWORD=$PASSWORD" "SEIDRA_LOG_LEVEL=warn"
    "SEIDRA_RATE_LIMIT__ENABLED=$rate_limit" "SEIDRA_ACCESS_TOKEN_TTL_SECS=3600")
  if [[ $backend == postgres ]]; then ENV_ARGS+=("SEIDRA_DATABASE_URL=$PG_URL/$db"); fi
}

# Starts `seidra up` for a throughput run (rate limiting off) and waits for /readyz.
start_server() {
  local backend=$1 name=$2 db="" i
  local data_dir="$TMP_DIR/data-$name"
  mkdir -p "$data_dir"
  if [[ $backend == postgres ]]; then
    create_db
    db=$DB_NAME
  fi
  server_env "$backend" "$data_dir" "$db" false
  SERVER_LOG="$TMP_DIR/server-$name.log"
  "${ENV_ARGS[@]}" "$BIN" up >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  SERVER_DB=$db
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null "$LOCAL_URL/readyz" 2>/dev/null; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$SERVER_LOG" >&2
      SERVER_PID=""
      die "the server exited during startup"
    fi
    sleep 0.1
  done
  cat "$SERVER_LOG" >&2
  die "the server was not ready within 30 s"
}

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  stop_pid "$SERVER_PID"
  SERVER_PID=""
  if [[ -n $SERVER_DB ]]; then drop_db "$SERVER_DB"; fi
  SERVER_DB=""
}

# Prints {"rss_kib":..,"hwm_kib":..,"threads":..} for the local server (null when external).
server_memory() {
  if [[ -z $SERVER_PID || ! -r /proc/$SERVER_PID/status ]]; then
    echo null
    return
  fi
  awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} /^Threads:/ {t=$2}
       END {printf "{\"rss_kib\":%d,\"hwm_kib\":%d,\"threads\":%d}\n", r, h, t}' "/proc/$SERVER_PID/status"
}

# Prints {"lines":N,"sample":[...]} for WARN/ERROR lines of the server log since it started.
server_log_problems() {
  if [[ -z ${SERVER_LOG:-} || ! -f $SERVER_LOG ]]; then
    echo null
    return
  fi
  grep -aE 'WARN|ERROR|panick' "$SERVER_LOG" | sed -E 's/\x1b\[[0-9;]*m//g' | jq -Rsc 'split("\n") | map(select(length > 0)) | {lines: length, sample: .[:5]}'
}

# ------------------------------------------------------------------------------------------
# Measuring helpers

RESULTS_DIR="$TMP_DIR/results"
mkdir -p "$RESULTS_DIR"
PIECE=0

# Records one result: scenario, backend, JSON value.
record() {
  PIECE=$((PIECE + 1))
  jq -c --arg s "$1" --arg b "$2" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg rev "$git_rev" \
    '{scenario: $s, backend: $b, data: ({measured_at: $at, commit: $rev} + .)}' <<<"$3" \
    >"$RESULTS_DIR/$(printf '%03d' "$PIECE").json"
}

# Runs wrk with the JSON-reporting script; the remaining arguments go to wrk. Prints the JSON.
run_wrk() {
  local out="$TMP_DIR/wrk.out"
  if ! wrk --script "$WRK_SCRIPT" "$@" >"$out" 2>&1; then
    cat "$out" >&2
    die "wrk failed"
  fi
  grep -a '^WRK_JSON ' "$out" | sed 's/^WRK_JSON //' | jq -c --argjson t "$WRK_THREADS" '. + {threads: $t}' ||
    die "wrk printed no summary: $(cat "$out")"
}

# CPU time of the local server (utime + stime, USER_HZ), 0 when there is none.
server_jiffies() {
  if [[ -n $SERVER_PID && -r /proc/$SERVER_PID/stat ]]; then
    awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"
  else
    echo 0
  fi
}

# "pid jiffies" for every local PostgreSQL backend serving database $1 (process title
# `postgres: [<cluster>: ]<user> <db> <client> <state>`): the database works for the server, so its CPU
# time is reported apart from the "other" load.
pg_backends() {
  local db=$1 files
  [[ -n $db ]] || return 0
  files="$(grep -laE "^postgres: ([^ ]+: )?[^ ]+ $db " /proc/[0-9]*/cmdline 2>/dev/null || true)"
  [[ -n $files ]] || return 0
  # shellcheck disable=SC2086 # one path per word
  awk '{print $1, $14 + $15}' ${files//cmdline/stat} 2>/dev/null || true
}

# CPU time of this shell's finished descendants (the load generators).
children_jiffies() {
  awk '{print $16 + $17}' "/proc/$$/stat"
}

# Runs "$@" (which prints one JSON object) after wait_idle and leaves that object in MEASURED
# with a `cpu` member: how the machine's CPU time was split while it ran (100 % = all CPUs).
measured() {
  local b0 t0 s0 c0 p0 b1 t1 s1 c1 p1 p out
  wait_idle
  read -r b0 t0 < <(cpu_jiffies)
  s0="$(server_jiffies)"
  c0="$(children_jiffies)"
  p0="$(pg_backends "$SERVER_DB")"
  out="$("$@")"
  read -r b1 t1 < <(cpu_jiffies)
  s1="$(server_jiffies)"
  c1="$(children_jiffies)"
  p1="$(pg_backends "$SERVER_DB")"
  # Backends that appeared during the run count from zero.
  p="$(awk 'NR == FNR {start[$1] = $2; next} {d += $2 - start[$1]} END {print d + 0}' <(echo "$p0") <(echo "$p1"))"
  MEASURED="$(jq -c --argjson p "$p" --argjson b $((b1 - b0)) --argjson t $((t1 - t0)) --argjson s $((s1 - s0)) \
    --argjson c $((c1 - c0)) --argjson n "$(nproc)" --argjson external "$([[ -n $TARGET ]] && echo true || echo false)" --argjson us "$((1000000 / CLK_TCK))" '
    def pct(x): if $t > 0 then (1000 * x / $t | round) / 10 else null end;
    . + {cpu: {cpus: $n, machine_busy_pct: pct($b), server_pct: pct($s), postgres_pct: pct($p),
               load_generator_pct: pct($c), other_pct: pct([$b - $s - $c - $p, 0] | max)}}
    # CPU time per request (wrk counts every request it made while the CPU was being measured).
    | if .tool == "wrk" and .requests > 0 then
        .cpu += {server_us_per_request: (10 * $s * $us / .requests | round / 10),
                 postgres_us_per_request: (10 * $p * $us / .requests | round / 10)}
      else . end
    # An external server is not observed: only the load generator and the machine are.
    | if $external then .cpu = (.cpu | {cpus, machine_busy_pct, load_generator_pct,
        note: "--target: the server is not observed; on this machine its CPU time is part of machine_busy_pct"})
      else . end' <<<"$out")"
}

login_body() {
  jq -nc --arg u "$USERNAME" --arg p "$PASSWORD" '{username: $u, password: $p}'
}

fetch_token() {
  local base=$1 response
  response="$(curl -sS -X POST "$base/api/auth/login" -H 'content-type: application/json' -d "$(login_body)")" ||
    die "login request to $base failed"
  jq -er '.access_token' <<<"$response" 2>/dev/null || die "login failed: $response"
}

# ------------------------------------------------------------------------------------------
# Scenarios

# One `seidra up` on a fresh data dir (and database): spawn -> /readyz 200, idle RSS, SIGTERM.
# Prints the loadgen JSON; the server log is left in $TMP_DIR.
startup_once() {
  local backend=$1 name=$2 idle=$3 data_dir="$TMP_DIR/startup-$2" db="" status=0 json
  mkdir -p "$data_dir"
  if [[ $backend == postgres ]]; then
    create_db
    db=$DB_NAME
  fi
  server_env "$backend" "$data_dir" "$db" true
  json="$("$LOADGEN" startup --url "$LOCAL_URL/readyz" --idle "$idle" --timeout 30 \
    --log "$TMP_DIR/startup-$name.log" --pid-file "$STARTUP_PID_FILE" -- "${ENV_ARGS[@]}" "$BIN" up)" || status=$?
  if [[ -n $db ]]; then drop_db "$db"; fi
  rm -rf "$data_dir"
  STARTUP_JSON=$json
  return "$status"
}

scenario_startup() {
  local backend=$1 i idle run ready rss
  local runs_file="$TMP_DIR/startup-$backend.jsonl"
  : >"$runs_file"
  # Run 0 is an untimed warm-up (page cache, first exec of the binary).
  for ((i = 0; i <= RUNS; i++)); do
    idle=$IDLE_SECS
    if ((i == 0)); then idle=0; else wait_idle; fi
    if ! startup_once "$backend" "$backend-$i" "$idle"; then
      # A second chance, so a stray signal from elsewhere does not void the whole run; a
      # server that really cannot start fails again.
      note "startup run $i ($backend) failed; retrying once. Log: $(cat "$TMP_DIR/startup-$backend-$i.log")"
      startup_once "$backend" "$backend-$i-retry" "$idle" ||
        die "startup run $i ($backend) failed twice; log: $(cat "$TMP_DIR/startup-$backend-$i-retry.log")"
    fi
    if ((i == 0)); then continue; fi
    echo "$STARTUP_JSON" >>"$runs_file"
    ready="$(jq -r '.ready_ms' <<<"$STARTUP_JSON")"
    rss="$(jq -r '.rss_kib / 1024 * 10 | round / 10' <<<"$STARTUP_JSON")"
    note "startup $backend run $i/$RUNS: ready in $ready ms, idle RSS $rss MiB"
  done
  run="$(jq -sc '
    def median: sort | if length == 0 then null
      elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def spread(f): [.[] | f] | {median: median, min: min, max: max};
    {runs: ., ready_ms: spread(.ready_ms), rss_mib: spread(.rss_kib / 1024),
     hwm_mib: spread(.hwm_kib / 1024), shutdown_ms: spread(.shutdown_ms)}' "$runs_file")"
  record startup "$backend" "$run"
}

scenario_me() {
  local backend=$1 base=$2 fixed max baseline rejected
  local url="$base/api/auth/me"
  # The token travels in the environment (not on command lines, visible in `ps`).
  local -x WRK_BEARER=$3 BENCH_BEARER=$3
  note "me/$backend: warm-up ${WARMUP_SECS}s"
  run_wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" -d "${WARMUP_SECS}s" "$url" >/dev/null
  note "me/$backend: fixed rate $RATE req/s for ${DURATION}s ($FIXED_CONNECTIONS connections, seidra-loadgen)"
  measured "$LOADGEN" http --url "$url" --bearer-env BENCH_BEARER --rate "$RATE" \
    --connections "$FIXED_CONNECTIONS" --duration "$DURATION" --warmup 2
  fixed=$MEASURED
  if [[ $(jq -r .ok <<<"$fixed") -eq 0 ]]; then
    die "me/$backend: no request succeeded (statuses: $(jq -c .status <<<"$fixed"), first error: $(jq -r .first_error <<<"$fixed"));" \
      "a 429 means the server's rate limit is on (SEIDRA_RATE_LIMIT__ENABLED=false turns it off)"
  fi
  note "me/$backend: fixed rate: p50 $(jq -r .latency_ms.p50 <<<"$fixed") ms, p99 $(jq -r .latency_ms.p99 <<<"$fixed") ms"
  local runs=() i
  for ((i = 1; i <= ME_REPEATS; i++)); do
    note "me/$backend: max throughput, run $i/$ME_REPEATS, ${DURATION}s (wrk -t$WRK_THREADS -c$WRK_CONNECTIONS)"
    measured run_wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" -d "${DURATION}s" "$url"
    runs+=("$MEASURED")
    note "me/$backend: $(jq -r '"\(.rps) req/s; CPU share: server \(.cpu.server_pct)%, postgres \(.cpu.postgres_pct)%, wrk \(.cpu.load_generator_pct)%, other \(.cpu.other_pct)%"' <<<"$MEASURED")"
  done
  # The median run (by throughput), with every run's throughput.
  max="$(printf '%s\n' "${runs[@]}" | jq -sc 'sort_by(.rps) as $s | $s[length / 2 | floor]
    + {runs: ($s | map({rps, other_cpu_pct: .cpu.other_pct})), rps_min: $s[0].rps, rps_max: $s[-1].rps}')"
  # Reference: the same server and load without authentication or a database query.
  note "me/$backend: reference: GET /healthz max throughput for ${DURATION}s (no auth, no database)"
  WRK_BEARER="" measured run_wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" -d "${DURATION}s" "$base/healthz"
  baseline=$MEASURED
  note "me/$backend: reference: $(jq -r .rps <<<"$baseline") req/s"
  # Reference: the same route with a forged signature. The JWT is parsed and its HMAC checked,
  # then the request is refused with 401 before any database query.
  note "me/$backend: reference: GET /api/auth/me with a bad JWT signature (401, no database) for ${DURATION}s"
  WRK_BEARER="${WRK_BEARER%.*}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
    measured run_wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" -d "${DURATION}s" "$url"
  rejected=$MEASURED
  note "me/$backend: reference: $(jq -r .rps <<<"$rejected") req/s"
  record me "$backend" "$(jq -nc --argjson f "$fixed" --argjson m "$max" --argjson h "$baseline" \
    --argjson x "$rejected" --argjson mem "$(server_memory)" --argjson log "$(server_log_problems)" \
    '{fixed: $f, max: $m, healthz_max: $h, bad_signature_max: $x, server_memory_after: $mem,
      server_log_problems: $log}')"
}

scenario_login() {
  local backend=$1 base=$2 sequential max mem_before
  local url="$base/api/auth/login"
  local -x WRK_METHOD=POST WRK_BODY BENCH_LOGIN_BODY
  WRK_BODY="$(login_body)"
  BENCH_LOGIN_BODY=$WRK_BODY
  mem_before="$(server_memory)"
  note "login/$backend: sequential latency for ${DURATION}s (1 connection, seidra-loadgen)"
  measured "$LOADGEN" http --url "$url" --method POST --header 'Content-Type: application/json' \
    --body-env BENCH_LOGIN_BODY --rate 0 --connections 1 --duration "$DURATION" --warmup 1
  sequential=$MEASURED
  note "login/$backend: max rate for ${DURATION}s (wrk -t$WRK_THREADS -c$LOGIN_CONNECTIONS)"
  measured run_wrk -t "$WRK_THREADS" -c "$LOGIN_CONNECTIONS" -d "${DURATION}s" --timeout 10s "$url"
  max=$MEASURED
  record login "$backend" "$(jq -nc --argjson s "$sequential" --argjson m "$max" --argjson before "$mem_before" \
    --argjson mem "$(server_memory)" --argjson log "$(server_log_problems)" \
    '{sequential: $s, max: $m, server_memory_before: $before, server_memory_after: $mem, server_log_problems: $log}')"
}

for backend in "${BACKENDS[@]}"; do
  if $DO_STARTUP; then
    note "startup/$backend: 1 warm-up + $RUNS timed runs, ${IDLE_SECS}s idle each"
    scenario_startup "$backend"
  fi
  if $DO_ME || $DO_LOGIN; then
    if [[ -n $TARGET ]]; then
      base=$TARGET
      token=$TOKEN
      if $DO_ME && [[ -z $token ]]; then token="$(fetch_token "$base")"; fi
    else
      start_server "$backend" "http-$backend"
      base=$LOCAL_URL
      token="$(fetch_token "$base")"
    fi
    if $DO_ME; then scenario_me "$backend" "$base" "$token"; fi
    if $DO_LOGIN; then scenario_login "$backend" "$base"; fi
    stop_server
  fi
done

# ------------------------------------------------------------------------------------------
# Results

cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
mem_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
mkdir -p "$(dirname "$OUTPUT")"
if [[ -n $MERGE ]]; then
  # Sorted before this run's pieces, so what was measured now replaces what was merged.
  jq -c '. as $r | ["startup", "me", "login"][] as $s | ($r[$s] // {}) | to_entries[]
    | {scenario: $s, backend: .key, data: ({measured_at: $r.generated_at, commit: $r.seidra.git_commit} + .value)}' \
    "$MERGE" >"$RESULTS_DIR/000-merged.json"
fi
jq -s \
  --arg now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg rev "$git_rev" --argjson dirty "$git_dirty" \
  --arg version "$(if [[ -n $BIN ]]; then "$BIN" --version 2>/dev/null || echo unknown; else echo "unknown (--target)"; fi)" \
  --argjson nproc "$(nproc)" --arg cpu "${cpu_model:-unknown}" --argjson mem "${mem_kib:-0}" \
  --arg kernel "$(uname -r)" --argjson busy "$BUSY_BEFORE" --arg load_before "$LOADAVG_BEFORE" \
  --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" --arg wrk "$(wrk --version 2>&1 | head -n 1 | sed 's/ \[.*//')" \
  --arg target "$TARGET" \
  --argjson merged "$(if [[ -n $MERGE ]]; then jq -c '{file: $f, generated_at, merged_from: (.settings.merged_from // null)}' --arg f "$MERGE" "$MERGE"; else echo null; fi)" \
  --argjson duration "$DURATION" --argjson runs "$RUNS" --argjson idle "$IDLE_SECS" --argjson rate "$RATE" \
  --argjson fixed_c "$FIXED_CONNECTIONS" --argjson wrk_t "$WRK_THREADS" --argjson wrk_c "$WRK_CONNECTIONS" \
  --argjson login_c "$LOGIN_CONNECTIONS" --argjson warmup "$WARMUP_SECS" \
  --argjson wait_idle "$WAIT_IDLE" --argjson repeats "$ME_REPEATS" \
  '(reduce .[] as $p ({}; .[$p.scenario][$p.backend] = $p.data)) as $r
  | {
      schema: 1,
      generated_at: $now,
      seidra: {version: $version, git_commit: $rev, git_dirty: $dirty},
      machine: {nproc: $nproc, cpu_model: $cpu, mem_total_mib: ($mem / 1024 | floor), kernel: $kernel,
        cpu_busy_pct_before: $busy, loadavg_before: $load_before, loadavg_after: $load_after},
      settings: {
        target: (if $target == "" then null else $target end),
        # The chain of results files merged in (each with its own merged_from).
        merged_from: $merged,
        wait_idle_s: $wait_idle,
        duration_s: $duration, warmup_s: $warmup, startup_runs: $runs, startup_idle_s: $idle,
        me_max_repeats: $repeats, fixed_rate_rps: $rate, fixed_rate_connections: $fixed_c, fixed_rate_tool: "bench/loadgen (seidra-loadgen)",
        wrk: $wrk, wrk_threads: $wrk_t, wrk_connections_me: $wrk_c, wrk_connections_login: $login_c
      },
      goals: (
        [($r.startup // {} | to_entries[] |
           {goal: "startup_ready_ms", backend: .key, measured: .value.ready_ms.median, limit: 1000, op: "<="},
           {goal: "idle_rss_mib", backend: .key, measured: .value.rss_mib.median, limit: 40, op: "<="}),
         ($r.me // {} | to_entries[] |
           {goal: "me_max_rps", backend: .key, measured: .value.max.rps, limit: 15000, op: ">=",
            other_cpu_pct: .value.max.cpu.other_pct},
           {goal: "me_p99_ms_at_fixed_rate", backend: .key, measured: .value.fixed.latency_ms.p99, limit: 5, op: "<=",
            other_cpu_pct: .value.fixed.cpu.other_pct})]
        | map(. + {met: (if .op == "<=" then .measured <= .limit else .measured >= .limit end)})
      )
    } + $r' "$RESULTS_DIR"/*.json >"$OUTPUT.tmp"
mv "$OUTPUT.tmp" "$OUTPUT"
note "results written to $OUTPUT"

print_table "$OUTPUT"
