#!/usr/bin/env bash
# Property-based API fuzzing with schemathesis (PyPI) against a real `seidra up` on SQLite:
# every operation of /api/openapi.json gets generated valid and invalid inputs (coverage,
# fuzzing and stateful phases) with an admin token. Fails on any 5xx or any response that does
# not match the documented schema; the server log must hold no ERROR line or panic.
#
#   scripts/check-api-fuzz.sh            (SEIDRA_BIN defaults to target/debug/seidra)
#   FUZZ_EXAMPLES=100                    examples per operation (default 30)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SEIDRA_BIN:-$root/target/debug/seidra}"
venv="${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}"
examples="${FUZZ_EXAMPLES:-30}"

[[ -x $bin ]] || (cd "$root" && cargo build -p seidra)
if [[ ! -x $venv/bin/schemathesis ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi

work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
password="fuzz-admin-password-0451"
SEIDRA_BIND="127.0.0.1:$port" SEIDRA_DATA_DIR="$work/data" SEIDRA_ADMIN_PASSWORD="$password" \
  SEIDRA_RATE_LIMIT__ENABLED=false SEIDRA_LOG_FORMAT=json "$bin" up >"$work/server.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
token="$(curl -fsS -X POST "$base/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

# Signing out or changing the password would end the fuzzer's own session mid-run.
status=0
"$venv/bin/schemathesis" run "$base/api/openapi.json" -H "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance --max-examples "$examples" \
  --exclude-path-regex '/api/auth/(logout|me/password)' --generation-deterministic \
  --max-failures 50 >"$work/schemathesis.log" 2>&1 || status=$?
tail -n 25 "$work/schemathesis.log"
if [[ $status -ne 0 ]]; then
  grep -v '^\s*$' "$work/schemathesis.log" | head -n 200 >&2
  echo "check-api-fuzz: schemathesis found failures (exit $status)" >&2
  exit 1
fi
if grep -E '"level":"ERROR"|panicked' "$work/server.log" >&2; then
  echo "check-api-fuzz: the server logged errors while being fuzzed (above)" >&2
  exit 1
fi
echo "check-api-fuzz: no 5xx, every response matched the schema, no server errors"
