#!/usr/bin/env bash
# What the "Ultimate CI" job `helm-dry-run` does, runnable locally:
#   1. build both images with buildx (--load)         → backend-build.log, frontend-build.log
#   2. kind create cluster --name seidra-ci, kind load docker-image (both)
#   3. helm dependency update, helm lint
#   4. helm upgrade --install --dry-run --debug with image.repository/image.tag → helm-dry-run.log
#   5. check that ConfigMap seidra-config and Secret seidra-secrets are in the render
# Without a Docker engine (or kind, or a helm that can `upgrade`), steps 1–2 are skipped with a
# message in the logs, and step 4 renders with `helm template` (the same manifests, no cluster).
#
# Usage: scripts/helm-dry-run.sh [--out DIR] [--registry R] [--tag T] [--no-cluster] [--keep-cluster]
#   --out DIR        where the three logs go (default target/helm-dry-run)
#   --registry R     image.repository (default ghcr.io/<owner of origin, lower case>, else ghcr.io/seidra)
#   --tag T          image.tag (default: git HEAD commit, else "dev")
#   --no-cluster     skip the image builds and kind even when Docker is available
#   --keep-cluster   leave the kind cluster running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/helm-dry-run
REGISTRY=""
TAG=""
NO_CLUSTER=false
KEEP_CLUSTER=false
CLUSTER=seidra-ci
RELEASE=seidra-ultimate
NAMESPACE=seidra-ci
CHART=deploy/helm

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'helm-dry-run: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --registry) REGISTRY=${2:?--registry needs a value}; shift 2 ;;
    --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
    --no-cluster) NO_CLUSTER=true; shift ;;
    --keep-cluster) KEEP_CLUSTER=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

if [ -z "$REGISTRY" ]; then
  owner=$(git remote get-url origin 2>/dev/null | sed -n 's#.*github\.com[:/]\([^/]*\)/.*#\1#p' || true)
  REGISTRY="ghcr.io/${owner:-seidra}"
fi
REGISTRY=$(printf '%s' "$REGISTRY" | tr '[:upper:]' '[:lower:]')
[ -n "$TAG" ] || TAG=$(git rev-parse HEAD 2>/dev/null || echo dev)
BACKEND_IMAGE="$REGISTRY/ultimate-backend:$TAG"
FRONTEND_IMAGE="$REGISTRY/ultimate-frontend:$TAG"

command -v helm >/dev/null 2>&1 || die "helm not found (source ../shared/tools/install-ci-tools.sh, or install Helm 3)"
mkdir -p "$OUT"
BACKEND_LOG="$OUT/backend-build.log"
FRONTEND_LOG="$OUT/frontend-build.log"
DRY_RUN_LOG="$OUT/helm-dry-run.log"
: > "$BACKEND_LOG"; : > "$FRONTEND_LOG"; : > "$DRY_RUN_LOG"

# --- what this machine can do ------------------------------------------------------------------
CLUSTER_MODE=true
why_not=""
if $NO_CLUSTER; then
  CLUSTER_MODE=false; why_not="--no-cluster given"
elif ! docker info >/dev/null 2>&1; then
  CLUSTER_MODE=false; why_not="no Docker engine reachable (docker info failed)"
elif ! docker buildx version >/dev/null 2>&1; then
  CLUSTER_MODE=false; why_not="docker buildx is not installed"
elif ! command -v kind >/dev/null 2>&1; then
  CLUSTER_MODE=false; why_not="kind is not installed"
elif ! helm upgrade --help >/dev/null 2>&1; then
  CLUSTER_MODE=false; why_not="this helm cannot run 'helm upgrade'"
fi

CREATED_CLUSTER=false
cleanup() {
  if $CREATED_CLUSTER && ! $KEEP_CLUSTER; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# --- 1–2: images and kind ----------------------------------------------------------------------
if $CLUSTER_MODE; then
  step "docker buildx build backend → $BACKEND_IMAGE (log: $BACKEND_LOG)"
  docker buildx build . --file backend/Dockerfile --tag "$BACKEND_IMAGE" --load 2>&1 | tee "$BACKEND_LOG"
  if [ -f frontend/package.json ]; then
    step "docker buildx build frontend → $FRONTEND_IMAGE (log: $FRONTEND_LOG)"
    docker buildx build frontend --file frontend/Dockerfile --tag "$FRONTEND_IMAGE" --load 2>&1 | tee "$FRONTEND_LOG"
  else
    echo "frontend/package.json not found: frontend image not built" | tee "$FRONTEND_LOG"
  fi
  step "kind create cluster --name $CLUSTER"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    echo "reusing the existing kind cluster $CLUSTER"
  else
    kind create cluster --name "$CLUSTER" --wait 120s
    CREATED_CLUSTER=true
  fi
  kind load docker-image "$BACKEND_IMAGE" --name "$CLUSTER"
  if [ -f frontend/package.json ]; then
    kind load docker-image "$FRONTEND_IMAGE" --name "$CLUSTER"
  fi
else
  msg="SKIPPED image builds and kind: $why_not. Lint and render still run; the GitHub job 'helm-dry-run' builds both images and uses a kind cluster."
  step "$msg"
  echo "$msg" > "$BACKEND_LOG"
  echo "$msg" > "$FRONTEND_LOG"
fi

# --- 3: chart dependencies and lint ------------------------------------------------------------
step "helm dependency update $CHART"
helm dependency update "$CHART"
step "helm lint --strict $CHART"
helm lint --strict "$CHART" --set image.repository="$REGISTRY" --set image.tag="$TAG"

# --- 4: dry run --------------------------------------------------------------------------------
{
  echo "# helm-dry-run $(date -u +%Y-%m-%dT%H:%M:%SZ) image.repository=$REGISTRY image.tag=$TAG"
  if $CLUSTER_MODE; then
    echo "# mode: helm upgrade --install --dry-run --debug against kind cluster $CLUSTER"
  else
    echo "# mode: helm template (no cluster: $why_not)"
  fi
} > "$DRY_RUN_LOG"
if $CLUSTER_MODE; then
  step "helm upgrade --install $RELEASE $CHART --dry-run --debug (log: $DRY_RUN_LOG)"
  helm upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
    --kube-context "kind-$CLUSTER" \
    --set image.repository="$REGISTRY" --set image.tag="$TAG" \
    --dry-run --debug >> "$DRY_RUN_LOG" 2>&1 || { tail -n 40 "$DRY_RUN_LOG" >&2; die "helm upgrade --dry-run failed"; }
else
  step "helm template $RELEASE $CHART (log: $DRY_RUN_LOG)"
  helm template "$RELEASE" "$CHART" --namespace "$NAMESPACE" \
    --set image.repository="$REGISTRY" --set image.tag="$TAG" >> "$DRY_RUN_LOG" 2>&1 \
    || { tail -n 40 "$DRY_RUN_LOG" >&2; die "helm template failed"; }
fi

# --- 5: the named config objects ---------------------------------------------------------------
step "check the render for ConfigMap seidra-config and Secret seidra-secrets"
bash deploy/tests/assert-objects.sh "$DRY_RUN_LOG" ConfigMap/seidra-config Secret/seidra-secrets \
  "Deployment/seidra-backend" "Deployment/seidra-worker" "Job/ultimate-migrate" "CronJob/ultimate-migrations"
grep -q "image: $BACKEND_IMAGE\$" "$DRY_RUN_LOG" || die "the render does not use $BACKEND_IMAGE"

step "done: $BACKEND_LOG, $FRONTEND_LOG, $DRY_RUN_LOG"
