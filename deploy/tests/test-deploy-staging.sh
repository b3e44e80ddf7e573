#!/usr/bin/env bash
# Tests scripts/deploy-staging.sh without a cluster: `helm` and `kubectl` are replaced by fakes
# that record their arguments; the fake helm also renders the chart with the real helm
# (`helm template` with the same release, namespace, --set and --values), so the values the
# script composes must pass the chart's schema and templates.
#
# Usage: deploy/tests/test-deploy-staging.sh        (needs the real `helm` on PATH)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

REAL_HELM=$(command -v helm) || { echo "helm not found" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"
FAILS=0

fail() { echo "FAIL $*" >&2; FAILS=$((FAILS + 1)); }

cat > "$WORK/bin/helm" <<'FAKE'
#!/usr/bin/env bash
# Fake helm: records the call, keeps copies of --values files, renders with the real helm.
printf '%s\n' "$*" >> "$FAKE_LOG/helm.calls"
[ "${1:-}" = "upgrade" ] || exit 0
shift
release="" chart="" ns="default" render=(template)
while [ $# -gt 0 ]; do
  case "$1" in
    --install|--create-namespace|--atomic|--wait|--debug|--dry-run) shift ;;
    --namespace) ns=$2; shift 2 ;;
    --timeout) shift 2 ;;
    --set) render+=(--set "$2"); shift 2 ;;
    --values) cp "$2" "$FAKE_LOG/values.$(wc -l < "$FAKE_LOG/helm.calls").$(basename "$2")"; render+=(-f "$2"); shift 2 ;;
    -*) echo "fake helm: unexpected flag $1" >&2; exit 2 ;;
    *) if [ -z "$release" ]; then release=$1; else chart=$1; fi; shift ;;
  esac
done
"$REAL_HELM" "${render[0]}" "$release" "$chart" -n "$ns" "${render[@]:1}" > "$FAKE_LOG/render.yaml"
FAKE
cat > "$WORK/bin/kubectl" <<'FAKE'
#!/usr/bin/env bash
# Fake kubectl: records the call; namespaces listed in FAKE_NAMESPACES exist, deployments in
# FAKE_DEPLOYMENTS exist; everything else succeeds.
printf '%s\n' "$*" >> "$FAKE_LOG/kubectl.calls"
case "$*" in
  "get namespace "*) [[ " ${FAKE_NAMESPACES:-} " == *" ${3} "* ]] ;;
  *"get deployment "*) args="$*"; [[ " ${FAKE_DEPLOYMENTS:-} " == *" ${args##* } "* ]] ;;
  "create secret docker-registry"*) echo "apiVersion: v1"; echo "kind: Secret" ;;
  "apply -f -") cat > /dev/null ;;
  *) exit 0 ;;
esac
FAKE
chmod +x "$WORK/bin/helm" "$WORK/bin/kubectl"

# run NAME [ENV=VALUE...] -- ARGS...: runs the script with the fakes; output in $WORK/NAME.
run() {
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  export FAKE_LOG="$WORK/$name"
  mkdir -p "$FAKE_LOG"
  : > "$FAKE_LOG/helm.calls"; : > "$FAKE_LOG/kubectl.calls"
  set +e
  env PATH="$WORK/bin:$PATH" REAL_HELM="$REAL_HELM" FAKE_LOG="$FAKE_LOG" "${envs[@]+"${envs[@]}"}" \
    bash "$ROOT/scripts/deploy-staging.sh" "$@" > "$FAKE_LOG/out" 2>&1
  RC=$?
  set -e
}
has() { grep -qF -- "$2" "$WORK/$1/$3" || fail "$1: $3 lacks: $2"; }
lacks() { if grep -qF -- "$2" "$WORK/$1/$3"; then fail "$1: $3 should not contain: $2"; fi; }

# 1. --tag is required; unknown flags are refused.
run no-tag -- --namespace x
[ "$RC" -ne 0 ] || fail "no-tag: should fail"
has no-tag "--tag is required" out
run bad-flag -- --tag 1 --colour blue
[ "$RC" -ne 0 ] || fail "bad-flag: should fail"
has bad-flag "unknown argument: --colour" out
run missing-values -- --tag 1 --values /nonexistent.yaml
[ "$RC" -ne 0 ] || fail "missing-values: should fail"
has missing-values "values file not found" out

# 2. A real deploy: namespace created, atomic+wait upgrade, three rollouts.
run deploy FAKE_DEPLOYMENTS="seidra-backend seidra-worker seidra-frontend" -- --tag 0.1.0
[ "$RC" -eq 0 ] || { cat "$WORK/deploy/out" >&2; fail "deploy: exit $RC"; }
has deploy "upgrade --install seidra-ultimate deploy/helm --namespace seidra-staging --create-namespace --timeout 15m --set image.tag=0.1.0 --atomic --wait" helm.calls
has deploy "create namespace seidra-staging" kubectl.calls
for d in seidra-backend seidra-worker seidra-frontend; do
  has deploy "--namespace seidra-staging rollout status deployment/$d --timeout 15m" kubectl.calls
