"""Default deny plus the flows Pardus needs: each flow checked on the rendered NetworkPolicies,
with the pods' rendered labels (Milvus' pods with the operator's and the charts' labels)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s.manifests import one
from tests.k8s.netpol import Peer, allowed, selecting
from tests.k8s.workloads import by_where

ENVS = {"dev": "pardus-dev", "prod": "pardus"}
OUTSIDE = {
    "kuberay": Peer("ray-system", {"app.kubernetes.io/name": "kuberay-operator"}),
    "milvus-operator": Peer("milvus-operator", {"app.kubernetes.io/name": "milvus-operator"}),
    "prometheus": Peer("monitoring", {"app.kubernetes.io/name": "prometheus"}),
    "ingress-controller": Peer("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    "dns": Peer("kube-system", {"k8s-app": "kube-dns"}),
    "stranger": Peer("default", {"app": "stranger"}),
    "s3": Peer(ip="52.216.8.10"),
    "metadata": Peer(ip="169.254.169.254"),
}


def _milvus_pods(milvus: dict[str, Any], namespace: str) -> dict[str, Peer]:
    """Milvus' pods as the operator labels them (NewComponentAppLabels) and the etcd/MinIO
    charts' pods with the podLabels the CR gives them."""
    name, deps = milvus["metadata"]["name"], milvus["spec"]["dependencies"]
    out = {}
    for component in ("proxy", "querynode", "datanode", "mixcoord", "streamingnode"):
        out[f"milvus/{component}"] = Peer(namespace, {
            "app.kubernetes.io/instance": name, "app.kubernetes.io/name": "milvus",
            "app.kubernetes.io/component": component})
    for dep, chart in (("etcd", "etcd"), ("storage", "minio")):
        labels = deps[dep]["inCluster"]["values"]["podLabels"]
        out[chart] = Peer(namespace, {"app.kubernetes.io/name": chart,
                                      "app.kubernetes.io/instance": f"{name}-{chart}", **labels})
    return out


@pytest.fixture(scope="module", params=sorted(ENVS))
def world(request, rendered) -> tuple[list[dict[str, Any]], dict[str, Peer]]:
    env, namespace = request.param, ENVS[request.param]
    docs = rendered(env) + rendered(f"{env}/ingest") + rendered(f"{env}/milvus-users")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    peers = {where: Peer(namespace, pod.labels) for where, pod in by_where(docs).items()}
    peers.update(_milvus_pods(one(docs, "Milvus", "pardus"), namespace))
    peers.update(OUTSIDE)
    peers["debug-pod"] = Peer(namespace, {"run": "debug"})
    return policies, peers


# (source, destination, port, allowed): the flows the issue names, and their near misses.
FLOWS = [
    ("ingress-controller", "RayService/cpu-workers", 8000, True),
    ("ingress-controller", "RayService/embedder-gpu", 8000, False),
    ("ingress-controller", "RayService/reranker-gpu", 8000, False),
    ("ingress-controller", "RayService/head", 8000, False),
    ("stranger", "RayService/cpu-workers", 8000, False),
    ("RayService/cpu-workers", "milvus/proxy", 19530, True),
    ("RayService/embedder-gpu", "milvus/proxy", 19530, False),
    ("RayService/reranker-gpu", "milvus/proxy", 19530, False),
    ("RayService/head", "milvus/proxy", 19530, False),
    ("RayJob/ingest-head", "milvus/proxy", 19530, True),
    ("RayJob/ingest-gpu", "milvus/proxy", 19530, True),
    ("RayJob/ingest-cpu", "milvus/proxy", 19530, True),
    ("Job/pardus-milvus-users", "milvus/proxy", 19530, True),
    ("RayJob/submitter", "milvus/proxy", 19530, False),
    ("debug-pod", "milvus/proxy", 19530, False),
    ("RayService/cpu-workers", "milvus/querynode", 21123, False),
    ("RayService/cpu-workers", "etcd", 2379, False),
    ("RayService/cpu-workers", "minio", 9000, False),
    ("RayJob/ingest-cpu", "etcd", 2379, False),
    ("stranger", "etcd", 2379, False),
    ("debug-pod", "etcd", 2379, False),
    ("milvus/querynode", "etcd", 2379, True),
    ("milvus/streamingnode", "minio", 9000, True),
    ("milvus/proxy", "milvus/mixcoord", 53100, True),
    ("milvus/querynode", "milvus/streamingnode", 22222, True),
    ("etcd", "etcd", 2380, True),
    ("minio", "minio", 9000, True),
    ("milvus-operator", "etcd", 2379, True),
    ("milvus-operator", "minio", 9000, True),
    ("milvus-operator", "milvus/proxy", 9091, True),
    ("milvus/proxy", "RayService/cpu-workers", 8000, False),
    ("kuberay", "RayService/head", 8265, True),
    ("kuberay", "RayJob/ingest-head", 8265, True),
    ("kuberay", "RayService/cpu-workers", 8265, False),
    ("stranger", "RayService/head", 8265, False),
    ("RayJob/submitter", "RayJob/ingest-head", 8265, True),
    ("RayJob/submitter", "RayJob/ingest-head", 6379, False),
    ("RayService/embedder-gpu", "RayService/head", 6379, True),
    ("RayService/cpu-workers", "RayService/reranker-gpu", 10012, True),
    ("RayJob/ingest-gpu", "RayJob/ingest-cpu", 10012, True),
    ("RayService/cpu-workers", "RayJob/ingest-head", 6379, False),
    # Serve's HAProxy ingress (serve/ray_env.py): HAProxy on any serving pod forwards to the
    # Ingress replicas' direct-ingress ports (30000-31000) on the CPU workers, its own or another
    ("RayService/cpu-workers", "RayService/cpu-workers", 30000, True),
    ("RayService/cpu-workers", "RayService/cpu-workers", 31000, True),
    ("RayService/head", "RayService/cpu-workers", 30000, True),
    ("RayService/embedder-gpu", "RayService/cpu-workers", 31000, True),
    ("RayService/reranker-gpu", "RayService/cpu-workers", 30500, True),
    ("ingress-controller", "RayService/cpu-workers", 30000, False),
    ("RayJob/ingest-cpu", "RayService/cpu-workers", 30000, False),
    ("stranger", "RayService/cpu-workers", 31000, False),
    # HAProxy's metrics (9101) for Prometheus; its stats page (8404) for no other namespace
    ("prometheus", "RayService/cpu-workers", 9101, True),
    ("prometheus", "RayService/head", 9101, True),
    ("prometheus", "RayService/reranker-gpu", 9101, True),
    ("stranger", "RayService/cpu-workers", 9101, False),
    ("prometheus", "RayService/cpu-workers", 8404, False),
    ("ingress-controller", "RayService/cpu-workers", 8404, False),
    ("stranger", "RayService/head", 8404, False),
    ("RayJob/ingest-cpu", "RayService/head", 6379, False),
    ("prometheus", "RayService/embedder-gpu", 8080, True),
    ("prometheus", "RayJob/ingest-gpu", 8080, True),
    ("prometheus", "RayService/head", 44217, True),
    ("prometheus", "milvus/querynode", 9091, True),
    ("prometheus", "RayService/cpu-workers", 8000, False),
    ("RayService/cpu-workers", "s3", 443, True),
    ("RayJob/ingest-gpu", "s3", 443, True),
    ("RayJob/ingest-head", "metadata", 80, True),
    ("RayService/embedder-gpu", "s3", 443, False),
    ("RayService/reranker-gpu", "s3", 443, False),
    ("RayService/cpu-workers", "s3", 22, False),
    ("Job/pardus-models", "s3", 443, True),
    ("Job/pardus-models", "milvus/proxy", 19530, False),
    ("Job/pardus-milvus-users", "s3", 443, False),
    ("RayService/head", "s3", 443, True),  # the autoscaler's API server egress (README)
    ("RayService/head", "s3", 80, False),
]


