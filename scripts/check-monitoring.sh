#!/usr/bin/env bash
# Monitoring checks (monitoring/, deploy/docker/monitoring.yml, deploy/k8s/monitoring/):
#
#   static  yamllint; promtool check config (Compose and Kubernetes scrape configs); promtool
#           check rules; promtool test rules (every alert fires when it should and stays quiet
#           when it should); amtool check-config; dashboards (valid JSON, unique uids, provisioned
#           datasources, units/thresholds, every PromQL expression parsed by promtool, Loki
#           selectors on Promtail labels); alert labels/annotations/runbook anchors; Compose and
#           Kubernetes files agree; docker-compose config
#   live    starts a fake AUTOMATIC1111 server (monitoring/tools/fake_a1111.py) and `seidra up`
#           (noop engine + that remote engine, loopback, temp data dir), drives real traffic
#           (jobs that succeed on both engines and one that fails, a WebSocket client, a 404,
#           failed logins up to a 429), checks the JSON log fields, then starts a real
#           Prometheus scraping it every second with the real alert rules: the finished-job
#           count matches, every rule evaluates, only Watchdog fires, every dashboard
#           expression evaluates, and every metric name used by alerts.yml and the dashboards
#           is exported (parsed from the PromQL, not listed by hand) and documented in
#           docs/METRICS.md. The one exception: the seidra_gpu_* names listed in check.py
#           (GPU_ONLY) are exported only where NVML sees a GPU; on a GPU-less machine they must
#           be absent altogether, and the check says so.
#
# Tools: promtool/prometheus (Debian `prometheus`), yamllint and docker-compose (sourced from
# ../shared/tools/install-ci-tools.sh when missing), python3 with PyYAML, amtool (Debian
# `prometheus-alertmanager`, optional: skipped with a notice when absent).
# SEIDRA_BIN=path uses that binary instead of `cargo build -p seidra` (debug).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }
passed=0
failed=0
failed_names=()
check() {
  local name=$1
  shift
  step "$name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    printf '  FAILED: %s\n' "$name" >&2
  fi
}

# --- tools ---------------------------------------------------------------------------------------
have_tools() {
  command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v yamllint >/dev/null &&
    command -v docker-compose >/dev/null && python3 -c 'import yaml' 2>/dev/null
}
if ! have_tools && [ -f ../shared/tools/install-ci-tools.sh ]; then
  # shellcheck disable=SC1091
  source ../shared/tools/install-ci-tools.sh >/dev/null
fi
for tool in promtool prometheus yamllint docker-compose python3 curl; do
  command -v "$tool" >/dev/null || { echo "check-monitoring: $tool not found" >&2; exit 1; }