done
has deploy "logs job/ultimate-migrate" out
grep -q "image: ghcr.io/seidra/ultimate-backend:0.1.0" "$WORK/deploy/render.yaml" || fail "deploy: render lacks the tagged backend image"

# 3. Options: namespace, release, timeout, values and sets in order; existing namespace kept;
#    a Deployment that is not part of the release (frontend disabled) is skipped.
printf 'frontend:\n  enabled: false\n' > "$WORK/no-frontend.yaml"
run options FAKE_NAMESPACES="qa" FAKE_DEPLOYMENTS="seidra-backend seidra-worker" -- \
  --tag abc123 --namespace qa --release rel --timeout 5m --values "$WORK/no-frontend.yaml" --set worker.replicaCount=1
[ "$RC" -eq 0 ] || { cat "$WORK/options/out" >&2; fail "options: exit $RC"; }
has options "upgrade --install rel deploy/helm --namespace qa --create-namespace --timeout 5m --set image.tag=abc123 --atomic --wait --values $WORK/no-frontend.yaml --set worker.replicaCount=1" helm.calls
lacks options "create namespace" kubectl.calls
has options "deployment/seidra-frontend is not part of this release" out
lacks options "rollout status deployment/seidra-frontend" kubectl.calls

# 4. Dry run: helm --dry-run --debug, no --atomic/--wait, nothing created, no rollout.
run dry FAKE_DEPLOYMENTS="seidra-backend" GHCR_USERNAME=bot GHCR_TOKEN=ghp_secret -- --tag 9.9.9 --dry-run
[ "$RC" -eq 0 ] || { cat "$WORK/dry/out" >&2; fail "dry: exit $RC"; }
has dry "--set image.tag=9.9.9 --dry-run --debug" helm.calls
lacks dry "--atomic" helm.calls
lacks dry "create " kubectl.calls
lacks dry "rollout" kubectl.calls
has dry "dry run finished" out

# 5. Registry credentials: pull secret applied and referenced, token never passed to helm.
run ghcr FAKE_DEPLOYMENTS="seidra-backend" GHCR_USERNAME=bot GHCR_TOKEN=ghp_secret -- --tag 1.0.0
[ "$RC" -eq 0 ] || { cat "$WORK/ghcr/out" >&2; fail "ghcr: exit $RC"; }
has ghcr "create secret docker-registry seidra-ghcr --namespace seidra-staging --docker-server=ghcr.io --docker-username=bot --docker-password=ghp_secret --dry-run=client -o yaml" kubectl.calls
has ghcr "apply -f -" kubectl.calls
has ghcr "--set imagePullSecrets[0].name=seidra-ghcr" helm.calls
lacks ghcr "ghp_secret" helm.calls
grep -q -- "- name: seidra-ghcr" "$WORK/ghcr/render.yaml" || fail "ghcr: render lacks imagePullSecrets seidra-ghcr"

# 6. SEIDRA_DATABASE_URL: through a private values file, exact value, never on the command line.
url='postgres://seidra:p,a"ss\word@db.example:5432/seidra?sslmode=disable'
run dburl FAKE_DEPLOYMENTS="seidra-backend" SEIDRA_DATABASE_URL="$url" -- --tag 1.0.0
[ "$RC" -eq 0 ] || { cat "$WORK/dburl/out" >&2; fail "dburl: exit $RC"; }
lacks dburl "p,a" helm.calls
values_copy=$(find "$WORK/dburl" -name 'values.*database-url.yaml' | head -n1)
if [ -n "$values_copy" ]; then
  got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["env"]["SEIDRA_DATABASE_URL"])' "$values_copy")
  [ "$got" = "$url" ] || fail "dburl: values file holds $got, expected $url"
else
  fail "dburl: no values file with the database URL was passed to helm"
fi
python3 - "$WORK/dburl/render.yaml" "$url" <<'PY' || fail "dburl: rendered Secret lacks the exact SEIDRA_DATABASE_URL"
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "seidra-secrets")
sys.exit(0 if base64.b64decode(secret["data"]["SEIDRA_DATABASE_URL"]).decode() == sys.argv[2] else 1)
PY

# 7. --help documents every option the operator guide uses.
run help -- --help
[ "$RC" -eq 0 ] || fail "help: exit $RC"
for opt in --tag --namespace --values --set --timeout --dry-run GHCR_USERNAME GHCR_TOKEN SEIDRA_DATABASE_URL; do
  has help "$opt" out
done

if [ "$FAILS" -ne 0 ]; then
  echo "deploy-staging tests: $FAILS failure(s)" >&2
  exit 1
fi
echo "ok   deploy-staging.sh: required --tag, options, atomic upgrade + rollouts, dry run, GHCR pull secret, database URL file"
