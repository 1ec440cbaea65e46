"""What KubeRay v1.7.0's controllers do with the fields we set, rewritten in Python (read, not
copied): the rollout decision of a RayService. kuberay_rules.py holds what the operator refuses.

Each function names the upstream function it mirrors (under ray-operator/controllers/ray/).
"""

from __future__ import annotations

import copy
from typing import Any


def cluster_hash_view(spec: dict[str, Any]) -> dict[str, Any]:
    """What KubeRay hashes to decide a rollout: GenerateHashWithoutReplicasAndWorkersToDelete
    (utils/util.go) on rayClusterSpecForHashing (rayservice_controller.go). Left out: each worker
    group's replicas, minReplicas, maxReplicas and scaleStrategy.workersToDelete, the tolerations
    and schedulingGates of every pod template (head and workers: Kueue may inject them), the
    cluster's own upgradeStrategy, and suspend."""
    view = copy.deepcopy(spec)
    view.pop("upgradeStrategy", None)
    view.pop("suspend", None)
    templates = [view["headGroupSpec"]["template"]]
    for group in view.get("workerGroupSpecs") or []:
        for key in ("replicas", "minReplicas", "maxReplicas"):
            group.pop(key, None)
        (group.get("scaleStrategy") or {}).pop("workersToDelete", None)
        templates.append(group["template"])
    for template in templates:
        for key in ("tolerations", "schedulingGates"):
            template.get("spec", {}).pop(key, None)
    return view


def rollout(running: dict[str, Any], goal: dict[str, Any]) -> str:
    """What a NewCluster RayService does when its rayClusterConfig goes from `running` to `goal`
    (shouldPrepareNewCluster, isClusterSpecHashEqual, shouldUpdateCluster): "nothing" when the
    hashes are equal; "in place" when the goal only appends worker groups (the running cluster
    is updated); otherwise "new cluster"."""
    if cluster_hash_view(goal) == cluster_hash_view(running):
        return "nothing"
    kept = len(running.get("workerGroupSpecs") or [])
    if len(goal.get("workerGroupSpecs") or []) >= kept:
        head = {**goal, "workerGroupSpecs": (goal.get("workerGroupSpecs") or [])[:kept]}
        if cluster_hash_view(head) == cluster_hash_view(running):
            return "in place"
    return "new cluster"
