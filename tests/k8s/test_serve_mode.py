"""Serve's throughput-optimised mode with the HAProxy ingress (serve/ray_env.py) on Kubernetes:
every Ray container of the RayService gets its variables from its ConfigMaps, the app binds all
interfaces, and HAProxy's metrics port is declared and scraped."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from pardus.serve.ray_env import serve_environment
from tests.k8s.manifests import one
from tests.k8s.netpol import selects
from tests.k8s.workloads import pods

ENVS = ("dev", "prod")
SERVING_GROUPS = ["RayService/cpu-workers", "RayService/embedder-gpu", "RayService/head",
                  "RayService/reranker-gpu"]
HAPROXY_METRICS = 9101  # RAY_SERVE_HAPROXY_METRICS_PORT's default


def container_env(container: dict[str, Any], configmaps: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What a container's environment holds: its envFrom ConfigMaps in order (with their prefix),
    then its env entries, which win (a value from a reference is None: not a literal)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref is None:
            continue
        data = configmaps.get(ref["name"])
        assert data is not None or ref.get("optional"), f"ConfigMap {ref['name']} is not rendered"
        env.update({source.get("prefix", "") + k: v for k, v in (data or {}).items()})
    for entry in container.get("env") or []:
        env[entry["name"]] = entry.get("value")
    return env


def serve_mode_problems(docs: list[dict[str, Any]]) -> list[str]:
    """The RayService containers whose environment lacks, or changes, a variable of
    serve_environment(haproxy=True)."""
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    expected = serve_environment(haproxy=True)
    problems = []
    for pod in pods(docs):
        if not pod.where.startswith("RayService/"):
            continue
        for container in pod.spec["containers"]:
            env = container_env(container, configmaps)
            got = {name: env.get(name) for name in expected}
            if got != expected:
                problems.append(f"{pod.where} {container['name']}: {got}")
    return problems


@pytest.mark.parametrize("env", ENVS)
def test_every_ray_container_gets_the_serve_mode(env: str, rendered) -> None:
    docs = rendered(env)
    assert sorted(p.where for p in pods(docs) if p.where.startswith("RayService/")) == SERVING_GROUPS
    assert serve_mode_problems(docs) == []


def test_serve_mode_check_can_fail(rendered) -> None:
    """An env entry that overrides the ConfigMap, or a container without it, is caught."""
    docs = rendered("prod")
    overridden = copy.deepcopy(docs)
    groups = one(overridden, "RayService", "pardus")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    groups[1]["template"]["spec"]["containers"][0].setdefault("env", []).append(
        {"name": "RAY_SERVE_ENABLE_HA_PROXY", "value": "0"})
    assert [p.split(" ")[0] for p in serve_mode_problems(overridden)] == ["RayService/embedder-gpu"]
    without = copy.deepcopy(docs)
    head = one(without, "RayService", "pardus")["spec"]["rayClusterConfig"]["headGroupSpec"]
    head["template"]["spec"]["containers"][0].pop("envFrom")
    assert [p.split(" ")[0] for p in serve_mode_problems(without)] == ["RayService/head"]


@pytest.mark.parametrize("env", ENVS)
def test_replicas_accept_haproxy_from_other_pods(env: str, rendered) -> None:
    """HAProxy forwards to Ingress replicas on other pods: an explicit Serve HTTP host other than
    all interfaces would refuse it (the Serve controller only warns)."""
    config = yaml.safe_load(one(rendered(env), "RayService", "pardus")["spec"]["serveConfigV2"])
    assert config["http_options"]["host"] == "0.0.0.0"
    assert config.get("proxy_location", "EveryNode") == "EveryNode"


@pytest.mark.parametrize("env", ENVS)
def test_haproxy_metrics_are_declared_and_scraped(env: str, rendered) -> None:
    """Prometheus' pod discovery makes targets of declared container ports only: each serving
    Ray container declares `haproxy-metrics`, and a PodMonitor scrapes that port by name."""
    docs = rendered(env)
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    for pod in pods(docs):
        if not pod.where.startswith("RayService/"):
            continue
        ports = {p["name"]: p["containerPort"] for p in pod.spec["containers"][0].get("ports") or []}
        assert ports.get("haproxy-metrics") == HAPROXY_METRICS, pod.where
        assert any(selects(m["spec"]["selector"], pod.labels) and any(
            e.get("port") == "haproxy-metrics" for e in m["spec"]["podMetricsEndpoints"])
            for m in monitors), pod.where
