#!/usr/bin/env bash
# Starts the whole studio on the embedded default (SQLite + local files in ./seidra-data):
# builds the web app when it has not been built yet, then runs `seidra up` in release mode.
# Extra arguments go to `seidra` (e.g. `scripts/up.sh --config seidra.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f frontend/package.json ] && [ ! -f frontend/dist/index.html ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> building the web app (first start only)"
    (cd frontend && npm ci --no-audit --no-fund && npm run build)
  else
    echo "warning: npm not found; starting without the web app (the API works; install Node 20+ for the UI)" >&2
  fi
fi

exec cargo run --release --locked -p seidra -- "$@" up
