"""Manifest test helpers: render overlays, validate kinds, read Ray worker group capacity."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.kuberay_reconcile import resources_map

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
# The CRDs live beside the repository (shared/, Apache-2.0 data copied from the operators),
# or where PARDUS_K8S_CRDS points; /work/shared is where the development machines keep them.
CRD_DIR = next((path for path in (
    Path(os.environ["PARDUS_K8S_CRDS"]) if os.environ.get("PARDUS_K8S_CRDS") else None,
    REPO.parent / "shared" / "k8s-crds",
    Path("/work/shared/k8s-crds"),
) if path is not None and path.is_dir()), REPO.parent / "shared" / "k8s-crds")
CRD_FILES = {
    ("ray.io", "RayService"): "ray.io_rayservices.yaml",
    ("ray.io", "RayJob"): "ray.io_rayjobs.yaml",
    ("ray.io", "RayCluster"): "ray.io_rayclusters.yaml",
    ("milvus.io", "Milvus"): "milvus.io_milvuses.yaml",
}
KUBERNETES_VERSION = "1.32"
RAY_KINDS = {"RayService", "RayJob"}
# The Prometheus operator's CRDs are not vendored: PodMonitors and PrometheusRules are checked
# against the subset of their schemas that our manifests use (unknown fields refused), not
# against the real CRDs.
_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["key", "operator"],
        "properties": {"key": {"type": "string"}, "values": {"type": "array"},
                       "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]}}}}}}
PODMONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "additionalProperties": False,
                 "required": ["selector", "podMetricsEndpoints"], "properties": {
                     "selector": _SELECTOR,
                     "namespaceSelector": {"type": "object"},
                     "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "additionalProperties": False, "properties": {
                             "port": {"type": "string"}, "targetPort": {"type": ["integer", "string"]},
                             "path": {"type": "string"}, "interval": {"type": "string"},
                             "relabelings": {"type": "array"}}}}}}}}
PROMETHEUSRULE_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "additionalProperties": False, "required": ["groups"],
                 "properties": {"groups": {"type": "array", "minItems": 1, "items": {
                     "type": "object", "additionalProperties": False,
                     "required": ["name", "rules"], "properties": {
                         "name": {"type": "string"}, "interval": {"type": "string"},
                         "rules": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "additionalProperties": False,
                             "required": ["alert", "expr"], "properties": {
                                 "alert": {"type": "string"}, "expr": {"type": "string"},
                                 "for": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                                 "labels": {"type": "object",
                                            "additionalProperties": {"type": "string"}},
                                 "annotations": {"type": "object",
                                                 "additionalProperties": {"type": "string"}},
                             }}}}}}}}}}
OPERATOR_SCHEMAS = {"PodMonitor": PODMONITOR_SCHEMA, "PrometheusRule": PROMETHEUSRULE_SCHEMA}


def kustomize_command() -> list[str] | None:
    """`kustomize build` or `kubectl kustomize`, whichever is installed; None when neither is."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@cache
