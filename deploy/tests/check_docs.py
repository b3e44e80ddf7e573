#!/usr/bin/env python3
"""Checks deploy/README.md against what the repository really contains (run by check-deploy.sh).

- every repository path it names exists (paths owned by the monitoring work are reported, not
  failed, while they are still missing);
- every flag it passes to scripts/deploy-staging.sh, scripts/helm-dry-run.sh and
  scripts/package-release.sh is one the script accepts (its --help lists it);
- every `--set KEY=…` it shows names a key of values.schema.json;
- every object it sends kubectl to (deployment/…, job/…, cronjob/…, svc/…, secret/…, configmap/…)
  is one the chart renders (Jobs created by hand from the CronJob excepted);
- the log lines and status output it quotes are the ones the binary's source prints;
- the CI job and artifact names it documents are the workflow's.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "deploy/README.md"
OWNED_ELSEWHERE = ("monitoring/", "deploy/k8s/monitoring", "deploy/docker/monitoring.yml")
# Files the operator creates (from deploy/docker/.env.example).
OPERATOR_FILES = ("deploy/docker/.env",)
# Deliberately misspelt in the guide, to show the schema refusing it.
TYPO_EXAMPLES = ("backend.replicaCont",)
FAILURES: list[str] = []


def fail(msg: str) -> None:
    FAILURES.append(msg)


def code_text(md: str) -> str:
    """Fenced blocks and inline code spans, joined: the commands an operator would type."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", md, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", md, flags=re.S))
    text = "\n".join(blocks + spans)
    return text.replace("\\\n", " ")


def check_paths(md: str) -> None:
    candidates = set(re.findall(r"(?<![\w./-])((?:scripts|deploy|backend|frontend|monitoring|\.github)/[\w./-]*[\w/])", md))
    candidates |= {"docker-compose.yml"} if "docker-compose.yml" in md else set()
    for path in sorted(candidates):
        if "<" in path or path in OPERATOR_FILES or re.match(r"deploy/seidra-", path):
            continue  # placeholders, operator files, kubectl's deploy/<name>
        if (ROOT / path).exists():
            continue
        if path.startswith(OWNED_ELSEWHERE):
            print(f"note: {path} (monitoring work) does not exist yet")
            continue
        fail(f"deploy/README.md names {path}, which does not exist")


def script_flags(script: str) -> set[str]:
    out = subprocess.run(["bash", str(ROOT / script), "--help"], capture_output=True, text=True)
    return set(re.findall(r"(--[a-z][a-z-]*)", out.stdout))


def check_script_flags(code: str) -> None:
    for script in ("scripts/deploy-staging.sh", "scripts/helm-dry-run.sh", "scripts/package-release.sh"):
        accepted = script_flags(script)
        if "--help" not in accepted and "-h" not in accepted:
            accepted.add("--help")
        used: set[str] = set()
        for line in code.splitlines():
            if script in line:
                tail = line.split(script, 1)[1]
                used |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", tail.split("|")[0]))
        # Flags named in prose right after the script (e.g. "Options: `--namespace` …").
        for flag in sorted(used - accepted):
            fail(f"deploy/README.md passes {flag} to {script}, which does not accept it")


def schema_has(schema: dict, dotted: str) -> bool:
    node = schema
    for part in re.split(r"\.(?![^\[]*\])", dotted):
        name = re.sub(r"\[\d+\]$", "", part)
        props = node.get("properties", {})
        if name in props:
            node = props[name]
        elif node.get("propertyNames", {}).get("pattern") and re.match(node["propertyNames"]["pattern"], name):
            node = node.get("additionalProperties", {})
        else:
            return False
        if part.endswith("]"):
            node = node.get("items", {})
    return True


def check_set_keys(code: str) -> None:
    schema = json.loads((ROOT / "deploy/helm/values.schema.json").read_text())
    for key in sorted(set(re.findall(r"--set[ =]([a-z][\w.\[\]]*)=", code))):
        if key not in TYPO_EXAMPLES and not schema_has(schema, key):
            fail(f"deploy/README.md sets {key}, which values.schema.json does not define")
    for key in sorted(set(re.findall(r"(?<![\w.])((?:backend|worker|frontend|image|migrations|ingress|networkPolicy|serviceMonitor|persistence|externalDatabase|externalRedis|s3|env)\.[A-Za-z_][\w.]*)", code))):
        key = key.rstrip(".")
        if key.endswith((".yaml", ".yml")) or key in TYPO_EXAMPLES or "*" in key:
            continue
        if not schema_has(schema, key):
            fail(f"deploy/README.md mentions the value {key}, which values.schema.json does not define")


