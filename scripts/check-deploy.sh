#!/usr/bin/env bash
# Deployment checks: the Helm chart, the rendered manifests, the images, the Compose files, the
# GitHub workflows and the deployment scripts (issue 7). No cluster and no Docker engine needed.
#
#   scripts/check-deploy.sh            # every check; exits 1 naming each failed one
#
# Tools: helm, kubernetes-validate, hadolint, actionlint, shellcheck, yamllint, docker-compose
# (or `docker compose`), python3 with PyYAML. `source ../shared/tools/install-ci-tools.sh`
# installs them; this script puts ${SEIDRA_CI_TOOLS:-/opt/seidra-ci-tools}/bin on PATH itself.
# With a seidra binary (SEIDRA_BIN, else target/debug/seidra) the rendered pod environment is
# also run through `seidra config check`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

TOOLS="${SEIDRA_CI_TOOLS:-/opt/seidra-ci-tools}"
if [ -d "$TOOLS/bin" ]; then PATH="$TOOLS/bin:$PATH"; fi
if ! command -v kubernetes-validate >/dev/null 2>&1 && [ -f ../shared/tools/install-ci-tools.sh ]; then
  # shellcheck disable=SC1091
  source ../shared/tools/install-ci-tools.sh >/dev/null 2>&1 || true
fi

CHART=deploy/helm
CI_VALUES=(ci/production-values.yaml ci/gpu-values.yaml ci/existing-secret-values.yaml)
KUBE_VERSIONS=(1.29.0 1.33.0)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=()
STARTED=$SECONDS
STEP=0

# check NAME CMD...: runs CMD, prints `ok`/`FAIL` with the time taken; output shown on failure.
check() {
  local name=$1; shift
  local t0=$SECONDS log
  STEP=$((STEP + 1))
  log="$WORK/step-$STEP.log"
  if "$@" > "$log" 2>&1; then
    printf 'ok   %-66s %3ss\n' "$name" "$((SECONDS - t0))"
  else
    printf 'FAIL %-66s %3ss\n' "$name" "$((SECONDS - t0))"
    sed 's/^/     | /' "$log" | tail -n 60
    FAILED+=("$name")
  fi
}

# --- tools ------------------------------------------------------------------------------------
PY=python3
if ! "$PY" -c 'import yaml' >/dev/null 2>&1 && [ -x "$TOOLS/bin/python" ]; then PY="$TOOLS/bin/python"; fi
COMPOSE=()
if command -v docker-compose >/dev/null 2>&1; then COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); fi
missing=()
for tool in helm kubernetes-validate hadolint actionlint shellcheck yamllint; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ "${#COMPOSE[@]}" -gt 0 ] || missing+=("docker-compose")
"$PY" -c 'import yaml' >/dev/null 2>&1 || missing+=("python3-yaml")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "check-deploy: missing tools: ${missing[*]} (source ../shared/tools/install-ci-tools.sh)" >&2
  exit 1
fi
SEIDRA_BIN="${SEIDRA_BIN:-$ROOT/target/debug/seidra}"

# --- chart: lint, render, validate ------------------------------------------------------------
lint_all() {
  helm lint --strict "$CHART" || return 1
  for v in "${CI_VALUES[@]}"; do helm lint --strict "$CHART" -f "$CHART/$v" || return 1; done
}
check "helm lint --strict (default, production, gpu, existing-secret values)" lint_all

render_all() {
  helm template seidra-ultimate "$CHART" -n seidra > "$WORK/render-default.yaml" || return 1
  for v in "${CI_VALUES[@]}"; do
    helm template seidra-ultimate "$CHART" -n seidra -f "$CHART/$v" > "$WORK/render-$(basename "$v" .yaml).yaml" || return 1
  done
}
check "helm template (default, production, gpu, existing-secret values)" render_all

validate_all() {
  local kv out rc=0
  for kv in "${KUBE_VERSIONS[@]}"; do
    out=$(kubernetes-validate --strict --quiet -k "$kv" "$WORK"/render-*.yaml 2>&1) || rc=1
    # Only CRD kinds (ServiceMonitor) may lack a schema; anything else is a failure.
    if printf '%s\n' "$out" | grep -v "^$" | grep -v "Couldn't find schema for kind ServiceMonitor"; then rc=1; fi
  done
  return "$rc"
}
check "kubernetes-validate --strict against Kubernetes ${KUBE_VERSIONS[*]}" validate_all

render_asserts() {
  local args=(--helm helm --chart "$CHART")
  if [ -x "$SEIDRA_BIN" ]; then args+=(--seidra "$SEIDRA_BIN"); fi
  "$PY" deploy/tests/check_render.py "${args[@]}"
}
check "render assertions (deploy/tests/check_render.py)" render_asserts

