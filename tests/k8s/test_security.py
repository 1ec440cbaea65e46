"""Security properties of the rendered output: pod security, who reads which Secret, which
Milvus user each pod connects as, and a production-shaped Milvus 2.6 (MinIO's quorum kept
through drains)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s.manifests import one, parse_quantity
from tests.k8s.milvus_rules import component_resources, deployed_components, replicas
from tests.k8s.netpol import selects
from tests.k8s.workloads import Pod, pods, secret_refs

ENVS = ("dev", "prod")
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret", "name"}


def _all_docs(rendered, env: str) -> list[dict[str, Any]]:
    return rendered(env) + rendered(f"{env}/ingest") + rendered(f"{env}/milvus-users")


def restricted_errors(pod: Pod) -> list[str]:
    """Pod Security Standards, `restricted` profile (v1.32), for the fields it checks: what a
    namespace enforcing it would refuse. A runAsNonRoot pod also needs a numeric runAsUser
    here: the Ray image's user is a name (`ray`), which the kubelet cannot verify."""
    spec, errors = pod.spec, []
    pod_ctx = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            errors.append(f"{flag}")
    for volume in spec.get("volumes") or []:
        if set(volume) - ALLOWED_VOLUMES:
            errors.append(f"volume {volume['name']}: {sorted(set(volume) - ALLOWED_VOLUMES)}")
    for container in pod.containers:
        ctx = container.get("securityContext") or {}
        name = container["name"]
        if ctx.get("privileged"):
            errors.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            errors.append(f"{name}: capabilities must drop ALL")
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            errors.append(f"{name}: runAsNonRoot")
        if not ctx.get("runAsUser", pod_ctx.get("runAsUser")):
            errors.append(f"{name}: needs a non-zero runAsUser")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            errors.append(f"{name}: seccompProfile RuntimeDefault")
    return errors


@pytest.mark.parametrize("env", ENVS)
def test_every_pod_we_write_meets_restricted(env: str, rendered) -> None:
    found = pods(_all_docs(rendered, env))
    assert len(found) >= 8
    for pod in found:
        assert pod.spec.get("securityContext"), pod.where
        assert restricted_errors(pod) == [], pod.where


def test_restricted_check_can_fail(rendered) -> None:
    pod = next(p for p in pods(rendered("prod")) if p.where == "RayService/embedder-gpu")
    broken = copy.deepcopy(pod)
    broken.spec["securityContext"].pop("seccompProfile")
    broken.spec["containers"][0]["securityContext"] = {"privileged": True}
    broken.spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    errors = restricted_errors(broken)
    assert len(errors) >= 5, errors


