"""The paths through the deployment: the ingest report is writable, every ingest pod has the
storage identity, HTTP reaches only a cluster that serves and there only the CPU workers, KubeRay's
probes, the metrics."""

from __future__ import annotations

import copy
import posixpath
from typing import Any

import pytest
import yaml

from pardus.cli.serve_config import load_placement, serve_config
from tests.k8s.kuberay_reconcile import cluster_pod_labels, serve_service, serve_target
from tests.k8s.kuberay_rules import kuberay_errors
from tests.k8s.manifests import one
from tests.k8s.netpol import selects
from tests.k8s.workloads import Pod, by_where, pods, reached_by

ENVS = ("dev", "prod")
RAY_UID, RAY_GID = 1000, 100  # the `ray` user and `users` group of the Ray image


def report_problems(job: dict[str, Any]) -> list[str]:
    """Why the driver (uid 1000 on the ingest head) could not write PARDUS_INGEST__REPORT: the
    report's folder must be a writable volume mount, and the volume must be writable by the Ray
    user: a fresh PVC is root-owned, and the kubelet makes it group-writable for the pod's
    fsGroup, which the process then has among its groups."""
    report = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]["PARDUS_INGEST__REPORT"]
    head = next(p for p in pods([job]) if p.where == "RayJob/ingest-head")
    folder = posixpath.dirname(report)
    mount = head.mounts().get(folder)
    if mount is None:
        return [f"{folder} is not a volume mount: the report would be lost with the pod"]
    problems = ["the reports mount is read-only"] if mount.get("readOnly") else []
    if head.claim(folder) is None:
        problems.append("the reports volume is not a PersistentVolumeClaim")
    ctx = {**(head.spec.get("securityContext") or {}),
           **(head.spec["containers"][0].get("securityContext") or {})}
    if ctx.get("runAsUser") != RAY_UID:
        problems.append(f"the driver does not run as the Ray user ({ctx.get('runAsUser')})")
    if ctx.get("fsGroup") not in (RAY_GID, ctx.get("runAsGroup")):
        problems.append("no fsGroup of the Ray user's group: the volume stays root-owned")
    return problems


@pytest.mark.parametrize("env", ENVS)
def test_ingest_report_is_writable_by_the_ray_user(env: str, rendered) -> None:
    job = one(rendered(f"{env}/ingest"), "RayJob", "pardus-ingest")
    assert report_problems(job) == []
    no_group = copy.deepcopy(job)
    no_group["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"][
        "securityContext"].pop("fsGroup")
    assert any("fsGroup" in p for p in report_problems(no_group))
    elsewhere = copy.deepcopy(job)
    elsewhere["spec"]["runtimeEnvYAML"] = elsewhere["spec"]["runtimeEnvYAML"].replace(
        "/reports/", "/tmp/")
    assert report_problems(elsewhere)


def identity(pod: Pod) -> tuple[Any, ...]:
    """What object storage sees of a pod: its service account, its static-key Secrets and
    whether the NetworkPolicies let it out to object storage."""
    container = pod.spec["containers"][0]
    keys = sorted(str(e.get("secretRef")) for e in container.get("envFrom") or [] if "secretRef" in e)
    return (pod.spec.get("serviceAccountName"), tuple(keys),
            pod.labels.get("pardus.io/object-storage"))


@pytest.mark.parametrize("env", ENVS)
def test_every_ingest_pod_has_the_storage_identity(env: str, rendered) -> None:
    """Ray Data may run a fetch, decode or write on any worker, GPU ones included."""
    ingest = [p for p in pods(rendered(f"{env}/ingest")) if p.where != "RayJob/submitter"]
    assert {p.where for p in ingest} == {"RayJob/ingest-head", "RayJob/ingest-gpu",
                                          "RayJob/ingest-cpu"}
    identities = {identity(p) for p in ingest}
    assert identities == {("pardus-ingest", ("{'name': 'pardus-object-storage', 'optional': True}",),
                           "true")}, identities
    accounts = {d["metadata"]["name"]: d for d in rendered(env) if d["kind"] == "ServiceAccount"}
    assert accounts["pardus-ingest"]["automountServiceAccountToken"] is False
    serving = by_where(rendered(env))["RayService/cpu-workers"]
    assert identity(serving)[0] == "pardus-serving" and "pardus-serving" in accounts
    gpu = copy.deepcopy(ingest)
    gpu[1].spec.pop("serviceAccountName")
    assert len({identity(p) for p in gpu}) == 2


def cluster_pods(service: dict[str, Any], cluster: str) -> list[Pod]:
    """The RayService's pods in its Ray cluster `cluster`, with the labels KubeRay gives them."""
    labels = cluster_pod_labels(service, cluster)
    return [Pod(f"{pod.where}@{cluster}", {**pod.labels, **labels[pod.where.split("/")[1]]},
                pod.spec) for pod in pods([service])]


