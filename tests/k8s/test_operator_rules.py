"""The rendered overlays pass KubeRay's and the Milvus operator's own rules (tests/k8s/*_rules.py),
and each mirrored rule fails a manifest that breaks it."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.k8s.kuberay_reconcile import (
    autoscaler_resources,
    ray_start_params,
    resources_map,
    rollout,
)
from tests.k8s.kuberay_rules import kuberay_errors
from tests.k8s.manifests import K8S, one
from tests.k8s.milvus_rules import (
    COMPONENTS_2_6,
    deployed_components,
    image_version,
    milvus_errors,
)

OVERLAYS = ("dev", "prod", "dev/ingest", "prod/ingest")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_pass_the_operators_rules(overlay: str, rendered) -> None:
    docs = rendered(overlay)
    checked = 0
    for doc in docs:
        if doc["kind"] in ("RayService", "RayJob"):
            assert kuberay_errors(doc) == [], doc["kind"]
            checked += 1
        elif doc["kind"] == "Milvus":
            assert milvus_errors(doc) == []
            checked += 1
    assert checked == (2 if "/" not in overlay else 1)


def _service(rendered) -> dict[str, Any]:
    return one(rendered("prod"), "RayService", "pardus")


def _job(rendered) -> dict[str, Any]:
    return one(rendered("prod/ingest"), "RayJob", "pardus-ingest")


def _cluster(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]


def _broken(doc: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> list[str]:
    broken = copy.deepcopy(doc)
    change(broken)
    return kuberay_errors(broken)


def test_idle_timeout_needs_autoscaler_v2(rendered) -> None:
    """The blocker: per-group idleTimeoutSeconds without autoscalerOptions.version v2."""
    service = _service(rendered)
    assert _cluster(service)["autoscalerOptions"]["version"] == "v2"
    assert all("idleTimeoutSeconds" in g for g in _cluster(service)["workerGroupSpecs"])
    errors = _broken(service, lambda d: _cluster(d)["autoscalerOptions"].pop("version"))
    assert errors and all("autoscaler v2 is not enabled" in e for e in errors)
    v1 = _broken(service, lambda d: _cluster(d)["autoscalerOptions"].update(version="v1"))
    assert len(v1) == 3
    negative = _broken(service, lambda d: _cluster(d)["workerGroupSpecs"][0].update(
        idleTimeoutSeconds=-1))
    assert any("non-negative" in e for e in negative)


def _head_env(name: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        container = _cluster(doc)["headGroupSpec"]["template"]["spec"]["containers"][0]
        container.setdefault("env", []).append({"name": name, "value": value})
    return change


@pytest.mark.parametrize("change,message", [
    (lambda d: _cluster(d)["workerGroupSpecs"][0].update(resources={"CPU": "2"}), "both"),
    (lambda d: _cluster(d)["workerGroupSpecs"][0]["rayStartParams"].update(labels="a=b"),
     "labels"),
    (lambda d: _cluster(d)["workerGroupSpecs"][0].update(labels={"bad key!": "x"}), "label"),
    (lambda d: _cluster(d)["workerGroupSpecs"][1].update(minReplicas=7), "minReplicas"),
    (lambda d: _cluster(d)["workerGroupSpecs"][1].update(maxReplicas=-1), "negative"),
    (lambda d: _cluster(d).update(enableInTreeAutoscaling=False) or
     _cluster(d)["workerGroupSpecs"][2].pop("minReplicas"), "required"),
    (lambda d: _cluster(d)["workerGroupSpecs"][0].update(suspend=True), "suspended"),
    (lambda d: _cluster(d)["workerGroupSpecs"][0].update(priority=5) or
     _cluster(d).update(rayVersion="2.55.0"), "priority"),
    (lambda d: _cluster(d)["headGroupSpec"]["template"]["spec"].update(restartPolicy="Always"),
     "restartPolicy"),
    (_head_env("RAY_enable_autoscaler_v2", "true"), "both autoscalerOptions.version"),
    (lambda d: _cluster(d)["autoscalerOptions"].update(idleTimeoutSeconds=-5), "non-negative"),
    (lambda d: _cluster(d)["autoscalerOptions"].update(
        env=[{"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": "x"}]), "KUBERAY_GEN"),
    (lambda d: _cluster(d).update(rayVersion="2.51.0"), "2.52"),
    (lambda d: _cluster(d)["authOptions"].update(enableK8sTokenAuth=True), "K8s token auth"),
    (lambda d: _cluster(d).update(networkPolicy={"mode": "DenyAll"}), "feature gate"),
    (lambda d: _cluster(d).update(gcsFaultToleranceOptions={"redisAddress": "r:6379"}) or
     _head_env("REDIS_PASSWORD", "x")(d), "only there"),
    (lambda d: _cluster(d).pop("gcsFaultToleranceOptions") and
     _head_env("RAY_REDIS_ADDRESS", "r:6379")(d), "without gcsFaultToleranceOptions"),
    (lambda d: d["metadata"].update(name="Pardus"), "DNS-1035"),
    (lambda d: d["metadata"].update(name="p" * 48), "longer than 47"),
    (lambda d: d["metadata"].update(annotations={"ray.io/initializing-timeout": "soon"}),
     "positive duration"),
    (lambda d: d["spec"]["upgradeStrategy"].update(type="Recreate"), "invalid"),
    (lambda d: d["spec"]["upgradeStrategy"].update(type="NewClusterWithIncrementalUpgrade"),
     "options"),
    (lambda d: d["spec"].update(rayClusterDeletionDelaySeconds=-1), "non-negative"),
    (lambda d: d["spec"].update(serveService={"spec": {"selector": {"a": "b"}}}), "ignored"),
    (lambda d: d["spec"]["serveService"]["spec"]["ports"][0].update(name="http"), "dropped"),
    (lambda d: d["spec"].pop("serveService") and _cluster(d)["headGroupSpec"]["template"][
        "spec"]["containers"][0]["ports"][3].update(name="http"), "not named `serve`"),
])
def test_kuberay_cluster_and_service_rules_can_fail(change, message: str, rendered) -> None:
    errors = _broken(_service(rendered), change)
    assert any(message in e for e in errors), errors


def _gpu_group(resources: str, **params: str) -> dict[str, Any]:
    limits = {"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": 1}
    return {"rayStartParams": {"resources": resources, **params},
            "template": {"spec": {"containers": [{"resources": {"limits": limits}}]}}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_start_gets_each_groups_gpus(overlay: str, rendered) -> None:
    """Every Ray node starts with the GPUs its container has (KubeRay's --num-gpus), and KubeRay
    and Ray's autoscaler read the group's custom resource alike."""
    groups = {group.get("groupName", f"{doc['kind']} head"): group
              for doc in rendered(overlay) if doc["kind"] in ("RayService", "RayJob")
              for group in [_cluster(doc)["headGroupSpec"], *_cluster(doc)["workerGroupSpecs"]]}
    gpus = {name: int(g["template"]["spec"]["containers"][0]["resources"]["limits"].get(
        "nvidia.com/gpu", 0)) for name, g in groups.items()}
    started = {name: int(ray_start_params(g).get("num-gpus", 0)) for name, g in groups.items()}
    assert started == gpus
    for name, group in groups.items():
        scaler = autoscaler_resources(group)
        assert scaler.pop("GPU", 0) == gpus[name], name
        assert scaler == resources_map(group.get("rayStartParams") or {}), name


def test_unparsed_resources_lose_the_gpus() -> None:
    """getResourcesMap trims quotes, not backslashes: Ray's documented '"{\\"x\\": 1}"' form
    fails there, and KubeRay then adds no --num-gpus; the autoscaler reads both forms."""
    escaped = _gpu_group('"{\\"pardus_embedder\\": 100}"')
    assert "num-gpus" not in ray_start_params(escaped)
    assert autoscaler_resources(escaped) == {"GPU": 1.0, "pardus_embedder": 100.0}
    plain = _gpu_group("'{\"pardus_embedder\": 100}'")
    assert ray_start_params(plain)["num-gpus"] == "1"
    assert resources_map(plain["rayStartParams"]) == {"pardus_embedder": 100.0}
    assert autoscaler_resources(plain) == {"GPU": 1.0, "pardus_embedder": 100.0}
    assert ray_start_params(_gpu_group('"{\\"x\\": 1}"', **{"num-gpus": "1"}))["num-gpus"] == "1"


@pytest.mark.parametrize("change,message", [
    (lambda d: d["spec"].update(shutdownAfterJobFinishes=True), "mutually exclusive"),
    (lambda d: d["spec"].update(ttlSecondsAfterFinished=3600), "needs shutdownAfterJobFinishes"),
    (lambda d: d["spec"]["deletionStrategy"].update(onSuccess={"policy": "DeleteCluster"}),
     "legacy"),
    (lambda d: d["spec"].update(deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}}),
     "both onSuccess and onFailure"),
    (lambda d: d["spec"]["deletionStrategy"]["deletionRules"][0]["condition"].update(
        jobDeploymentStatus="Failed"), "exactly one"),
    (lambda d: d["spec"]["deletionStrategy"]["deletionRules"][0]["condition"].update(
        ttlSeconds=-1), "non-negative"),
    (lambda d: d["spec"]["deletionStrategy"]["deletionRules"].append(
        copy.deepcopy(d["spec"]["deletionStrategy"]["deletionRules"][0])), "duplicate"),
    (lambda d: d["spec"]["deletionStrategy"]["deletionRules"][1]["condition"].update(
        ttlSeconds=7200), "must grow"),
    (lambda d: _cluster(d).update(enableInTreeAutoscaling=True), "DeleteWorkers"),
    (lambda d: d["spec"].update(suspend=True), "suspended"),
    (lambda d: d["spec"].pop("rayClusterSpec"), "must be set"),
    (lambda d: d["spec"].update(submissionMode="SidecarMode"), "SidecarMode"),
    (lambda d: d["spec"].update(submissionMode="InteractiveMode", backoffLimit=2),
     "InteractiveMode"),
    (lambda d: d["spec"]["submitterPodTemplate"]["spec"].update(containers=[]), "submitter"),
    (lambda d: d["spec"].update(runtimeEnvYAML="env_vars: [unclosed"), "not YAML"),
    (lambda d: d["spec"].update(activeDeadlineSeconds=0), "must be positive"),
    (lambda d: d["spec"].update(backoffLimit=-1), "non-negative"),
    (lambda d: _cluster(d)["authOptions"].update(enableK8sTokenAuth=True), "RayJob"),
    (lambda d: d["metadata"].update(name="pardus_ingest"), "DNS-1035"),
])
def test_kuberay_job_rules_can_fail(change, message: str, rendered) -> None:
    errors = _broken(_job(rendered), change)
    assert any(message in e for e in errors), errors


def test_ingest_job_frees_its_gpus_in_every_terminal_state(rendered) -> None:
    """Deletion rules, not a TTL: the workers go at once on success, failure and a failed
    deployment (jobStatus alone misses deadlines and failed submitters)."""
    for overlay in ("dev/ingest", "prod/ingest"):
        spec = one(rendered(overlay), "RayJob", "pardus-ingest")["spec"]
        assert not spec.get("shutdownAfterJobFinishes") and "ttlSecondsAfterFinished" not in spec
        immediate = {(next(iter(sorted(r["condition"].items()))), r["policy"])
                     for r in spec["deletionStrategy"]["deletionRules"]
                     if r["condition"].get("ttlSeconds", 0) == 0}
        states = {c for c, p in immediate if p in ("DeleteWorkers", "DeleteCluster")}
        assert {("jobStatus", "SUCCEEDED"), ("jobStatus", "FAILED"),
                ("jobDeploymentStatus", "Failed")} <= states, states


@pytest.mark.parametrize("change,message", [
    (lambda s: s["components"].update(rollingMode=1), "rollingMode"),
    (lambda s: s.update(mode="standalone") or s["dependencies"].update(msgStreamType="rocksmq")
     or s["components"].update(enableRollingUpdate=True), "enableRollingUpdate"),
    (lambda s: s["dependencies"]["woodpecker"].update(persistence={"persistentVolumeClaim": {
        "spec": {"accessModes": "ReadWriteOnce"}}}) if "woodpecker" in s["dependencies"] else
     s["dependencies"].update(woodpecker={"persistence": {"persistentVolumeClaim": {
         "spec": {"accessModes": "ReadWriteOnce"}}}}), "persistence"),
    (lambda s: s["dependencies"]["etcd"].update(external=True), "endpoints"),
    (lambda s: s["dependencies"]["storage"].update(external=True), "endpoint"),
    (lambda s: s["config"].update(etcd={**s["config"]["etcd"], "endpoints": ["x:2379"]}),
     "dropped"),
    (lambda s: s["dependencies"]["storage"].update(secretRef="my-minio"), "replaced"),
    (lambda s: s["dependencies"].pop("msgStreamType"), "Pulsar"),
    (lambda s: s["components"]["securityContext"].update(fsGroup=100), "securityContext"),
    (lambda s: s["config"]["etcd"]["auth"].update(password="hunter2"), "committed"),
    (lambda s: s["dependencies"]["etcd"]["inCluster"]["values"]["auth"]["rbac"].pop(
        "existingSecret"), "RBAC"),
    (lambda s: s["components"].update(indexNode={"replicas": 0}), "indexNode is not deployed"),
    (lambda s: s["components"].update(queryCoord={"replicas": 1}), "queryCoord is not deployed"),
    (lambda s: s["components"].update(image="milvusdb/milvus:v2.5.4", streamingMode=False),
     "streamingNode is not deployed"),
    (lambda s: s.update(mode="standalone"), "proxy is not deployed"),
])
def test_milvus_operator_rules_can_fail(change, message: str, rendered) -> None:
    milvus = one(rendered("prod"), "Milvus", "pardus")
    broken = copy.deepcopy(milvus)
    change(broken["spec"])
    errors = milvus_errors(broken)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("queue,refused", [("woodpecker", False), ("kafka", False),
                                          ("rocksmq", True), ("natsmq", True)])
def test_milvus_rolling_update_outside_cluster_mode(queue: str, refused: bool, rendered) -> None:
    """validateEnableRolingUpdate (v1.3.x): standalone Milvus may roll with an external queue or
    woodpecker, not with rocksmq or natsmq."""
    milvus = copy.deepcopy(one(rendered("prod"), "Milvus", "pardus"))
    milvus["spec"].update(mode="standalone")
    milvus["spec"]["dependencies"]["msgStreamType"] = queue
    milvus["spec"]["components"]["enableRollingUpdate"] = True
    assert any("enableRollingUpdate" in e for e in milvus_errors(milvus)) == refused


@pytest.mark.parametrize("value,refused", [("true", False), ("True", False), ("yes", True),
                                          ("1", True), ("false", True)])
def test_ft_enabled_annotation_counts_only_when_true(value: str, refused: bool, rendered) -> None:
    """IsGCSFaultToleranceEnabled: ray.io/ft-enabled turns GCS fault tolerance on only when it
    says "true" (any case); otherwise RAY_REDIS_ADDRESS on the head is refused."""
    def change(doc: dict[str, Any]) -> None:
        _cluster(doc).pop("gcsFaultToleranceOptions")
        doc["metadata"]["annotations"] = {"ray.io/ft-enabled": value}
        _head_env("RAY_REDIS_ADDRESS", "redis:6379")(doc)

    errors = _broken(_service(rendered), change)
    assert any("without gcsFaultToleranceOptions" in e for e in errors) == refused, errors


def test_milvus_components_follow_the_version() -> None:
    """GetComponentsBySpec: 2.6 in cluster mode has no index node or separate coordinators; 2.5
    has index nodes, and streaming nodes only when asked for."""
    def spec(image: str, **components: Any) -> dict[str, Any]:
        return {"mode": "cluster", "components": {"image": image, **components}}

    assert deployed_components(spec("milvusdb/milvus:v2.6.11")) == list(COMPONENTS_2_6)
    assert deployed_components(spec("milvusdb/milvus:master-20250101-abc")) == list(COMPONENTS_2_6)
    assert "indexNode" in deployed_components(spec("milvusdb/milvus:v2.5.4", mixCoord={}))
    assert "streamingNode" not in deployed_components(spec("milvusdb/milvus:v2.5.4"))
    assert "streamingNode" in deployed_components(spec("milvusdb/milvus:v2.5.4", streamingNode={}))
    assert deployed_components({"components": {}}) == ["standalone"]


def test_milvus_pins_a_2_6_release(rendered) -> None:
    """The retrieval work needs Milvus >= 2.5 (BM25, hybrid_search, group_by, aliases); the
    operator v1.3.7 defaults to v2.6.11. A floating tag is refused here."""
    for overlay in ("dev", "prod"):
        version = image_version(one(rendered(overlay), "Milvus", "pardus"))
        assert version is not None and (2, 6, 11) <= version < (2, 7, 0), version
    assert image_version({"spec": {"components": {"image": "milvusdb/milvus:latest"}}}) is None


def _changed(cluster: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    goal = copy.deepcopy(cluster)
    change(goal)
    return goal


def _template(cluster: dict[str, Any], group: int) -> dict[str, Any]:
    return cluster["workerGroupSpecs"][group]["template"]["spec"]


ROLLOUTS = {  # a change of rayClusterConfig -> what KubeRay v1.7.0 does (k8s/README.md's table)
    "replica bounds": (lambda c: c["workerGroupSpecs"][1].update(
        minReplicas=3, maxReplicas=5, replicas=3), "nothing"),
    "tolerations": (lambda c: _template(c, 1).update(tolerations=[]), "nothing"),
    "head tolerations": (lambda c: c["headGroupSpec"]["template"]["spec"].update(
        tolerations=[{"key": "dedicated", "operator": "Exists"}]), "nothing"),
    "schedulingGates": (lambda c: _template(c, 2).update(
        schedulingGates=[{"name": "example.com/gate"}]), "nothing"),
    "image tag": (lambda c: _template(c, 1)["containers"][0].update(
        image=_template(c, 1)["containers"][0]["image"] + "-2"), "new cluster"),
    "node selector": (lambda c: _template(c, 1)["nodeSelector"].update(zone="b"), "new cluster"),
    "rayStartParams": (lambda c: c["workerGroupSpecs"][0]["rayStartParams"].update(
        **{"object-store-memory": "1000000000"}), "new cluster"),
    "appended group": (lambda c: c["workerGroupSpecs"].append(
        {**copy.deepcopy(c["workerGroupSpecs"][0]), "groupName": "more-cpu"}), "in place"),
    "inserted group": (lambda c: c["workerGroupSpecs"].insert(
        0, {**copy.deepcopy(c["workerGroupSpecs"][0]), "groupName": "more-cpu"}), "new cluster"),
}


@pytest.mark.parametrize("name", sorted(ROLLOUTS))
def test_what_rolls_out(name: str, rendered) -> None:
    """Mirrors KubeRay's rollout hash: replica bounds, tolerations and scheduling gates alone
    never roll out (GenerateHashWithoutReplicasAndWorkersToDelete mutes them), an appended
    worker group is added in place, anything else starts a new cluster."""
    cluster = _cluster(_service(rendered))
    change, outcome = ROLLOUTS[name]
    assert rollout(cluster, _changed(cluster, change)) == outcome


README_WORDS = {"replica bounds": "`minReplicas`", "tolerations": "`tolerations`",
                "head tolerations": "`tolerations`", "schedulingGates": "`schedulingGates`",
                "image tag": "image tag", "node selector": "node selectors",
                "rayStartParams": "`rayStartParams`", "appended group": "appended",
                "inserted group": "inserted"}


def _readme_rollouts() -> list[tuple[str, str]]:
    """(change, outcome) rows of k8s/README.md's "What rolls out" table; outcome is "nothing",
    "in place" or "new cluster" as the row's second cell begins."""
    text = (K8S / "README.md").read_text()
    section = text[text.index("### What rolls out"):]
    section = section[:section.index("\n## ")]
    outcomes = {"**nothing**": "nothing", "added to the running cluster in place": "in place",
                "a new cluster": "new cluster"}
    return [(change, next((o for start, o in outcomes.items() if cell.startswith(start)), cell))
            for change, cell in re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.MULTILINE)]


@pytest.mark.parametrize("name", sorted(README_WORDS))
def test_readme_says_what_rolls_out(name: str, rendered) -> None:
    rows = [outcome for change, outcome in _readme_rollouts() if README_WORDS[name] in change]
    assert len(rows) == 1, rows
    cluster = _cluster(_service(rendered))
    assert rows[0] == rollout(cluster, _changed(cluster, ROLLOUTS[name][0]))
