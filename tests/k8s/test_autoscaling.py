"""Autoscaling, proven on one machine: a step of load makes Serve add Embedder (then Reranker)
replicas and the Ray autoscaler (v2) start nodes of their worker group; when the load stops the
replicas go after the downscale delay and the nodes after their idle timeout, while the other
deployments keep theirs and no search fails.

The scenario runs in its own process (tests/k8s/autoscaling_scenario.py), so it never meets the
Ray instance other tests of the session may hold; this test reads what it reports.
"""

from __future__ import annotations

import re

import pytest
import yaml

from pardus.cli.serve_config import K8S_DIR
from tests.k8s.autoscaling_scenario import SCALED, STEPS, Timeline
from tests.k8s.scenario_run import run_scenario

pytestmark = pytest.mark.slow  # ~8.5 min on 2 cores: up to six Ray nodes, two vLLM engines
SCENARIO_TIMEOUT_S = 1500
ALERTS = K8S_DIR / "components" / "monitoring" / "alerts.yaml"


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    """Run the scenario once; its JSON report (with the error and log tail when it failed)."""
    report = run_scenario("tests.k8s.autoscaling_scenario",
                          tmp_path_factory.mktemp("autoscaling"), [], SCENARIO_TIMEOUT_S,
                          grace_s=90)
    print("\nautoscaling timeline:")
    for row in report["timeline"]:
        print(Timeline.format(row))
    print("steps:", report["steps"], "answers:", report["answers"]["statuses"])
    return report


def rows(facts: dict, *phases: str) -> list[dict]:
    return [row for row in facts["timeline"] if row["phase"] in phases]


@pytest.mark.parametrize("name", list(STEPS))
def test_load_adds_replicas_and_nodes_and_quiet_removes_them(facts, name):
    """Times from the start of the step (up) and from its end (down), polled every 0.5 s."""
    step = facts["steps"][name]
    scaling = facts["autoscaling_config"][name]
    # Serve adds a replica only after the load exceeded the targets for upscale_delay_s; the
    # autoscaler starts a node for it, since no node of the group has room (one GPU each).
    assert step["replica_added_s"] >= scaling["upscale_delay_s"]
    assert step["node_added_s"] >= step["replica_added_s"] - 0.5
    assert step["replica_running_s"] >= step["node_added_s"] - 0.5
    # Quiet: the replica goes after downscale_delay_s, then its node after the idle timeout.
    assert step["replica_removed_s"] >= scaling["downscale_delay_s"]
    assert step["node_removed_s"] >= step["replica_removed_s"] + SCALED["idle_timeout_s"] - 1
    grown = [row for row in rows(facts, f"{name[:3].lower()}-load")
             if row["replicas"][name]["running"] == SCALED["replicas"][name][1]]
    assert grown, f"no timeline row shows {name} at its max replicas"


def test_the_other_deployments_keep_their_replicas(facts):
    phases = {"Embedder": ("emb-load", "emb-quiet"), "Reranker": ("rer-load", "rer-quiet")}
    for name, own in phases.items():
        other = "Reranker" if name == "Embedder" else "Embedder"
        for row in rows(facts, *own):
            assert row["replicas"][other] == {"running": 1, "starting": 0}, (name, row)
    for row in rows(facts, "emb-load", "emb-quiet", "rer-load", "rer-quiet", "end"):
        assert row["replicas"]["Ingress"] == {"running": 1, "starting": 0}, row
    assert facts["ingress_after"] == facts["ingress_before"]  # the same replica throughout


def test_no_search_fails_except_counted_503s_with_retry_after(facts):
    answers = facts["answers"]
    assert answers["total"] > 500, answers["statuses"]
    refused = [a for a in answers["non_200"] if a["status"] == 503 and a["retry_after"]]
    assert answers["non_200"] == refused, answers["non_200"][:10]
    print(f"\n{len(refused)} of {answers['total']} answers were 503 with Retry-After")


def test_the_fixed_query_keeps_its_top_results(facts):
    assert facts["top_before"] == facts["top_after"]
    assert all(facts["top_before"].values()), facts["top_before"]


def test_every_replica_runs_on_a_node_of_its_group(facts):
    placements = facts["placements"]
    assert {p["deployment"] for p in placements} == set(facts["deployment_groups"])
    wrong = [p for p in placements if p["group"] != facts["deployment_groups"][p["deployment"]]]
    assert not wrong, wrong[:10]
    for name in STEPS:  # the added replica too, on the added node
        assert len({p["replica"] for p in placements if p["deployment"] == name}) >= 2, name


def test_the_scaling_metrics_exist_for_the_alert_rules(facts):
    """Each metric the example alert rules (k8s/components/monitoring/alerts.yaml) read was
    exported by the cluster during the scenario, with the labels the rules select on."""
    rules = yaml.safe_load(ALERTS.read_text())["spec"]["groups"][0]["rules"]
    exported = facts["metrics"]
    for rule in rules:
        for metric in re.findall(r"\bray_[a-z0-9_]+", rule["expr"]):
            assert metric in exported, (rule["alert"], metric, sorted(exported))
    assert {rule["labels"]["deployment"] for rule in rules} == set(facts["deployment_groups"])


def test_the_cluster_leaves_nothing_behind(facts):
    assert facts["left_behind"] == [] and facts["left_after_the_scenario"] == []
