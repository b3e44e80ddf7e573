#!/usr/bin/env bash
# Builds the release artifacts of one version into one directory:
#   seidra-<version>-<target>.tar.gz        the `seidra` binary (+ README.md, LICENSE when present)
#   seidra-ultimate-<chart version>.tgz     the Helm chart, appVersion = <version>
#   seidra-<version>-vendored-src.tar.gz    (--vendor) the sources with every crate vendored, for
#                                           offline / air-gapped builds (cargo build --offline)
#   SHA256SUMS                              sha256 of each artifact (`sha256sum -c SHA256SUMS`)
#
# Usage: scripts/package-release.sh [--version V] [--target TRIPLE] [--binary PATH] [--out DIR]
#                                   [--vendor] [--no-chart]
#   --version V      release version (default: [workspace.package] version in Cargo.toml); a
#                    leading "v" is dropped; must match Cargo.toml
#   --target TRIPLE  cargo target triple (default: the host's, from rustc -vV)
#   --binary PATH    package this binary instead of running `cargo build --release`
#   --out DIR        output directory (default target/dist)
#   --vendor         also build the vendored source tarball (runs `cargo vendor`; needs the
#                    crate registry or a warm cargo cache)
#   --no-chart       skip the Helm chart
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

VERSION=""
TARGET=""
BINARY=""
OUT=target/dist
VENDOR=false
CHART=true

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'package-release: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION=${2:?--version needs a value}; shift 2 ;;
    --target) TARGET=${2:?--target needs a triple}; shift 2 ;;
    --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --vendor) VENDOR=true; shift ;;
    --no-chart) CHART=false; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

cargo_version=$(awk '
  /^\[workspace\.package\]/ { in_pkg = 1; next }
  /^\[/ { in_pkg = 0 }
  in_pkg && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }' Cargo.toml)
[ -n "$cargo_version" ] || die "cannot read [workspace.package] version from Cargo.toml"
VERSION=${VERSION:-$cargo_version}
VERSION=${VERSION#v}
[ "$VERSION" = "$cargo_version" ] || die "version $VERSION does not match Cargo.toml ($cargo_version): bump the workspace version first"

if [ -z "$TARGET" ]; then
  if command -v rustc >/dev/null 2>&1; then
    TARGET=$(rustc -vV | sed -n 's/^host: //p')
  else
    TARGET="$(uname -m)-unknown-linux-gnu"
  fi
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
artifacts=()

# --- the binary --------------------------------------------------------------------------------
if [ -z "$BINARY" ]; then
  log "cargo build --release --locked -p seidra --target $TARGET"
  cargo build --release --locked -p seidra --target "$TARGET"
  BINARY="target/$TARGET/release/seidra"
fi
[ -x "$BINARY" ] || die "binary not found or not executable: $BINARY"
name="seidra-$VERSION-$TARGET"
mkdir -p "$STAGE/$name"
install -m 0755 "$BINARY" "$STAGE/$name/seidra"
for f in README.md LICENSE LICENSE.md COPYING; do
  if [ -f "$f" ]; then cp "$f" "$STAGE/$name/"; fi
done
log "packaging $name.tar.gz"
tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -czf "$OUT/$name.tar.gz" "$name"
artifacts+=("$name.tar.gz")

# --- the chart ---------------------------------------------------------------------------------
if $CHART; then
  command -v helm >/dev/null 2>&1 || die "helm is required to package the chart (or pass --no-chart)"
  log "helm package deploy/helm --app-version $VERSION"
  helm dependency update deploy/helm >/dev/null
  pkg=$(helm package deploy/helm --destination "$OUT" --app-version "$VERSION")
  echo "$pkg"
  artifacts+=("$(basename "${pkg##* }")")
fi

# --- vendored sources for offline builds -------------------------------------------------------
if $VENDOR; then
  src="seidra-$VERSION"
  log "vendored sources $src-vendored-src.tar.gz (git archive HEAD + cargo vendor)"
  git archive --format=tar --prefix="$src/" HEAD | tar -C "$STAGE" -xf -
  mkdir -p "$STAGE/$src/.cargo"
  (cd "$STAGE/$src" && cargo vendor --locked --versioned-dirs vendor > .cargo/config.toml)
  tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -czf "$OUT/$src-vendored-src.tar.gz" "$src"
  artifacts+=("$src-vendored-src.tar.gz")
fi

# --- checksums ---------------------------------------------------------------------------------
(cd "$OUT" && sha256sum "${artifacts[@]}" > SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
log "artifacts in $OUT:"
(cd "$OUT" && ls -l "${artifacts[@]}" SHA256SUMS)
cd "$ROOT"
