#!/usr/bin/env python3
"""Offline checks of deploy/kserve/*.yaml: KServe CRD schemas, Kubernetes schemas, and what KServe does.

    python3 -m venv /tmp/deploy-venv
    /tmp/deploy-venv/bin/pip install -r deploy/requirements.txt
    /tmp/deploy-venv/bin/python deploy/kserve/check.py

No cluster, no network. Four layers, each with negative self-tests at the end (a broken copy of a
manifest must be refused by the layer it targets, so every layer is shown to be able to fail):

1. KServe schema, strict: every document is walked against the KServe Python SDK's generated model
   classes (`kserve.models`: V1alpha1ClusterServingRuntime, V1beta1InferenceService, ...; their
   `openapi_types` / `attribute_map` are generated from the CRDs' OpenAPI), down through the
   Kubernetes client's classes (V1Container, V1Probe, ...) they refer to. An unknown field, a wrong
   type (string for integer, scalar for list, ...), a malformed quantity or a missing required field
   is an error, and so is a field the KServe v0.16.0 CRDs lack. KServe's objects are also built with
   their classes, so the SDK's own required-field checks run.
2. Kubernetes schema, strict: KServe's merge is reproduced for each InferenceService (runtime
   container + predictor.model, args appended, `{{.Name}}` filled in, pod fields, the /mnt/models
   mount) and the resulting Pod is validated with kubernetes-validate for several Kubernetes
   versions (unknown fields rejected). Also each runtime's Pod on its own.
3. KServe semantics: runtime selection (modelFormat / autoSelect / protocolVersion), the container
   name KServe looks for, one port named h2c, gRPC probes on it, storageUri schemes, the
   deploymentStrategy / deployment-mode rule of KServe's webhook, pod fields Knative refuses by
   default, name formats, template fields, extended resources after the merge.
4. swin-serve: the args (the runtime's and an InferenceService's) are flags `swin-serve serve`
   declares (src/cli/serve_args.rs), each with a value; --listen matches the port, --model /mnt/models,
   --model-name {{.Name}}, MLU flags and resources, the image, non-root.

Prints `N passed, N failed`; exits 1 on any failure, 2 when a needed package is missing.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path


def _import_kserve_models():
    """kserve.models without kserve/__init__.py, which starts the model-server stack (fastapi, grpc,
    pandas, ...): the generated classes need only kserve.configuration (six, urllib3)."""
    import importlib.util
    import types
    if "kserve" not in sys.modules:
        spec = importlib.util.find_spec("kserve")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("No module named 'kserve'")
        pkg = types.ModuleType("kserve")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        sys.modules["kserve"] = pkg
    import kserve.models
    from kserve.configuration import Configuration
    return kserve.models, Configuration


try:
    import yaml
    import kubernetes.client.models as k8s_models
    from kubernetes.client import Configuration as K8sConfiguration
    kserve_models, KServeConfiguration = _import_kserve_models()
except ImportError as e:  # pragma: no cover
    print(f"missing package ({e}): pip install -r deploy/requirements.txt", file=sys.stderr)
    sys.exit(2)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MAIN_RS = REPO / "src" / "cli" / "serve_args.rs"
K8S_VERSIONS = ["1.25.0", "1.27.0", "1.30.0", "1.33.0"]  # the oldest kubernetes-validate ships is 1.25

# (apiVersion, kind) -> SDK class name. Anything else in deploy/kserve is an error.
ROOTS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
# Type names the SDK uses that its packages do not define under that name.
TYPE_ALIASES = {
    "K8sIoApiAppsV1DeploymentStrategy": "V1DeploymentStrategy",
    "K8sIoApiAutoscalingV2HorizontalPodAutoscalerBehavior": "V2HorizontalPodAutoscalerBehavior",
}
# Required by the CRDs but not marked required in the generated SDK (class -> python attributes).
EXTRA_REQUIRED = {
    "V1beta1ModelFormat": ["name"],
    "V1alpha1SupportedModelFormat": ["name"],
}
# Fields the SDK (0.21) has that the CRDs of KServe v0.16.0, the oldest release these manifests
# target, do not (found by comparing the two): refused, so the manifests keep working there.
NOT_IN_OLDEST_CRDS = {
    "V1beta1InferenceServiceSpec": {"canary", "tracing"},
    "V1beta1PredictorSpec": {"ephemeralContainers", "hostnameOverride", "name", "schedulingGroup",
                             "storageContainerName"},
    "V1beta1ModelSpec": {"confidential", "restartPolicyRules"},
    "V1alpha1ServingRuntimeSpec": {"resourceClaims", "schedulerName"},
}
# Fields the generated classes type as `str` / `Dict[str, str]` / `object` that are Kubernetes
# resource.Quantity (int, float or a quantity string).
QUANTITY_FIELDS = {
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1EmptyDirVolumeSource", "size_limit"), ("V1beta1PredictorSpec", "overhead"),
    ("V1PodSpec", "overhead"),
}
# Fields typed `object` that are IntOrString.
INT_OR_STRING_FIELDS = {
    ("V1TCPSocketAction", "port"), ("V1HTTPGetAction", "port"),
    ("V1RollingUpdateDeployment", "max_surge"), ("V1RollingUpdateDeployment", "max_unavailable"),
}
QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # KServe's IsvcNameFmt
PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
STORAGE_SCHEMES = ("pvc://", "s3://", "gs://", "https://", "http://", "hdfs://", "webhdfs://", "hf://", "oci://")
DEPLOYMENT_MODES = {"Standard", "RawDeployment", "Knative", "Serverless"}
KSERVE_CONTAINER = "kserve-container"  # the container KServe merges predictor.model into
MODEL_DIR = "/mnt/models"  # where KServe puts the storageUri's files
APP_UID = 10001  # deploy/Dockerfile, deploy/Dockerfile.mlu
PLUGIN_LIB = "/opt/swin-serve/lib/libmagicmind_plugin.so"
IMAGE_REPOS = {"cpu": "swin-serve", "mlu": "swin-serve-mlu"}
MLU_RESOURCES = ("cambricon.com/mlu370", "cambricon.com/mlu", "cambricon.com/mlu370.smlu.vcore")
# predictor.model fields that are KServe's, not the container's.
MODEL_ONLY_FIELDS = {"modelFormat", "runtime", "protocolVersion", "storageUri", "storage", "runtimeVersion"}
# predictor fields that configure KServe (ComponentExtensionSpec etc.), not the pod.
PREDICTOR_ONLY_FIELDS = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
    "annotations", "deploymentStrategy", "model", "workerSpec", "storageUris", "storageContainerName",
    "name", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
    "lightgbm", "paddle", "schedulingGroup",
}

CONF = {"kserve": KServeConfiguration(), "k8s": K8sConfiguration()}


# --------------------------------------------------------------------------------------------
# Layer 1: strict walk over the SDK's generated classes.

def resolve(type_name: str):
    name = TYPE_ALIASES.get(type_name, type_name)
    cls = getattr(kserve_models, name, None)
    if cls is not None and hasattr(cls, "openapi_types"):
        return cls, "kserve"
    cls = getattr(k8s_models, name, None)
    if cls is not None and hasattr(cls, "openapi_types"):
        return cls, "k8s"
    return None, None


def type_name_of(value) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def sdk_walk(type_str: str, value, path: str, errors: list, quantity: bool = False, int_or_string: bool = False):
    """Check `value` against the SDK type string; return the value to build the parent with."""
    type_str = type_str.strip()
    m = re.fullmatch(r"(?:list|List)\[(.*)\]", type_str)
    if m:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type_name_of(value)}")
            return None
        return [sdk_walk(m.group(1), v, f"{path}[{i}]", errors, quantity) for i, v in enumerate(value)]
    m = re.fullmatch(r"dict\(str, (.*)\)|Dict\[str, (.*)\]", type_str)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type_name_of(value)}")
            return None
        inner = m.group(1) or m.group(2)
        return {k: sdk_walk(inner, v, f"{path}.{k}", errors, quantity) for k, v in value.items()}
    if quantity or type_str == "ResourceQuantity":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not QUANTITY_RE.match(str(value)):
            errors.append(f"{path}: not a Kubernetes quantity: {value!r}")
        return str(value)
    if int_or_string:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errors.append(f"{path}: expected an integer or a string, got {type_name_of(value)}")
        return value
    if type_str == "str":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {type_name_of(value)} {value!r}")
        return value
    if type_str == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {type_name_of(value)} {value!r}")
        return value
    if type_str == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: expected a number, got {type_name_of(value)} {value!r}")
        return value
    if type_str == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {type_name_of(value)} {value!r}")
        return value
    if type_str in ("datetime", "date", "V1Time"):
        if not isinstance(value, str):
            errors.append(f"{path}: expected a timestamp string, got {type_name_of(value)}")
        return None
    if type_str == "object":
        return value
    cls, origin = resolve(type_str)
    if cls is None:
        errors.append(f"{path}: the SDK cannot describe type {type_str} (not checked: fail closed)")
        return None
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_str}), got {type_name_of(value)} {value!r}")
        return None
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    kwargs = {}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            close = [k for k in by_json if k.lower() == str(key).lower()]
            hint = f" (did you mean {close[0]}?)" if close else ""
            errors.append(f"{path}.{key}: unknown field for {type_str}{hint}")
            continue
        if key in NOT_IN_OLDEST_CRDS.get(cls.__name__, ()):
            errors.append(f"{path}.{key}: not in KServe v0.16.0's CRDs (the oldest KServe these files target)")
            continue
        if v is None:
            continue
        kwargs[attr] = sdk_walk(cls.openapi_types[attr], v, f"{path}.{key}", errors,
                                quantity=(cls.__name__, attr) in QUANTITY_FIELDS,
                                int_or_string=(cls.__name__, attr) in INT_OR_STRING_FIELDS)
    required = list(EXTRA_REQUIRED.get(cls.__name__, []))
    pydantic = hasattr(cls, "model_fields")
    if pydantic:
        # The Kubernetes client's classes (kubernetes >= 35) are pydantic models: their fields say
        # what is required. (Not built: they want quantities as strings, YAML has 1 and 4Gi alike.)
        required += [a for a, f in cls.model_fields.items() if f.is_required()]
    for attr in required:
        if value.get(cls.attribute_map[attr]) is None:
            errors.append(f"{path}: missing required field {cls.attribute_map[attr]}")
    if pydantic:
        return kwargs
    # The classic generated constructor (KServe's; older Kubernetes clients) runs the SDK's own
    # checks: required fields, enums where it has them.
    try:
        return cls(**kwargs, local_vars_configuration=CONF[origin])
    except (ValueError, TypeError) as e:
        msg = str(e)
        for attr, key in cls.attribute_map.items():
            msg = msg.replace(f"`{attr}`", f"`{key}`")
        errors.append(f"{path}: {msg}")
        return None


def schema_errors(doc) -> list[str]:
    if not isinstance(doc, dict):
        return [f"document is a {type_name_of(doc)}, not an object"]
    root = ROOTS.get((doc.get("apiVersion"), doc.get("kind")))
    if root is None:
        return [f"apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} is not a KServe resource this checker knows"]
    errors: list[str] = []
    sdk_walk(root, doc, doc["kind"], errors)
    if not (doc.get("metadata") or {}).get("name"):
        errors.append(f"{doc['kind']}.metadata.name: missing")
    if not isinstance(doc.get("spec"), dict):
        errors.append(f"{doc['kind']}.spec: missing")
    return errors


# --------------------------------------------------------------------------------------------
# Layer 3 + 4: KServe semantics and swin-serve's flags.

def serve_flags() -> set[str] | None:
    """Long options of `swin-serve serve` (struct ServeArgs in src/cli/serve_args.rs, aliases included), or None without it."""
    if not MAIN_RS.exists():
        return None
    src = MAIN_RS.read_text()
    m = re.search(r"struct ServeArgs\s*\{(.*?)\n\}", src, re.S)
    if not m:
        return None
    flags = set()
    for attr, field in re.findall(r"#\[arg\((.*?)\)\]\s*(?:///[^\n]*\n\s*|#\[[^\n]*\]\s*)*(?:pub\s+)?(\w+)\s*:", m.group(1), re.S):
        explicit = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
        if explicit:
            flags.add(explicit.group(1))
        elif re.search(r"\blong\b", attr):
            flags.add(field.replace("_", "-"))
        flags.update(re.findall(r'\b(?:visible_)?alias\s*=\s*"([^"]+)"', attr))
    return flags


def parse_args(args: list) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """`serve --a x --b=y` -> (positionals, {a: [x], b: [y]}, problems). Every serve flag takes a value."""
    positionals, flags, problems = [], {}, []
    i = 0
    while i < len(args):
        a = str(args[i])
        if a.startswith("--"):
            name, eq, val = a[2:].partition("=")
            if not eq:
                if i + 1 >= len(args) or str(args[i + 1]).startswith("--"):
                    problems.append(f"--{name} has no value")
                    val = ""
                else:
                    val = str(args[i + 1])
                    i += 1
            flags.setdefault(name, []).append(val)
        else:
            positionals.append(a)
        i += 1
    return positionals, flags, problems


TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}")
TEMPLATE_OK = re.compile(r"\s*\.(Name|Namespace|Labels\.[A-Za-z_]\w*|Annotations\.[A-Za-z_]\w*)\s*")


def runtime_errors(rt: dict, flags_known: set[str] | None) -> list[str]:
    errs = []
    name = rt["metadata"]["name"]
    spec = rt["spec"]
    if not DNS1123_LABEL.match(name):
        errs.append(f"name {name!r} is not a DNS-1123 label")
    formats = spec.get("supportedModelFormats") or []
    if not formats:
        errs.append("no supportedModelFormats: no InferenceService can use it")
    seen = set()
    for f in formats:
        key = (f.get("name"), f.get("version"))
        if key in seen:
            errs.append(f"supportedModelFormats lists {key} twice")
        seen.add(key)
    protocols = spec.get("protocolVersions") or []
    if protocols != ["grpc-v2"]:
        errs.append(f"protocolVersions {protocols}: swin-serve speaks OIP over gRPC only ([grpc-v2])")
    containers = spec.get("containers") or []
    main = [c for c in containers if c.get("name") == KSERVE_CONTAINER]
    if len(main) != 1:
        return errs + [f"needs exactly one container named {KSERVE_CONTAINER} (KServe merges predictor.model into it)"]
    c = main[0]
    blob = json.dumps(c)
    for t in TEMPLATE_RE.findall(blob):
        if not TEMPLATE_OK.fullmatch(t):
            errs.append(f"template {{{{{t}}}}}: KServe fills in ObjectMeta fields (.Name, .Namespace, .Labels.x, .Annotations.x)")
    ports = c.get("ports") or []
    if len(ports) != 1 or ports[0].get("name") != "h2c" or ports[0].get("protocol", "TCP") != "TCP":
        errs.append(f"ports {ports}: need exactly one TCP port named h2c (Knative allows one port; h2c = gRPC)")
        port = None
    else:
        port = ports[0].get("containerPort")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c.get(probe)
        if not p or "grpc" not in p:
            errs.append(f"{probe}: missing or not a gRPC (grpc.health.v1) probe")
        elif p["grpc"].get("port") != port:
            errs.append(f"{probe}: gRPC port {p['grpc'].get('port')} is not the h2c port {port}")
        elif probe == "livenessProbe" and p["grpc"].get("service", "") != "swin-serve.liveness":
            errs.append(f"{probe}: health service {p['grpc'].get('service')!r}: liveness must check "
                        "'swin-serve.liveness' (NOT_SERVING only for a hung engine; '' drains)")
        elif probe != "livenessProbe" and p["grpc"].get("service", "") not in ("", "swin.v1.Classifier"):
            errs.append(f"{probe}: health service {p['grpc'].get('service')!r} is not one the server reports")
    live = c.get("livenessProbe") or {}
    if live.get("periodSeconds", 10) * live.get("failureThreshold", 3) < 30:
        errs.append("livenessProbe: fails in under 30 s (the grace period): a drain (NOT_SERVING) could restart it")

    # swin-serve's command line.
    args = c.get("args") or []
    if c.get("command"):
        errs.append("command set: the image's entrypoint (swin-serve) should stay")
    positionals, flags, problems = parse_args(args)
    errs += problems
    if positionals != ["serve"]:
        errs.append(f"args must be `serve` and flags, got positionals {positionals}")
    if flags_known is not None:
        unknown = sorted(set(flags) - flags_known)
        if unknown:
            errs.append(f"flags that `swin-serve serve` does not declare (src/cli/serve_args.rs): {unknown}")
    if flags.get("model") != [MODEL_DIR]:
        errs.append(f"--model must be {MODEL_DIR} (where KServe puts the storageUri), got {flags.get('model')}")
    if flags.get("model-name") != ["{{.Name}}"]:
        errs.append(f"--model-name must be {{{{.Name}}}} (the InferenceService name), got {flags.get('model-name')}")
    listen = (flags.get("listen") or [""])[-1]
    if not re.fullmatch(r"(0\.0\.0\.0|\[::\]):(\d+)", listen) or int(listen.rsplit(":", 1)[1]) != port:
        errs.append(f"--listen {listen!r} must be 0.0.0.0:<h2c port {port}> (or [::])")
    metrics = (flags.get("metrics-listen") or [None])[-1]
    ann = spec.get("annotations") or {}
    if metrics:
        mport = int(metrics.rsplit(":", 1)[1])
        if mport == port:
            errs.append("--metrics-listen uses the gRPC port")
        if mport in (8012, 8013, 8022, 9090, 9091, 8008):
            errs.append(f"--metrics-listen port {mport} is reserved by Knative's queue-proxy")
        if str(ann.get("prometheus.kserve.io/port")) != str(mport):
            errs.append("annotation prometheus.kserve.io/port does not match --metrics-listen")
    if port in (8012, 8013, 8022, 9090, 9091, 8008):
        errs.append(f"port {port} is reserved by Knative's queue-proxy")
    backend = (flags.get("backend") or ["cpu"])[-1]
    repo = str(c.get("image", "")).rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    if repo != IMAGE_REPOS.get(backend):
        errs.append(f"image {c.get('image')!r} is not the {backend} image ({IMAGE_REPOS.get(backend)})")
    limits = (c.get("resources") or {}).get("limits") or {}
    if backend == "mlu":
        if flags.get("plugin-lib") != [PLUGIN_LIB]:
            errs.append(f"--backend mlu needs --plugin-lib {PLUGIN_LIB}")
        if not any(r in limits for r in MLU_RESOURCES):
            errs.append(f"--backend mlu without an MLU resource limit ({', '.join(MLU_RESOURCES)})")
        if "cambricon.com/mlu370" in limits and any(k.startswith("cambricon.com/mlu370.smlu.") for k in limits):
            errs.append("both a whole card and dynamic-smlu shares requested")
        if not any(t.get("key") == "cambricon.com/mlu" and t.get("effect") == "NoSchedule"
                   for t in spec.get("tolerations") or []):
            errs.append("no toleration for the MLU nodes' cambricon.com/mlu:NoSchedule taint")
        if not any(f.get("name") == "magicmind" for f in formats):
            errs.append("the MLU runtime should serve modelFormat magicmind")
    else:
        if any(k.startswith("cambricon.com/") for k in limits):
            errs.append("CPU runtime requests an MLU resource")
        if "plugin-lib" in flags:
            errs.append("--plugin-lib without --backend mlu")
    if not (c.get("resources") or {}).get("requests") or not limits.get("memory"):
        errs.append("resources: requests and a memory limit expected")

    sc = c.get("securityContext") or {}
    if not (sc.get("runAsNonRoot") is True and sc.get("runAsUser") == APP_UID
            and sc.get("allowPrivilegeEscalation") is False and "ALL" in ((sc.get("capabilities") or {}).get("drop") or [])):
        errs.append(f"securityContext: need runAsNonRoot, runAsUser {APP_UID}, no privilege escalation, drop ALL")
    if sc.get("readOnlyRootFilesystem"):
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
        vols = {v.get("name") for v in spec.get("volumes") or []}
        env = {e.get("name"): e.get("value") for e in c.get("env") or []}
        if mounts.get("/tmp") not in vols or env.get("HOME") != "/tmp":
            errs.append("readOnlyRootFilesystem: /tmp needs a volume and HOME=/tmp")
    return errs


def deep_merge(base, over):
    """Strategic-merge-like: maps merge key by key, lists of named items merge by name, others replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = deep_merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, list):
        for key in ("name", "mountPath", "containerPort"):
            if all(isinstance(x, dict) and key in x for x in base + over):
                out = [copy.deepcopy(x) for x in base]
                for item in over:
                    hit = next((i for i, x in enumerate(out) if x[key] == item[key]), None)
                    if hit is None:
                        out.append(copy.deepcopy(item))
                    else:
                        out[hit] = deep_merge(out[hit], item)
                return out
    return copy.deepcopy(over)


