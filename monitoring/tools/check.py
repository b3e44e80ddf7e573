#!/usr/bin/env python3
"""Checks for the SEIDRA monitoring files; driven by scripts/check-monitoring.sh.

Subcommands (each exits non-zero with a message naming the problem):

  static ROOT OUT_RULES     dashboards, datasources, alert rules, unit-test coverage, runbook
                            anchors, Loki/Promtail labels, Compose/Kubernetes consistency; writes
                            every dashboard PromQL expression into OUT_RULES as recording rules
                            so that `promtool check rules` parses them
  traffic BASE PASSWORD OUT [ENGINE ENGINE_LOG]
                            drives a running `seidra up`: WebSocket client, jobs (ok and
                            failing; one on the remote engine ENGINE, whose request log is
                            ENGINE_LOG), a 404, failed logins up to a 429; waits for the jobs,
                            then saves /metrics to OUT (while the WebSocket is still open)
  exported ROOT METRICS PROM
                            every metric name used by alerts.yml and the dashboards is exported
                            (METRICS) or synthesised by the live Prometheus (PROM), GPU_ONLY
                            names excepted on a machine without GPU; every exported metric and
                            every GPU_ONLY one is documented in docs/METRICS.md
  prometheus ROOT PROM N    the live Prometheus: finished-job count reaches N, the app target is
                            up, every rule evaluates without error, only Watchdog fires, and
                            every dashboard expression evaluates without error

Needs Python 3.9+ and PyYAML (the CI tools venv has it).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

# Rule files checked against the metrics the binary exports. The other rule file is
# alerts-node.yml (node-exporter).
EXPORTED_RULE_FILES = ["monitoring/prometheus/alerts.yml"]
ALL_RULE_FILES = [
    "monitoring/prometheus/alerts.yml",
    "monitoring/prometheus/alerts-node.yml",
]
# The one exception to "every metric used is exported": the NVML gauges
# (crates/seidra-api/src/metrics/gpu.rs) exist only in processes that see an NVIDIA GPU, and the
# machines running this check have none. Names, not a prefix, so a misspelt or new seidra_gpu_*
# name in a dashboard or alert still fails; the list must equal the gauges metrics.rs describes;
# and without a GPU the app must export none of them (absent, not zeros).
GPU_ONLY = {
    "seidra_gpu_info",
    "seidra_gpu_utilization_ratio",
    "seidra_gpu_memory_used_bytes",
    "seidra_gpu_memory_total_bytes",
    "seidra_gpu_temperature_celsius",
    "seidra_gpu_power_watts",
}
METRICS_RS = "crates/seidra-api/src/metrics.rs"
DASHBOARD_DIR = "monitoring/grafana/dashboards"
DATASOURCES = "monitoring/grafana/provisioning/datasources/datasources.yml"
RUNBOOK = "monitoring/runbook.md"
METRICS_DOC = "docs/METRICS.md"
SEVERITIES = {"critical", "warning", "info", "none"}
QUERY_PANELS = {"stat", "timeseries", "table", "heatmap", "gauge", "bargauge", "barchart", "piechart", "logs",
                "state-timeline", "status-history", "histogram"}
NO_QUERY_PANELS = {"row", "text", "alertlist", "dashlist", "news"}

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"  FAIL: {msg}", file=sys.stderr)


def finish(what: str) -> None:
    if failures:
        print(f"{what}: {len(failures)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(f"{what}: ok")


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# --- PromQL: metric names ---------------------------------------------------------------------

KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
IDENT_START = re.compile(r"[A-Za-z_:]")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _skip_string(s: str, i: int) -> int:
    quote = s[i]
    i += 1
    while i < len(s):
        if s[i] == "\\" and quote != "`":
            i += 2
            continue
        if s[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string in {s!r}")


def _skip_group(s: str, i: int, open_c: str, close_c: str) -> tuple[int, str]:
    """Skips a balanced group starting at s[i] == open_c; returns (end, inner text sans strings)."""
    depth = 0
    inner = []
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            j = _skip_string(s, i)
            inner.append('""')
            i = j
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i + 1, "".join(inner[1:])
        inner.append(c)
        i += 1
    raise ValueError(f"unbalanced {open_c}{close_c} in {s!r}")


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression: identifiers that are not functions,
    aggregations, keywords, label names (in {...}, by/without/on/ignoring/group_* lists),
    durations, numbers or Grafana variables."""
    s = expr
    names: set[str] = set()
    i = 0
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = _skip_string(s, i)
        elif c == "#":
            j = s.find("\n", i)
            i = len(s) if j < 0 else j
        elif c == "{":
            j = s.index("}", i)
            body = s[i:j]
            if re.search(r"\b__name__\b", body):
                raise ValueError(f"__name__ matchers are not supported (name the metric): {expr!r}")
            i, _ = _skip_group(s, i, "{", "}")
        elif c == "[":
            i, _ = _skip_group(s, i, "[", "]")
        elif c == "$":
            m = re.compile(r"\$(\{[^}]*\}|[A-Za-z0-9_]+)").match(s, i)
            i = m.end() if m else i + 1
        elif c.isdigit() or (c == "." and i + 1 < len(s) and s[i + 1].isdigit()):
            m = re.compile(r"[0-9A-Za-z_.]+").match(s, i)
            i = m.end()
        elif IDENT_START.match(c):
            m = IDENT.match(s, i)
            ident = m.group(0)
            i = m.end()
            j = i
            while j < len(s) and s[j].isspace():
                j += 1
            nxt = s[j] if j < len(s) else ""
            low = ident.lower()
            if low in LABEL_LIST_KEYWORDS:
                if nxt == "(":
                    i, _ = _skip_group(s, j, "(", ")")
            elif low in KEYWORDS:
                pass
            elif nxt == "(":
                pass  # function or aggregation
            elif IDENT.match(s, j) and IDENT.match(s, j).group(0).lower() in ("by", "without"):
                pass  # aggregation with its modifier first: sum by (le) (...)
            else:
                names.add(ident)
        else:
            i += 1
    return names


