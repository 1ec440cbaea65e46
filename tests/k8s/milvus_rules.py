"""The Milvus operator's (v1.3.x) rules for the fields we set, rewritten in Python.

Each check names what it mirrors in zilliztech/milvus-operator: the admission webhook
(apis/milvus.io/v1beta1/milvus_webhook.go), its defaulting, and what the controllers do with a
field (controllers/deployment_updater.go, controllers/dependencies.go). A webhook rule refuses
the CR at `kubectl apply`; a defaulting or controller rule silently replaces what we wrote.
"""

from __future__ import annotations

import re
from typing import Any

BUILT_IN_MQ = {"woodpecker", "rocksmq", "natsmq"}


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def webhook_errors(doc: dict[str, Any]) -> list[str]:
    """validateCommon (rollingMode, validateEnableRolingUpdate, validatePersistConfig) and
    validateExternal: what ValidateCreate / ValidateUpdate refuse. In v1.3.x woodpecker counts
    with the external queues for rolling updates and with rocksmq/natsmq for persistence
    (GetPersistenceConfig)."""
    spec = doc["spec"]
    com, dep = spec.get("components") or {}, spec.get("dependencies") or {}
    mode, mq = spec.get("mode", "standalone"), dep.get("msgStreamType", "")
    errors = []
    if com.get("rollingMode", 0) not in (0, 2, 3):
        errors.append("components.rollingMode should be 2 or 3")
    if com.get("enableRollingUpdate") and mode != "cluster" \
            and mq not in ("kafka", "pulsar", "custom", "woodpecker"):
        errors.append("enableRollingUpdate needs cluster mode or kafka/pulsar/custom/woodpecker")
    persistence = _get(dep, mq, "persistence", "persistentVolumeClaim", "spec") \
        if mq in BUILT_IN_MQ else None
    if persistence is not None:
        from tests.k8s.manifests import validate_core

        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "check"}, "spec": persistence}
        errors += [f"{mq}.persistence: {e}" for e in validate_core(claim)]
    for name, field in (("etcd", "endpoints"), ("storage", "endpoint")):
        if _get(dep, name, "external") and not _get(dep, name, field):
            errors.append(f"dependencies.{name}.{field} is required when external")
    if mq == "kafka" and _get(dep, "kafka", "external") and not _get(dep, "kafka", "brokerList"):
        errors.append("dependencies.kafka.brokerList is required when external")
    if mq == "pulsar" and _get(dep, "pulsar", "external") and not _get(dep, "pulsar", "endpoint"):
        errors.append("dependencies.pulsar.endpoint is required when external")
    return errors


def overwritten_errors(doc: dict[str, Any]) -> list[str]:
    """Fields the operator replaces whatever we write, so setting them is a silent no-op:
    deleteUnsettableConf (spec.config's addresses), defaultStorage (an in-cluster storage's
    secretRef is always <name>-minio), defaultMsgStream (cluster mode without msgStreamType
    deploys Pulsar), and updatePodTemplate (runAsNonRoot replaces the pod securityContext)."""
    spec = doc["spec"]
    config, dep = spec.get("config") or {}, spec.get("dependencies") or {}
    errors = []
    for path in (("minio", "address"), ("minio", "port"), ("pulsar", "address"),
                 ("pulsar", "port"), ("etcd", "endpoints")):
        if _get(config, *path) is not None:
            errors.append(f"spec.config.{'.'.join(path)} is dropped by the operator")
    storage = dep.get("storage") or {}
    if not storage.get("external") and storage.get("secretRef") not in (None, f"{doc['metadata']['name']}-minio"):
        errors.append("an in-cluster storage's secretRef is replaced by <name>-minio")
    if spec.get("mode") == "cluster" and not dep.get("msgStreamType"):
        errors.append("cluster mode without msgStreamType deploys Pulsar")
    return errors


def security_context_errors(doc: dict[str, Any]) -> list[str]:
    """updateMilvusContainer: components.securityContext becomes the *container* securityContext
    of every Milvus container; it must parse as one (a pod-level field such as fsGroup would
    make the operator fail to render the pods)."""
    from tests.k8s.manifests import validate_core

    context = _get(doc["spec"], "components", "securityContext")
    if context is None:
        return []
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
           "spec": {"containers": [{"name": "milvus", "image": "x", "securityContext": context}]}}
    return [f"components.securityContext: {e}" for e in validate_core(pod)]