def fill_templates(obj, meta: dict):
    text = json.dumps(obj)
    def sub(m):
        expr = m.group(1).strip()
        if expr == ".Name":
            return meta["name"]
        if expr == ".Namespace":
            return meta.get("namespace", "default")
        field, _, key = expr[1:].partition(".")
        return str((meta.get(field.lower()) or {}).get(key, ""))
    return json.loads(TEMPLATE_RE.sub(sub, text))


def select_runtime(isvc: dict, runtimes: dict) -> tuple[str | None, list[str]]:
    """KServe's choice of runtime among these files' runtimes (ModelSpec.GetSupportingRuntimes)."""
    model = isvc["spec"]["predictor"]["model"]
    fmt = model.get("modelFormat") or {}
    label = (fmt.get("name"), fmt.get("version"))
    # Without protocolVersion, auto-selection looks for v1 runtimes; a named runtime is accepted and
    # KServe then takes the protocol from it (predictor.go, reconcile of the runtime).
    protocol = model.get("protocolVersion")
    wanted = model.get("runtime")

    def supports(rt: dict, explicit: bool) -> bool:
        spec = rt["spec"]
        if spec.get("disabled"):
            return False
        effective = protocol or (None if explicit else "v1")
        if effective is not None and effective not in (spec.get("protocolVersions") or ["v1"]):
            return False
        for f in spec.get("supportedModelFormats") or []:
            if not explicit and not f.get("autoSelect"):
                continue
            if f.get("name") == label[0] and (label[1] is None or f.get("version") == label[1]):
                return True
        return False

    if wanted:
        if wanted not in runtimes:
            return None, [f"runtime {wanted!r} is not one of {sorted(runtimes)}"]
        if not supports(runtimes[wanted], True):
            return None, [f"runtime {wanted} does not support modelFormat {fmt} with protocolVersion {protocol or '(unset)'}"]
        return wanted, []
    candidates = [n for n, rt in runtimes.items() if supports(rt, False)]
    if not candidates:
        return None, [f"no runtime auto-selects modelFormat {fmt} with protocolVersion {protocol or 'v1 (the default)'}"]
    if len(candidates) > 1:
        prios = sorted(((next((f.get("priority") or 0 for f in runtimes[n]["spec"]["supportedModelFormats"]
                                if f.get("name") == label[0]), 0)), n) for n in candidates)
        if prios[-1][0] == prios[-2][0]:
            return None, [f"ambiguous auto-selection between {candidates} (same priority)"]
        return prios[-1][1], []
    return candidates[0], []


