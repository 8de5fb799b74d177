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
    for label, vals in [("defaults", None), ("values-cpu", cpu_values), ("values-mlu", mlu_values),
                        ("values-mlu + values-mlu-smlu", smlu_lint)]:
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
    check("default: livenessProbe is tcpSocket", "tcpSocket" in c["livenessProbe"] and "grpc" not in c["livenessProbe"])
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
    svc = by_kind(docs, "Service")[0]
    check("service: selects the pods, targets port name grpc",
          svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
          and svc["spec"]["ports"][0]["targetPort"] == "grpc")

    # Every env var the chart sets must be one the binary reads (src/main.rs), plus RUST_LOG and HOME.
    known = {
        "SWIN_SERVE_MODEL", "SWIN_SERVE_RANDOM_WEIGHTS", "SWIN_SERVE_LISTEN", "SWIN_SERVE_INSTANCES",
        "SWIN_SERVE_THREADS", "SWIN_SERVE_MAX_BATCH", "SWIN_SERVE_QUEUE_CAPACITY", "SWIN_SERVE_LABELS",
        "SWIN_SERVE_BACKEND", "SWIN_SERVE_PLUGIN_LIBS", "SWIN_SERVE_DEVICE", "SWIN_SERVE_MODEL_URL",
        "SWIN_SERVE_CACHE", "SWIN_SERVE_MAX_MESSAGE_BYTES", "SWIN_SERVE_MAX_IMAGE_PIXELS",
        "SWIN_SERVE_MAX_BATCH_IMAGES", "SWIN_SERVE_DRAIN_DELAY_SECS", "SWIN_SERVE_IMG_SIZE",
        "SWIN_SERVE_WINDOW_SIZE", "RUST_LOG", "HOME",
    }
    everything = merged(mlu_values, server__imgSize=256, server__windowSize=8,
                        server__labels={"configMap": "labels", "key": "labels.txt"})
    all_env = set(env_of(by_kind(render(everything), "Deployment")[0])) | set(env)
    check("env: only variables the binary reads", all_env <= known, str(all_env - known))
    main_rs = DEPLOY.parent / "src" / "main.rs"
    if main_rs.exists():
        src = main_rs.read_text()
        missing = sorted(v for v in all_env - {"RUST_LOG", "HOME"} if f'"{v}"' not in src)
        check("env: every variable is declared in src/main.rs", not missing, str(missing))

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
    }
    for label, vals in refusals.items():
        try:
            render(vals)
            check(f"refused: {label}", False, "rendered without error")
        except helm_python.HelmError as e:
            check(f"refused: {label}", True)
            print(f"        ({str(e).splitlines()[0][:150]})")

    # Plain manifests up to date with the chart.
    r = subprocess.run([sys.executable, str(DEPLOY / "k8s" / "render.py"), "--check"], capture_output=True, text=True)
    check("k8s/cpu.yaml and k8s/mlu.yaml match the chart", r.returncode == 0, r.stderr.strip())

    # Kubernetes OpenAPI schemas.
    try:
        import kubernetes_validate
    except ImportError:
        print("note: kubernetes-validate not installed; schema validation skipped")
    else:
        cases = {
            "k8s/cpu.yaml": list(yaml.safe_load_all((DEPLOY / "k8s" / "cpu.yaml").read_text())),
            "k8s/mlu.yaml": list(yaml.safe_load_all((DEPLOY / "k8s" / "mlu.yaml").read_text())),
            "values-mlu.yaml + values-mlu-smlu.yaml": render(helm_values("values-mlu.yaml", "values-mlu-smlu.yaml")),
            "chart, all optional objects": render(merged(mlu_values, podDisruptionBudget={"enabled": True},
                                                         autoscaling={"enabled": True}, service={"headless": True, "port": 50051},
                                                         server={"labels": {"configMap": "l", "key": "k"}, "imgSize": 256})),
        }
        for version in K8S_VERSIONS:
            for label, docs in cases.items():
                errors = []
                for d in filter(None, docs):
                    try:
                        kubernetes_validate.validate(d, version, strict=True)
                    except Exception as e:  # ValidationError, SchemaNotFoundError, ...
                        errors.append(f"{d.get('kind')}: {str(e).splitlines()[0]}")
                check(f"kubernetes {version} schema (strict): {label}", not errors, "; ".join(errors))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
