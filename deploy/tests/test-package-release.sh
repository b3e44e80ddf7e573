#!/usr/bin/env bash
# Tests scripts/package-release.sh without a cargo build: a stand-in binary is packaged with the
# chart, then the tarball layout, the chart's appVersion and SHA256SUMS are checked, and a
# version that does not match Cargo.toml is refused.
set -euo pipefail
cd "$(dirname "$0")/../.."

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
version=$(awk '/^\[workspace\.package\]/{p=1;next} /^\[/{p=0} p && /^version *=/ {gsub(/.*= *"|".*/,""); print; exit}' Cargo.toml)
chart_version=$(awk '/^version:/ {print $2}' deploy/helm/Chart.yaml)
printf '#!/bin/sh\necho "seidra %s"\n' "$version" > "$WORK/seidra"
chmod +x "$WORK/seidra"

bash scripts/package-release.sh --binary "$WORK/seidra" --target x86_64-unknown-linux-gnu --out "$WORK/dist" > "$WORK/out" 2>&1 \
  || { cat "$WORK/out" >&2; echo "package-release.sh failed" >&2; exit 1; }

tarball="$WORK/dist/seidra-$version-x86_64-unknown-linux-gnu.tar.gz"
chart="$WORK/dist/seidra-ultimate-$chart_version.tgz"
[ -f "$tarball" ] || { echo "missing $tarball" >&2; exit 1; }
[ -f "$chart" ] || { echo "missing $chart" >&2; exit 1; }
tar -tzf "$tarball" | grep -qx "seidra-$version-x86_64-unknown-linux-gnu/seidra" || { echo "tarball lacks the binary" >&2; exit 1; }
mkdir -p "$WORK/x"
tar -C "$WORK/x" -xzf "$tarball"
[ "$("$WORK/x/seidra-$version-x86_64-unknown-linux-gnu/seidra")" = "seidra $version" ] || { echo "packaged binary differs" >&2; exit 1; }
tar -xzOf "$chart" seidra-ultimate/Chart.yaml | grep -q "^appVersion: \"\{0,1\}$version\"\{0,1\}$" \
  || { echo "packaged chart appVersion is not $version" >&2; exit 1; }
(cd "$WORK/dist" && sha256sum -c SHA256SUMS) > /dev/null || { echo "SHA256SUMS does not verify" >&2; exit 1; }
[ "$(wc -l < "$WORK/dist/SHA256SUMS")" -eq 2 ] || { echo "SHA256SUMS should list 2 artifacts" >&2; exit 1; }

if bash scripts/package-release.sh --binary "$WORK/seidra" --version "v$version.99" --no-chart --out "$WORK/bad" > "$WORK/bad.out" 2>&1; then
  echo "a version different from Cargo.toml was accepted" >&2; exit 1
fi
grep -q "does not match Cargo.toml" "$WORK/bad.out" || { cat "$WORK/bad.out" >&2; exit 1; }
echo "ok   package-release.sh: seidra-$version-<target>.tar.gz, seidra-ultimate-$chart_version.tgz (appVersion $version), SHA256SUMS"