def isvc_errors(isvc: dict, runtimes: dict, flags_known: set[str] | None = None) -> list[str]:
    errs = []
    meta = isvc["metadata"]
    if not DNS1035_LABEL.match(meta["name"]) or len(meta["name"]) > 63:
        errs.append(f"name {meta['name']!r}: KServe wants a DNS-1035 label ([a-z]([-a-z0-9]*[a-z0-9])?)")
    ann = meta.get("annotations") or {}
    mode = ann.get("serving.kserve.io/deploymentMode")
    if mode is not None and mode not in DEPLOYMENT_MODES:
        errs.append(f"deploymentMode {mode!r} is not one of {sorted(DEPLOYMENT_MODES)}")
    pred = isvc["spec"].get("predictor") or {}
    if "deploymentStrategy" in pred and mode not in ("Standard", "RawDeployment"):
        errs.append("deploymentStrategy needs serving.kserve.io/deploymentMode: Standard (KServe's webhook refuses it in Knative mode)")
    if mode not in ("Standard", "RawDeployment"):
        # Knative mode: Knative's webhook refuses these pod fields unless config-features enables
        # kubernetes.podspec-<field> (all "disabled" by default); the runtime's count as well.
        name, _ = select_runtime(isvc, runtimes) if pred.get("model") else (None, [])
        rt_spec = runtimes[name]["spec"] if name else {}
        gated = sorted(f for f in ("tolerations", "nodeSelector", "affinity", "securityContext",
                                   "priorityClassName", "schedulerName", "topologySpreadConstraints")
                       if pred.get(f) or (f != "securityContext" and rt_spec.get(f)))
        if gated:
            errs.append(f"{gated} in Knative mode need Knative's kubernetes.podspec-* features: "
                        "pin serving.kserve.io/deploymentMode: Standard")
    model = pred.get("model")
    if not model:
        return errs + ["spec.predictor.model missing (these examples use a runtime)"]
    if pred.get("containers"):
        errs.append("spec.predictor has both model and containers")
    protocol = model.get("protocolVersion")
    if protocol is not None and protocol not in PROTOCOLS:
        errs.append(f"protocolVersion {protocol!r} is not one of {sorted(PROTOCOLS)}")
    uri = model.get("storageUri")
    if not uri:
        errs.append("no storageUri: /mnt/models would be empty")
    elif not uri.startswith(STORAGE_SCHEMES):
        errs.append(f"storageUri {uri!r}: scheme not one of {STORAGE_SCHEMES}")
    elif uri.startswith("pvc://"):
        claim = uri[len("pvc://"):].split("/", 1)[0]
        if not DNS1123_LABEL.match(claim):
            errs.append(f"storageUri {uri!r}: claim name {claim!r} is not valid")
    name, sel = select_runtime(isvc, runtimes)
    errs += sel
    rt_container = name and runtime_container(runtimes[name])
    if rt_container:
        over = {k: v for k, v in model.items() if k not in MODEL_ONLY_FIELDS}
        merged = deep_merge(rt_container, over)
        merged["args"] = list(rt_container.get("args") or []) + list(over.get("args") or [])
        res = merged.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        for rname, q in {**requests, **limits}.items():
            if "/" in rname and not rname.startswith(("kubernetes.io/", "requests.")):
                if not re.fullmatch(r"\d+", str(q)):
                    errs.append(f"extended resource {rname}: {q!r} is not a whole number")
                if rname in requests and str(requests[rname]) != str(limits.get(rname)):
                    errs.append(f"extended resource {rname}: requests must equal limits")
        _, flags, problems = parse_args(merged["args"])
        errs += [f"with predictor.model.args: {p}" for p in problems]
        if flags_known is not None and set(flags) - flags_known:
            errs.append(f"predictor.model.args: flags `swin-serve serve` does not declare: {sorted(set(flags) - flags_known)}")
        if (flags.get("backend") or ["cpu"])[-1] == "mlu" and not any(r in limits for r in MLU_RESOURCES):
            errs.append("merged container has --backend mlu but no MLU resource")
        if "cambricon.com/mlu370" in limits and any(k.startswith("cambricon.com/mlu370.smlu.") for k in limits):
            errs.append("merged container requests a whole card and smlu shares (KServe merges limits key by key)")
    return errs


