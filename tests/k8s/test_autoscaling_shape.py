"""The autoscaling scenario's cluster (tests/k8s/autoscaling_scenario.py) has the prod shape and a
config Ray's autoscaler accepts; fast, no Ray started (the scenario itself is slow)."""

from __future__ import annotations

import pytest

from pardus.cli.serve_config import load_placement, serve_config
from tests.k8s.autoscaling_cluster import HEAD_TYPE, NodeType, autoscaling_config
from tests.k8s.autoscaling_scenario import PROFILE, SCALED, node_types


def test_the_node_types_are_the_prod_worker_groups_with_their_resources():
    types = {t.name: t for t in node_types()}
    groups = load_placement()["groups"]
    assert set(types) == set(groups)
    for name, resource in groups.items():
        assert types[name].resources[resource] > 0, name
        assert (types[name].min_workers, types[name].max_workers) == SCALED["nodes"][name]
    for name in ("embedder-gpu", "reranker-gpu"):  # one GPU per node, as the L4/L40S pods
        assert types[name].resources["GPU"] == 1, types[name]
    # Each model replica asks for a whole GPU in prod: one replica per node, so a second
    # replica needs a second node (what the scenario waits for).
    deployments = {d["name"]: d for app in serve_config(PROFILE)["applications"]
                   for d in app["deployments"]}
    for name in ("Embedder", "Reranker"):
        assert deployments[name]["ray_actor_options"]["num_gpus"] == 1, name
        assert SCALED["replicas"][name][1] == SCALED["nodes"][
            "embedder-gpu" if name == "Embedder" else "reranker-gpu"][1]


def test_rays_autoscaler_accepts_the_config_and_refuses_a_broken_one():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = autoscaling_config(node_types(), "127.0.0.1:1", "f" * 51 + "00000")
    validate_config(config)
    prepared = prepare_config(config)
    assert set(prepared["available_node_types"]) == {HEAD_TYPE, *load_placement()["groups"]}
    assert prepared["provider"]["type"] == "external"  # the fake provider, by module path
    broken = autoscaling_config([NodeType("g", {"CPU": 1}, 2, 1, 10)], "127.0.0.1:1", "x")
    broken["max_workers"] = 1
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(broken)
