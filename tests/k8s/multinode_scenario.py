"""Multi-node Ray on one machine: the app placed by k8s/placement.yaml on nodes standing in for
the worker groups, scaled, then a worker node killed; writes what happened as JSON.

Run alone (tests/k8s/test_multinode.py does, in a fresh process, so the session's Ray is never
touched): python -m tests.k8s.multinode_scenario --work DIR --port 8141 --out result.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.k8s.multinode_http import API_KEY, add_items, not_ready, ready, rerank, search, search_ok

APP = "pardus"
PROFILE = "dev"  # one node per model group, Embedder 1-2 replicas: scaling fits the group
EMBED_TIMEOUT_S = 5  # the app's serving.embed_timeout_s: a search without an embedder gives up


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """check()'s first truthy value, polled; a TimeoutError naming `what` after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def app_settings(work: Path, full_size_embedder: bool = False) -> dict[str, Any]:
    """The app's `args.settings`: random models (a tiny embedder, or one of the real
    architecture's size), Milvus Lite under `work`."""
    from pardus.deployments.tiny.embedder import write_tiny_model
    from pardus.deployments.tiny.phi3v import write_tiny_phi3v

    model = write_tiny_model(work / "embedder", seed=0, full_size=full_size_embedder)
    return {
        "embedder": {"checkpoint": model["PARDUS_EMBEDDER__CHECKPOINT"],
                     "text_model": model["PARDUS_EMBEDDER__TEXT_MODEL"], "batch_size": 4},
        "milvus": {"uri": str(work / "pardus.db"), "collection": "multinode",
                   "index_type": "FLAT", "timeout_s": 5},
        "reranker": {"model": str(write_tiny_phi3v(work / "phi3v")), "dtype": "float32",
                     "max_model_len": 4096, "num_crops": 1, "enforce_eager": True,
                     "timeout_s": 60, "grid_cell": 96, "max_tokens": 160,
                     "max_candidates": 6, "cpu_kv_cache_gib": 1},
        "serving": {"image_root": str(work / "images"), "api_keys": [API_KEY],
                    "embed_timeout_s": EMBED_TIMEOUT_S},
    }


def placed_config(settings: dict[str, Any], port: int) -> dict[str, Any]:
    """The profile's serveConfigV2 (cli.serve_config), changed only where this machine differs: HTTP
    on loopback, no GPUs (each deployment keeps its group's custom resource), test settings."""
    from pardus.cli.serve_config import serve_config

    config = serve_config(PROFILE)
    config["http_options"] = {**config["http_options"], "host": "127.0.0.1", "port": port}
    for app in config["applications"]:
        app["args"] = {"settings": settings}
        for deployment in app["deployments"]:
            deployment["ray_actor_options"]["num_gpus"] = 0
    return config


def deployments_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for app in config["applications"] for d in app["deployments"]}


def group_nodes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per worker group (placement.yaml): the Ray node arguments of a node of that group, with
    the logical CPUs its deployments need at their max replicas."""
    from pardus.cli.serve_config import load_placement

    groups = load_placement()["groups"]
    cpus = {group: 0.0 for group in groups}
    for deployment in deployments_of(config).values():
        options = deployment["ray_actor_options"]
        scaling = deployment.get("autoscaling_config") or {}
        replicas = scaling.get("max_replicas", deployment.get("num_replicas", 1))
        for group, resource in groups.items():
            if resource in options.get("resources", {}):
                cpus[group] += options.get("num_cpus", 1) * replicas
    return {group: {"num_cpus": max(1, math.ceil(cpus[group])), "num_gpus": 0,
                    "resources": {resource: 100}}
            for group, resource in groups.items()}


def group_of(config: dict[str, Any], name: str) -> str:
    """The worker group whose custom resource the deployment asks for."""
    from pardus.cli.serve_config import load_placement

    asked = deployments_of(config)[name]["ray_actor_options"].get("resources", {})
    return next(group for group, resource in load_placement()["groups"].items()
                if resource in asked)


def replicas(client) -> dict[str, list[dict[str, Any]]]:
    """Replicas per deployment as the Serve controller records them (actor, node, state)."""
    import ray

    details = ray.get(client._controller.get_serve_instance_details.remote())
    app = details["applications"].get(APP) or {"deployments": {}}
    keep = ("replica_id", "actor_id", "node_id", "pid", "state", "start_time_s")
    return {name: [{key: r.get(key) for key in keep} for r in deployment["replicas"]]
            for name, deployment in app["deployments"].items()}


def running(client, counts: dict[str, int]) -> dict[str, list[dict[str, Any]]] | None:
    """The replicas once the app runs with exactly `counts` RUNNING replicas per deployment."""
    from ray import serve

    status = serve.status().applications.get(APP)
    if status is None or status.status != "RUNNING":
        return None
    found = replicas(client)
    for name, count in counts.items():
        if sum(r["state"] == "RUNNING" for r in found.get(name, [])) != count:
            return None
    return found


def deploy(client, config: dict[str, Any]) -> None:
    """What `serve deploy` and KubeRay do: hand the whole config to the Serve controller."""
    from ray.serve.schema import ServeDeploySchema

    client.deploy_apps(ServeDeploySchema.model_validate(config))


def scaled(config: dict[str, Any], name: str, replicas_wanted: int) -> dict[str, Any]:
    """The config with one deployment's replica floor raised; nothing else changed."""
    changed = copy.deepcopy(config)
    scaling = deployments_of(changed)[name]["autoscaling_config"]
    scaling["min_replicas"] = replicas_wanted
    scaling["max_replicas"] = max(scaling["max_replicas"], replicas_wanted)
    return changed