def runtime_container(rt: dict) -> dict | None:
    return next((c for c in rt["spec"].get("containers") or [] if c.get("name") == KSERVE_CONTAINER), None)


def pod_for(isvc: dict | None, rt: dict) -> dict:
    """The Pod KServe would create (predictor container, pod fields, /mnt/models), simplified."""
    spec = rt["spec"]
    meta = copy.deepcopy(isvc["metadata"]) if isvc else {"name": "runtime-only"}
    meta.setdefault("namespace", "default")
    container = runtime_container(rt)
    pod_spec = {k: copy.deepcopy(spec[k]) for k in ("nodeSelector", "affinity", "tolerations", "volumes",
                                                    "imagePullSecrets", "schedulerName", "hostIPC") if k in spec}
    pod_spec["containers"] = [copy.deepcopy(c) for c in spec["containers"]]
    uri = "https://example.invalid/model.pth"
    if isvc:
        pred = isvc["spec"]["predictor"]
        model = pred["model"]
        uri = model.get("storageUri", uri)
        over = {k: v for k, v in model.items() if k not in MODEL_ONLY_FIELDS}
        merged = deep_merge(container, over)
        merged["args"] = list(container.get("args") or []) + list(over.get("args") or [])
        pod_spec["containers"] = [merged if c["name"] == KSERVE_CONTAINER else c for c in pod_spec["containers"]]
        pod_spec = deep_merge(pod_spec, {k: v for k, v in pred.items() if k not in PREDICTOR_ONLY_FIELDS})
    pod_spec = fill_templates(pod_spec, meta)
    # The model volume KServe adds: the PVC's directory, or the storage initializer's emptyDir.
    if uri.startswith("pvc://"):
        claim, _, sub = uri[len("pvc://"):].partition("/")
        pod_spec.setdefault("volumes", []).append({"name": "kserve-pvc-source",
                                                   "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mount = {"name": "kserve-pvc-source", "mountPath": MODEL_DIR, "readOnly": True, "subPath": sub}
    else:
        pod_spec.setdefault("volumes", []).append({"name": "kserve-provision-location", "emptyDir": {}})
        mount = {"name": "kserve-provision-location", "mountPath": MODEL_DIR, "readOnly": True}
        pod_spec["initContainers"] = [{"name": "storage-initializer", "image": "kserve/storage-initializer:v0.16.0",
                                       "args": [uri, MODEL_DIR],
                                       "volumeMounts": [{"name": "kserve-provision-location", "mountPath": MODEL_DIR}]}]
    for c in pod_spec["containers"]:
        if c["name"] == KSERVE_CONTAINER:
            c.setdefault("volumeMounts", []).append(mount)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{meta['name']}-predictor-0", "namespace": meta["namespace"],
                         "annotations": dict(spec.get("annotations") or {})},
            "spec": pod_spec}


