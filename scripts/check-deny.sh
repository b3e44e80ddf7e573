#!/usr/bin/env bash
# Supply-chain policy with cargo-deny (deny.toml): licences of every dependency on the allow
# list, banned crates (OpenSSL, a second rustls provider) absent, no `*` requirements, every
# crate from crates.io. Offline: the advisory check needs the RustSec database from GitHub and
# runs where GitHub is reachable (SEIDRA_DENY_ADVISORIES=1, as the GitHub workflow does).
#
#   scripts/check-deny.sh                       (cargo install --locked cargo-deny@0.20.2 first)
#   SEIDRA_DENY_ADVISORIES=1 scripts/check-deny.sh   also `advisories`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo deny --version >/dev/null 2>&1; then
  echo "check-deny: cargo-deny is not installed: cargo install --locked cargo-deny@0.20.2" >&2
  exit 1
fi
checks=(licenses bans sources)
if [[ ${SEIDRA_DENY_ADVISORIES:-0} == 1 ]]; then
  checks+=(advisories)
fi
# Duplicate versions are warnings (multiple-versions = "warn"): shown once, not the full graphs.
cargo deny --locked --color never check --hide-inclusion-graph --show-stats "${checks[@]}"