done
python3 -c 'import yaml' || { echo "check-monitoring: python3 lacks PyYAML" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CHECK=(python3 monitoring/tools/check.py)

# --- static ----------------------------------------------------------------------------------------
check "yamllint (monitoring YAML)" \
  yamllint --strict -c monitoring/yamllint.yml monitoring deploy/docker/monitoring.yml deploy/k8s/monitoring

check "promtool check config monitoring/prometheus/prometheus.yml" \
  promtool check config monitoring/prometheus/prometheus.yml

k8s_prometheus_config() {
  # The scrape jobs of values-prometheus.yaml inside a config that loads the same rule files.
  # Debian's Prometheus is built without Kubernetes discovery, so kubernetes_sd_configs is
  # checked here (roles) and replaced by a static target; promtool checks everything else
  # (relabelling included).
  python3 - "$ROOT" "$TMP/k8s-prometheus.yml" <<'EOF' || return 1
import sys, yaml
root, out = sys.argv[1], sys.argv[2]
values = yaml.safe_load(open(f"{root}/deploy/k8s/monitoring/values-prometheus.yaml"))
jobs = yaml.safe_load(values["extraScrapeConfigs"])
for job in jobs:
    for sd in job.pop("kubernetes_sd_configs", []):
        if set(sd) - {"role", "namespaces", "selectors", "attach_metadata"} or sd.get("role") not in (
                "node", "service", "pod", "endpoints", "endpointslice", "ingress"):
            sys.exit(f"job {job['job_name']}: bad kubernetes_sd_configs entry {sd}")
        job.setdefault("static_configs", []).append({"targets": ["seidra-backend.example:8080"]})
cfg = {
    "global": values["server"]["global"],
    "rule_files": [f"{root}/monitoring/prometheus/alerts*.yml"],
    "scrape_configs": jobs,
}
yaml.safe_dump(cfg, open(out, "w"), sort_keys=False)
EOF
  promtool check config "$TMP/k8s-prometheus.yml"
}
check "promtool check config (Kubernetes scrape jobs of values-prometheus.yaml)" k8s_prometheus_config

check "promtool check rules" \
  promtool check rules monitoring/prometheus/alerts.yml monitoring/prometheus/alerts-node.yml

check "promtool test rules" promtool test rules monitoring/prometheus/tests/*.yml

if command -v amtool >/dev/null; then
  check "amtool check-config monitoring/alertmanager/alertmanager.yml" \
    amtool check-config monitoring/alertmanager/alertmanager.yml
else
  step "amtool check-config: SKIPPED (amtool not installed: apt-get install prometheus-alertmanager)"
fi

dashboards_and_rules() {
  "${CHECK[@]}" static "$ROOT" "$TMP/dashboard-rules.yml" &&
    echo "  promtool parses every dashboard expression:" &&
    promtool check rules "$TMP/dashboard-rules.yml"
}
check "dashboards, datasources, alert conventions, test coverage, Compose/Kubernetes consistency" dashboards_and_rules

compose_config() {
  GRAFANA_ADMIN_PASSWORD=check-only docker-compose -f deploy/docker/monitoring.yml config -q || return 1
  local services volumes
  services=$(GRAFANA_ADMIN_PASSWORD=check-only docker-compose -f deploy/docker/monitoring.yml config --services | sort | tr '\n' ' ')
  volumes=$(GRAFANA_ADMIN_PASSWORD=check-only docker-compose -f deploy/docker/monitoring.yml config --volumes | sort | tr '\n' ' ')
  echo "  services: $services"
  echo "  volumes: $volumes"
  for s in prometheus grafana loki promtail; do
    [[ " $services " == *" $s "* ]] || { echo "  missing service $s" >&2; return 1; }
  done
  for v in prometheus-data grafana-data loki-data; do
    [[ " $volumes " == *" $v "* ]] || { echo "  missing volume $v" >&2; return 1; }
  done
  # Grafana never starts with a default admin password.
  if env -u GRAFANA_ADMIN_PASSWORD docker-compose -f deploy/docker/monitoring.yml config -q 2>/dev/null; then
    echo "  the stack must refuse to start without GRAFANA_ADMIN_PASSWORD" >&2
    return 1
  fi
  echo "  refuses to start without GRAFANA_ADMIN_PASSWORD: ok"
}
check "docker-compose -f deploy/docker/monitoring.yml config" compose_config

# --- live ------------------------------------------------------------------------------------------
live() {
  local bin=${SEIDRA_BIN:-}
  if [ -z "$bin" ]; then
    echo "  building target/debug/seidra (set SEIDRA_BIN to skip)"
    cargo build -p seidra --locked --quiet || return 1
    bin="$ROOT/target/debug/seidra"
  fi
  [ -x "$bin" ] || { echo "  $bin is not executable" >&2; return 1; }

  local app_port prom_port engine_port password=monitoring-check-pass
  # A remote engine speaking the AUTOMATIC1111 protocol, so the seidra_engine_* series exist.
  engine_port=$(free_port)
  python3 monitoring/tools/fake_a1111.py "$engine_port" "$TMP/fake-a1111.log" >"$TMP/fake-a1111.out" 2>&1 &
  PIDS+=($!)
  local engine_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$engine_port/sdapi/v1/sd-models" >/dev/null 2>&1 && break
    kill -0 "$engine_pid" 2>/dev/null || { cat "$TMP/fake-a1111.out" >&2; return 1; }
    sleep 0.1
  done
  echo "  fake AUTOMATIC1111 engine on 127.0.0.1:$engine_port"

  app_port=$(free_port)
  mkdir -p "$TMP/data"
  echo "  starting seidra up on 127.0.0.1:$app_port"
  env SEIDRA_ENGINES__NOOP=true SEIDRA_ADMIN_PASSWORD="$password" SEIDRA_BIND="127.0.0.1:$app_port" \
    SEIDRA_ENGINES__REMOTE__0__NAME=fake-a1111 SEIDRA_ENGINES__REMOTE__0__KIND=a1111 \
    SEIDRA_ENGINES__REMOTE__0__URL="http://127.0.0.1:$engine_port" SEIDRA_ENGINES__REMOTE__0__MODELS=sd15 \
    SEIDRA_ENGINES__REMOTE__0__TIMEOUT_SECS=30 SEIDRA_ENGINES__HEALTH_INTERVAL_SECS=2 \
    SEIDRA_DATA_DIR="$TMP/data" SEIDRA_LOG_FORMAT=json RUST_LOG="info,tower_http=debug" \
    SEIDRA_RATE_LIMIT__AUTH__REQUESTS=3 SEIDRA_SHUTDOWN_GRACE_SECS=2 SEIDRA_WORKER__GRACE_SECS=2 \
    "$bin" up >"$TMP/seidra.log" 2>&1 &
  PIDS+=($!)
  local app_pid=$!
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$app_port/healthz" >/dev/null 2>&1 && break
    kill -0 "$app_pid" 2>/dev/null || { tail -n 30 "$TMP/seidra.log" >&2; return 1; }
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:$app_port/healthz" >/dev/null || { echo "  seidra did not become healthy" >&2; return 1; }

  "${CHECK[@]}" traffic "http://127.0.0.1:$app_port" "$password" "$TMP/metrics.txt" fake-a1111 "$TMP/fake-a1111.log" ||
    { tail -n 30 "$TMP/seidra.log" >&2; return 1; }
  "${CHECK[@]}" logs "$TMP/seidra.log" || return 1

  prom_port=$(free_port)
  cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/monitoring/prometheus/alerts.yml
  - $ROOT/monitoring/prometheus/alerts-node.yml
scrape_configs:
  - job_name: seidra-backend
    static_configs:
      - targets: ["127.0.0.1:$app_port"]
EOF
  echo "  starting prometheus on 127.0.0.1:$prom_port"
  prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prometheus-data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
  PIDS+=($!)
  local prom_pid=$!
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break
    kill -0 "$prom_pid" 2>/dev/null || { tail -n 30 "$TMP/prometheus.log" >&2; return 1; }
    sleep 0.2
  done
  # 5 jobs finished: 4 succeeded (3 noop, 1 on the remote engine), 1 failed (non-retryable)
  "${CHECK[@]}" prometheus "$ROOT" "http://127.0.0.1:$prom_port" 5 || { tail -n 20 "$TMP/prometheus.log" >&2; return 1; }
  "${CHECK[@]}" exported "$ROOT" "$TMP/metrics.txt" "http://127.0.0.1:$prom_port"
}
check "live: seidra up + real Prometheus; every metric used is exported" live

step "summary"
if [ "$failed" -gt 0 ]; then
  printf '  failed: %s\n' "${failed_names[@]}" >&2
fi
echo "check-monitoring: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