def k8s_errors(pod: dict) -> list[str]:
    import kubernetes_validate
    errs = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except Exception as e:  # ValidationError, SchemaNotFoundError, ...
            where = ".".join(str(p) for p in getattr(e, "path", None) or [])
            errs.append(f"Kubernetes {version}: {where + ': ' if where else ''}{str(e).splitlines()[0]}")
    return errs


# --------------------------------------------------------------------------------------------

def load_docs() -> list[tuple[str, dict]]:
    docs = []
    for p in sorted(HERE.glob("*.yaml")):
        for i, d in enumerate(yaml.safe_load_all(p.read_text())):
            if d is not None:
                docs.append((f"{p.name}#{i}", d))
    return docs


def check_all(docs: list[tuple[str, dict]], flags_known, with_k8s: bool) -> dict[str, list[str]]:
    """label -> errors, for every document (schema + semantics) and every merged Pod."""
    results = {}
    runtimes, isvcs = {}, []
    for label, d in docs:
        errs = schema_errors(d)
        results[f"schema: {label} {d.get('kind') if isinstance(d, dict) else ''}"] = errs
        if errs:
            continue
        if d["kind"] in ("ClusterServingRuntime", "ServingRuntime"):
            runtimes[d["metadata"]["name"]] = d
            results[f"runtime: {label} {d['metadata']['name']}"] = runtime_errors(d, flags_known)
        else:
            isvcs.append((label, d))
    autos = {}
    for n, rt in runtimes.items():
        for f in rt["spec"].get("supportedModelFormats") or []:
            if f.get("autoSelect"):
                autos.setdefault(f.get("name"), []).append(n)
    results["runtimes: one auto-selected runtime per model format"] = [
        f"{fmt} auto-selects {names}" for fmt, names in autos.items() if len(names) > 1]
    for label, d in isvcs:
        results[f"inferenceservice: {label} {d['metadata']['name']}"] = isvc_errors(d, runtimes, flags_known)
        if with_k8s:
            name, _ = select_runtime(d, runtimes)
            if name and runtime_container(runtimes[name]):
                results[f"kubernetes schema (strict, {', '.join(K8S_VERSIONS)}): pod of {d['metadata']['name']}"] = \
                    k8s_errors(pod_for(d, runtimes[name]))
    if with_k8s:
        for n, rt in runtimes.items():
            if runtime_container(rt):
                results[f"kubernetes schema (strict): pod of runtime {n} alone"] = k8s_errors(pod_for(None, rt))
    return results