@pytest.mark.parametrize("src,dst,port,expected", FLOWS, ids=[f"{s}->{d}:{p}" for s, d, p, _ in FLOWS])
def test_flows(world, src: str, dst: str, port: int, expected: bool) -> None:
    policies, peers = world
    assert allowed(policies, peers[src], peers[dst], port) is expected


def test_every_pod_resolves_dns(world) -> None:
    policies, peers = world
    for name, peer in peers.items():
        if peer.ip is None and peer.namespace in ENVS.values():
            assert allowed(policies, peer, peers["dns"], 53, "UDP"), name
            assert not allowed(policies, peer, peers["dns"], 80), name


def test_every_component_has_its_own_policy(world) -> None:
    """Default deny selects every pod; each of our components also has a policy of its own."""
    policies, peers = world
    general = {"default-deny", "dns-egress"}
    for name, peer in peers.items():
        if peer.ip is None and peer.namespace in ENVS.values() and name != "debug-pod":
            chosen = set(selecting(policies, peer))
            assert "default-deny" in chosen and chosen - general, (name, chosen)


def test_redis_only_from_the_serving_head(rendered) -> None:
    docs = rendered("prod")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = {w: Peer("pardus", p.labels) for w, p in by_where(docs).items()}
    redis = pods["StatefulSet/pardus-redis"]
    assert allowed(policies, pods["RayService/head"], redis, 6379)
    for other in ("RayService/cpu-workers", "RayService/embedder-gpu", "Job/pardus-models"):
        assert not allowed(policies, pods[other], redis, 6379), other
    assert not allowed(policies, OUTSIDE["stranger"], redis, 6379)
    assert not [d for d in rendered("dev") if d["metadata"]["name"].startswith("redis-")]


def test_the_evaluator_can_refuse(world) -> None:
    """Dropping the proxy's ingress policy, or widening its selector, changes the verdicts."""
    policies, peers = world
    cpu, proxy = peers["RayService/cpu-workers"], peers["milvus/proxy"]
    assert allowed(policies, cpu, proxy, 19530)
    without = [p for p in policies if p["metadata"]["name"] != "milvus-proxy-from-clients"]
    assert not allowed(without, cpu, proxy, 19530)
    debug, etcd = peers["debug-pod"], peers["etcd"]
    unisolated = [p for p in policies if p["metadata"]["name"] not in ("default-deny", "dns-egress")]
    assert not allowed(unisolated, debug, etcd, 2379)  # etcd's own ingress policy still refuses
    widened = copy.deepcopy(unisolated)
    for policy in widened:
        if policy["metadata"]["name"] == "milvus-etcd":
            policy["spec"]["ingress"][0]["from"].append({"podSelector": {}})
    assert allowed(widened, debug, etcd, 2379)
    assert not allowed(policies, debug, etcd, 2379)
