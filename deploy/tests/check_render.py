#!/usr/bin/env python3
"""Assertions on what the Helm chart renders (run by scripts/check-deploy.sh).

    python3 deploy/tests/check_render.py [--helm helm] [--chart deploy/helm] [--seidra target/debug/seidra]

Renders the chart with the default, production, GPU-worker and existing-secret values (plus a
few --set variations) through `helm template` and checks the promises of deploy/README.md:
the named config objects, the migration hook Job and the suspended CronJob, image names and
tags, Pod Security "restricted" on every container, probes, GPU scheduling, checksum
annotations that follow the configuration, and values the chart must refuse. With a `seidra`
binary it also runs `seidra config check` on the environment each render gives the pods.
Prints one line per check group and exits 1 listing every failure.
"""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FAILURES: list[str] = []
RELEASE = "seidra-ultimate"
NAMESPACE = "seidra-ci"


def check(cond: bool, what: str) -> bool:
    if not cond:
        FAILURES.append(what)
    return cond


_REPORTED = 0


def report(summary: str) -> None:
    """Prints `ok` or `FAIL` for the checks made since the previous report."""
    global _REPORTED
    new = len(FAILURES) - _REPORTED
    _REPORTED = len(FAILURES)
    print(f"{'ok  ' if new == 0 else 'FAIL'} {summary}" + (f" ({new} failure(s) below)" if new else ""), flush=True)


class Render:
    """One `helm template` output, indexed by (kind, name)."""

    def __init__(self, label: str, docs: list[dict]):
        self.label = label
        self.docs = docs
        self.by = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    def get(self, kind: str, name: str) -> dict | None:
        return self.by.get((kind, name))

    def kinds(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def pod_specs(self):
        """(owner label, pod spec, pod template metadata) of every workload."""
        for d in self.docs:
            owner = f"{self.label}: {d['kind']}/{d['metadata']['name']}"
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                t = d["spec"]["template"]
                yield owner, t["spec"], t.get("metadata", {})
            elif d["kind"] == "CronJob":
                t = d["spec"]["jobTemplate"]["spec"]["template"]
                yield owner, t["spec"], t.get("metadata", {})


def helm_template(helm: str, chart: Path, label: str, values: list[Path] = (), sets: list[str] = ()) -> Render:
    args = [helm, "template", RELEASE, str(chart), "-n", NAMESPACE]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"helm template failed for {label}: {out.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    return Render(label, docs)


def helm_fails(helm: str, chart: Path, sets: list[str], expect: str, values: list[Path] = ()) -> None:
    args = [helm, "template", RELEASE, str(chart), "-n", NAMESPACE]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True)
    check(out.returncode != 0, f"helm template {' '.join(sets)} should fail but rendered")
    check(expect in (out.stderr + out.stdout), f"helm template {' '.join(sets)}: error should mention {expect!r}, got: {out.stderr.strip()[:300]}")


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def decoded(secret: dict) -> dict:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


