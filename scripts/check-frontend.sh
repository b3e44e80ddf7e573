#!/usr/bin/env bash
# Checks the web studio (frontend/): clean install, lint, typecheck, the generated API contract,
# unit tests, production build + initial-JS budget, and the end-to-end tests in real Chromium
# against a real `seidra up`. Exits non-zero on the first failure.
#
#   scripts/check-frontend.sh
#
# Environment:
#   SEIDRA_BIN                     backend binary for the contract check and e2e (default target/debug/seidra;
#                                  built with `cargo build -p seidra` when missing)
#   CHROMIUM                       browser for e2e (default /usr/bin/chromium; installed with apt-get when missing)
#   SEIDRA_E2E_BACKEND_SERVES_UI=1 e2e against the backend serving frontend/dist itself (no test proxy)
#   CHECK_FRONTEND_SKIP_E2E=1      everything but the browser tests (quick local loop)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/frontend"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

export SEIDRA_BIN="${SEIDRA_BIN:-$root/target/debug/seidra}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export GEN_API_QUIET=1

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "lint (eslint)"
npm run -s lint

step "typecheck (tsc --noEmit)"
npm run -s typecheck

if [[ ! -x "$SEIDRA_BIN" ]]; then
  step "build the backend (cargo build -p seidra)"
  (cd "$root" && cargo build -p seidra)
fi

step "API contract: openapi.json and src/api/schema.d.ts match \`seidra openapi\`"
npm run -s check:api

step "unit tests (vitest)"
npm test --silent

step "build (vite) and initial JS budget"
npm run -s build
node scripts/bundle-size.mjs

if [[ "${CHECK_FRONTEND_SKIP_E2E:-0}" == "1" ]]; then
  step "e2e skipped (CHECK_FRONTEND_SKIP_E2E=1)"
else
  if [[ ! -x "$CHROMIUM" ]]; then
    step "install Chromium (Debian package)"
    if [[ $(id -u) -eq 0 ]]; then
      apt-get install -y --no-install-recommends chromium >/dev/null
    else
      echo "Chromium is missing at $CHROMIUM: run 'apt-get install -y chromium' as root (never 'playwright install')." >&2
      exit 1
    fi
  fi
  step "end-to-end (playwright-core + Chromium, real seidra up)"
  node e2e/run.mjs
fi

printf '\ncheck-frontend: all checks passed in %ss\n' "$(($(date +%s) - started))"