def rendered_objects() -> set[tuple[str, str]]:
    objects: set[tuple[str, str]] = set()
    for values in ([], ["-f", "deploy/helm/ci/production-values.yaml"]):
        out = subprocess.run(["helm", "template", "seidra-ultimate", "deploy/helm", *values],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            fail(f"helm template failed: {out.stderr.strip()[:300]}")
            continue
        for d in yaml.safe_load_all(out.stdout):
            if d:
                objects.add((d["kind"], d["metadata"]["name"]))
    return objects


KINDS = {"deployment": "Deployment", "deploy": "Deployment", "job": "Job", "cronjob": "CronJob",
         "svc": "Service", "service": "Service", "secret": "Secret", "configmap": "ConfigMap",
         "pvc": "PersistentVolumeClaim"}


def check_objects(code: str) -> None:
    objects = rendered_objects()
    for line in code.splitlines():
        if "kubectl" not in line:
            continue
        for kind, name in re.findall(r"\b(deployment|deploy|job|cronjob|svc|service|secret|configmap|pvc)/([a-z0-9][a-z0-9-]*)", line):
            if kind == "job" and name.startswith("ultimate-migrate-"):
                continue  # created by hand from the CronJob
            if (KINDS[kind], name) not in objects:
                fail(f"deploy/README.md refers to {kind}/{name}, which the chart does not render")
    for name in re.findall(r"get secret ([a-z0-9-]+)", code):
        if ("Secret", name) not in objects:
            fail(f"deploy/README.md reads secret {name}, which the chart does not render")


def check_quotes(md: str) -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "crates").rglob("*.rs"))
    for phrase in ("migrations: upgrade successful, version", "migrations: downgrade successful, version",
                   "migrations: already up to date, version", "current version: ", "(latest known to this binary: ",
                   "newer than this binary (which knows up to", "unknown SEIDRA_* variable ignored"):
        check_phrase = phrase.split("{")[0]
        if check_phrase in md and check_phrase not in source:
            fail(f"deploy/README.md quotes {phrase!r}, which the binary's source does not print")
    for phrase in ("migrations: upgrade successful, version", "migrations: downgrade successful, version"):
        if phrase not in md:
            fail(f"deploy/README.md should show the log line {phrase!r}")


def check_workflows(md: str) -> None:
    md = re.sub(r"\s+", " ", md)
    ci = yaml.safe_load((ROOT / ".github/workflows/ultimate-ci.yml").read_text())
    if ci.get("name") != "Ultimate CI" or "Ultimate CI" not in md:
        fail("the CI workflow must be named \"Ultimate CI\" and documented so")
    if "helm-dry-run" not in ci.get("jobs", {}):
        fail("ultimate-ci.yml has no job helm-dry-run")
    artifacts = [s.get("with", {}).get("name") for s in ci["jobs"]["helm-dry-run"]["steps"] if "upload-artifact" in s.get("uses", "")]
    if artifacts != ["helm-dry-run-logs"] or "helm-dry-run-logs" not in md:
        fail(f"helm-dry-run should upload the artifact helm-dry-run-logs (uploads {artifacts})")
    rel = yaml.safe_load((ROOT / ".github/workflows/ultimate-release.yml").read_text())
    if rel.get("name") not in md:
        fail(f"deploy/README.md should name the release workflow {rel.get('name')!r}")


def main() -> int:
    md = README.read_text()
    code = code_text(md)
    check_paths(md)
    check_script_flags(code)
    check_set_keys(code)
    check_objects(code)
    check_quotes(md)
    check_workflows(md)
    if FAILURES:
        for f in FAILURES:
            print(f"FAIL {f}", file=sys.stderr)
        return 1
    print("ok   deploy/README.md: paths, script flags, --set keys, kubectl objects, quoted log lines, workflow names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