schema_rejects_typo() {
  if helm lint --strict "$CHART" --set backend.replicaCont=2; then echo "helm lint accepted backend.replicaCont"; return 1; fi
  if helm template seidra-ultimate "$CHART" --set backend.replicaCont=2; then echo "helm template accepted backend.replicaCont"; return 1; fi
  if helm template seidra-ultimate "$CHART" --set imagee.tag=x; then echo "helm template accepted imagee.tag"; return 1; fi
  return 0
}
check "values.schema.json rejects misspelt keys (backend.replicaCont, imagee.tag)" schema_rejects_typo

dependency_update() {
  # No remote dependencies: must work offline and leave nothing behind.
  helm dependency update "$CHART" && helm dependency list "$CHART" \
    && [ ! -e "$CHART/charts" ] && [ ! -e "$CHART/Chart.lock" ]
}
check "helm dependency update (offline, no remote dependencies)" dependency_update

package_chart() {
  helm package "$CHART" --destination "$WORK/pkg" || return 1
  local version tgz
  version=$(awk '/^version:/ {print $2}' "$CHART/Chart.yaml")
  tgz="$WORK/pkg/seidra-ultimate-$version.tgz"
  tar -tzf "$tgz" > "$WORK/pkg.list" || return 1
  for f in Chart.yaml values.yaml values.schema.json templates/NOTES.txt templates/migrate-job.yaml; do
    grep -qx "seidra-ultimate/$f" "$WORK/pkg.list" || { echo "package lacks $f"; return 1; }
  done
  if grep -q "seidra-ultimate/ci/" "$WORK/pkg.list"; then echo "package contains ci/"; return 1; fi
}
check "helm package (contents, ci/ excluded)" package_chart

# --- images, workflows, scripts ---------------------------------------------------------------
check "hadolint backend/Dockerfile frontend/Dockerfile" hadolint backend/Dockerfile frontend/Dockerfile
check "actionlint .github/workflows/*.yml" actionlint -color=false .github/workflows/*.yml
SCRIPTS=(scripts/check-deploy.sh scripts/deploy-staging.sh scripts/helm-dry-run.sh scripts/package-release.sh
         deploy/tests/assert-objects.sh deploy/tests/test-deploy-staging.sh deploy/tests/test-package-release.sh)
check "shellcheck (${#SCRIPTS[@]} deployment scripts)" shellcheck -x "${SCRIPTS[@]}"
check "yamllint (workflows, compose files, chart values)" \
  yamllint -c deploy/tests/yamllint.yaml .github/workflows docker-compose.yml deploy/docker/production.yml \
    "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART/ci"

# --- compose ----------------------------------------------------------------------------------
compose_config() {
  "${COMPOSE[@]}" -f docker-compose.yml config -q || return 1
  "${COMPOSE[@]}" --env-file deploy/docker/.env.example -f deploy/docker/production.yml config -q || return 1
  # The monitoring stack joins the production project (deploy/docker/monitoring.yml documents it).
  if [ -f deploy/docker/monitoring.yml ]; then
    GRAFANA_ADMIN_PASSWORD=check "${COMPOSE[@]}" --env-file deploy/docker/.env.example \
      -f deploy/docker/production.yml -f deploy/docker/monitoring.yml config -q || return 1
  fi
  # Without the secrets, the production file must refuse to start.
  if env -u POSTGRES_PASSWORD -u REDIS_PASSWORD -u SEIDRA_SECRET_KEY -u SEIDRA_ADMIN_PASSWORD \
       "${COMPOSE[@]}" --env-file /dev/null -f deploy/docker/production.yml config -q 2>/dev/null; then
    echo "production.yml rendered without POSTGRES_PASSWORD/SEIDRA_SECRET_KEY"; return 1
  fi
}
check "${COMPOSE[*]} config (docker-compose.yml, production.yml [+ monitoring.yml])" compose_config

# --- scripts ----------------------------------------------------------------------------------
dry_run_script() {
  bash scripts/helm-dry-run.sh --out "$WORK/dry-run" || return 1
  for f in backend-build.log frontend-build.log helm-dry-run.log; do
    [ -s "$WORK/dry-run/$f" ] || { echo "$f missing or empty"; return 1; }
  done
  bash deploy/tests/assert-objects.sh "$WORK/dry-run/helm-dry-run.log" ConfigMap/seidra-config Secret/seidra-secrets
}
check "scripts/helm-dry-run.sh (image builds/kind skipped without Docker) → helm-dry-run.log" dry_run_script
check "scripts/deploy-staging.sh with fake helm/kubectl" bash deploy/tests/test-deploy-staging.sh
check "scripts/package-release.sh (binary tarball, chart, SHA256SUMS)" bash deploy/tests/test-package-release.sh
check "deploy/README.md commands match the chart and scripts" "$PY" deploy/tests/check_docs.py

echo
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "check-deploy: ${#FAILED[@]} check(s) failed in $((SECONDS - STARTED))s:" >&2
  printf '  - %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "check-deploy: all checks passed in $((SECONDS - STARTED))s"