def _selftest_metric_names() -> None:
    cases = {
        'sum by (job, le) (rate(a_bucket{x="y", z=~"$v"}[5m])) / on(job) group_left(k) b > 0.5': {"a_bucket", "b"},
        "histogram_quantile(0.95, sum without (instance) (rate(c_seconds_bucket[$__rate_interval])))": {"c_seconds_bucket"},
        'up{job="seidra-backend"} == 0 or absent(up{job="x"})': {"up"},
        "(d or vector(0)) / e offset 5m unless f @ start()": {"d", "e", "f"},
        'count by (version) (g{label="by (nope)"}) and bool h': {"g", "h"},
        "max(i) < 1 # comment with j": {"i"},
        "topk(15, sum by (method) (increase(k[1h:1m]))) * 60 + 1e3 - Inf": {"k"},
        "label_replace(l, \"dst\", \"$1\", \"src\", \"(.*)\")": {"l"},
    }
    for expr, want in cases.items():
        got = metric_names(expr)
        if got != want:
            raise SystemExit(f"metric_names self-test failed for {expr!r}: got {sorted(got)}, want {sorted(want)}")


# --- Grafana ------------------------------------------------------------------------------------

DURATION_VARS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}


def substitute_vars(expr: str) -> str:
    """Replaces Grafana variables by values that keep the expression valid PromQL."""

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        name = name.split(":")[0]
        return DURATION_VARS.get(name, ".*")

    return re.sub(r"\$\{([^}]+)\}|\$([A-Za-z0-9_]+)", repl, expr)


