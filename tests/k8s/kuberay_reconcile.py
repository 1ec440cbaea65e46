"""What KubeRay v1.7.0's controllers do with the fields we set, rewritten in Python (read, not
copied): the rollout decision of a RayService, its Serve Service (which cluster and which pods
it reaches) and what `ray start` is given on each node.
kuberay_rules.py holds what the operator refuses.

Each function names the upstream function it mirrors (under ray-operator/controllers/ray/).
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any


def cluster_hash_view(spec: dict[str, Any]) -> dict[str, Any]:
    """What KubeRay hashes to decide a rollout: GenerateHashWithoutReplicasAndWorkersToDelete
    (utils/util.go) on rayClusterSpecForHashing (rayservice_controller.go). Left out: each worker
    group's replicas, minReplicas, maxReplicas and scaleStrategy.workersToDelete, the tolerations
    and schedulingGates of every pod template (head and workers: Kueue may inject them), the
    cluster's own upgradeStrategy, and suspend."""
    view = copy.deepcopy(spec)
    view.pop("upgradeStrategy", None)
    view.pop("suspend", None)
    templates = [view["headGroupSpec"]["template"]]
    for group in view.get("workerGroupSpecs") or []:
        for key in ("replicas", "minReplicas", "maxReplicas"):
            group.pop(key, None)
        (group.get("scaleStrategy") or {}).pop("workersToDelete", None)
        templates.append(group["template"])
    for template in templates:
        for key in ("tolerations", "schedulingGates"):
            template.get("spec", {}).pop(key, None)
    return view


def rollout(running: dict[str, Any], goal: dict[str, Any]) -> str:
    """What a NewCluster RayService does when its rayClusterConfig goes from `running` to `goal`
    (shouldPrepareNewCluster, isClusterSpecHashEqual, shouldUpdateCluster): "nothing" when the
    hashes are equal; "in place" when the goal only appends worker groups (the running cluster
    is updated); otherwise "new cluster"."""
    if cluster_hash_view(goal) == cluster_hash_view(running):
        return "nothing"
    kept = len(running.get("workerGroupSpecs") or [])
    if len(goal.get("workerGroupSpecs") or []) >= kept:
        head = {**goal, "workerGroupSpecs": (goal.get("workerGroupSpecs") or [])[:kept]}
        if cluster_hash_view(head) == cluster_hash_view(running):
            return "in place"
    return "new cluster"


# -- the Serve Service and the pods it reaches ---------------------------------------------------

SERVE_LABEL, CLUSTER_LABEL = "ray.io/serve", "ray.io/cluster"
DEFAULT_PORTS = {"client": 10001, "gcs-server": 6379, "dashboard": 8265, "metrics": 8080,
                 "serve": 8000}  # getDefaultPorts (common/service.go)


