"""Multi-node Ray on one machine (ray.cluster_utils.Cluster): the app placed by the same rules as
on Kubernetes lands on its worker groups' nodes, scales one deployment without touching the
others, and recovers after the embedder's node is killed and replaced.

The scenario runs in its own process (tests/k8s/multinode_scenario.py), so it never meets the
Ray instance other tests of the session may hold; this test reads what it reports.
"""

from __future__ import annotations

import socket

import pytest

from pardus.cli.serve_config import load_placement
from tests.k8s.multinode_scenario import EMBED_TIMEOUT_S
from tests.k8s.scenario_run import run_scenario

pytestmark = pytest.mark.slow  # ~2-3.5 min on 2 cores: a cluster of four nodes and a vLLM engine
PORT = 8141  # Serve's HTTP port (loopback): outside Ray's worker ports and the session's 8127
SCENARIO_TIMEOUT_S = 600


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    """Run the scenario once; its JSON report (with the error and log tail when it failed)."""
    if not _free(PORT):
        pytest.skip(f"127.0.0.1:{PORT} is taken: the scenario's Serve proxy needs it")
    report = run_scenario("tests.k8s.multinode_scenario", tmp_path_factory.mktemp("multinode"),
                          ["--port", str(PORT)], SCENARIO_TIMEOUT_S, grace_s=60)
    print("\nmulti-node figures:", {key: value for key, value in report.items()
                                    if key.endswith("_s")})
    return report


def on_nodes(replicas: list[dict]) -> set[str]:
    return {replica["node_id"] for replica in replicas}


def identity(replicas: list[dict]) -> list[tuple]:
    """What changes when a replica is moved or restarted: its id, actor, node, process, start."""
    return sorted((r["replica_id"], r["actor_id"], r["node_id"], r["pid"], r["start_time_s"])
                  for r in replicas)


def expected_nodes(facts: dict, nodes: dict[str, str]) -> dict[str, str]:
    """Deployment -> node id, from the resources placement.yaml gave each deployment."""
    group_by_resource = {resource: group for group, resource in load_placement()["groups"].items()}
    placed = {}
    for name, options in facts["config_deployments"].items():
        groups = [group_by_resource[r] for r in options["resources"] if r in group_by_resource]
        assert len(groups) == 1, f"{name} asks for {options['resources']}"
        placed[name] = nodes[groups[0]]
    return placed


def test_each_deployment_runs_on_its_worker_group(facts):
    assert set(facts["config_deployments"]) == {"Ingress", "Embedder", "Reranker"}
    assert all(options["num_gpus"] == 0 for options in facts["config_deployments"].values())
    expected = expected_nodes(facts, facts["nodes"])
    assert len(set(expected.values())) == 3  # three groups, three distinct nodes
    for name, node in expected.items():
        replicas = facts["placement"][name]
        assert len(replicas) == 1 and on_nodes(replicas) == {node}, (name, replicas)
        assert facts["head"] not in on_nodes(replicas)
    assert facts["search_before"] == {"status": 200, "ids": facts["upserted"], "error": None}
    assert facts["rerank_before"]["status"] == 200  # Ingress (CPU node) -> Reranker (its node)


def test_batching_changes_in_place_without_a_restart(facts):
    """A user_config-only change reaches the running Embedder replica (reconfigure), which
    keeps its identity and its counters: no restart."""
    before = {int(size): n for size, n in facts["batches_before"].items()}  # JSON keys: str
    after = {int(size): n for size, n in facts["batches_after"].items()}
    assert max(before) > 1, before
    assert set(after) == {1}, after
    assert identity(facts["after_reconfigure"]["Embedder"]) == identity(
        facts["placement"]["Embedder"])
    seen = sum(before.values()) + sum(after.values())
    assert facts["batches_total"] >= seen  # the histogram survived: same process


def test_scaling_the_embedder_leaves_the_others_alone(facts):
    before, after = facts["placement"], facts["after_scale"]
    embedder_node = expected_nodes(facts, facts["nodes"])["Embedder"]
    assert len(after["Embedder"]) == 2 and on_nodes(after["Embedder"]) == {embedder_node}
    assert set(identity(before["Embedder"])) < set(identity(after["Embedder"]))  # kept, +1
    for name in ("Reranker", "Ingress"):
        assert identity(after[name]) == identity(before[name]), name


def test_serve_recovers_after_the_embedder_node_is_killed(facts):
    old, new = facts["nodes"], facts["nodes_after"]
    group = next(g for g in old if old[g] != new[g])
    assert [g for g in old if old[g] != new[g]] == [group]  # only the embedder's node replaced
    assert expected_nodes(facts, old)["Embedder"] == old[group]
    down = facts["outage_readyz"]
    assert down["ready"] is False and down["checks"]["embedder"] != "ok"
    assert down["checks"]["milvus"] == "ok"
    during = facts["search_during_outage"]
    # No Embedder replica runs (its node is gone): the Ingress says so at once, with a 503
    # to retry, rather than after the embed deadline (serve/replicas.py)
    assert during["status"] == 503 and during["error"]["code"] == "embedder_unavailable", during
    assert facts["search_during_outage_s"] < EMBED_TIMEOUT_S
    assert facts["search_after"] == {"status": 200, "ids": facts["upserted"], "error": None}
    recovered = facts["after_recovery"]
    assert len(recovered["Embedder"]) == 2 and on_nodes(recovered["Embedder"]) == {new[group]}
    for name in ("Reranker", "Ingress"):  # neither moved nor restarted through the node loss
        assert identity(recovered[name]) == identity(facts["placement"][name]), name