def phase_deploy(client, config, url, facts) -> None:
    started = time.monotonic()
    deploy(client, config)
    facts["placement"] = wait_for("app running", lambda: running(
        client, {"Ingress": 1, "Embedder": 1, "Reranker": 1}), 420, every=1)
    wait_for("/readyz 200", lambda: ready(url), 120)
    facts["deploy_s"] = round(time.monotonic() - started, 1)
    facts["upserted"] = add_items(url)
    facts["search_before"] = search(url)
    facts["rerank_before"] = rerank(url)


def burst(count: int = 12) -> dict[int, int]:
    """Embed `count` texts at once through the Embedder's handle; the batch sizes it formed."""
    import asyncio

    from ray import serve

    from pardus.deployments.embedder.queries import EmbedQuery

    handle = serve.get_deployment_handle("Embedder", APP)
    before = handle.batch_size_histogram.remote().result()

    async def fire():
        await asyncio.gather(*[handle.embed.remote(EmbedQuery(text=f"burst {i}"))
                               for i in range(count)])

    asyncio.run(fire())
    after = handle.batch_size_histogram.remote().result()
    return {size: after[size] - before.get(size, 0) for size in after
            if after[size] - before.get(size, 0)}


def phase_reconfigure(client, config, facts) -> None:
    """Change only the Embedder's batching in the config: applied to the running replica."""
    from ray import serve

    handle = serve.get_deployment_handle("Embedder", APP)
    facts["batches_before"] = burst()
    changed = copy.deepcopy(config)
    deployments_of(changed)["Embedder"]["user_config"] = {"max_batch_size": 1,
                                                          "batch_wait_timeout_s": 0.0}
    started = time.monotonic()
    deploy(client, changed)
    facts["batches_after"] = wait_for("batches of one", lambda: (
        lambda sizes: sizes if set(sizes) == {1} else None)(burst()), 60)
    facts["reconfigure_s"] = round(time.monotonic() - started, 1)
    facts["after_reconfigure"] = running(client, {"Ingress": 1, "Embedder": 1, "Reranker": 1})
    facts["batches_total"] = sum(handle.batch_size_histogram.remote().result().values())
    deploy(client, config)  # back to the placed config for the next phases


def phase_scale(client, config, facts) -> None:
    started = time.monotonic()
    deploy(client, scaled(config, "Embedder", 2))
    facts["after_scale"] = wait_for("Embedder at 2 replicas", lambda: running(
        client, {"Ingress": 1, "Embedder": 2, "Reranker": 1}), 180, every=1)
    facts["scale_s"] = round(time.monotonic() - started, 1)