@pytest.mark.parametrize("env", ENVS)
def test_operator_made_pods_are_hardened(env: str, rendered) -> None:
    """The pods we do not template: KubeRay's autoscaler sidecar, Milvus' components and its
    etcd/MinIO charts; and the namespace enforces baseline, audits and warns on restricted."""
    docs = rendered(env)
    autoscaler = one(docs, "RayService", "pardus")["spec"]["rayClusterConfig"]["autoscalerOptions"]
    assert restricted_errors(Pod("autoscaler", {}, {"containers": [
        {"name": "autoscaler", "securityContext": autoscaler["securityContext"]}]})) == []
    milvus = one(docs, "Milvus", "pardus")["spec"]
    assert milvus["components"]["runAsNonRoot"] is True
    ctx = milvus["components"]["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
    for dep in ("etcd", "storage"):
        values = milvus["dependencies"][dep]["inCluster"]["values"]
        for key in ("podSecurityContext", "containerSecurityContext", "securityContext"):
            assert (values.get(key) or {}).get("enabled", True) is not False, (dep, key)
    labels = one(docs, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


# Who reads which Secret: the pods (and the Milvus CR, whose pods the operator makes) that
# reference it must be exactly these. "RayService/gcs" is gcsFaultToleranceOptions.redisPassword.
SECRET_READERS = {
    "pardus-api-keys": {"RayService/cpu-workers"},
    "pardus-milvus-serving": {"RayService/cpu-workers", "Job/pardus-milvus-users"},
    "pardus-milvus-ingest": {"RayJob/ingest-head", "RayJob/ingest-gpu", "RayJob/ingest-cpu",
                             "Job/pardus-milvus-users"},
    "pardus-milvus-root": {"Milvus/pardus", "Job/pardus-milvus-users"},
    "pardus-object-storage": {"RayService/cpu-workers", "RayJob/ingest-head",
                              "RayJob/ingest-gpu", "RayJob/ingest-cpu"},
    "pardus-redis": {"StatefulSet/pardus-redis", "RayService/gcs"},
}


def secret_readers(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    readers: dict[str, set[str]] = {}
    for pod in pods(docs):
        for name, _, _ in secret_refs(pod.spec):
            readers.setdefault(name, set()).add(pod.where)
    for doc in docs:
        if doc["kind"] == "Milvus":
            for name, _, _ in secret_refs(doc["spec"]):
                readers.setdefault(name, set()).add(f"Milvus/{doc['metadata']['name']}")
        if doc["kind"] == "RayService":
            ft = doc["spec"]["rayClusterConfig"].get("gcsFaultToleranceOptions") or {}
            for name, _, _ in secret_refs(ft):
                readers.setdefault(name, set()).add("RayService/gcs")
    return readers


@pytest.mark.parametrize("env", ENVS)
def test_secrets_only_where_they_are_read(env: str, rendered) -> None:
    readers = secret_readers(_all_docs(rendered, env))
    wanted = {k: v for k, v in SECRET_READERS.items() if env == "prod" or k != "pardus-redis"}
    assert readers == wanted


def test_secret_check_can_fail(rendered) -> None:
    docs = copy.deepcopy(_all_docs(rendered, "prod"))
    service = one(docs, "RayService", "pardus")
    gpu = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]["template"]["spec"]
    gpu["containers"][0]["env"] = [{"name": "PARDUS_MILVUS__TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "pardus-milvus-serving", "key": "token"}}}]
    assert secret_readers(docs)["pardus-milvus-serving"] != SECRET_READERS["pardus-milvus-serving"]


@pytest.mark.parametrize("env", ENVS)
def test_no_app_pod_connects_as_milvus_root(env: str, rendered) -> None:
    """Serving pods carry the read-only user's token, ingest pods the write user's; root's
    password reaches Milvus and the users Job only, and the Job refuses root as an app user."""
    from tests.k8s.test_milvus_users import load_script

    tokens = {}
    for pod in pods(_all_docs(rendered, env)):
        token = pod.env().get("PARDUS_MILVUS__TOKEN") if pod.spec["containers"] else None
        if token is not None:
            tokens[pod.where] = token["valueFrom"]["secretKeyRef"]["name"]
    assert tokens == {"RayService/cpu-workers": "pardus-milvus-serving",
                      "RayJob/ingest-head": "pardus-milvus-ingest",
                      "RayJob/ingest-gpu": "pardus-milvus-ingest",
                      "RayJob/ingest-cpu": "pardus-milvus-ingest"}
    script = load_script()
    with pytest.raises(script.UsersError, match="root"):
        script.plan("root:secret", "pardus_ingest:x")


def _quantity_gib(value: str) -> float:
    units = {"Gi": 1.0, "Mi": 1 / 1024, "Ti": 1024.0}
    for suffix, factor in units.items():
        if str(value).endswith(suffix):
            return float(str(value)[: -len(suffix)]) * factor
    return float(value) / 2**30


@pytest.mark.parametrize("env", ENVS)
def test_milvus_is_production_shaped(env: str, rendered) -> None:
    """2.6's streaming node and mixcoord have explicit replicas and resources (the operator's
    default is one replica, no resources); data nodes build indexes with room; etcd and MinIO
    have explicit volume sizes and classes."""
    spec = one(rendered(env), "Milvus", "pardus")["spec"]
    minimum = 2 if env == "prod" else 1
    for component in ("proxy", "mixCoord", "streamingNode", "queryNode", "dataNode"):
        entry = spec["components"][component]
        assert entry["replicas"] >= minimum, component
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(entry["resources"][kind]), component
    assert _quantity_gib(spec["components"]["dataNode"]["resources"]["limits"]["memory"]) >= 8
    assert parse_quantity(spec["components"]["streamingNode"]["resources"]["requests"]["cpu"]) >= 1
    assert spec["dependencies"]["msgStreamType"] == "woodpecker"
    for dep in ("etcd", "storage"):
        persistence = spec["dependencies"][dep]["inCluster"]["values"]["persistence"]
        assert persistence["storageClass"] == "pardus-block" and persistence["size"], dep
    assert spec["dependencies"]["etcd"]["inCluster"]["values"]["replicaCount"] == (
        3 if env == "prod" else 1)


@pytest.mark.parametrize("env", ENVS)
def test_milvus_memory_requests_are_its_limits(env: str, rendered) -> None:
    """Every Milvus pod that runs requests the memory it may use (Guaranteed-style memory): the
    scheduler places it where that memory is, and node pressure evicts others first. Requests
    below the limit let a query node or proxy be OOM-killed or evicted while holding its share."""
    spec = one(rendered(env), "Milvus", "pardus")["spec"]
    running = [c for c in deployed_components(spec) if replicas(spec, c)]
    assert {"proxy", "queryNode"} <= set(running)
    for component in running:
        resources = component_resources(spec, component)
        assert resources["requests"]["memory"] == resources["limits"]["memory"], component


def minio_write_quorum(drives: int) -> int:
    """Drives a write needs in one MinIO erasure set of `drives` drives at the default parity
    (DefaultParityBlocks, internal/config/storageclass/storage-class.go): the data blocks, one
    more when data and parity are equal (objectQuorumFromMeta, cmd/erasure-metadata.go)."""
    parity = next(p for top, p in ((1, 0), (3, 1), (5, 2), (7, 3), (16, 4)) if drives <= top)
    data = drives - parity
    return data + (data == parity)


@pytest.mark.parametrize("env", ENVS)
def test_minio_keeps_its_write_quorum_through_drains(env: str, rendered) -> None:
    """A budget selects MinIO's pods and lets a drain take no more of them than the write quorum
    spares (distributed MinIO: the chart's `replicas` pods of `drivesPerNode` drives each)."""
    docs = rendered(env)
    values = one(docs, "Milvus", "pardus")["spec"]["dependencies"]["storage"]["inCluster"]["values"]
    labels = {"app": "minio", "release": "pardus-minio", **values["podLabels"]}  # the chart's
    budgets = [d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"
               and selects(d["spec"]["selector"], labels)]
    assert len(budgets) == 1, budgets
    if values["mode"] != "distributed":
        return  # one pod, one drive: nothing to keep
    pods, per_pod = values["replicas"], values.get("drivesPerNode", 1)
    assert values.get("zones", 1) == 1 and pods * per_pod <= 16  # one erasure set
    spare = pods * per_pod - minio_write_quorum(pods * per_pod)
    assert "minAvailable" not in budgets[0] and budgets[0]["maxUnavailable"] * per_pod <= spare
    assert minio_write_quorum(4) == 3 and minio_write_quorum(8) == 5 and minio_write_quorum(2) == 2


@pytest.mark.parametrize("env", ENVS)
def test_every_claim_names_its_class(env: str, rendered) -> None:
    docs = rendered(env)
    claims = [d["spec"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
    claims += [t["spec"] for d in docs if d["kind"] == "StatefulSet"
               for t in d["spec"].get("volumeClaimTemplates") or []]
    assert claims
    for claim in claims:
        shared = "ReadWriteMany" in claim["accessModes"]
        assert claim["storageClassName"] == ("pardus-shared" if shared else "pardus-block"), claim