# --------------------------------------------------------------------------------------------
def check_common(r: Render, *, repository: str, tag: str, secret_name: str, frontend: bool,
                 worker_suffix: str = "") -> None:
    label = r.label
    cm = r.get("ConfigMap", "seidra-config")
    check(cm is not None, f"{label}: ConfigMap seidra-config missing")
    secret = r.get("Secret", "seidra-secrets")
    if secret_name == "seidra-secrets":
        check(secret is not None, f"{label}: Secret seidra-secrets missing")
    else:
        check(secret is None, f"{label}: Secret seidra-secrets rendered although existingSecret={secret_name}")
        check(r.get("Secret", "seidra-migrate-secrets") is None, f"{label}: seidra-migrate-secrets rendered with existingSecret")

    # ConfigMap: chart-owned settings, nothing secret-looking.
    if cm:
        data = cm.get("data", {})
        check(data.get("SEIDRA_BIND") == "0.0.0.0:8080", f"{label}: SEIDRA_BIND should be 0.0.0.0:8080")
        check(data.get("SEIDRA_DATA_DIR") == "/var/lib/seidra", f"{label}: SEIDRA_DATA_DIR should be /var/lib/seidra")
        check(data.get("SEIDRA_WORKER__EMBEDDED") == "0", f"{label}: SEIDRA_WORKER__EMBEDDED should be 0")
        for k in data:
            check(not k.endswith(("PASSWORD", "SECRET", "TOKEN", "KEY", "KEY_ID", "URL")),
                  f"{label}: secret-looking {k} in the ConfigMap")
            check(k.startswith("SEIDRA_"), f"{label}: ConfigMap key {k} is not a SEIDRA_ setting")
    if secret:
        s = decoded(secret)
        check(s.get("SEIDRA_DATABASE_URL", "").startswith("postgres"), f"{label}: Secret lacks a PostgreSQL SEIDRA_DATABASE_URL")
        check(len(s.get("SEIDRA_SECRET_KEY", "")) >= 32, f"{label}: SEIDRA_SECRET_KEY shorter than 32 bytes")
        check(len(s.get("SEIDRA_ADMIN_PASSWORD", "")) >= 12, f"{label}: SEIDRA_ADMIN_PASSWORD shorter than 12 characters")

    # Hook copies read by the migration pods.
    mcm = r.get("ConfigMap", "seidra-migrate-config")
    if check(mcm is not None, f"{label}: ConfigMap seidra-migrate-config missing"):
        check(mcm.get("data") == (cm or {}).get("data"), f"{label}: seidra-migrate-config differs from seidra-config")
        check_hook(label, mcm, weight_below=0)
    if secret:
        msec = r.get("Secret", "seidra-migrate-secrets")
        if check(msec is not None, f"{label}: Secret seidra-migrate-secrets missing"):
            check(msec.get("data") == secret.get("data"), f"{label}: seidra-migrate-secrets differs from seidra-secrets")
            check_hook(label, msec, weight_below=0)

    # Deployments and their images.
    backend_image = f"{repository}/ultimate-backend:{tag}"
    expected = {
        "seidra-backend": backend_image,
        "seidra-worker": f"{repository}/ultimate-backend:{tag}{worker_suffix}",
    }
    if frontend:
        expected["seidra-frontend"] = f"{repository}/ultimate-frontend:{tag}"
    else:
        check(r.get("Deployment", "seidra-frontend") is None, f"{label}: seidra-frontend rendered although frontend.enabled=false")
    for name, image in expected.items():
        dep = r.get("Deployment", name)
        if not check(dep is not None, f"{label}: Deployment {name} missing"):
            continue
        imgs = [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]]
        check(imgs == [image], f"{label}: {name} image {imgs} != [{image}]")
        sel = dep["spec"]["selector"]["matchLabels"]
        tmpl_labels = dep["spec"]["template"]["metadata"]["labels"]
        check(all(tmpl_labels.get(k) == v for k, v in sel.items()), f"{label}: {name} selector does not match its pod labels")
        if name != "seidra-frontend":
            env_from = dep["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])
            refs = [(e.get("configMapRef") or e.get("secretRef") or {}).get("name") for e in env_from]
            check(refs == ["seidra-config", secret_name], f"{label}: {name} envFrom {refs} != ['seidra-config', '{secret_name}']")
            ann = dep["spec"]["template"]["metadata"].get("annotations", {})
            check("checksum/config" in ann and "checksum/secret" in ann, f"{label}: {name} lacks checksum annotations")
    backend = r.get("Deployment", "seidra-backend")
    if backend:
        c = backend["spec"]["template"]["spec"]["containers"][0]
        check(c.get("args") == ["serve"], f"{label}: backend args {c.get('args')} != ['serve']")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports.get("http") == 8080, f"{label}: backend port http should be 8080")
        check(deep(c, "livenessProbe", "httpGet", "path") == "/healthz", f"{label}: backend liveness probe should GET /healthz")
        check(deep(c, "readinessProbe", "httpGet", "path") == "/readyz", f"{label}: backend readiness probe should GET /readyz")
        check(deep(c, "livenessProbe", "httpGet", "port") == "http", f"{label}: backend liveness probe port should be http")
        check(deep(c, "readinessProbe", "httpGet", "port") == "http", f"{label}: backend readiness probe port should be http")
        grace = backend["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        check(grace > int((cm or {}).get("data", {}).get("SEIDRA_SHUTDOWN_GRACE_SECS", 30)),
              f"{label}: backend terminationGracePeriodSeconds {grace} not above SEIDRA_SHUTDOWN_GRACE_SECS")
    worker = r.get("Deployment", "seidra-worker")
    if worker:
        c = worker["spec"]["template"]["spec"]["containers"][0]
        check(c.get("args", [])[:1] == ["worker"], f"{label}: worker args {c.get('args')} should start with worker")
        ports = [(p.get("name"), p.get("containerPort")) for p in c.get("ports", [])]
        check(ports == [("metrics", 9090)], f"{label}: worker should expose only metrics:9090, got {ports}")
        env = {e.get("name"): e.get("value") for e in c.get("env", [])}
        check(env.get("SEIDRA_WORKER__METRICS_BIND") == "0.0.0.0:9090", f"{label}: worker metrics listener not configured")
        check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{label}: worker liveness probe should GET /healthz")
        check("readinessProbe" not in c, f"{label}: worker should have no readiness probe (it takes no traffic)")
        grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        check(grace > int((cm or {}).get("data", {}).get("SEIDRA_WORKER__GRACE_SECS", 30)),
              f"{label}: worker terminationGracePeriodSeconds {grace} not above SEIDRA_WORKER__GRACE_SECS")
    frontend_dep = r.get("Deployment", "seidra-frontend")
    if frontend_dep:
        c = frontend_dep["spec"]["template"]["spec"]["containers"][0]
        check(deep(c, "livenessProbe", "httpGet", "path") == "/healthz", f"{label}: frontend liveness probe should GET /healthz")
        check(deep(c, "readinessProbe", "httpGet", "path") == "/healthz", f"{label}: frontend readiness probe should GET /healthz")
        check({p["name"]: p["containerPort"] for p in c.get("ports", [])}.get("http") == 8080, f"{label}: frontend port http should be 8080")

    # Services select their Deployment's pods.
    for svc_name in ["seidra-backend"] + (["seidra-frontend"] if frontend else []):
        svc = r.get("Service", svc_name)
        dep = r.get("Deployment", svc_name)
        if check(svc is not None, f"{label}: Service {svc_name} missing") and dep:
            labels = dep["spec"]["template"]["metadata"]["labels"]
            check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), f"{label}: Service {svc_name} selects no pod of its Deployment")
            check([p["targetPort"] for p in svc["spec"]["ports"]] == ["http"], f"{label}: Service {svc_name} should target port http")

    check_migrations(r, backend_image, secret_name)
    check_security(r)
    check_labels(r)