@pytest.mark.parametrize("env", ENVS)
def test_http_reaches_only_a_cluster_that_serves(env: str, rendered) -> None:
    """Clients' Service `pardus-http` is KubeRay's Serve Service: no Service of ours selects the
    Ray pods (it could not pin the cluster, whose name KubeRay generates). Through a NewCluster
    upgrade it reaches the old cluster until every Serve application of the new one is RUNNING,
    then the new one; in each, the CPU workers only (the GPU workers match KubeRay's selector
    but declare no `serve` port)."""
    docs = rendered(env)
    service = one(docs, "RayService", "pardus")
    ours = [d["metadata"]["name"] for d in docs
            if d["kind"] == "Service" and reached_by(d, pods([service]))]
    assert ours == []
    old, new = "pardus-abcde", "pardus-vwxyz"
    everywhere = cluster_pods(service, old) + cluster_pods(service, new)
    pointing = old
    for apps, cluster in (({}, old), ({"pardus": "DEPLOYING"}, old),
                          ({"pardus": "DEPLOY_FAILED"}, old), ({"pardus": "RUNNING"}, new)):
        pointing = serve_target(pointing, old, new, {old: {"pardus": "RUNNING"}, new: apps})
        http = serve_service(service, pointing)
        assert http["metadata"]["name"] == "pardus-http"
        assert [p.where for p in reached_by(http, everywhere)] == [
            f"RayService/cpu-workers@{cluster}"], apps
    assert kuberay_errors(service) == []  # its ports survive KubeRay's merge
    cpu = by_where(docs)["RayService/cpu-workers"].spec["containers"][0]
    assert {"name": "serve", "containerPort": 8000} in cpu["ports"]
    profile = load_placement()["profiles"][env]["deployments"]["Ingress"]
    ingress = next(d for d in serve_config(env)["applications"][0]["deployments"]
                   if d["name"] == "Ingress")
    assert profile["max_replicas_per_node"] == ingress["max_replicas_per_node"] == 1
    group = next(g for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
                 if g["groupName"] == "cpu-workers")
    assert ingress["autoscaling_config"]["max_replicas"] <= group["maxReplicas"]


def test_serve_target_moves_only_to_a_running_cluster() -> None:
    """getAndCheckServeStatus: every application RUNNING, at least one; while the pending
    cluster is not ready the Service is left where it points."""
    assert serve_target("a", "a", "b", {"b": {"x": "RUNNING", "y": "DEPLOYING"}}) == "a"
    assert serve_target("a", "a", "b", {"b": {"x": "RUNNING", "y": "RUNNING"}}) == "b"
    assert serve_target(None, None, "b", {"b": {}}) is None
    assert serve_target("a", "a", None, {"a": {"x": "UNHEALTHY"}}) == "a"


@pytest.mark.parametrize("env", ENVS)
def test_kuberay_injects_the_probes(env: str, rendered) -> None:
    """No hand-written copies of KubeRay's old exec probes: for Ray >= 2.53 KubeRay injects HTTP
    probes where a Ray container has none (initLivenessAndReadinessProbe). The CPU workers alone
    keep a readiness probe of their own: the app's /healthz through the pod's Serve proxy."""
    for overlay in (env, f"{env}/ingest"):
        for pod in pods(rendered(overlay)):
            if not pod.where.startswith("Ray"):
                continue
            container = pod.spec["containers"][0]
            assert "livenessProbe" not in container, pod.where
            readiness = container.get("readinessProbe")
            if pod.where == "RayService/cpu-workers":
                assert readiness["httpGet"] == {"path": "/healthz", "port": "serve"}
            else:
                assert readiness is None, pod.where


@pytest.mark.parametrize("env", ENVS)
def test_podmonitors_scrape_every_ray_pod(env: str, rendered) -> None:
    docs = rendered(env) + rendered(f"{env}/ingest")
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    assert monitors and all(m["metadata"]["namespace"] for m in monitors)
    ray = [p for p in pods(docs) if "pardus.io/ray-cluster" in p.labels]
    for pod in ray:
        assert any(selects(m["spec"]["selector"], pod.labels) and any(
            e.get("port") == "metrics" for e in m["spec"]["podMetricsEndpoints"])
            for m in monitors), pod.where
        ports = {p["name"]: p["containerPort"] for p in pod.spec["containers"][0].get("ports") or []}
        assert ports.get("metrics", 8080) == 8080, pod.where  # KubeRay adds it when missing
    assert one(docs, "Milvus", "pardus")["spec"]["components"].get("disableMetric") is not True