def phase_kill(cluster, client, victim, url, facts) -> float:
    """Kill a node without a graceful stop; wait until Serve and /readyz see the loss."""
    killed = time.monotonic()
    cluster.remove_node(victim, allow_graceful=False)
    wait_for("the controller drops the lost replicas", lambda: not any(
        r["state"] == "RUNNING" and r["node_id"] == victim.node_id
        for r in replicas(client).get("Embedder", [])), 120)
    facts["serve_noticed_s"] = round(time.monotonic() - killed, 1)
    facts["outage_readyz"] = wait_for("/readyz 503 after the kill", lambda: not_ready(url), 120)
    # A query not asked before: the Ingress caches query embeddings (serve/query_cache.py), so
    # a repeated one would not need the lost Embedder.
    asked = time.monotonic()
    facts["search_during_outage"] = search(url, timeout=EMBED_TIMEOUT_S + 25,
                                           text="a shoe asked during the outage")
    facts["search_during_outage_s"] = round(time.monotonic() - asked, 1)
    return killed


def phase_replace(cluster, client, node_args, url, killed, facts):
    """Add a node like the lost one; time until searches work and replicas are back."""
    added = time.monotonic()
    replacement = cluster.add_node(**node_args)
    facts["replacement_joined_s"] = round(time.monotonic() - added, 1)
    wait_for("/readyz 200 after the replacement", lambda: ready(url), 300)
    facts["search_after"] = wait_for("a search after recovery", lambda: search_ok(url), 120)
    facts["recovered_after_add_s"] = round(time.monotonic() - added, 1)
    facts["recovered_after_kill_s"] = round(time.monotonic() - killed, 1)
    facts["after_recovery"] = wait_for("Embedder back at 2 replicas", lambda: running(
        client, {"Ingress": 1, "Embedder": 2, "Reranker": 1}), 180, every=1)
    return replacement


def scenario(cluster, config, node_args, port, facts) -> None:
    """Deploy, scale the Embedder, kill the Embedder's node and replace it."""
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    nodes = {group: cluster.add_node(**args) for group, args in node_args.items()}
    cluster.wait_for_nodes()
    facts["nodes"] = {group: node.node_id for group, node in nodes.items()}
    facts["head"] = cluster.head_node.node_id
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    serve.start(proxy_location=config["proxy_location"], http_options=config["http_options"])
    client = _get_global_client()
    url = f"http://127.0.0.1:{port}"
    phase_deploy(client, config, url, facts)
    phase_reconfigure(client, config, facts)
    phase_scale(client, config, facts)
    group = group_of(config, "Embedder")
    killed = phase_kill(cluster, client, nodes[group], url, facts)
    nodes[group] = phase_replace(cluster, client, node_args[group], url, killed, facts)
    facts["nodes_after"] = {group: node.node_id for group, node in nodes.items()}


def run(work: Path, port: int, facts: dict[str, Any]) -> None:
    """The whole scenario on a fresh cluster; `facts` fills up as it goes (kept on failure)."""
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from pardus.deployments.catalogue import lite_server

    started = time.monotonic()
    facts["profile"] = PROFILE
    config = placed_config(app_settings(work), port)
    facts["config_deployments"] = {name: d["ray_actor_options"]
                                   for name, d in deployments_of(config).items()}
    facts["node_args"] = node_args = group_nodes(config)
    # The head takes no work, like the RayService's head (num-cpus 0); random ports only.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "dashboard_agent_listen_port": None})
    try:
        scenario(cluster, config, node_args, port, facts)
    finally:
        try:
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            cluster.shutdown()
            lite_server.stop(work / "pardus.db")
    facts["total_s"] = round(time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a fresh folder for models, data")
    parser.add_argument("--port", type=int, default=8141, help="Serve's HTTP port (loopback)")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON facts go")
    parser.add_argument("--ray-tmp", type=Path, help="Ray's temp dir (default: a new one in "
                        "/tmp); removed at the end")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    # A private Ray temp dir: the Cluster records its address in <temp>/ray/ray_current_cluster,
    # where a plain ray.init() anywhere on the machine would otherwise find and join it.
    # Short (under /tmp), as Ray's unix socket paths must stay under 108 characters.
    private = args.ray_tmp or tempfile.mkdtemp(prefix="pardus-mn-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = str(private)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still clean up
    facts: dict[str, Any] = {}
    try:
        run(args.work.resolve(), args.port, facts)
    except BaseException:
        import traceback

        facts["error"] = traceback.format_exc()
        raise
    finally:
        args.out.write_text(json.dumps(facts, indent=2))
        shutil.rmtree(private, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
