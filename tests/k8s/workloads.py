"""The pods a rendered overlay makes: every pod template we write, named by owner and group."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


@dataclass
class Pod:
    """One pod template: `where` is "Kind/name" or, for Ray, "Kind/group" (RayJob/submitter)."""

    where: str
    labels: dict[str, str]
    spec: dict[str, Any] = field(repr=False)
    namespace: str = ""

    @property
    def containers(self) -> list[dict[str, Any]]:
        """Containers and init containers (the rules of both are the same)."""
        return list(self.spec.get("containers") or []) + list(self.spec.get("initContainers") or [])

    def env(self, container: int = 0) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.spec["containers"][container].get("env") or []}

    def mounts(self, container: int = 0) -> dict[str, dict[str, Any]]:
        return {m["mountPath"]: m for m in self.spec["containers"][container].get("volumeMounts") or []}

    def claim(self, mount_path: str) -> str | None:
        """The PVC mounted at mount_path (first container), or None."""
        mount = self.mounts().get(mount_path)
        if mount is None:
            return None
        volume = next(v for v in self.spec.get("volumes") or [] if v["name"] == mount["name"])
        return (volume.get("persistentVolumeClaim") or {}).get("claimName")


def ray_cluster(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]


def _ray_pods(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    cluster = ray_cluster(doc)
    head = "head" if doc["kind"] == "RayService" else "ingest-head"
    yield head, cluster["headGroupSpec"]["template"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group["template"]
    if doc["kind"] == "RayJob" and doc["spec"].get("submitterPodTemplate"):
        yield "submitter", doc["spec"]["submitterPodTemplate"]


def _template(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]
    return spec["template"]


def pods(docs: list[dict[str, Any]]) -> list[Pod]:
    """Every pod template of the rendered documents (Ray groups and the core workloads)."""
    out = []
    for doc in docs:
        namespace = doc["metadata"].get("namespace", "")
        if doc["kind"] in ("RayService", "RayJob"):
            for group, template in _ray_pods(doc):
                out.append(Pod(f"{doc['kind']}/{group}", dict(template["metadata"].get("labels") or {}),
                               template["spec"], namespace))
        elif doc["kind"] in WORKLOAD_KINDS:
            template = _template(doc)
            out.append(Pod(f"{doc['kind']}/{doc['metadata']['name']}",
                           dict(template["metadata"].get("labels") or {}), template["spec"], namespace))
    return out


def by_where(docs: list[dict[str, Any]]) -> dict[str, Pod]:
    return {pod.where: pod for pod in pods(docs)}


def secret_refs(node: Any) -> set[tuple[str, str | None, bool]]:
    """(secret, key or None for a whole Secret, optional) referenced anywhere under node:
    env valueFrom.secretKeyRef, envFrom secretRef and secret volumes."""
    found: set[tuple[str, str | None, bool]] = set()
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        if isinstance(ref, dict):
            found.add((ref["name"], ref["key"], bool(ref.get("optional"))))
        ref = node.get("secretRef")
        if isinstance(ref, dict) and "name" in ref:
            found.add((ref["name"], None, bool(ref.get("optional"))))
        secret = node.get("secret")
        if isinstance(secret, dict) and "secretName" in secret:
            found.add((secret["secretName"], None, bool(secret.get("optional"))))
        for value in node.values():
            found |= secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= secret_refs(value)
    return found


def reached_by(service: dict[str, Any], candidates: list[Pod]) -> list[Pod]:
    """The pods a Service sends traffic to (the EndpointSlice controller: getEndpointPorts and
    findPort): those its selector selects that resolve a port's targetPort, a number or the name
    of a port one of their containers declares. A selected pod that resolves none gets an
    endpoint without ports, which kube-proxy and ingress controllers send nothing. Readiness is
    left out."""
    spec = service["spec"]
    selector = spec.get("selector") or {}

    def resolves(pod: Pod, port: dict[str, Any]) -> bool:
        target = port.get("targetPort", port["port"])
        if isinstance(target, int):
            return True
        return any(p.get("name") == target and p.get("protocol", "TCP") == port.get("protocol", "TCP")
                   for c in pod.spec["containers"] for p in c.get("ports") or [])

    return [pod for pod in candidates
            if selector and all(pod.labels.get(k) == v for k, v in selector.items())
            and any(resolves(pod, port) for port in spec.get("ports") or [])]