def check_hook(label: str, doc: dict, weight_below: int | None = None) -> None:
    ann = doc["metadata"].get("annotations", {})
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    check(set(ann.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"},
          f"{label}: {name} helm.sh/hook should be pre-install,pre-upgrade (got {ann.get('helm.sh/hook')!r})")
    check(ann.get("helm.sh/hook-delete-policy") == "before-hook-creation",
          f"{label}: {name} hook-delete-policy should be before-hook-creation")
    if weight_below is not None:
        check(int(ann.get("helm.sh/hook-weight", "0")) < weight_below, f"{label}: {name} must be created before the migration Job (hook-weight)")


def check_migrations(r: Render, backend_image: str, secret_name: str) -> None:
    label = r.label
    job = r.get("Job", "ultimate-migrate")
    if check(job is not None, f"{label}: Job ultimate-migrate missing"):
        check_hook(label, job)
        spec = job["spec"]["template"]["spec"]
        c = spec["containers"][0]
        check(c["image"] == backend_image, f"{label}: ultimate-migrate image {c['image']} != {backend_image}")
        check(c.get("args") == ["migrate", "up"], f"{label}: ultimate-migrate args {c.get('args')} != ['migrate', 'up']")
        check(spec.get("restartPolicy") == "Never", f"{label}: ultimate-migrate restartPolicy should be Never")
        refs = [(e.get("configMapRef") or e.get("secretRef") or {}).get("name") for e in c.get("envFrom", [])]
        want_secret = "seidra-migrate-secrets" if secret_name == "seidra-secrets" else secret_name
        check(refs == ["seidra-migrate-config", want_secret], f"{label}: ultimate-migrate envFrom {refs} should read the hook copies")
        check("serviceAccountName" not in spec, f"{label}: ultimate-migrate must not need the release's ServiceAccount (created after pre-install hooks)")
    cron = r.get("CronJob", "ultimate-migrations")
    if check(cron is not None, f"{label}: CronJob ultimate-migrations missing"):
        check(cron["spec"].get("suspend") is True, f"{label}: CronJob ultimate-migrations must be suspended")
        check_hook(label, cron, weight_below=0)
        spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        c = spec["containers"][0]
        check(c["image"] == backend_image, f"{label}: ultimate-migrations image {c['image']} != {backend_image}")
        cmd = " ".join(c.get("command", []) + c.get("args", []))
        check("seidra migrate $SEIDRA_MIGRATE_COMMAND" in cmd, f"{label}: ultimate-migrations command {cmd!r} should run `seidra migrate $SEIDRA_MIGRATE_COMMAND`")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        check("SEIDRA_MIGRATE_COMMAND" in env, f"{label}: ultimate-migrations lacks SEIDRA_MIGRATE_COMMAND")


def deep(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def check_security(r: Render) -> None:
    for owner, spec, _meta in r.pod_specs():
        psc = spec.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True, f"{owner}: pod runAsNonRoot must be true")
        check(deep(psc, "seccompProfile", "type") == "RuntimeDefault", f"{owner}: pod seccompProfile must be RuntimeDefault")
        check(spec.get("enableServiceLinks") is False, f"{owner}: enableServiceLinks must be false (SEIDRA_* service variables)")
        check(spec.get("automountServiceAccountToken") is False, f"{owner}: automountServiceAccountToken must be false")
        check(spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, f"{owner}: host namespaces are not allowed")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            where = f"{owner} container {c['name']}"
            sc = c.get("securityContext", {})
            check(sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot must be true")
            check(isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, f"{where}: runAsUser must be a non-zero UID")
            check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem must be true")
            check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false")
            check(sc.get("privileged") in (None, False), f"{where}: must not be privileged")
            check(deep(sc, "capabilities", "drop") == ["ALL"], f"{where}: capabilities must drop ALL")
            check(not deep(sc, "capabilities", "add"), f"{where}: must add no capability")
            check(deep(sc, "seccompProfile", "type") == "RuntimeDefault", f"{where}: seccompProfile must be RuntimeDefault")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            check(len(tmp) == 1 and "emptyDir" in volumes.get(tmp[0]["name"], {}), f"{where}: /tmp must be an emptyDir mount")
            check("resources" in c and c["resources"].get("limits"), f"{where}: resources limits missing")


def check_labels(r: Render) -> None:
    for d in r.docs:
        labels = d["metadata"].get("labels", {})
        for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                  "app.kubernetes.io/managed-by", "helm.sh/chart"):
            check(k in labels, f"{r.label}: {d['kind']}/{d['metadata']['name']} lacks label {k}")


def pod_annotations(r: Render, name: str) -> dict:
    dep = r.get("Deployment", name)
    return dep["spec"]["template"]["metadata"].get("annotations", {}) if dep else {}


def app_version(chart: Path) -> str:
    return str(yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"])


# --------------------------------------------------------------------------------------------
def pod_env(r: Render, secret_override: dict | None = None) -> dict:
    env = dict(r.get("ConfigMap", "seidra-config")["data"])
    if secret_override is not None:
        env.update(secret_override)
    else:
        env.update(decoded(r.get("Secret", "seidra-secrets")))
    return env


def config_check(seidra: str, label: str, env: dict) -> None:
    """`seidra config check` must accept exactly what the pods get (S3 settings included)."""
    with tempfile.TemporaryDirectory() as home:
        base = {"PATH": "/usr/bin:/bin", "HOME": home}
        out = subprocess.run([seidra, "config", "check"], env={**base, **env}, capture_output=True, text=True, cwd=home)
        check(out.returncode == 0 and "configuration OK" in out.stdout + out.stderr,
              f"{label}: `seidra config check` refuses the pods' environment: {(out.stdout + out.stderr).strip()[-500:]}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", default="helm")
    ap.add_argument("--chart", default=str(ROOT / "deploy/helm"))
    ap.add_argument("--seidra", default="", help="seidra binary for `config check` (skipped when absent)")
    a = ap.parse_args()
    chart = Path(a.chart)
    ci = chart / "ci"
    version = app_version(chart)

    default = helm_template(a.helm, chart, "default")
    prod = helm_template(a.helm, chart, "production", [ci / "production-values.yaml"])
    gpu = helm_template(a.helm, chart, "gpu", [ci / "gpu-values.yaml"])
    existing = helm_template(a.helm, chart, "existing-secret", [ci / "existing-secret-values.yaml"])

    prod_values = yaml.safe_load((ci / "production-values.yaml").read_text())
    check_common(default, repository="ghcr.io/seidra", tag=version, secret_name="seidra-secrets", frontend=True)
    check_common(prod, repository=prod_values["image"]["repository"], tag=prod_values["image"]["tag"],
                 secret_name="seidra-secrets", frontend=True)
    check_common(gpu, repository="ghcr.io/seidra", tag=version, secret_name="seidra-secrets", frontend=True, worker_suffix="-cuda")
    check_common(existing, repository="ghcr.io/seidra", tag=version, secret_name="seidra-prod-secrets", frontend=False)
    report("4 renders: seidra-config/seidra-secrets, migration hook Job + suspended CronJob, images, probes, restricted security")

    # image.tag / image.repository as the CI dry run sets them.
    tagged = helm_template(a.helm, chart, "tagged", sets=["image.repository=ghcr.io/acme", "image.tag=0123abc"])
    for owner, spec, _ in tagged.pod_specs():
        for c in containers(spec):
            check(c["image"] in ("ghcr.io/acme/ultimate-backend:0123abc", "ghcr.io/acme/ultimate-frontend:0123abc"),
                  f"tagged: {owner} image {c['image']} does not follow image.repository/image.tag")
    check(default.get("CronJob", "ultimate-migrations")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
          == [{"name": "SEIDRA_MIGRATE_COMMAND", "value": "up"}], "default: SEIDRA_MIGRATE_COMMAND should default to up")
    down = helm_template(a.helm, chart, "down", sets=["migrations.command=down 1"])
    check(down.get("CronJob", "ultimate-migrations")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
          == [{"name": "SEIDRA_MIGRATE_COMMAND", "value": "down 1"}], "down: migrations.command=down 1 should reach SEIDRA_MIGRATE_COMMAND")
    report("image.repository/image.tag override, tag defaults to appVersion, SEIDRA_MIGRATE_COMMAND up / down 1")

    # GPU scheduling only where asked for.
    w = gpu.get("Deployment", "seidra-worker")["spec"]["template"]["spec"]
    wc = w["containers"][0]
    check(deep(wc, "resources", "limits", "nvidia.com/gpu") == 1, "gpu: worker limits lack nvidia.com/gpu: 1")
    check(bool(w.get("nodeSelector")), "gpu: worker nodeSelector missing")
    check(any(t.get("key") == "nvidia.com/gpu" for t in w.get("tolerations", [])), "gpu: worker lacks the nvidia.com/gpu toleration")
    check(w.get("runtimeClassName") == "nvidia", "gpu: worker runtimeClassName should be nvidia")
    check(wc["args"] == ["worker", "--concurrency", "1"], f"gpu: worker args {wc['args']}")
    for owner, spec, _ in default.pod_specs():
        for c in containers(spec):
            check("nvidia.com/gpu" not in str(c.get("resources")), f"default: {owner} requests a GPU")
        check("runtimeClassName" not in spec, f"default: {owner} has a runtimeClassName")
    backend_gpu = gpu.get("Deployment", "seidra-backend")["spec"]["template"]["spec"]
    check("nvidia.com/gpu" not in str(backend_gpu), "gpu: only workers get GPUs")
    report("GPU values: nvidia.com/gpu limits, nodeSelector, tolerations, runtimeClassName on the worker only")

    # Checksums follow the configuration, and only it.
    again = helm_template(a.helm, chart, "default-again")
    changed_cfg = helm_template(a.helm, chart, "log-level", sets=["env.SEIDRA_LOG_LEVEL=debug"])
    changed_sec = helm_template(a.helm, chart, "db-password", sets=["externalDatabase.password=rotated"])
    for name in ("seidra-backend", "seidra-worker"):
        base = pod_annotations(default, name)
        check(base == pod_annotations(again, name), f"{name}: checksums differ between two identical renders")
        cfg = pod_annotations(changed_cfg, name)
        check(cfg.get("checksum/config") != base.get("checksum/config"), f"{name}: checksum/config unchanged after a config change")
        check(cfg.get("checksum/secret") == base.get("checksum/secret"), f"{name}: checksum/secret changed by a config-only change")
        sec = pod_annotations(changed_sec, name)
        check(sec.get("checksum/secret") != base.get("checksum/secret"), f"{name}: checksum/secret unchanged after a secret change")
    report("checksum annotations: stable across renders, follow config and secret changes")

    # Environment routing, S3 gating, optional objects.
    check(not any("SEIDRA_S3__" in yaml.safe_dump(d) for d in default.docs), "default: SEIDRA_S3__* rendered with s3.enabled=false")
    pcm = prod.get("ConfigMap", "seidra-config")["data"]
    psec = decoded(prod.get("Secret", "seidra-secrets"))
    for k in ("SEIDRA_S3__ENDPOINT", "SEIDRA_S3__REGION", "SEIDRA_S3__BUCKET", "SEIDRA_S3__PATH_STYLE"):
        check(k in pcm, f"production: {k} missing from the ConfigMap")
    check(pcm.get("SEIDRA_STORAGE__BACKEND") == "s3", "production: s3.enabled must set SEIDRA_STORAGE__BACKEND=s3")
    check("SEIDRA_S3__PUBLIC_ENDPOINT" not in pcm, "production: an empty s3.publicEndpoint must not be rendered")
    check(not any("SEIDRA_STORAGE__BACKEND" in yaml.safe_dump(d) for d in default.docs),
          "default: SEIDRA_STORAGE__BACKEND rendered with s3.enabled=false")
    for k in ("SEIDRA_S3__ACCESS_KEY_ID", "SEIDRA_S3__SECRET_ACCESS_KEY", "SEIDRA_REDIS_URL", "SEIDRA_SECRET_KEY", "SEIDRA_ADMIN_PASSWORD"):
        check(k in psec, f"production: {k} missing from the Secret")
    check(psec.get("SEIDRA_DATABASE_URL") == "postgres://seidra:ci%20only%20p%40ss%2Fword@postgres.db.svc.cluster.local:5432/seidra",
          f"production: SEIDRA_DATABASE_URL composed wrongly: {psec.get('SEIDRA_DATABASE_URL')}")
    envurl = helm_template(a.helm, chart, "env-url", sets=["env.SEIDRA_DATABASE_URL=postgres://u:p@db:5432/x"])
    check(decoded(envurl.get("Secret", "seidra-secrets")).get("SEIDRA_DATABASE_URL") == "postgres://u:p@db:5432/x",
          "env.SEIDRA_DATABASE_URL should win over externalDatabase")
    check("SEIDRA_DATABASE_URL" not in envurl.get("ConfigMap", "seidra-config")["data"], "env.SEIDRA_DATABASE_URL leaked into the ConfigMap")
    check(default.kinds("ServiceMonitor") == [] and len(prod.kinds("ServiceMonitor")) == 1, "ServiceMonitor should render only with serviceMonitor.enabled")
    check(default.kinds("Ingress") == [] and len(prod.kinds("Ingress")) == 1, "Ingress should render only with ingress.enabled")
    ing = prod.kinds("Ingress")[0]
    paths = {p["path"]: p["backend"]["service"]["name"] for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]}
    check(paths == {"/api": "seidra-backend", "/ws": "seidra-backend", "/files": "seidra-backend", "/": "seidra-frontend"},
          f"production: Ingress paths {paths}")
    check(ing["spec"].get("ingressClassName") == "nginx" and ing["spec"].get("tls"), "production: Ingress class/TLS missing")
    check({d["metadata"]["name"] for d in prod.kinds("HorizontalPodAutoscaler")} == {"seidra-backend", "seidra-worker"}, "production: HPAs missing")
    check("replicas" not in prod.get("Deployment", "seidra-backend")["spec"], "production: replicas must be left to the HPA")
    check(default.kinds("HorizontalPodAutoscaler") == [], "default: no HPA expected")
    check({d["metadata"]["name"] for d in default.kinds("PodDisruptionBudget")} == {"seidra-backend", "seidra-worker", "seidra-frontend"},
          "default: PDBs for backend, worker and frontend expected")
    check({d["metadata"]["name"] for d in default.kinds("NetworkPolicy")} == {"seidra-backend", "seidra-frontend", "seidra-no-ingress"},
          "default: NetworkPolicies missing")
    check(default.get("ServiceAccount", "seidra-ultimate") is not None, "default: ServiceAccount missing")
    check(prod.get("PersistentVolumeClaim", "seidra-data") is not None, "production: PVC seidra-data missing")
    check(deep(prod.get("Deployment", "seidra-worker"), "spec", "template", "spec", "volumes")[1].get("persistentVolumeClaim", {}).get("claimName") == "seidra-data",
          "production: workers should mount the seidra-data claim")
    report("env routing (ConfigMap vs Secret), DB URL composition, S3 gated by s3.enabled, Ingress, HPA, PDB, NetworkPolicy, PVC, ServiceMonitor")

    # Values the chart must refuse.
    helm_fails(a.helm, chart, ["backend.replicaCont=2"], "replicaCont")
    helm_fails(a.helm, chart, ["migrations.command=drop everything"], "migrations/command")
    helm_fails(a.helm, chart, ["env.SEIDRA_BIND=127.0.0.1:9000"], "SEIDRA_BIND")
    helm_fails(a.helm, chart, ["env.seidra_env=production"], "seidra_env")
    helm_fails(a.helm, chart, ["backend.terminationGracePeriodSeconds=30"], "SEIDRA_SHUTDOWN_GRACE_SECS")
    helm_fails(a.helm, chart, ["worker.terminationGracePeriodSeconds=20"], "SEIDRA_WORKER__GRACE_SECS")
    helm_fails(a.helm, chart, ["env.SEIDRA_DATABASE_URL=sqlite:///var/lib/seidra/seidra.db"], "SQLite")
    helm_fails(a.helm, chart, ["externalDatabase.host="], "no database")
    helm_fails(a.helm, chart, ["env.SEIDRA_SECRET_KEY=0123456789abcdef0123456789abcdef"], "existingSecret",
               values=[ci / "existing-secret-values.yaml"])
    report("refused: misspelt keys (schema), bad migration command, chart-owned settings, short grace periods, SQLite, no database, secrets beside existingSecret")

    if a.seidra and os.access(a.seidra, os.X_OK):
        a.seidra = os.path.abspath(a.seidra)
        config_check(a.seidra, "default", pod_env(default))
        config_check(a.seidra, "production", pod_env(prod))
        config_check(a.seidra, "gpu", pod_env(gpu))
        config_check(a.seidra, "existing-secret", pod_env(existing, {
            "SEIDRA_DATABASE_URL": "postgres://seidra:x@db:5432/seidra",
            "SEIDRA_SECRET_KEY": "0123456789abcdef0123456789abcdef"}))
        migrate_env = pod_env(default) | {"SEIDRA_MIGRATE_COMMAND": "down 1"}
        config_check(a.seidra, "migration CronJob", migrate_env)
        report(f"`{a.seidra} config check` accepts every render's pod environment")
    else:
        print("skip `seidra config check` on the rendered environment (no seidra binary; pass --seidra PATH)")

    if FAILURES:
        print(f"\nFAILED: {len(FAILURES)} check(s)", file=sys.stderr)
        for f in FAILURES:
            print(f"  - {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
