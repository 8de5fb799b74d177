#!/usr/bin/env python3
"""Offline checks of deploy/: Helm lint, rendering, the chart's own refusals, Kubernetes schemas.

    python3 -m venv /tmp/deploy-venv
    /tmp/deploy-venv/bin/pip install -r deploy/requirements.txt
    /tmp/deploy-venv/bin/python deploy/check.py          # or: bash deploy/run-checks.sh /tmp/deploy-venv/bin/python

Needs no cluster and no Docker. helm-python-sdk wraps Helm's own Go SDK (v4), so lint and rendering
are Helm's; kubernetes-validate checks every rendered object against the OpenAPI schemas of the
Kubernetes versions below (skipped with a note when it is not installed).
Prints `N passed, N failed` and exits non-zero on any failure.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import helm_python
import yaml

DEPLOY = Path(__file__).resolve().parent
CHART = DEPLOY / "helm" / "swin-serve"
K8S_VERSIONS = ["1.25.0", "1.27.0", "1.30.0", "1.33.0"]  # the oldest schema kubernetes-validate ships is 1.25

passed = 0
failed = 0


def check(name: str, ok: bool, detail: str = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}{': ' + detail if detail else ''}")


def render(values: dict | None, release: str = "swin-serve") -> list[dict]:
    with helm_python.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name=release, namespace="default", is_install=True)
    docs = []
    for source, text in sorted(manifests.items()):
        if source.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def render_notes(values: dict | None, release: str = "swin-serve") -> str:
    with helm_python.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name=release, namespace="default", is_install=True)
    return "".join(text for source, text in manifests.items() if source.endswith("NOTES.txt"))


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def env_of(deployment: dict) -> dict:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def values_file(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "k8s" / name).read_text())


def helm_values(*names: str) -> dict:
    """The values `helm install -f a.yaml -f b.yaml` passes on: maps merged, later files win."""
    def merge(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for k, v in b.items():
                out[k] = merge(a[k], v) if k in a else v
            return out
        return b
    out: dict = {}
    for name in names:
        out = merge(out, values_file(name))
    return out


def merged(base: dict, **overrides) -> dict:
    out = copy.deepcopy(base)
    for dotted, value in overrides.items():
        node = out
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return out


# Env vars naming files the server reads from a mounted Secret / ConfigMap, and whether it re-reads them.
FILE_ENV = ("SWIN_SERVE_TLS_CERT", "SWIN_SERVE_TLS_KEY", "SWIN_SERVE_TLS_CLIENT_CA", "SWIN_SERVE_AUTH_TOKEN_FILE")


def secret_file_problems(deployment: dict, expected: dict[str, tuple[str, str, str]]) -> list[str]:
    """What is wrong with the files the server re-reads (TLS, client CA, tokens).

    expected: env var -> (volume kind "secret" / "configMap", object name, key). Each such variable must
    name <mountPath>/<key> of a whole-volume, read-only mount (no subPath: a subPath mount never receives
    Secret updates, which would defeat rotation) of a volume of that object; no other file variable may
    be set; no mount of a Secret or ConfigMap volume may use subPath.
    """
    pod = deployment["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = c.get("volumeMounts", [])
    problems = []
    for m in mounts:
        v = volumes.get(m["name"], {})
        if ("secret" in v or "configMap" in v) and ("subPath" in m or "subPathExpr" in m):
            problems.append(f"mount {m['name']} uses subPath (never updated when the Secret/ConfigMap changes)")
    for var in FILE_ENV:
        if var not in expected:
            if var in env:
                problems.append(f"{var} set ({env[var]}) but not expected")
            continue
        kind, name, key = expected[var]
        path = env.get(var)
        if not path:
            problems.append(f"{var} missing")
            continue
        directory, _, base = path.rpartition("/")
        mount = next((m for m in mounts if m["mountPath"].rstrip("/") == directory), None)
        if mount is None:
            problems.append(f"{var}={path}: no volume mounted at {directory}")
            continue
        vol = volumes.get(mount["name"], {})
        src = vol.get(kind) or {}
        actual = src.get("secretName") if kind == "secret" else src.get("name")
        if actual != name:
            problems.append(f"{var}: mount {mount['name']} is not {kind} {name} ({vol})")
        if base != key:
            problems.append(f"{var}={path}: file {base}, expected key {key}")
        if "items" in src and not any(i.get("key") == key and i.get("path") == base for i in src["items"]):
            problems.append(f"{var}: volume {mount['name']} projects items without {key}")
        if not mount.get("readOnly"):
            problems.append(f"{var}: mount {mount['name']} not readOnly")
    return problems


def probe_problems(deployment: dict, port: int) -> list[str]:
    """Startup, readiness and liveness are gRPC health checks (liveness on the service that only a
    hung engine turns NOT_SERVING), all three on `port`."""
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    problems = []
    if c["startupProbe"].get("grpc") != {"port": port}:
        problems.append(f"startupProbe {c['startupProbe'].get('grpc')}")
    if c["readinessProbe"].get("grpc") != {"port": port, "service": "swin.v1.Classifier"}:
        problems.append(f"readinessProbe {c['readinessProbe'].get('grpc')}")
    if c["livenessProbe"].get("grpc") != {"port": port, "service": "swin-serve.liveness"}:
        problems.append(f"livenessProbe {c['livenessProbe']}")
    return problems


# ServiceMonitor (monitoring.coreos.com/v1): kubernetes-validate has only the built-in kinds' schemas, so
# the chart's ServiceMonitor is checked against this subset of the Prometheus Operator CRD's
# openAPIV3Schema, copied by hand from monitoring.coreos.com_servicemonitors.yaml (operator v0.84.1):
# the required fields, the types and patterns of the fields the chart sets, and every field name the
# CRD knows at the levels the chart writes (an unknown or misspelt field is refused, as the API
# server's structural-schema pruning would silently drop it).
PROM_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1},
                           "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
        "spec": {
            "type": "object",
            "required": ["endpoints", "selector"],
            "additionalProperties": False,
            "properties": {
                **{k: {} for k in (
                    "attachMetadata", "bodySizeLimit", "convertClassicHistogramsToNHCB", "fallbackScrapeProtocol",
                    "jobLabel", "keepDroppedTargets", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
                    "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor", "podTargetLabels", "sampleLimit",
                    "scrapeClass", "scrapeClassicHistograms", "scrapeProtocols", "selectorMechanism",
                    "serviceDiscoveryRole", "targetLabels", "targetLimit")},
                "namespaceSelector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "selector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                                   "matchExpressions": {"type": "array"}},
                },
                "endpoints": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            **{k: {} for k in (
                                "authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
                                "filterRunning", "followRedirects", "honorLabels", "honorTimestamps",
                                "metricRelabelings", "noProxy", "oauth2", "params", "proxyConnectHeader",
                                "proxyFromEnvironment", "proxyUrl", "relabelings", "targetPort", "tlsConfig",
                                "trackTimestampsStaleness")},
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": PROM_DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": PROM_DURATION},
                        },
                    },
                },
            },
        },
    },
}


def prom_duration_ms(text: str) -> int:
    import re
    m = re.fullmatch(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?", text)
    units = [365 * 86400_000, 7 * 86400_000, 86400_000, 3600_000, 60_000, 1000, 1]
    return sum(int(g) * u for g, u in zip(m.groups(), units) if g)


def service_monitor_problems(docs: list[dict]) -> list[str]:
    """The ServiceMonitor has the CRD's shape, selects exactly the metrics Service (not the gRPC or the
    headless one) by labels that Service carries, and scrapes a port that Service names, whose
    targetPort is the container port `metrics`; scrapeTimeout <= interval (the operator rejects more)."""
    import jsonschema
    problems = []
    sms = by_kind(docs, "ServiceMonitor")
    if len(sms) != 1:
        return [f"{len(sms)} ServiceMonitors"]
    sm = sms[0]
    for e in jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA).iter_errors(sm):
        problems.append(f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    if problems:
        return problems
    match = sm["spec"]["selector"].get("matchLabels", {})
    selected = [s for s in by_kind(docs, "Service") if match and match.items() <= s["metadata"].get("labels", {}).items()]
    if [s["metadata"]["name"] for s in selected] != [s["metadata"]["name"] for s in by_kind(docs, "Service")
                                                     if s["metadata"]["name"].endswith("-metrics")] or len(selected) != 1:
        return [f"selector {match} selects {[s['metadata']['name'] for s in selected]}, not just the -metrics Service"]
    svc = selected[0]
    ns = sm["spec"].get("namespaceSelector", {}).get("matchNames")
    if ns is not None and "default" not in ns:
        problems.append(f"namespaceSelector {ns} misses the release namespace")
    dep = by_kind(docs, "Deployment")[0]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    if not svc["spec"]["selector"].items() <= pod_labels.items():
        problems.append("the metrics Service does not select the pods")
    if svc["spec"].get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"metrics Service type {svc['spec'].get('type')}")
    container_ports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for ep in sm["spec"]["endpoints"]:
        p = svc_ports.get(ep.get("port"))
        if p is None:
            problems.append(f"endpoint port {ep.get('port')} not a port of {svc['metadata']['name']}")
        elif p["targetPort"] not in ("metrics", container_ports.get("metrics")):
            problems.append(f"service port {p} does not target the container port metrics")
        if ep.get("path", "/metrics") != "/metrics":
            problems.append(f"path {ep.get('path')}")
        if "interval" in ep and "scrapeTimeout" in ep and prom_duration_ms(ep["scrapeTimeout"]) > prom_duration_ms(ep["interval"]):
            problems.append(f"scrapeTimeout {ep['scrapeTimeout']} > interval {ep['interval']}")
    return problems


def main() -> int:
    yaml_files = sorted(
        p for p in DEPLOY.rglob("*.yaml") if "templates" not in p.parts
    )
    for p in yaml_files:
        try:
            list(yaml.safe_load_all(p.read_text()))
            check(f"YAML parses: {p.relative_to(DEPLOY)}", True)
        except yaml.YAMLError as e:
            check(f"YAML parses: {p.relative_to(DEPLOY)}", False, str(e))

    cpu_values = values_file("values-cpu.yaml")
    mlu_values = values_file("values-mlu.yaml")

    # helm lint --strict (warnings are errors), default values and both example values files.
    # deploy/README.md: `helm install ... -f deploy/k8s/values-mlu.yaml -f deploy/k8s/values-mlu-smlu.yaml`
    smlu_lint = helm_values("values-mlu.yaml", "values-mlu-smlu.yaml")
    cpu_tls_values = helm_values("values-cpu.yaml", "values-cpu-tls.yaml")
    for label, vals in [("defaults", None), ("values-cpu", cpu_values), ("values-mlu", mlu_values),
                        ("values-mlu + values-mlu-smlu", smlu_lint), ("values-cpu + values-cpu-tls", cpu_tls_values),
                        ("values-cpu + values-cpu-hpa", helm_values("values-cpu.yaml", "values-cpu-hpa.yaml"))]:
        report = helm_python.lint(str(CHART), vals, strict=True, kube_version="v1.30.0")
        bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        check(f"helm lint --strict ({label})", not bad, str(bad))

    # Rendering: defaults = CPU, download, grpc probes, tcp liveness.
    docs = render(None)
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = env_of(dep)
    check("default: one Deployment and one Service", len(by_kind(docs, "Deployment")) == 1 and len(by_kind(docs, "Service")) == 1)
    check("default: no PDB / HPA", not by_kind(docs, "PodDisruptionBudget") and not by_kind(docs, "HorizontalPodAutoscaler"))
    check("default: startupProbe is gRPC on 50051", c["startupProbe"].get("grpc") == {"port": 50051})
    check("default: readinessProbe is gRPC swin.v1.Classifier",
          c["readinessProbe"].get("grpc") == {"port": 50051, "service": "swin.v1.Classifier"})
    check("default: livenessProbe is gRPC health of swin-serve.liveness (hung engine), not \"\" (which drains)",
          c["livenessProbe"].get("grpc", {}).get("service") == "swin-serve.liveness" and "tcpSocket" not in c["livenessProbe"])
    check("default: backend cpu, download (no MODEL, no RANDOM_WEIGHTS)",
          env["SWIN_SERVE_BACKEND"] == "cpu" and "SWIN_SERVE_MODEL" not in env and "SWIN_SERVE_RANDOM_WEIGHTS" not in env)
    check("default: threads from limits.cpu", env["SWIN_SERVE_THREADS"] == {
        "resourceFieldRef": {"containerName": "swin-serve", "resource": "limits.cpu", "divisor": "1"}})
    check("default: drain delay 5 s < grace period",
          env["SWIN_SERVE_DRAIN_DELAY_SECS"] == "5" and pod["terminationGracePeriodSeconds"] > 5)
    check("default: large integers are not in e-notation",
          env["SWIN_SERVE_MAX_MESSAGE_BYTES"] == "33554432" and env["SWIN_SERVE_MAX_IMAGE_PIXELS"] == "89478485")
    check("default: listen on the container port", env["SWIN_SERVE_LISTEN"] == "0.0.0.0:50051"
          and c["ports"][0]["containerPort"] == 50051)
    check("default: cache volume at SWIN_SERVE_CACHE",
          env["SWIN_SERVE_CACHE"] == "/var/cache/swin-serve"
          and {"name": "cache", "mountPath": "/var/cache/swin-serve"} in c["volumeMounts"])
    check("default: non-root, read-only root fs",
          pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["readOnlyRootFilesystem"])
    check("default: no MLU resource or toleration",
          not any(k.startswith("cambricon.com/") for k in c["resources"].get("limits", {})) and "tolerations" not in pod)
    check("default: plaintext, no health port, reflection on, no token file",
          not ({"SWIN_SERVE_HEALTH_LISTEN", "SWIN_SERVE_NO_REFLECTION"} | set(FILE_ENV)) & set(env)
          and [p["name"] for p in c["ports"]] == ["grpc", "metrics"]
          and not secret_file_problems(dep, {}))
    svc = by_kind(docs, "Service")[0]
    check("service: selects the pods, targets port name grpc",
          svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
          and svc["spec"]["ports"][0]["targetPort"] == "grpc")

    # Every env var the chart sets must be one the binary reads (src/cli/), plus RUST_LOG and HOME.
    known = {
        "SWIN_SERVE_MODEL", "SWIN_SERVE_RANDOM_WEIGHTS", "SWIN_SERVE_LISTEN", "SWIN_SERVE_INSTANCES",
        "SWIN_SERVE_THREADS", "SWIN_SERVE_MAX_BATCH", "SWIN_SERVE_QUEUE_CAPACITY", "SWIN_SERVE_LABELS",
        "SWIN_SERVE_BACKEND", "SWIN_SERVE_PLUGIN_LIBS", "SWIN_SERVE_DEVICE", "SWIN_SERVE_MODEL_URL",
        "SWIN_SERVE_CACHE", "SWIN_SERVE_MAX_MESSAGE_BYTES", "SWIN_SERVE_MAX_IMAGE_PIXELS",
        "SWIN_SERVE_MAX_BATCH_IMAGES", "SWIN_SERVE_DRAIN_DELAY_SECS", "SWIN_SERVE_IMG_SIZE",
        "SWIN_SERVE_WINDOW_SIZE", "RUST_LOG", "HOME",
        "SWIN_SERVE_HEALTH_LISTEN", "SWIN_SERVE_TLS_CERT", "SWIN_SERVE_TLS_KEY", "SWIN_SERVE_TLS_CLIENT_CA",
        "SWIN_SERVE_AUTH_TOKEN_FILE", "SWIN_SERVE_NO_REFLECTION", "SWIN_SERVE_METRICS_LISTEN",
        "SWIN_SERVE_MEMORY_BUDGET", "SWIN_SERVE_OTLP_ENDPOINT",
    }
    everything = merged(mlu_values, server__imgSize=256, server__windowSize=8,
                        server__labels={"configMap": "labels", "key": "labels.txt"}, server__reflection=False,
                        tls={"enabled": True, "secretName": "t", "clientCA": {"configMap": "ca"}},
                        auth={"tokenSecret": {"name": "tok"}},
                        server__otlpEndpoint="http://otel-collector:4317")
    all_env = set(env_of(by_kind(render(everything), "Deployment")[0])) | set(env)
    check("env: only variables the binary reads", all_env <= known, str(all_env - known))
    cli_dir = DEPLOY.parent / "src" / "cli"
    if cli_dir.is_dir():
        src = "".join(p.read_text() for p in sorted(cli_dir.glob("*.rs")))
        missing = sorted(v for v in all_env - {"RUST_LOG", "HOME"} if f'"{v}"' not in src)
        check("env: every variable is declared in src/cli/", not missing, str(missing))

    # Random weights, PVC, URL override, labels ConfigMap.
    env = env_of(by_kind(render({"model": {"source": "random", "randomWeights": {"seed": 7}}}), "Deployment")[0])
    check("random: SWIN_SERVE_RANDOM_WEIGHTS=7, no MODEL", env.get("SWIN_SERVE_RANDOM_WEIGHTS") == "7" and "SWIN_SERVE_MODEL" not in env)
    docs = render({"model": {"source": "pvc", "pvc": {"claimName": "ckpt", "path": "/w/swinv2.pth"}}})
    dep = by_kind(docs, "Deployment")[0]
    env = env_of(dep)
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    check("pvc: SWIN_SERVE_MODEL under the mount, PVC read-only",
          env.get("SWIN_SERVE_MODEL") == "/models/w/swinv2.pth"
          and vols["model"]["persistentVolumeClaim"] == {"claimName": "ckpt", "readOnly": True})
    env = env_of(by_kind(render({"model": {"download": {"url": "https://example.invalid/m.pth"}}}), "Deployment")[0])
    check("download: SWIN_SERVE_MODEL_URL override", env.get("SWIN_SERVE_MODEL_URL") == "https://example.invalid/m.pth")

    # Threads: explicit, N instances sharing the limit, millicores rounding, no limit.
    env = env_of(by_kind(render({"server": {"threads": 3}}), "Deployment")[0])
    check("threads: explicit value wins", env["SWIN_SERVE_THREADS"] == "3")
    env = env_of(by_kind(render({"server": {"instances": 3}, "resources": {"limits": {"cpu": "8"}}}), "Deployment")[0])
    check("threads: 3 instances, 8 CPUs -> 2 each", env["SWIN_SERVE_THREADS"] == "2")
    env = env_of(by_kind(render({"server": {"instances": 2}, "resources": {"limits": {"cpu": "3500m"}}}), "Deployment")[0])
    check("threads: 2 instances, 3500m -> 4 cores -> 2 each", env["SWIN_SERVE_THREADS"] == "2")
    env = env_of(by_kind(render({"server": {"instances": 4}, "resources": {"limits": {"cpu": 2}}}), "Deployment")[0])
    check("threads: never below 1", env["SWIN_SERVE_THREADS"] == "1")
    env = env_of(by_kind(render({"server": {"instances": 2}, "resources": {"requests": {"cpu": "2"}, "limits": None}}), "Deployment")[0])
    check("threads: N instances and no CPU limit -> unset", "SWIN_SERVE_THREADS" not in env)

    # MLU example values.
    docs = render(mlu_values, release="swin-serve-mlu")
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = env_of(dep)
    check("mlu: image swin-serve-mlu", c["image"] == "swin-serve-mlu:0.1.0")
    check("mlu: backend, device, plugin lib, model",
          env["SWIN_SERVE_BACKEND"] == "mlu" and env["SWIN_SERVE_DEVICE"] == "0"
          and env["SWIN_SERVE_PLUGIN_LIBS"] == "/opt/swin-serve/lib/libmagicmind_plugin.so"
          and env["SWIN_SERVE_MODEL"] == "/models/swinv2_tiny.magicmind")
    check("mlu: limits cambricon.com/mlu370: 1", c["resources"]["limits"].get("cambricon.com/mlu370") == 1)
    check("mlu: toleration cambricon.com/mlu:NoSchedule",
          {"key": "cambricon.com/mlu", "operator": "Exists", "effect": "NoSchedule"} in pod.get("tolerations", []))
    c2 = by_kind(render(merged(mlu_values, mlu__resourceName="cambricon.com/mlu", mlu__count=2)), "Deployment")[0]
    lim = c2["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    check("mlu: resourceName cambricon.com/mlu, count 2", lim.get("cambricon.com/mlu") == 2 and "cambricon.com/mlu370" not in lim)
    # The dynamic-smlu example exactly as the README installs it (values-mlu.yaml, then values-mlu-smlu.yaml).
    smlu_values = helm_values("values-mlu.yaml", "values-mlu-smlu.yaml")
    smlu_dep = by_kind(render(smlu_values, release="swin-serve-mlu"), "Deployment")[0]
    lim = smlu_dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    check("mlu dynamic-smlu example (-f values-mlu.yaml -f values-mlu-smlu.yaml): vcore and vmemory, no whole card",
          lim.get("cambricon.com/mlu370.smlu.vcore") == 50 and lim.get("cambricon.com/mlu370.smlu.vmemory") == 16
          and "cambricon.com/mlu370" not in lim and lim.get("memory") == "4Gi" and lim.get("cpu") == "4")
    check("mlu dynamic-smlu example: one instance, MLU env and toleration kept",
          env_of(smlu_dep)["SWIN_SERVE_INSTANCES"] == "1" and env_of(smlu_dep)["SWIN_SERVE_BACKEND"] == "mlu"
          and {"key": "cambricon.com/mlu", "operator": "Exists", "effect": "NoSchedule"}
          in smlu_dep["spec"]["template"]["spec"].get("tolerations", []))
    lim = by_kind(render(merged(mlu_values, mlu__extraResources={"cambricon.com/vmlu": 1})), "Deployment")[0][
        "spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    check("mlu: extraResources added next to the whole card",
          lim.get("cambricon.com/mlu370") == 1 and lim.get("cambricon.com/vmlu") == 1)
    pod2 = by_kind(render(merged(mlu_values, tolerations=[{"key": "x", "operator": "Exists"}],
                                 nodeSelector={"a": "b"}, mlu__nodeSelector={"c": "d"})), "Deployment")[0]["spec"]["template"]["spec"]
    check("mlu: user tolerations and nodeSelector kept and merged",
          len(pod2["tolerations"]) == 2 and pod2["nodeSelector"] == {"a": "b", "c": "d"})

    # Optional objects.
    docs = render({"podDisruptionBudget": {"enabled": True}, "autoscaling": {"enabled": True}, "service": {"headless": True}})
    dep = by_kind(docs, "Deployment")[0]
    check("pdb: minAvailable 1", by_kind(docs, "PodDisruptionBudget")[0]["spec"].get("minAvailable") == 1)
    check("hpa: targets the Deployment, replicas left to it",
          by_kind(docs, "HorizontalPodAutoscaler")[0]["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
          and "replicas" not in dep["spec"])
    check("headless service", any(s["spec"].get("clusterIP") == "None" for s in by_kind(docs, "Service")))
    docs = render({"podDisruptionBudget": {"enabled": True, "minAvailable": None, "maxUnavailable": 1}})
    check("pdb: maxUnavailable", by_kind(docs, "PodDisruptionBudget")[0]["spec"] .get("maxUnavailable") == 1)

    # TLS, mutual TLS, tokens, health port, reflection.
    # The example exactly as the README installs it (-f values-cpu.yaml -f values-cpu-tls.yaml).
    docs = render(cpu_tls_values)
    dep = by_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = env_of(dep)
    problems = secret_file_problems(dep, {
        "SWIN_SERVE_TLS_CERT": ("secret", "swin-serve-tls", "tls.crt"),
        "SWIN_SERVE_TLS_KEY": ("secret", "swin-serve-tls", "tls.key"),
        "SWIN_SERVE_TLS_CLIENT_CA": ("secret", "swin-serve-tls", "ca.crt"),
        "SWIN_SERVE_AUTH_TOKEN_FILE": ("secret", "swin-serve-tokens", "tokens"),
    })
    check("tls example: cert, key, client CA and tokens are files of whole, read-only Secret mounts (no subPath)",
          not problems, "; ".join(problems))
    check("tls example: client CA from the TLS Secret reuses its mount (the Secret is mounted once)",
          [v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "swin-serve-tls"] == ["tls"])
    check("tls example: startup, readiness and liveness (gRPC) on the health port 8086",
          not probe_problems(dep, 8086), "; ".join(probe_problems(dep, 8086)))
    check("tls example: health port listens (SWIN_SERVE_HEALTH_LISTEN) and is a container port",
          env.get("SWIN_SERVE_HEALTH_LISTEN") == "0.0.0.0:8086"
          and {"name": "health", "containerPort": 8086, "protocol": "TCP"} in c["ports"]
          and env["SWIN_SERVE_LISTEN"] == "0.0.0.0:50051")
    svc = by_kind(docs, "Service")[0]
    check("tls example: the Service exposes only the gRPC port, without appProtocol grpc",
          [p["targetPort"] for p in svc["spec"]["ports"]] == ["grpc"] and "appProtocol" not in svc["spec"]["ports"][0])
    check("tls example: reflection on (no SWIN_SERVE_NO_REFLECTION)", "SWIN_SERVE_NO_REFLECTION" not in env)
    check("tls example: the rest of values-cpu.yaml kept (2 replicas, download, 4 CPUs)",
          dep["spec"]["replicas"] == 2 and "SWIN_SERVE_MODEL" not in env and c["resources"]["limits"]["cpu"] == "4")
    # The checkers themselves: a subPath mount, a missing readOnly and a probe left on the TLS port are caught.
    broken = copy.deepcopy(dep)
    bc = broken["spec"]["template"]["spec"]["containers"][0]
    for m in bc["volumeMounts"]:
        if m["name"] == "tls":
            m["subPath"] = "tls.crt"
        if m["name"] == "auth":
            del m["readOnly"]
    bc["readinessProbe"]["grpc"]["port"] = 50051
    bp = secret_file_problems(broken, {
        "SWIN_SERVE_TLS_CERT": ("secret", "swin-serve-tls", "tls.crt"),
        "SWIN_SERVE_TLS_KEY": ("secret", "swin-serve-tls", "tls.key"),
        "SWIN_SERVE_TLS_CLIENT_CA": ("secret", "swin-serve-tls", "ca.crt"),
        "SWIN_SERVE_AUTH_TOKEN_FILE": ("secret", "swin-serve-tokens", "tokens"),
    })
    check("self-test: the mount checker catches subPath and a writable mount",
          any("subPath" in p for p in bp) and any("readOnly" in p for p in bp), "; ".join(bp))
    check("self-test: the probe checker catches a probe on the TLS port", bool(probe_problems(broken, 8086)))

    notes = render_notes(cpu_tls_values)
    check("tls example NOTES: grpcurl with -cacert/-authority/-cert/-key and a token, CLI with --tls-ca, no -plaintext",
          "grpcurl -cacert ca.crt -authority swin-serve.default.svc -cert client.crt -key client.key" in notes
          and 'authorization: Bearer $TOKEN' in notes and "--tls-ca ca.crt --tls-cert client.crt" in notes
          and "https://swin-serve.default.svc:50051" in notes and "-plaintext" not in notes)
    check("default NOTES: grpcurl -plaintext, no TLS", "grpcurl -plaintext localhost:50051 list" in render_notes(None)
          and "-cacert" not in render_notes(None))

    # TLS alone: no client CA, no tokens; a ConfigMap or another Secret as the client CA.
    tls_only = {"tls": {"enabled": True, "secretName": "srv"}}
    dep = by_kind(render(tls_only), "Deployment")[0]
    problems = secret_file_problems(dep, {"SWIN_SERVE_TLS_CERT": ("secret", "srv", "tls.crt"),
                                          "SWIN_SERVE_TLS_KEY": ("secret", "srv", "tls.key")})
    check("tls only: cert and key mounted, no client CA, no token file", not problems, "; ".join(problems))
    check("tls only: probes on the health port", not probe_problems(dep, 8086))
    check("tls only: the Service keeps the default appProtocol (NOTES warn about it)",
          by_kind(render(tls_only), "Service")[0]["spec"]["ports"][0].get("appProtocol") == "grpc"
          and 'service.appProtocol is "grpc"' in render_notes(tls_only))
    dep = by_kind(render(merged(tls_only, tls__clientCA={"configMap": "clients-ca", "key": "bundle.pem"})), "Deployment")[0]
    problems = secret_file_problems(dep, {"SWIN_SERVE_TLS_CERT": ("secret", "srv", "tls.crt"),
                                          "SWIN_SERVE_TLS_KEY": ("secret", "srv", "tls.key"),
                                          "SWIN_SERVE_TLS_CLIENT_CA": ("configMap", "clients-ca", "bundle.pem")})
    check("mtls: client CA from a ConfigMap (trust-manager), its own read-only mount", not problems, "; ".join(problems))
    dep = by_kind(render(merged(tls_only, tls__clientCA={"secretName": "clients-ca"})), "Deployment")[0]
    problems = secret_file_problems(dep, {"SWIN_SERVE_TLS_CERT": ("secret", "srv", "tls.crt"),
                                          "SWIN_SERVE_TLS_KEY": ("secret", "srv", "tls.key"),
                                          "SWIN_SERVE_TLS_CLIENT_CA": ("secret", "clients-ca", "ca.crt")})
    check("mtls: client CA from another Secret, its own read-only mount", not problems, "; ".join(problems))
    # Tokens without TLS: probes stay on the gRPC port (health needs no token).
    dep = by_kind(render({"auth": {"tokenSecret": {"name": "tok", "key": "t.txt"}}}), "Deployment")[0]
    problems = secret_file_problems(dep, {"SWIN_SERVE_AUTH_TOKEN_FILE": ("secret", "tok", "t.txt")})
    check("tokens without TLS: token file mounted, no TLS, probes on the gRPC port",
          not problems and not probe_problems(dep, 50051) and "SWIN_SERVE_HEALTH_LISTEN" not in env_of(dep),
          "; ".join(problems))
    # Health port: forced on without TLS, another port, IPv6 listen host, a non-default gRPC port.
    dep = by_kind(render({"server": {"healthPort": {"enabled": True}}}), "Deployment")[0]
    check("healthPort.enabled=true without TLS: probes on 8086, no TLS env",
          not probe_problems(dep, 8086) and env_of(dep).get("SWIN_SERVE_HEALTH_LISTEN") == "0.0.0.0:8086"
          and not secret_file_problems(dep, {}))
    dep = by_kind(render(merged(tls_only, server={"port": 6000, "listenHost": "[::]",
                                                  "healthPort": {"enabled": "auto", "port": 9000}})), "Deployment")[0]
    check("tls, gRPC port 6000, health port 9000, [::]: probes on 9000, both listen addresses",
          not probe_problems(dep, 9000) and env_of(dep)["SWIN_SERVE_HEALTH_LISTEN"] == "[::]:9000"
          and env_of(dep)["SWIN_SERVE_LISTEN"] == "[::]:6000")
    # Reflection off: the value clap accepts for a flag from the environment ("true"; "1" is refused).
    check("server.reflection=false: SWIN_SERVE_NO_REFLECTION=true",
          env_of(by_kind(render({"server": {"reflection": False}}), "Deployment")[0]).get("SWIN_SERVE_NO_REFLECTION") == "true")
    # MLU with TLS: the same probes and mounts.
    dep = by_kind(render(merged(mlu_values, tls={"enabled": True, "secretName": "srv"}), release="swin-serve-mlu"), "Deployment")[0]
    check("mlu with tls: probes on the health port, cert and key mounted",
          not probe_problems(dep, 8086) and not secret_file_problems(dep, {
              "SWIN_SERVE_TLS_CERT": ("secret", "srv", "tls.crt"), "SWIN_SERVE_TLS_KEY": ("secret", "srv", "tls.key")}))
    # tls.secretName alone (TLS switched off) stays plaintext, and NOTES say so.
    dep = by_kind(render({"tls": {"enabled": False, "secretName": "srv"}}), "Deployment")[0]
    check("tls.enabled=false with a secretName: plaintext, probes on the gRPC port",
          not secret_file_problems(dep, {}) and not probe_problems(dep, 50051))

    # Metrics: on by default (env + container port), no Service port, no ServiceMonitor, no annotations.
    docs = render(None)
    dep = by_kind(docs, "Deployment")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    check("metrics default: SWIN_SERVE_METRICS_LISTEN=0.0.0.0:9090 and container port metrics 9090",
          env_of(dep).get("SWIN_SERVE_METRICS_LISTEN") == "0.0.0.0:9090"
          and {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in c["ports"])
    check("metrics default: no metrics Service, no metrics port on the gRPC Service, no ServiceMonitor, no scrape annotations",
          [s["metadata"]["name"] for s in by_kind(docs, "Service")] == ["swin-serve"]
          and all(p["name"] != "metrics" for s in by_kind(docs, "Service") for p in s["spec"]["ports"])
          and not by_kind(docs, "ServiceMonitor")
          and "annotations" not in dep["spec"]["template"]["metadata"])
    dep = by_kind(render({"metrics": {"enabled": False}}), "Deployment")[0]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    check("metrics.enabled=false: no SWIN_SERVE_METRICS_LISTEN, no metrics port",
          "SWIN_SERVE_METRICS_LISTEN" not in env_of(dep) and [p["name"] for p in c["ports"]] == ["grpc"])
    dep = by_kind(render({"metrics": {"port": 9187}, "server": {"listenHost": "[::]"}}), "Deployment")[0]
    check("metrics.port 9187, [::]: listen address and container port follow",
          env_of(dep)["SWIN_SERVE_METRICS_LISTEN"] == "[::]:9187"
          and {"name": "metrics", "containerPort": 9187, "protocol": "TCP"} in dep["spec"]["template"]["spec"]["containers"][0]["ports"])
    sm_values = {"metrics": {"service": {"enabled": True},
                             "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "10s",
                                                "labels": {"release": "kps"}}},
                 "service": {"type": "LoadBalancer", "headless": True}}
    docs = render(sm_values)
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    check("metrics Service: separate, ClusterIP even with service.type LoadBalancer, only the metrics port",
          services.get("swin-serve-metrics", {}).get("spec", {}).get("type") == "ClusterIP"
          and [(p["name"], p["port"], p["targetPort"]) for p in services["swin-serve-metrics"]["spec"]["ports"]]
          == [("metrics", 9090, "metrics")]
          and all(p["name"] == "grpc" for n in ("swin-serve", "swin-serve-headless") for p in services[n]["spec"]["ports"]))
    problems = service_monitor_problems(docs)
    check("ServiceMonitor: CRD shape, selects only the metrics Service, port/path/targetPort consistent",
          not problems, "; ".join(problems))
    sm = by_kind(docs, "ServiceMonitor")[0]
    check("ServiceMonitor: interval, scrapeTimeout and labels from values",
          sm["spec"]["endpoints"][0].get("interval") == "15s" and sm["spec"]["endpoints"][0].get("scrapeTimeout") == "10s"
          and sm["metadata"]["labels"].get("release") == "kps")
    notes = render_notes(sm_values)
    check("metrics NOTES: no authentication, the metrics Service and ServiceMonitor, a curl; none without metrics",
          "NO AUTHENTICATION" in notes and "Service swin-serve-metrics (ClusterIP)" in notes
          and "ServiceMonitor swin-serve" in notes and "curl -s localhost:9090/metrics" in notes
          and "/metrics" not in render_notes({"metrics": {"enabled": False}}))
    check("ServiceMonitor off by default even with the metrics Service",
          not by_kind(render({"metrics": {"service": {"enabled": True}}}), "ServiceMonitor"))
    # The ServiceMonitor checker itself: a wrong port name, a selector that also matches the gRPC
    # Service, a misspelt field and a timeout above the interval are caught.
    for label, mutate in [
        ("port name", lambda d: d["spec"]["endpoints"][0].__setitem__("port", "http-metrics")),
        ("selector matching every Service", lambda d: d["spec"]["selector"]["matchLabels"].pop("swin-serve/metrics")),
        ("misspelt field", lambda d: d["spec"]["endpoints"][0].__setitem__("scrapeInterval", "30s")),
        ("scrapeTimeout > interval", lambda d: d["spec"]["endpoints"][0].__setitem__("scrapeTimeout", "1m")),
        ("duration without unit", lambda d: d["spec"]["endpoints"][0].__setitem__("interval", "30")),
    ]:
        broken_docs = copy.deepcopy(docs)
        mutate(by_kind(broken_docs, "ServiceMonitor")[0])
        check(f"self-test: the ServiceMonitor checker catches a {label}", bool(service_monitor_problems(broken_docs)))
    dep = by_kind(render({"metrics": {"podAnnotations": True, "port": 9187}, "podAnnotations": {"a": "b"}}), "Deployment")[0]
    check("metrics.podAnnotations: prometheus.io/scrape, port, path added to podAnnotations",
          dep["spec"]["template"]["metadata"].get("annotations") == {
              "a": "b", "prometheus.io/scrape": "true", "prometheus.io/port": "9187", "prometheus.io/path": "/metrics"})
    tls_metrics = render(merged(cpu_tls_values, metrics={"service": {"enabled": True}, "serviceMonitor": {"enabled": True}}))
    problems = service_monitor_problems(tls_metrics)
    check("metrics with the TLS example: plain HTTP scrape (scheme http) on its own port, probes unchanged",
          not problems and by_kind(tls_metrics, "ServiceMonitor")[0]["spec"]["endpoints"][0]["scheme"] == "http"
          and not probe_problems(by_kind(tls_metrics, "Deployment")[0], 8086), "; ".join(problems))
    # The HPA example exactly as the README installs it (-f values-cpu.yaml -f values-cpu-hpa.yaml).
    hpa_docs = render(helm_values("values-cpu.yaml", "values-cpu-hpa.yaml"))
    hpa = by_kind(hpa_docs, "HorizontalPodAutoscaler")[0]
    pods_metrics = sorted(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    check("hpa example: Pods metrics swin_queue_slots_in_use and swin_queue_wait_seconds, no CPU metric, behavior",
          pods_metrics == ["swin_queue_slots_in_use", "swin_queue_wait_seconds"]
          and not any(m["type"] == "Resource" for m in hpa["spec"]["metrics"])
          and hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
          and hpa["spec"]["scaleTargetRef"]["name"] == by_kind(hpa_docs, "Deployment")[0]["metadata"]["name"]
          and "replicas" not in by_kind(hpa_docs, "Deployment")[0]["spec"])
    problems = service_monitor_problems(hpa_docs)
    check("hpa example: ServiceMonitor consistent (what prometheus-adapter reads)", not problems, "; ".join(problems))
    readme = (DEPLOY / "README.md").read_text()
    check("hpa example: deploy/README.md has a prometheus-adapter rule for each Pods metric and the metric names exist",
          all(f'as: "{n}"' in readme for n in pods_metrics)
          and all(n in readme for n in ("swin_queue_duration_seconds_sum", "swin_queue_duration_seconds_count")))
    main_readme = DEPLOY.parent / "README.md"
    if main_readme.exists():
        text = main_readme.read_text()
        check("hpa example: the server exports swin_queue_slots_in_use and swin_queue_duration_seconds (README.md Metrics)",
              "`swin_queue_slots_in_use`" in text and "`swin_queue_duration_seconds`" in text)
    hpa = by_kind(render({"autoscaling": {"enabled": True}}), "HorizontalPodAutoscaler")[0]
    check("hpa default: CPU 70% only, no behavior",
          hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
              "type": "Utilization", "averageUtilization": 70}}}] and "behavior" not in hpa["spec"])

    # The chart refuses values that cannot work.
    refusals = {
        "backend=tpu": {"backend": "tpu"},
        "mlu with download": {"backend": "mlu"},
        "mlu with random weights": {"backend": "mlu", "model": {"source": "random"}},
        "mlu without any MLU resource": {"backend": "mlu", "model": {"source": "pvc", "pvc": {"claimName": "m"}},
                                         "mlu": {"resourceName": ""}},
        "extraResources name without a domain (schema)": {"mlu": {"extraResources": {"vcore": 1}}},
        "pvc without claimName": {"model": {"source": "pvc"}},
        "grace period <= drain delay": {"terminationGracePeriodSeconds": 5, "server": {"drainDelaySecs": 5}},
        "pdb with both fields": {"podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}},
        "instances 0 (schema)": {"server": {"instances": 0}},
        "model.source typo (schema)": {"model": {"source": "s3"}},
        "tls.enabled without tls.secretName": {"tls": {"enabled": True}},
        "tls.enabled with healthPort.enabled=false (probes could not work)":
            {"tls": {"enabled": True, "secretName": "s"}, "server": {"healthPort": {"enabled": False}}},
        "health port = gRPC port": {"tls": {"enabled": True, "secretName": "s"}, "server": {"healthPort": {"port": 50051}}},
        "health port = gRPC port, forced on without TLS": {"server": {"port": 7000, "healthPort": {"enabled": True, "port": 7000}}},
        "tls.clientCA without tls.enabled (every client accepted, in plaintext)": {"tls": {"clientCA": {"secretName": "ca"}}},
        "tls.clientCA with both secretName and configMap":
            {"tls": {"enabled": True, "secretName": "s", "clientCA": {"secretName": "a", "configMap": "b"}}},
        "tls.secretName not a DNS name (schema)": {"tls": {"enabled": True, "secretName": "My_Secret"}},
        "tls misspelt field tls.secret (schema)": {"tls": {"enabled": True, "secret": "s"}},
        "tls.enabled as a string (schema)": {"tls": {"enabled": "yes", "secretName": "s"}},
        "healthPort.enabled not auto/true/false (schema)": {"server": {"healthPort": {"enabled": "always"}}},
        "healthPort.port 0 (schema)": {"server": {"healthPort": {"port": 0}}},
        "auth token key empty (schema)": {"auth": {"tokenSecret": {"name": "t", "key": ""}}},
        "auth token key with a slash (schema)": {"auth": {"tokenSecret": {"name": "t", "key": "a/b"}}},
        "reflection as a string (schema)": {"server": {"reflection": "false"}},
        "serviceMonitor without metrics": {"metrics": {"enabled": False, "service": {"enabled": True},
                                                       "serviceMonitor": {"enabled": True}}},
        "serviceMonitor without the metrics Service": {"metrics": {"serviceMonitor": {"enabled": True}}},
        "metrics Service without metrics": {"metrics": {"enabled": False, "service": {"enabled": True}}},
        "scrape annotations without metrics": {"metrics": {"enabled": False, "podAnnotations": True}},
        "metrics.port = gRPC port": {"metrics": {"port": 50051}},
        "metrics.port = health port with TLS": {"tls": {"enabled": True, "secretName": "s"}, "metrics": {"port": 8086}},
        "serviceMonitor interval without a unit (schema)": {"metrics": {"serviceMonitor": {"interval": "30"}}},
        "serviceMonitor label value not a string (schema)": {"metrics": {"serviceMonitor": {"labels": {"release": 1}}}},
        "metrics misspelt field metrics.serviceMonitors (schema)": {"metrics": {"serviceMonitors": {"enabled": True}}},
        "podAnnotations as a string (schema)": {"metrics": {"podAnnotations": "true"}},
        "autoscaling without any metric": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}},
        "autoscaling minReplicas > maxReplicas": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "autoscaling metric of an unknown type (schema)": {"autoscaling": {"metrics": [{"type": "Custom"}]}},
    }
    for label, vals in refusals.items():
        try:
            render(vals)
            check(f"refused: {label}", False, "rendered without error")
        except helm_python.HelmError as e:
            check(f"refused: {label}", True)
            lines = str(e).splitlines()
            # A schema refusal names the offending value on a later line ("- at '/tls/enabled': ...").
            shown = next((l.strip() for l in lines if " at '/" in l), lines[0])
            print(f"        ({shown[:150]})")

    # Plain manifests up to date with the chart.
    r = subprocess.run([sys.executable, str(DEPLOY / "k8s" / "render.py"), "--check"], capture_output=True, text=True)
    check("k8s/cpu.yaml, k8s/mlu.yaml and k8s/cpu-tls.yaml match the chart", r.returncode == 0, r.stderr.strip())

    # Kubernetes OpenAPI schemas.
    try:
        import kubernetes_validate
    except ImportError:
        print("note: kubernetes-validate not installed; schema validation skipped")
    else:
        cases = {
            "k8s/cpu.yaml": list(yaml.safe_load_all((DEPLOY / "k8s" / "cpu.yaml").read_text())),
            "k8s/mlu.yaml": list(yaml.safe_load_all((DEPLOY / "k8s" / "mlu.yaml").read_text())),
            "k8s/cpu-tls.yaml": list(yaml.safe_load_all((DEPLOY / "k8s" / "cpu-tls.yaml").read_text())),
            "mlu, TLS, client CA from a ConfigMap, tokens, no reflection, health port 9000": render(merged(
                mlu_values, tls={"enabled": True, "secretName": "srv", "clientCA": {"configMap": "ca", "key": "ca.pem"}},
                auth={"tokenSecret": {"name": "tok"}}, server={"reflection": False, "healthPort": {"port": 9000}})),
            "cpu, TLS, client CA from another Secret, headless Service": render({
                "tls": {"enabled": True, "secretName": "srv", "clientCA": {"secretName": "clients"}},
                "service": {"headless": True}}),
            "values-mlu.yaml + values-mlu-smlu.yaml": render(helm_values("values-mlu.yaml", "values-mlu-smlu.yaml")),
            "values-cpu.yaml + values-cpu-hpa.yaml (HPA on Pods metrics, metrics Service)": render(
                helm_values("values-cpu.yaml", "values-cpu-hpa.yaml")),
            "HPA with CPU, an External and an Object metric, scrape annotations": render({
                "metrics": {"podAnnotations": True},
                "autoscaling": {"enabled": True, "metrics": [
                    {"type": "External", "external": {
                        "metric": {"name": "swin_queue_wait_seconds", "selector": {"matchLabels": {"service": "swin-serve-metrics"}}},
                        "target": {"type": "Value", "value": "200m"}}},
                    {"type": "Object", "object": {
                        "describedObject": {"apiVersion": "v1", "kind": "Service", "name": "swin-serve-metrics"},
                        "metric": {"name": "swin_queue_slots_in_use"}, "target": {"type": "AverageValue", "averageValue": "16"}}}],
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}}),
            "chart, all optional objects": render(merged(mlu_values, podDisruptionBudget={"enabled": True},
                                                         autoscaling={"enabled": True}, service={"headless": True, "port": 50051},
                                                         metrics={"service": {"enabled": True}, "serviceMonitor": {"enabled": True},
                                                                  "podAnnotations": True},
                                                         server={"labels": {"configMap": "l", "key": "k"}, "imgSize": 256})),
        }
        broken_hpa = copy.deepcopy(by_kind(cases["values-cpu.yaml + values-cpu-hpa.yaml (HPA on Pods metrics, metrics Service)"],
                                           "HorizontalPodAutoscaler")[0])
        broken_hpa["spec"]["metrics"][0]["pods"]["target"]["averageUtilisation"] = 50
        try:
            kubernetes_validate.validate(broken_hpa, K8S_VERSIONS[-1], strict=True)
            check("self-test: kubernetes-validate rejects a misspelt HPA metric target field", False, "accepted")
        except Exception:
            check("self-test: kubernetes-validate rejects a misspelt HPA metric target field", True)
        for version in K8S_VERSIONS:
            for label, docs in cases.items():
                errors = []
                for d in filter(None, docs):
                    if d.get("kind") == "ServiceMonitor":
                        continue  # a CRD: not in the Kubernetes schemas, checked by service_monitor_problems
                    try:
                        kubernetes_validate.validate(d, version, strict=True)
                    except Exception as e:  # ValidationError, SchemaNotFoundError, ...
                        errors.append(f"{d.get('kind')}: {str(e).splitlines()[0]}")
                check(f"kubernetes {version} schema (strict): {label}", not errors, "; ".join(errors))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