def _render_text(folder: Path) -> str:
    command = kustomize_command()
    assert command is not None
    done = subprocess.run([*command, str(folder)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, f"{' '.join(command)} {folder} failed:\n{done.stderr}"
    return done.stdout


@cache
def _render_docs(folder: Path) -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(_render_text(folder), Loader=loader) if doc)


def render(folder: Path) -> list[dict[str, Any]]:
    """The resources a kustomization folder builds (a fresh copy each call)."""
    return copy.deepcopy(list(_render_docs(folder)))


def load_docs(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# -- validation ---------------------------------------------------------------------------------

def validate_core(doc: dict[str, Any]) -> list[str]:
    """Errors of a core Kubernetes object with the bundled schemas (strict: no unknown fields)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        return [f"{doc['kind']} {doc['metadata'].get('name')}: {path}: {exc.message}"]
    return []


def strict_schema(schema: Any) -> Any:
    """A CRD openAPIV3Schema as JSON Schema: unknown fields rejected, `nullable` honoured.

    The API server prunes unknown fields and kubectl (--validate=strict) refuses them; a
    misspelled field must fail here too, so every object with properties is closed unless the
    schema preserves unknown fields.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: strict_schema(v) for k, v in out["properties"].items()}
        closed = not out.get("x-kubernetes-preserve-unknown-fields")
        if "additionalProperties" not in out and closed:
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict_schema(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [strict_schema(s) for s in out[key]]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@cache
def crd_validator(group: str, kind: str, version: str):
    """A jsonschema validator for one served version of a CRD in CRD_DIR."""
    import jsonschema

    with open(CRD_DIR / CRD_FILES[(group, kind)], encoding="utf-8") as handle:
        crd = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert version in served, f"{group}/{version} {kind} is not served by the CRD ({list(served)})"
    schema = strict_schema(served[version]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft202012Validator(schema)


def validate_custom(doc: dict[str, Any]) -> list[str]:
    """Errors of a KubeRay or Milvus object against its CRD's schema (a Prometheus operator
    object: our subset)."""
    import jsonschema

    group, version = doc["apiVersion"].split("/")
    if doc["kind"] in OPERATOR_SCHEMAS:
        validator = jsonschema.Draft202012Validator(OPERATOR_SCHEMAS[doc["kind"]])
    else:
        validator = crd_validator(group, doc["kind"], version)
    return [f"{doc['kind']} {doc['metadata'].get('name')}: "
            f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(doc)]


def is_custom(doc: dict[str, Any]) -> bool:
    return ((doc["apiVersion"].split("/")[0], doc["kind"]) in CRD_FILES
            or doc["kind"] in OPERATOR_SCHEMAS)


# -- Ray worker groups and what fits on them -----------------------------------------------------

def parse_quantity(value: Any) -> float:
    """A Kubernetes CPU or GPU quantity ("4", "500m", 1) as a number."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def start_resources(params: dict[str, str]) -> dict[str, float]:
    """The custom resources in rayStartParams.resources as KubeRay reads them (getResourcesMap:
    "'{\\"name\\": 1}'"); a form it cannot read fails here."""
    return resources_map(params)


@dataclass
class Group:
    name: str
    capacity: dict[str, float]  # what one node offers to Ray: CPU, GPU, custom resources
    min_nodes: int
    max_nodes: int
    pod: dict[str, Any] = field(repr=False)  # the pod template's spec

    @property
    def container(self) -> dict[str, Any]:
        return self.pod["containers"][0]


def _group(name: str, spec: dict[str, Any], min_nodes: int, max_nodes: int) -> Group:
    params = spec.get("rayStartParams") or {}
    pod = spec["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    cpu = parse_quantity(params.get("num-cpus", limits["cpu"]))
    gpu = parse_quantity(params.get("num-gpus", limits.get("nvidia.com/gpu", 0)))
    capacity = {"CPU": cpu, "GPU": gpu, **start_resources(params)}
    return Group(name, capacity, min_nodes, max_nodes, pod)


def ray_groups(cluster: dict[str, Any]) -> dict[str, Group]:
    """The head and worker groups of a rayClusterConfig / rayClusterSpec, by name."""
    groups = {"head": _group("head", cluster["headGroupSpec"], 1, 1)}
    for spec in cluster["workerGroupSpecs"]:
        groups[spec["groupName"]] = _group(
            spec["groupName"], spec, spec["minReplicas"], spec["maxReplicas"])
    return groups


def replica_demand(deployment: dict[str, Any]) -> dict[str, float]:
    """What one Serve replica asks Ray for (Serve's default is one CPU)."""
    options = deployment.get("ray_actor_options") or {}
    demand = {"CPU": float(options.get("num_cpus", 1)), "GPU": float(options.get("num_gpus", 0))}
    demand.update({k: float(v) for k, v in (options.get("resources") or {}).items()})
    return demand


def max_replicas(deployment: dict[str, Any]) -> int:
    scaling = deployment.get("autoscaling_config")
    return int(scaling["max_replicas"]) if scaling else int(deployment.get("num_replicas", 1))


def fits(demand: dict[str, float], capacity: dict[str, float]) -> bool:
    return all(amount <= capacity.get(name, 0.0) + 1e-9
               for name, amount in demand.items() if amount)


def pack(demands: list[dict[str, float]],
         nodes: list[dict[str, float]]) -> list[dict[str, float]]:
    """First-fit decreasing of demands onto nodes; returns the demands left without a node."""
    free = [dict(node) for node in nodes]
    left = []
    for demand in sorted(demands, key=lambda d: (d.get("GPU", 0), d.get("CPU", 0)), reverse=True):
        node = next((n for n in free if fits(demand, n)), None)
        if node is None:
            left.append(demand)
            continue
        for name, amount in demand.items():
            node[name] = node.get(name, 0.0) - amount
    return left


def serve_fit_problems(serve_config: dict[str, Any], groups: dict[str, Group],
                       placement: dict[str, str]) -> list[str]:
    """Why the Serve app would not fit the cluster: a deployment that could start on another
    group than its own, or whose max replicas (with the others of its group) exceed the group
    at maxReplicas nodes. `placement`: deployment name -> worker group name."""
    problems = []
    per_group: dict[str, list[dict[str, float]]] = {}
    per_node_caps: dict[str, dict[str, float]] = {}
    for app in serve_config["applications"]:
        for deployment in app["deployments"]:
            name, demand = deployment["name"], replica_demand(deployment)
            where = sorted(g.name for g in groups.values() if fits(demand, g.capacity))
            if where != [placement[name]]:
                problems.append(f"{name} {demand} can start on {where}, "
                                f"not only on {placement[name]!r}")
            cap = deployment.get("max_replicas_per_node")
            if cap:  # Serve places at most `cap` replicas of it on one node: a per-node resource
                demand = {**demand, f"replicas of {name}": 1.0}
                per_node_caps.setdefault(placement[name], {})[f"replicas of {name}"] = float(cap)
            per_group.setdefault(placement[name], []).extend([demand] * max_replicas(deployment))
    for name, demands in per_group.items():
        group = groups[name]
        node = {**group.capacity, **per_node_caps.get(name, {})}
        left = pack(demands, [node] * group.max_nodes)
        if left:
            problems.append(f"{len(left)} of {len(demands)} replicas on {name} find no node "
                            f"({group.max_nodes} x {group.capacity})")
    return problems