def mutate(docs, file_label: str, fn):
    out = copy.deepcopy(docs)
    for i, (label, d) in enumerate(out):
        if label == file_label:
            fn(d)
            return out
    raise KeyError(file_label)


def main() -> int:
    passed = failed = 0

    def report(name: str, errs: list[str], expect_fail: str | None = None):
        nonlocal passed, failed
        if expect_fail is None:
            ok = not errs
            detail = "; ".join(errs)
        else:
            ok = any(expect_fail in e for e in errs)
            detail = (f"expected an error containing {expect_fail!r}, got: " + ("; ".join(errs) or "none"))
        if ok:
            passed += 1
            print(f"ok    {name}")
            if expect_fail is not None:
                print(f"        ({next(e for e in errs if expect_fail in e)[:160]})")
        else:
            failed += 1
            print(f"FAIL  {name}: {detail}")

    import importlib.util
    with_k8s = importlib.util.find_spec("kubernetes_validate") is not None
    if not with_k8s:
        print("note: kubernetes-validate not installed; Kubernetes schema checks skipped")
    flags_known = serve_flags()
    if flags_known is None:
        print("note: src/cli/serve_args.rs not found; the runtime flags are not compared with the binary's")

    docs = load_docs()
    kinds = sorted({(d.get("kind"), d["metadata"]["name"]) for _, d in docs if isinstance(d, dict) and d.get("metadata")})
    report("deploy/kserve has the two CPU/MLU runtimes and examples",
           [] if {("ClusterServingRuntime", "swin-serve"), ("ClusterServingRuntime", "swin-serve-mlu"),
                  ("ClusterServingRuntime", "swin-serve-mlu-smlu")} <= set(kinds)
           and sum(k == "InferenceService" for k, _ in kinds) >= 3 else [f"found {kinds}"])
    for name, errs in check_all(docs, flags_known, with_k8s).items():
        report(name, errs)

    # Negative self-tests: each broken copy must be refused, by the layer named in the message.
    def setp(path, value):
        def fn(d):
            node = d
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        return fn

    def rename(path, old, new):
        def fn(d):
            node = d
            for k in path:
                node = node[k]
            node[new] = node.pop(old)
        return fn

    def delete(path, key):
        def fn(d):
            node = d
            for k in path:
                node = node[k]
            del node[key]
        return fn

    def arg_sub(old, new):
        """Replace the runtime container's arg `old` by `new`; new=None drops the flag and its value."""
        def fn(d):
            args = d["spec"]["containers"][0]["args"]
            i = args.index(old)  # ValueError: the test no longer matches the manifest
            if new is None:
                del args[i:i + 2]
            else:
                args[i] = new
        return fn

    rt_c = ["spec", "containers", 0]
    model = ["spec", "predictor", "model"]
    negatives = [
        ("KServe schema: misspelt field storageURI in predictor.model", "isvc-cpu.yaml#0",
         rename(model, "storageUri", "storageURI"), "storageURI: unknown field"),
        ("KServe schema: misspelt field deep in a runtime probe (grpc.prot)", "runtime-cpu.yaml#0",
         rename(rt_c + ["readinessProbe", "grpc"], "port", "prot"), "prot: unknown field"),
        ("KServe schema: misspelt top-level spec field (supportedModelFormat)", "runtime-mlu.yaml#0",
         rename(["spec"], "supportedModelFormats", "supportedModelFormat"), "unknown field"),
        ("KServe schema: a field newer than KServe 0.16 (spec.schedulerName on a runtime)",
         "runtime-cpu.yaml#0", setp(["spec", "schedulerName"], "volcano"), "not in KServe v0.16.0"),
        ("KServe schema: wrong type autoSelect: \"true\"", "runtime-cpu.yaml#0",
         setp(["spec", "supportedModelFormats", 0, "autoSelect"], "true"), "expected a boolean"),
        ("KServe schema: wrong type protocolVersions: grpc-v2 (not a list)", "runtime-cpu.yaml#0",
         setp(["spec", "protocolVersions"], "grpc-v2"), "expected a list"),
        ("KServe schema: wrong type containerPort: \"8081\"", "runtime-cpu.yaml#0",
         setp(rt_c + ["ports", 0, "containerPort"], "8081"), "expected an integer"),
        ("KServe schema: wrong type minReplicas: one", "isvc-cpu-pvc.yaml#0",
         setp(["spec", "predictor", "minReplicas"], "one"), "expected an integer"),
        ("KServe schema: not a quantity (memory: 2 GB)", "isvc-cpu.yaml#0",
         setp(model + ["resources", "limits", "memory"], "2 GB"), "not a Kubernetes quantity"),
        ("KServe schema: missing required modelFormat", "isvc-cpu.yaml#0",
         delete(model, "modelFormat"), "modelFormat"),
        ("KServe schema: missing required modelFormat.name", "isvc-mlu.yaml#0",
         delete(model + ["modelFormat"], "name"), "missing required field name"),
        ("KServe schema: missing required containers in a runtime", "runtime-cpu.yaml#0",
         delete(["spec"], "containers"), "containers"),
        ("KServe schema: missing required container name", "runtime-cpu.yaml#0",
         delete(rt_c, "name"), "name"),
        ("KServe schema: unknown apiVersion (v1beta2)", "isvc-cpu.yaml#0",
         setp(["apiVersion"], "serving.kserve.io/v1beta2"), "not a KServe resource"),
        ("KServe semantics: port named grpc instead of h2c", "runtime-cpu.yaml#0",
         setp(rt_c + ["ports", 0, "name"], "grpc"), "named h2c"),
        ("KServe semantics: readiness probe on another port", "runtime-mlu.yaml#0",
         setp(rt_c + ["readinessProbe", "grpc", "port"], 50051), "is not the h2c port"),
        ("KServe semantics: container not named kserve-container", "runtime-mlu.yaml#1",
         setp(rt_c + ["name"], "swin-serve"), KSERVE_CONTAINER),
        ("KServe semantics: template field KServe does not fill ({{.name}})", "runtime-cpu.yaml#0",
         arg_sub("{{.Name}}", "{{.name}}"), "template"),
        ("KServe semantics: modelFormat the runtime does not support (onnx)", "isvc-cpu.yaml#0",
         setp(model + ["modelFormat", "name"], "onnx"), "does not support modelFormat"),
        ("KServe semantics: auto-selection without protocolVersion looks for v1", "isvc-cpu-pvc.yaml#0",
         lambda d: (d["spec"]["predictor"]["model"].pop("protocolVersion"), d["spec"]["predictor"]["model"].pop("runtime")),
         "v1 (the default)"),
        ("KServe semantics: protocolVersion the runtime does not serve (v2 REST)", "isvc-mlu.yaml#0",
         setp(model + ["protocolVersion"], "v2"), "does not support modelFormat"),
        ("KServe semantics: modelFormat pytorch is not auto-selected", "isvc-cpu.yaml#0",
         lambda d: (d["spec"]["predictor"]["model"].pop("runtime"),
                    d["spec"]["predictor"]["model"]["modelFormat"].update(name="pytorch")),
         "no runtime auto-selects"),
        ("KServe semantics: smlu InferenceService without runtime gets the whole-card runtime",
         "isvc-mlu-smlu.yaml#0", delete(model, "runtime"), "whole card and smlu"),
        ("KServe semantics: deploymentStrategy without Standard mode", "isvc-mlu.yaml#0",
         delete(["metadata"], "annotations"), "deploymentStrategy needs"),
        ("KServe semantics: MLU toleration in Knative mode (no Standard annotation)", "isvc-mlu-smlu.yaml#0",
         delete(["metadata"], "annotations"), "need Knative's kubernetes.podspec"),
        ("KServe semantics: storageUri scheme (ftp://)", "isvc-cpu.yaml#0",
         setp(model + ["storageUri"], "ftp://example.com/m.pth"), "scheme"),
        ("KServe semantics: whole card + smlu after the merge", "isvc-mlu-smlu.yaml#0",
         setp(model + ["runtime"], "swin-serve-mlu"), "whole card and smlu"),
        ("swin-serve: --listen port differs from the h2c port", "runtime-cpu.yaml#0",
         arg_sub("0.0.0.0:8081", "0.0.0.0:50051"), "--listen"),
        ("swin-serve: --model not /mnt/models", "runtime-mlu.yaml#0",
         arg_sub("/mnt/models", "/models/swinv2_tiny.magicmind"), "--model must be"),
        ("swin-serve: MLU runtime without --plugin-lib", "runtime-mlu.yaml#0",
         arg_sub("--plugin-lib", None), "needs --plugin-lib"),
        ("swin-serve: a flag without its value", "runtime-mlu.yaml#1",
         arg_sub("/opt/swin-serve/lib/libmagicmind_plugin.so", "--instances"), "has no value"),
        ("swin-serve: an InferenceService's extra flag the binary does not have", "isvc-cpu.yaml#0",
         setp(model + ["args"], ["--max-batchsize", "16"]), "does not declare"),
        ("swin-serve: runs as root", "runtime-cpu.yaml#0",
         setp(rt_c + ["securityContext", "runAsUser"], 0), "securityContext"),
    ]
    if flags_known is not None:
        negatives.append(("swin-serve: a flag `serve` does not declare (--modle)", "runtime-cpu.yaml#0",
                          arg_sub("--model", "--modle"), "does not declare"))
    for name, file_label, fn, expect in negatives:
        results = check_all(mutate(docs, file_label, fn), flags_known, with_k8s=False)
        report(f"refused: {name}", [e for errs in results.values() for e in errs], expect)

    if with_k8s:
        runtimes = {d["metadata"]["name"]: d for _, d in docs if d.get("kind") == "ClusterServingRuntime"}
        isvc = next(d for label, d in docs if label == "isvc-mlu.yaml#0")
        good = pod_for(isvc, runtimes["swin-serve-mlu"])
        for name, path, value, expect in [
            ("gRPC probe port as a string", ["spec", "containers", 0, "startupProbe", "grpc", "port"], "h2c", "startupProbe"),
            ("misspelt securityContext field", ["spec", "containers", 0, "securityContext", "runAsNonroot"], True, "runAsNonroot"),
            ("toleration effect as a list", ["spec", "tolerations", 0, "effect"], ["NoSchedule"], "effect"),
        ]:
            bad = copy.deepcopy(good)
            node = bad
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
            report(f"refused by the Kubernetes schema: {name}", k8s_errors(bad), expect)

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