def serving_ports(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """getServicePorts + isServingPort: the head container's ports named `serve` or `serve-*`
    (the defaults when the head declares none), as Service ports without a targetPort."""
    head = doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    declared = {p.get("name") or f"{p['containerPort']}-port": p["containerPort"]
                for p in head.get("ports") or []} or DEFAULT_PORTS
    return [{"name": name, "port": port} for name, port in declared.items()
            if name == "serve" or name.startswith("serve-")]


def serve_service(doc: dict[str, Any], cluster: str) -> dict[str, Any]:
    """The Serve Service KubeRay makes for a RayService whose traffic goes to `cluster`
    (BuildServeService, common/service.go; no incremental upgrade). With spec.serveService its
    name, type, annotations and labels are kept (KubeRay's labels win), its selector is always
    replaced, and of its ports only those named like the head's serving ports survive (the
    head's own where it names none); without it, <name>-serve-svc with the head's ports. The
    selector pins the cluster: its pods labelled ray.io/serve=true."""
    name = doc["metadata"]["name"]
    auto = serving_ports(doc)
    custom = copy.deepcopy(doc["spec"].get("serveService"))
    service = custom or {"metadata": {}, "spec": {"ports": auto}}
    meta, spec = service.setdefault("metadata", {}), service.setdefault("spec", {})
    meta.setdefault("name", f"{name}-serve-svc")
    meta["labels"] = {**(meta.get("labels") or {}), "ray.io/originated-from-cr-name": name,
                      "ray.io/originated-from-crd": "RayService", SERVE_LABEL: f"{name}-serve"}
    spec["selector"] = {CLUSTER_LABEL: cluster, SERVE_LABEL: "true"}
    if custom and auto:
        mine = {p.get("name"): p for p in spec.get("ports") or []}
        spec["ports"] = [mine.get(p["name"], p) for p in auto]
    return {"apiVersion": "v1", "kind": "Service", **service}


def cluster_pod_labels(doc: dict[str, Any], cluster: str) -> dict[str, dict[str, str]]:
    """The labels of each group's pods in the RayService's cluster `cluster` (labelPod and
    BuildPod, common/pod.go; updateHeadPodServeLabel): the template's, then ray.io/cluster,
    ray.io/group and ray.io/node-type, which no template overrides; ray.io/serve "true" on
    every worker, "false" on the head while excludeHeadPodFromServeSvc holds (otherwise it
    follows the head's proxy health: taken here as healthy)."""
    spec = doc["spec"]
    groups = {"head": spec["rayClusterConfig"]["headGroupSpec"]}
    groups.update({g["groupName"]: g for g in spec["rayClusterConfig"]["workerGroupSpecs"]})
    out = {}
    for group, value in groups.items():
        head = group == "head"
        serve = "false" if head and spec.get("excludeHeadPodFromServeSvc") else "true"
        out[group] = {**(value["template"]["metadata"].get("labels") or {}),
                      CLUSTER_LABEL: cluster, "ray.io/group": "headgroup" if head else group,
                      "ray.io/node-type": "head" if head else "worker", SERVE_LABEL: serve}
    return out


def serve_ready(apps: dict[str, str]) -> bool:
    """getAndCheckServeStatus (rayservice_controller.go): a cluster takes traffic once it has a
    Serve application and every one is RUNNING (Serve's: all its deployments up)."""
    return bool(apps) and all(status == "RUNNING" for status in apps.values())


def serve_target(pointing: str | None, active: str | None, pending: str | None,
                 apps: dict[str, dict[str, str]]) -> str | None:
    """The cluster the Serve Service points to after a reconcile of a NewCluster RayService
    (Reconcile: reconcileServicesToReadyCluster): the pending cluster once its Serve apps are
    ready; the active one while no cluster is pending and its apps are ready; otherwise the
    Service is left as it is (`pointing`). `apps`: cluster -> app name -> status."""
    if pending is not None and serve_ready(apps.get(pending, {})):
        return pending
    if active is not None and pending is None and serve_ready(apps.get(active, {})):
        return active
    return pointing


# -- what `ray start` is given on each node ------------------------------------------------------

GPU_KEY = re.compile(r"(gpu|nvidia\.com/mig-\d+g\.\d+gb)$")  # IsGPUResourceKey (utils/resources.go)


def resources_map(params: dict[str, str]) -> dict[str, float]:
    """getResourcesMap (common/pod.go): rayStartParams.resources with the quotes, backticks and
    spaces around it trimmed, read as JSON. Raises ValueError where the operator fails."""
    text = params.get("resources")
    if text is None:
        return {}
    value = json.loads(text.strip("'\"` "))
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
        raise ValueError(f"not a map of numbers: {text}")
    return {k: float(v) for k, v in value.items()}


def ray_start_params(group: dict[str, Any]) -> dict[str, str]:
    """What KubeRay adds to a group's rayStartParams before `ray start` (generateRayStartCommand
    and addWellKnownAcceleratorResources, common/pod.go; memory and the addresses left out):
    num-cpus from the CPU limit (else request), rounded up, and num-gpus from the first GPU
    resource of the limits. When rayStartParams.resources does not parse (getResourcesMap), the
    operator logs an error and adds no num-gpus at all."""
    params = dict(group.get("rayStartParams") or {})
    resources = group["template"]["spec"]["containers"][0].get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu = limits.get("cpu") or requests.get("cpu")
    if "num-cpus" not in params and cpu:
        params["num-cpus"] = str(math.ceil(_quantity(cpu)))
    try:
        resources_map(params)
    except ValueError:
        return params
    for key in sorted(limits):
        if "num-gpus" not in params and GPU_KEY.search(key) and _quantity(limits[key]):
            params["num-gpus"] = str(math.ceil(_quantity(limits[key])))
    return params


def autoscaler_resources(group: dict[str, Any]) -> dict[str, float]:
    """What Ray's autoscaler (Ray 2.60, autoscaler/_private/kuberay/autoscaling_config.py:
    _get_num_gpus, _get_custom_resources) believes a new node of the group offers: GPU from
    num-gpus, else the first GPU limit or request; custom resources from rayStartParams.resources with its first
    and last character dropped and backslashes removed, integers only. Raises ValueError where
    the autoscaler fails."""
    params = group.get("rayStartParams") or {}
    k8s = group["template"]["spec"]["containers"][0].get("resources") or {}
    out: dict[str, float] = {}
    if "num-gpus" in params:
        out["GPU"] = float(int(params["num-gpus"]))
    else:
        gpus = [math.ceil(_quantity(v)) for kind in ("limits", "requests")
                for k, v in (k8s.get(kind) or {}).items() if k.endswith("gpu")]
        if any(gpus):
            out["GPU"] = float(next(g for g in gpus if g > 0))
    if "resources" in params:
        custom = json.loads(params["resources"][1:-1].replace("\\", ""))
        if not isinstance(custom, dict) or not all(type(v) is int for v in custom.values()):
            raise ValueError(f"custom resources must be whole numbers: {params['resources']}")
        out.update({k: float(v) for k, v in custom.items()})
    return out


def _quantity(value: Any) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