def variable_promql(query) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query, or None when it has no metric."""
    if isinstance(query, dict):
        query = query.get("query", "")
    query = (query or "").strip()
    m = re.fullmatch(r"label_values\((.*)\)", query, re.S)
    if m:
        inner = m.group(1)
        # split at the last top-level comma: label_values(selector, label)
        depth, last = 0, -1
        k = 0
        while k < len(inner):
            c = inner[k]
            if c in "\"'`":
                k = _skip_string(inner, k)
                continue
            if c in "({[":
                depth += 1
            elif c in ")}]":
                depth -= 1
            elif c == "," and depth == 0:
                last = k
            k += 1
        return inner[:last].strip() if last >= 0 else None
    m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if m:
        return m.group(1)
    if query.startswith(("label_names(", "metrics(")):
        return None
    return query or None


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []) or [])


def dashboards(root: Path):
    out = []
    for path in sorted((root / DASHBOARD_DIR).glob("*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                out.append((path, json.load(f)))
        except json.JSONDecodeError as e:
            fail(f"{path}: invalid JSON: {e}")
    return out


def dashboard_exprs(root: Path):
    """(where, datasource type, expression) for every query in every dashboard."""
    for path, d in dashboards(root):
        uid = d.get("uid", path.stem)
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            ds = v.get("datasource") or {}
            q = v.get("query")
            if ds.get("type") == "prometheus":
                expr = variable_promql(q)
                if expr:
                    yield f"{uid} variable ${v.get('name')}", "prometheus", expr
            elif ds.get("type") == "loki":
                yield f"{uid} variable ${v.get('name')}", "loki-variable", q if isinstance(q, str) else json.dumps(q)
        for p in walk_panels(d.get("panels", [])):
            pds = p.get("datasource") or {}
            for t in p.get("targets", []) or []:
                tds = t.get("datasource") or pds
                expr = t.get("expr", "")
                yield f"{uid} panel {p.get('id')} \"{p.get('title')}\" {t.get('refId')}", tds.get("type"), expr


def alert_rules(root: Path, files):
    for rel in files:
        doc = load_yaml(root / rel)
        for g in doc.get("groups", []):
            for r in g.get("rules", []):
                yield rel, g.get("name"), r


def promtail_labels(root: Path) -> tuple[set[str], set[str]]:
    """Labels the Compose and Kubernetes Promtail configs put on log streams."""

    def from_stages(stages) -> set[str]:
        out = set()
        for st in stages or []:
            if "labels" in st:
                out |= set((st["labels"] or {}).keys())
            if "static_labels" in st:
                out |= set((st["static_labels"] or {}).keys())
        return out

    compose = load_yaml(root / "monitoring/promtail/config.yml")
    c_labels: set[str] = set()
    for sc in compose.get("scrape_configs", []):
        for rc in sc.get("relabel_configs", []) or []:
            tl = rc.get("target_label", "")
            if tl and not tl.startswith("__"):
                c_labels.add(tl)
        c_labels |= from_stages(sc.get("pipeline_stages"))
        for st in sc.get("static_configs", []) or []:
            c_labels |= set((st.get("labels") or {}).keys()) - {"__path__"}
    k8s = load_yaml(root / "deploy/k8s/monitoring/values-promtail.yaml")
    snippets = k8s["config"]["snippets"]
    # the chart's kubernetes-pods job sets these (grafana/promtail values.yaml)
    k_labels = {"app", "instance", "component", "node_name", "namespace", "job", "pod", "container"}
    for rc in snippets.get("extraRelabelConfigs", []) or []:
        tl = rc.get("target_label", "")
        if tl and not tl.startswith("__"):
            k_labels.add(tl)
    k_labels |= from_stages(snippets.get("pipelineStages"))
    return c_labels, k_labels


def github_anchor(heading: str) -> str:
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def cmd_static(root: Path, out_rules: Path) -> None:
    _selftest_metric_names()

    # Datasources: Compose provisioning and Kubernetes values define the same uids and types.
    prov = load_yaml(root / DATASOURCES)
    ds = {d["uid"]: d["type"] for d in prov.get("datasources", [])}
    if not ds:
        fail(f"{DATASOURCES}: no datasources")
    k8s_grafana = load_yaml(root / "deploy/k8s/monitoring/values-grafana.yaml")
    k8s_ds = {d["uid"]: d["type"] for d in k8s_grafana["datasources"]["datasources.yaml"]["datasources"]}
    if k8s_ds != ds:
        fail(f"values-grafana.yaml datasources {k8s_ds} differ from {DATASOURCES} {ds}")

    # Dashboards.
    all_d = dashboards(root)
    if len(all_d) < 4:
        fail(f"expected at least 4 dashboards in {DASHBOARD_DIR}, found {len(all_d)}")
    uids: dict[str, Path] = {}
    titles: dict[str, Path] = {}
    for path, d in all_d:
        for key in ("uid", "title", "panels", "schemaVersion", "templating"):
            if key not in d:
                fail(f"{path}: missing `{key}`")
        uid = d.get("uid", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or ""):
            fail(f"{path}: uid {uid!r} must be 1-40 characters of [A-Za-z0-9_-]")
        if uid in uids:
            fail(f"{path}: uid {uid!r} also used by {uids[uid]}")
        uids[uid] = path
        if d.get("title") in titles:
            fail(f"{path}: title {d.get('title')!r} also used by {titles[d.get('title')]}")
        titles[d.get("title")] = path
        if d.get("id") not in (None,):
            fail(f"{path}: `id` must be null or absent in provisioned dashboards")
        variables = d.get("templating", {}).get("list", [])
        if not variables:
            fail(f"{path}: no template variables")
        for v in variables:
            vds = v.get("datasource")
            if v.get("type") == "query":
                if not isinstance(vds, dict) or vds.get("uid") not in ds:
                    fail(f"{path}: variable ${v.get('name')} uses unknown datasource {vds!r}")
                elif ds[vds["uid"]] != vds.get("type"):
                    fail(f"{path}: variable ${v.get('name')} datasource type {vds.get('type')} != {ds[vds['uid']]}")
        ids = set()
        for p in walk_panels(d.get("panels", [])):
            where = f"{path.name} panel {p.get('id')} \"{p.get('title')}\""
            if p.get("id") in ids:
                fail(f"{where}: duplicate panel id")
            ids.add(p.get("id"))
            if "gridPos" not in p:
                fail(f"{where}: no gridPos")
            ptype = p.get("type")
            if ptype in NO_QUERY_PANELS:
                continue
            if ptype not in QUERY_PANELS:
                fail(f"{where}: unknown panel type {ptype!r}")
            pds = p.get("datasource")
            if not isinstance(pds, dict) or pds.get("uid") not in ds:
                fail(f"{where}: datasource {pds!r} is not a provisioned datasource ({sorted(ds)})")
                continue
            if ds[pds["uid"]] != pds.get("type"):
                fail(f"{where}: datasource type {pds.get('type')} != provisioned {ds[pds['uid']]}")
            targets = p.get("targets") or []
            if not targets:
                fail(f"{where}: no queries")
            refids = [t.get("refId") for t in targets]
            if len(set(refids)) != len(refids):
                fail(f"{where}: duplicate refIds {refids}")
            for t in targets:
                tds = t.get("datasource") or pds
                if tds.get("uid") not in ds:
                    fail(f"{where} {t.get('refId')}: datasource {tds!r} is not provisioned")
                if not (t.get("expr") or "").strip():
                    fail(f"{where} {t.get('refId')}: empty expression")
            if ptype in ("stat", "timeseries", "gauge", "bargauge"):
                defaults = p.get("fieldConfig", {}).get("defaults", {})
                if not defaults.get("unit"):
                    fail(f"{where}: no unit")
                if not defaults.get("thresholds", {}).get("steps"):
                    fail(f"{where}: no thresholds")

    # Every PromQL expression of the dashboards goes to promtool; Loki selectors use only
    # labels that Promtail sets (in Compose and in Kubernetes).
    c_labels, k_labels = promtail_labels(root)
    rules = []
    n = 0
    for where, dstype, expr in dashboard_exprs(root):
        if dstype == "prometheus":
            n += 1
            try:
                metric_names(expr)
            except ValueError as e:
                fail(f"{where}: {e}")
            record = "dashboard:" + re.sub(r"[^A-Za-z0-9_]+", "_", re.sub(r'"[^"]*"', "", where)).strip("_")
            rules.append({"record": f"{record}:{n}", "expr": substitute_vars(expr),
                          "labels": {"source": where[:200]}})
        elif dstype == "loki":
            m = re.match(r"\s*\{([^}]*)\}", expr)
            if not m:
                fail(f"{where}: LogQL must start with a stream selector: {expr!r}")
                continue
            for lm in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)", m.group(1)):
                label = lm.group(1)
                if label not in c_labels:
                    fail(f"{where}: label {label!r} is not set by monitoring/promtail/config.yml ({sorted(c_labels)})")
                if label not in k_labels:
                    fail(f"{where}: label {label!r} is not set by values-promtail.yaml ({sorted(k_labels)})")
        elif dstype == "loki-variable":
            m = re.fullmatch(r"label_values\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", expr.strip())
            if not m or m.group(1) not in c_labels or m.group(1) not in k_labels:
                fail(f"{where}: Loki variable {expr!r} must be label_values(<promtail label>)")
        else:
            fail(f"{where}: unknown datasource type {dstype!r}")
    if n == 0:
        fail("no PromQL expression found in the dashboards")
    out_rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-expressions", "rules": rules}]},
                                        sort_keys=False, width=1000))

    # Low-cardinality labels only: ids stay in the log line.
    forbidden = {"request_id", "user_id", "job_id", "worker_id", "message", "span", "target"}
    for name, labels in (("monitoring/promtail/config.yml", c_labels), ("values-promtail.yaml", k_labels)):
        bad = labels & forbidden
        if bad:
            fail(f"{name}: high-cardinality labels {sorted(bad)}")
        if "level" not in labels:
            fail(f"{name}: `level` should be a label")

    # Alert rules: labels, annotations, runbook anchors, unit-test coverage.
    runbook = (root / RUNBOOK).read_text(encoding="utf-8")
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", runbook, re.M)}
    alert_files: dict[str, set[str]] = {}
    for rel, group, r in alert_rules(root, ALL_RULE_FILES):
        if "alert" not in r:
            continue
        name = r["alert"]
        alert_files.setdefault(rel, set()).add(name)
        where = f"{rel} {group}/{name}"
        labels = r.get("labels") or {}
        ann = r.get("annotations") or {}
        if labels.get("severity") not in SEVERITIES:
            fail(f"{where}: severity must be one of {sorted(SEVERITIES)}")
        if not labels.get("component"):
            fail(f"{where}: no component label")
        if "for" not in r and labels.get("severity") != "none":
            fail(f"{where}: no `for:` duration")
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                fail(f"{where}: no {key} annotation")
        url = ann.get("runbook_url", "")
        m = re.fullmatch(r"monitoring/runbook\.md#([a-z0-9\-_]+)", url)
        if not m:
            fail(f"{where}: runbook_url {url!r} must be monitoring/runbook.md#<anchor>")
        elif m.group(1) not in anchors:
            fail(f"{where}: {RUNBOOK} has no heading for #{m.group(1)}")
    tests_dir = root / "monitoring/prometheus/tests"
    coverage: dict[str, dict[str, set[str]]] = {}
    for tf in sorted(tests_dir.glob("*.yml")):
        doc = load_yaml(tf)
        for rf in doc.get("rule_files", []):
            rel = os.path.relpath((tf.parent / rf).resolve(), root.resolve())
            cov = coverage.setdefault(rel, {})
            for t in doc.get("tests", []):
                for art in t.get("alert_rule_test", []) or []:
                    kind = "fires" if art.get("exp_alerts") else "quiet"
                    cov.setdefault(art["alertname"], set()).add(kind)
    for rel, names in alert_files.items():
        for name in sorted(names):
            kinds = coverage.get(rel, {}).get(name, set())
            if "fires" not in kinds:
                fail(f"{rel}: no unit test where {name} fires")
            if "quiet" not in kinds and name != "Watchdog":
                fail(f"{rel}: no unit test where {name} stays quiet")

    # prometheus.yml loads every rule file; the Kubernetes values load them all from the ConfigMap.
    prom = load_yaml(root / "monitoring/prometheus/prometheus.yml")
    loaded = set(prom.get("rule_files", []))
    for rel in ALL_RULE_FILES:
        if Path(rel).name not in loaded:
            fail(f"monitoring/prometheus/prometheus.yml does not load {Path(rel).name}")
    jobs = [sc.get("job_name") for sc in prom.get("scrape_configs", [])]
    if "seidra-backend" not in jobs:
        fail("monitoring/prometheus/prometheus.yml has no seidra-backend job (the alerts select it)")
    kprom = load_yaml(root / "deploy/k8s/monitoring/values-prometheus.yaml")
    if "/etc/config/seidra/*.yml" not in kprom["serverFiles"]["prometheus.yml"]["rule_files"]:
        fail("values-prometheus.yaml does not load /etc/config/seidra/*.yml")
    kjobs = [sc.get("job_name") for sc in yaml.safe_load(kprom["extraScrapeConfigs"])]
    if "seidra-backend" not in kjobs:
        fail("values-prometheus.yaml extraScrapeConfigs has no seidra-backend job")
    k8s_readme = (root / "deploy/k8s/monitoring/README.md").read_text(encoding="utf-8")
    for rel in ALL_RULE_FILES:
        if rel not in k8s_readme:
            fail(f"deploy/k8s/monitoring/README.md does not put {rel} into the rules ConfigMap")

    # Loki: Compose config and Kubernetes values agree on schema and limits.
    loki = load_yaml(root / "monitoring/loki/config.yml")
    kloki = load_yaml(root / "deploy/k8s/monitoring/values-loki.yaml")["loki"]
    if loki["schema_config"]["configs"] != kloki["schemaConfig"]["configs"]:
        fail("values-loki.yaml schemaConfig differs from monitoring/loki/config.yml")
    if loki["limits_config"] != kloki["limits_config"]:
        fail("values-loki.yaml limits_config differs from monitoring/loki/config.yml")
    for key in ("retention_enabled", "delete_request_store", "retention_delete_delay", "compaction_interval"):
        if loki["compactor"].get(key) != kloki["compactor"].get(key):
            fail(f"values-loki.yaml compactor.{key} differs from monitoring/loki/config.yml")

    # Promtail: the Kubernetes pipeline is the Compose one after the `cri` stage.
    compose_pt = load_yaml(root / "monitoring/promtail/config.yml")
    stages = compose_pt["scrape_configs"][0]["pipeline_stages"]
    kstages = load_yaml(root / "deploy/k8s/monitoring/values-promtail.yaml")["config"]["snippets"]["pipelineStages"]
    if kstages[:1] != [{"cri": {}}] or kstages[1:] != stages:
        fail("values-promtail.yaml pipelineStages must be [cri] + the stages of monitoring/promtail/config.yml")

    # Grafana Kubernetes values mount the dashboards where the provider looks.
    providers = k8s_grafana["dashboardProviders"]["dashboardproviders.yaml"]["providers"]
    for pr in providers:
        if pr["name"] not in k8s_grafana.get("dashboardsConfigMaps", {}):
            fail(f"values-grafana.yaml provider {pr['name']} has no dashboardsConfigMaps entry")
        if pr["options"]["path"] != f"/var/lib/grafana/dashboards/{pr['name']}":
            fail(f"values-grafana.yaml provider {pr['name']} path must be /var/lib/grafana/dashboards/{pr['name']}")

    print(f"  {len(all_d)} dashboards, {n} PromQL expressions, "
          f"{sum(len(v) for v in alert_files.values())} alerts in {len(alert_files)} rule files")
    finish("static checks")


# --- live: traffic -------------------------------------------------------------------------------

def http(method: str, url: str, body=None, token: str | None = None, timeout: float = 15.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, raw
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class WebSocket:
    """A minimal RFC 6455 client (text frames, close), enough to hold a live-events connection."""

    def __init__(self, base: str, token: str):
        u = urllib.parse.urlparse(base)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /ws HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {token}\r\n\r\n")
        self.sock.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("WebSocket handshake: connection closed")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise RuntimeError(f"WebSocket handshake refused: {status!r}")
        self.messages: list[dict] = []
        self.closed = False
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _reader(self) -> None:
        self.sock.settimeout(None)
        try:
            while True:
                b0, b1 = self._read(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(self._read(2), "big")
                elif n == 127:
                    n = int.from_bytes(self._read(8), "big")
                mask = self._read(4) if b1 & 0x80 else None
                payload = self._read(n)
                if mask:
                    payload = bytes(c ^ mask[k % 4] for k, c in enumerate(payload))
                if opcode == 0x1:
                    try:
                        self.messages.append(json.loads(payload))
                    except ValueError:
                        self.messages.append({"raw": payload.decode("utf-8", "replace")})
                elif opcode == 0x8:
                    break
                elif opcode == 0x9:  # ping -> pong
                    self._send(0xA, payload)
        except (EOFError, OSError):
            pass
        self.closed = True

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        self.sock.sendall(head + mask + bytes(c ^ mask[k % 4] for k, c in enumerate(payload)))

    def close(self) -> None:
        try:
            self._send(0x8, (1000).to_bytes(2, "big"))
        except OSError:
            pass
        self.thread.join(timeout=3)
        self.sock.close()


def cmd_traffic(base: str, password: str, out: Path, engine: str | None = None,
                engine_log: Path | None = None) -> None:
    status, raw = http("POST", f"{base}/api/auth/login", {"username": "admin", "password": password})
    if status != 200:
        raise SystemExit(f"login failed: {status} {raw[:200]!r}")
    token = json.loads(raw)["access_token"]
    ws = WebSocket(base, token)

    jobs = [("a lighthouse", "noop"), ("a harbour at dusk", "noop"), ("a red fox", "noop"), ("!fail on purpose", "noop")]
    if engine:
        jobs.append(("a lighthouse drawn remotely", engine))
    ids = []
    for p, eng in jobs:
        status, raw = http("POST", f"{base}/api/generate/single", {"prompt": p, "engine": eng}, token)
        if status != 202:
            raise SystemExit(f"submit {p!r}: {status} {raw[:300]!r}")
        ids.extend(json.loads(raw)["job_ids"])
    status, _ = http("GET", f"{base}/api/no/such/route", token=token)
    if status != 404:
        raise SystemExit(f"expected 404, got {status}")

    # failed logins until the auth rate limit answers 429
    codes = []
    for _ in range(8):
        status, _ = http("POST", f"{base}/api/auth/login", {"username": "admin", "password": "wrong-password-123"})
        codes.append(status)
        if status == 429:
            break
    if 401 not in codes or 429 not in codes:
        raise SystemExit(f"expected failed logins then a 429, got {codes}")

    deadline = time.time() + 60
    final = {}
    while time.time() < deadline:
        final = {}
        for jid in ids:
            status, raw = http("GET", f"{base}/api/jobs/{jid}", token=token)
            if status == 200:
                final[jid] = json.loads(raw)["status"]
        if len(final) == len(ids) and all(s in ("succeeded", "failed", "cancelled") for s in final.values()):
            break
        time.sleep(0.3)
    outcomes = sorted(final.values())
    if outcomes != ["failed"] + ["succeeded"] * (len(jobs) - 1):
        raise SystemExit(f"jobs did not finish as expected: {final}")

    # events reach the WebSocket client
    deadline = time.time() + 10
    while time.time() < deadline and not any(str(m.get("type", "")).startswith("job.") for m in ws.messages):
        time.sleep(0.2)
    kinds = sorted({str(m.get("type")) for m in ws.messages})
    if not any(k.startswith("job.") for k in kinds):
        raise SystemExit(f"no job event reached the WebSocket client (got {kinds})")

    status, raw = http("GET", f"{base}/metrics")
    if status != 200:
        raise SystemExit(f"/metrics answered {status}")
    out.write_bytes(raw)
    ws.close()
    if engine:
        # The remote job went through the protocol, and its series are exported.
        calls = engine_log.read_text(encoding="utf-8").splitlines() if engine_log else []
        if "POST /sdapi/v1/txt2img" not in calls:
            raise SystemExit(f"the remote engine {engine} got no txt2img call (its log: {calls[-10:]})")
        text = raw.decode("utf-8", "replace")
        for series in (f'seidra_engine_requests_total{{engine="{engine}",outcome="ok"}} 1',
                       f'seidra_engine_up{{engine="{engine}"}} 1',
                       f'seidra_engine_request_seconds_count{{engine="{engine}"}} 1'):
            if series not in text:
                raise SystemExit(f"/metrics lacks `{series}`")
        print(f"  remote engine {engine}: {len(calls)} requests served "
              f"({calls.count('POST /sdapi/v1/txt2img')} txt2img, {calls.count('GET /sdapi/v1/progress')} progress polls)")
    print(f"  traffic: jobs {outcomes}, logins {codes}, WebSocket messages {kinds}")


# --- live: exported names --------------------------------------------------------------------------

def parse_exposition(text: str) -> tuple[set[str], dict[str, str]]:
    samples, types = set(), {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(None, 3)
            types[name] = typ.strip()
        elif line and not line.startswith("#"):
            samples.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return samples, types


def prom_get(prom: str, path: str, params: dict | None = None):
    url = f"{prom}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    status, raw = http("GET", url)
    body = json.loads(raw)
    if status != 200 or body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {status} {body.get('error', raw[:200])}")
    return body["data"]


def used_names(root: Path) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for rel, group, r in alert_rules(root, EXPORTED_RULE_FILES):
        for name in metric_names(r["expr"]):
            used.setdefault(name, set()).add(f"{rel} {r.get('alert') or r.get('record')}")
    for where, dstype, expr in dashboard_exprs(root):
        if dstype == "prometheus":
            for name in metric_names(expr):
                used.setdefault(name, set()).add(where)
    return used


def cmd_exported(root: Path, metrics_file: Path, prom: str) -> None:
    samples, types = parse_exposition(metrics_file.read_text(encoding="utf-8"))
    # series Prometheus makes itself (up, scrape_*, ALERTS…): names the live server knows that
    # the app did not expose
    synthesised = set(prom_get(prom, "/api/v1/label/__name__/values")) - samples
    used = used_names(root)

    # GPU_ONLY is exactly the GPU gauges the binary describes; without a GPU none is exported.
    described = set(re.findall(r'describe_gauge!\(\s*"(seidra_gpu_[a-z0-9_]+)"', (root / METRICS_RS).read_text(encoding="utf-8")))
    if described != GPU_ONLY:
        fail(f"GPU_ONLY {sorted(GPU_ONLY)} differs from the GPU gauges described in {METRICS_RS} {sorted(described)}")
    gpu_exported = sorted(n for n in types if n.startswith("seidra_gpu_")) + sorted(
        n for n in samples if n.startswith("seidra_gpu_") and n not in types)
    has_gpu = bool(gpu_exported)
    expected_absent: list[str] = []
    for name, where in sorted(used.items()):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        ok = name in samples or name in synthesised
        if not ok and base != name and types.get(base) in ("histogram", "summary"):
            ok = True
        if not ok and name in GPU_ONLY and not has_gpu:
            expected_absent.append(name)
            ok = True
        if not ok:
            fail(f"metric {name} is used but not exported (used by: {'; '.join(sorted(where)[:3])})")
    if has_gpu:
        print(f"  GPU present: {gpu_exported} exported and checked like the rest")
    else:
        print(f"  no GPU here: {len(expected_absent)} GPU-only names used and absent as expected "
              f"(GPU_ONLY in monitoring/tools/check.py): {expected_absent}")
    seidra_used = sorted(n for n in used if n.startswith("seidra_"))
    print(f"  {len(used)} metric names used ({len(seidra_used)} seidra_*, others: "
          f"{sorted(n for n in used if not n.startswith('seidra_'))}); {len(types)} metrics exported")

    # The catalogue is true: every exported metric and every pending one is documented.
    doc = (root / METRICS_DOC).read_text(encoding="utf-8")
    documented = set(re.findall(r"`(seidra_[a-z0-9_]+)`", doc))
    for name in sorted(types):
        if name.startswith("seidra_") and name not in documented:
            fail(f"{name} is exported but not documented in {METRICS_DOC}")
    for name in sorted(GPU_ONLY - documented):
        fail(f"{name} (GPU_ONLY) is not documented in {METRICS_DOC}")
    finish("exported-metric check")


# --- live: Prometheus ---------------------------------------------------------------------------------

def cmd_prometheus(root: Path, prom: str, expected: int) -> None:
    deadline = time.time() + 60
    got = None
    while time.time() < deadline:
        try:
            res = prom_get(prom, "/api/v1/query", {"query": 'sum(seidra_jobs_finished_total{job="seidra-backend"})'})
            if res["result"]:
                got = float(res["result"][0]["value"][1])
                if got == expected:
                    break
        except (RuntimeError, OSError, ValueError):
            pass
        time.sleep(0.5)
    if got != expected:
        fail(f"sum(seidra_jobs_finished_total) is {got}, expected {expected}")
    else:
        print(f"  Prometheus: sum(seidra_jobs_finished_total) = {got:g}")
    res = prom_get(prom, "/api/v1/query", {"query": 'sum by (outcome) (seidra_jobs_finished_total{job="seidra-backend"})'})
    by_outcome = {r["metric"].get("outcome"): float(r["value"][1]) for r in res["result"]}
    if by_outcome != {"succeeded": expected - 1, "failed": 1.0}:
        fail(f"finished jobs by outcome {by_outcome}, expected {expected - 1} succeeded and 1 failed")
    res = prom_get(prom, "/api/v1/query", {"query": 'seidra_engine_up{job="seidra-backend"}'})
    engines_up = {r["metric"].get("engine"): r["value"][1] for r in res["result"]}
    if not engines_up or set(engines_up.values()) != {"1"}:
        fail(f"seidra_engine_up = {engines_up}, expected the remote engine up")
    res = prom_get(prom, "/api/v1/query", {"query": 'sum(seidra_engine_requests_total{job="seidra-backend", outcome="ok"})'})
    if not res["result"] or float(res["result"][0]["value"][1]) < 1:
        fail(f"sum(seidra_engine_requests_total{{outcome=\"ok\"}}) = {res['result']}, expected at least 1")
    else:
        print(f"  Prometheus: remote engines up {engines_up}, "
              f"{float(res['result'][0]['value'][1]):g} successful engine request(s)")
    res = prom_get(prom, "/api/v1/query", {"query": 'up{job="seidra-backend"}'})
    if [r["value"][1] for r in res["result"]] != ["1"]:
        fail(f"up{{job=\"seidra-backend\"}} = {res['result']}, expected one target at 1")

    # every rule has been evaluated, without error
    deadline = time.time() + 30
    while True:
        groups = prom_get(prom, "/api/v1/rules")["groups"]
        rules = [(g["name"], r) for g in groups for r in g["rules"]]
        pending = [r["name"] for _, r in rules if r.get("health") == "unknown"]
        if not pending or time.time() > deadline:
            break
        time.sleep(0.5)
    files = {Path(g["file"]).name for g in groups}
    for rel in ALL_RULE_FILES:
        if Path(rel).name not in files:
            fail(f"Prometheus did not load {rel}")
    for gname, r in rules:
        if r.get("health") != "ok":
            fail(f"rule {gname}/{r['name']}: health {r.get('health')} {r.get('lastError', '')}")
    # a healthy studio: nothing fires or is pending but the Watchdog (rules evaluated before the
    # first scrape may briefly see no target: give them a few evaluations)
    deadline = time.time() + 15
    while True:
        alerts = prom_get(prom, "/api/v1/alerts")["alerts"]
        active = sorted(f"{a['labels']['alertname']}({a['state']})" for a in alerts)
        if active == ["Watchdog(firing)"] or time.time() > deadline:
            break
        time.sleep(0.5)
    if active != ["Watchdog(firing)"]:
        fail(f"active alerts on a healthy studio: {active}, expected only Watchdog(firing)")
    print(f"  Prometheus: {len(rules)} rules healthy, active alerts {active}")

    # every dashboard expression evaluates against real data
    n = nonempty = 0
    for where, dstype, expr in dashboard_exprs(root):
        if dstype != "prometheus":
            continue
        q = substitute_vars(expr)
        try:
            res = prom_get(prom, "/api/v1/query", {"query": q})
            n += 1
            nonempty += bool(res["result"])
        except RuntimeError as e:
            fail(f"{where}: {e}")
    print(f"  Prometheus: {n} dashboard expressions evaluated, {nonempty} with data now")
    finish("live Prometheus check")


# --- live: logs ---------------------------------------------------------------------------------------

def cmd_logs(log_file: Path) -> None:
    """The JSON log lines carry the fields docs/LOGGING.md promises."""
    lines = []
    for raw in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                fail(f"log line is not valid JSON: {raw[:200]}")
    if not lines:
        fail(f"{log_file}: no JSON log line")
    for obj in lines:
        missing = [k for k in ("timestamp", "level", "target") if k not in obj]
        if missing:
            fail(f"log line without {missing}: {json.dumps(obj)[:200]}")
        elif obj["level"] not in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR"):
            fail(f"log level {obj['level']!r}: {json.dumps(obj)[:200]}")
    http_spans = [o["span"] for o in lines if isinstance(o.get("span"), dict) and o["span"].get("name") == "http"]
    if not any(s.get("request_id") and s.get("user_id") for s in http_spans):
        fail("no log line inside an authenticated HTTP request span with request_id and user_id")
    if not any("message" in o for o in lines):
        fail("no log line with a message")
    print(f"  logs: {len(lines)} JSON lines, {len(http_spans)} inside HTTP request spans")
    finish("log format check")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "static":
        cmd_static(Path(args[0]), Path(args[1]))
    elif cmd == "traffic":
        cmd_traffic(args[0].rstrip("/"), args[1], Path(args[2]), args[3] if len(args) > 3 else None,
                    Path(args[4]) if len(args) > 4 else None)
    elif cmd == "exported":
        cmd_exported(Path(args[0]), Path(args[1]), args[2].rstrip("/"))
    elif cmd == "prometheus":
        cmd_prometheus(Path(args[0]), args[1].rstrip("/"), int(args[2]))
    elif cmd == "logs":
        cmd_logs(Path(args[0]))
    elif cmd == "names":
        for name, where in sorted(used_names(Path(args[0])).items()):
            print(name)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