def etcd_auth_errors(doc: dict[str, Any]) -> list[str]:
    """wrapEtcdConditionGetter (controllers/dependencies.go): with spec.config.etcd.auth.enabled
    the operator's etcd health check logs in with spec.config.etcd.auth.userName/password (and
    Milvus reads the same keys): the chart must have RBAC on with that root password's Secret,
    and userName must be set here (the password is patched in at deploy time, README step 4)."""
    config, spec = doc["spec"].get("config") or {}, doc["spec"]
    if not _get(config, "etcd", "auth", "enabled"):
        return []
    rbac = _get(spec, "dependencies", "etcd", "inCluster", "values", "auth", "rbac") or {}
    errors = []
    if _get(config, "etcd", "auth", "userName") != "root":
        errors.append("spec.config.etcd.auth.userName must be the chart's root user")
    if not (rbac.get("enabled") or rbac.get("create")) or not rbac.get("existingSecret"):
        errors.append("etcd auth in spec.config without RBAC and a Secret in the etcd chart")
    if _get(config, "etcd", "auth", "password"):
        errors.append("spec.config.etcd.auth.password must not be committed (README, step 4)")
    return errors


def image_version(doc: dict[str, Any]) -> tuple[int, int, int] | None:
    """The pinned Milvus release of spec.components.image (None for a floating tag)."""
    image = _get(doc["spec"], "components", "image") or ""
    match = re.fullmatch(r"milvusdb/milvus:v(\d+)\.(\d+)\.(\d+)", image)
    return tuple(int(p) for p in match.groups()) if match else None


# -- the components the operator deploys (pkg/controllers/components.go) ------------------------

COMPONENTS_2_6 = ("mixCoord", "dataNode", "streamingNode", "queryNode", "proxy", "standalone")
MIXTURE = ("mixCoord", "dataNode", "queryNode", "indexNode", "proxy", "standalone")
SEPARATE = ("rootCoord", "dataCoord", "queryCoord", "indexCoord", "dataNode", "queryNode",
            "indexNode", "proxy", "standalone")


def from_2_6(spec: dict[str, Any]) -> bool:
    """IsVersionGreaterThan2_6 (apis/milvus.io/v1beta1/milvus_types.go): components.version, or
    else the image tag ("master-*" counts), is above 2.5.999."""
    com = spec.get("components") or {}
    text = com.get("version") or (com.get("image") or "").rpartition(":")[2]
    if not com.get("version") and text.startswith("master-"):
        return True
    match = re.match(r"^v?(\d+)(?:\.(\d+))?", text)
    return bool(match) and (int(match.group(1)), int(match.group(2) or 0)) >= (2, 6)


def deployed_components(spec: dict[str, Any]) -> list[str]:
    """GetComponentsBySpec: what the operator deploys for the CR's mode and version, as the
    fields of spec.components (replicas may still be 0: standalone defaults to 0 in cluster mode)."""
    com = spec.get("components") or {}
    out = ["cdc"] if com.get("cdc") is not None else []
    if spec.get("mode", "standalone") != "cluster":
        return out + ["standalone"]
    if from_2_6(spec):
        return out + list(COMPONENTS_2_6)
    out += list(MIXTURE if com.get("mixCoord") is not None else SEPARATE)
    streaming = com.get("streamingMode")
    return out + (["streamingNode"] if streaming or (streaming is None and "streamingNode" in com)
                  else [])


def replicas(spec: dict[str, Any], component: str) -> int:
    """defaultComponentsReplicas (milvus_webhook.go): 1 unless set, standalone 0 in cluster mode."""
    value = ((spec.get("components") or {}).get(component) or {}).get("replicas")
    if value is None:
        return 0 if component == "standalone" and spec.get("mode") == "cluster" else 1
    return int(value)


def component_resources(spec: dict[str, Any], component: str) -> dict[str, Any]:
    """MergeComponentSpec (pkg/controllers/components.go): a component's own resources replace
    spec.components.resources whole; nothing is merged key by key."""
    com = spec.get("components") or {}
    return (com.get(component) or {}).get("resources") or com.get("resources") or {}


def component_errors(doc: dict[str, Any]) -> list[str]:
    """Components configured in spec.components that the operator does not deploy for this mode
    and version (GetComponentsBySpec): a no-op at best. An indexNode on 2.6 is worse:
    cleanupIndexNodeIfNeeded (pkg/controllers/deployments.go) deletes it from the CR, and every
    `kubectl apply` puts it back."""
    com, spec = doc["spec"].get("components") or {}, doc["spec"]
    deployed = set(deployed_components(spec))
    return [f"spec.components.{name} is not deployed by this mode and version"
            for name in sorted({*COMPONENTS_2_6, *SEPARATE, "mixCoord", "streamingNode"} - deployed)
            if name in com]


def milvus_errors(doc: dict[str, Any]) -> list[str]:
    return (webhook_errors(doc) + overwritten_errors(doc) + security_context_errors(doc)
            + etcd_auth_errors(doc) + component_errors(doc))
