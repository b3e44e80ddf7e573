#!/usr/bin/env bash
# Deploys a released image tag to the staging namespace with the Helm chart in deploy/helm.
#
# Usage: scripts/deploy-staging.sh --tag TAG [options]
#   --tag TAG          image tag to deploy (required; e.g. 0.1.0 or a commit SHA built by CI)
#   --namespace NS     Kubernetes namespace (default seidra-staging)
#   --release NAME     Helm release name (default seidra-ultimate)
#   --values FILE      extra values file (repeatable, applied in order)
#   --set KEY=VALUE    extra value (repeatable)
#   --timeout DUR      helm and rollout timeout (default 15m)
#   --dry-run          render against the cluster (helm --dry-run --debug); changes nothing
#   -h, --help         this help
#
# Environment:
#   GHCR_USERNAME, GHCR_TOKEN   when both are set, the registry pull secret `seidra-ghcr` is
#                               created/updated and used (imagePullSecrets[0].name=seidra-ghcr)
#   SEIDRA_DATABASE_URL         when set, passed as env.SEIDRA_DATABASE_URL through a private
#                               temporary values file (never on the command line)
#   KUBECONFIG / kube context   as for kubectl and helm
#
# Runs `helm upgrade --install --atomic --wait` (a failed upgrade rolls back by itself; the
# pre-upgrade migration Job ultimate-migrate runs first), then waits for the rollout of
# seidra-backend, seidra-worker and seidra-frontend.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=""
NAMESPACE=seidra-staging
RELEASE=seidra-ultimate
TIMEOUT=15m
DRY_RUN=false
VALUES=()
SETS=()
CHART=deploy/helm
PULL_SECRET=seidra-ghcr

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'deploy-staging: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
    --tag=*) TAG=${1#*=}; shift ;;
    --namespace|-n) NAMESPACE=${2:?--namespace needs a value}; shift 2 ;;
    --namespace=*) NAMESPACE=${1#*=}; shift ;;
    --release) RELEASE=${2:?--release needs a value}; shift 2 ;;
    --release=*) RELEASE=${1#*=}; shift ;;
    --values|-f) VALUES+=("${2:?--values needs a file}"); shift 2 ;;
    --values=*) VALUES+=("${1#*=}"); shift ;;
    --set) SETS+=("${2:?--set needs KEY=VALUE}"); shift 2 ;;
    --set=*) SETS+=("${1#*=}"); shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs a duration}; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[ -n "$TAG" ] || { usage >&2; die "--tag is required"; }
for f in "${VALUES[@]+"${VALUES[@]}"}"; do
  [ -f "$f" ] || die "values file not found: $f"
done
command -v helm >/dev/null 2>&1 || die "helm is required"
command -v kubectl >/dev/null 2>&1 || die "kubectl is required"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

args=(upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace
      --timeout "$TIMEOUT" --set "image.tag=$TAG")
if $DRY_RUN; then
  args+=(--dry-run --debug)
else
  args+=(--atomic --wait)
fi

# Namespace and pull secret (not in a dry run: it changes nothing in the cluster).
if ! $DRY_RUN; then
  if ! kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
    log "creating namespace $NAMESPACE"
    kubectl create namespace "$NAMESPACE"
  fi
fi
if [ -n "${GHCR_USERNAME:-}" ] && [ -n "${GHCR_TOKEN:-}" ]; then
  if $DRY_RUN; then
    log "would create/update the pull secret $PULL_SECRET (dry run)"
  else
    log "creating/updating the pull secret $PULL_SECRET for ghcr.io"
    kubectl create secret docker-registry "$PULL_SECRET" --namespace "$NAMESPACE" \
      --docker-server=ghcr.io --docker-username="$GHCR_USERNAME" --docker-password="$GHCR_TOKEN" \
      --dry-run=client -o yaml | kubectl apply -f -
  fi
  args+=(--set "imagePullSecrets[0].name=$PULL_SECRET")
fi

# The database URL holds a password: hand it to helm in a private values file.
if [ -n "${SEIDRA_DATABASE_URL:-}" ]; then
  url=${SEIDRA_DATABASE_URL//\\/\\\\}
  url=${url//\"/\\\"}
  (umask 077; printf '{"env": {"SEIDRA_DATABASE_URL": "%s"}}\n' "$url" > "$TMP/database-url.yaml")
  args+=(--values "$TMP/database-url.yaml")
fi
for f in "${VALUES[@]+"${VALUES[@]}"}"; do args+=(--values "$f"); done
for s in "${SETS[@]+"${SETS[@]}"}"; do args+=(--set "$s"); done

log "helm ${args[*]}"
helm "${args[@]}"

if $DRY_RUN; then
  log "dry run finished: nothing was changed"
  exit 0
fi

for deployment in seidra-backend seidra-worker seidra-frontend; do
  if kubectl --namespace "$NAMESPACE" get deployment "$deployment" >/dev/null 2>&1; then
    log "waiting for deployment/$deployment"
    kubectl --namespace "$NAMESPACE" rollout status "deployment/$deployment" --timeout "$TIMEOUT"
  else
    log "deployment/$deployment is not part of this release (skipped)"
  fi
done

cat <<EOF

Deployed $RELEASE with image tag $TAG to namespace $NAMESPACE. Next:
  kubectl -n $NAMESPACE logs job/ultimate-migrate            # "migrations: upgrade successful, version N"
  kubectl -n $NAMESPACE exec deploy/seidra-backend -- seidra migrate status
  kubectl -n $NAMESPACE port-forward svc/seidra-backend 8080:8080 &
  curl -s http://127.0.0.1:8080/api/system/health
  helm -n $NAMESPACE history $RELEASE
EOF
