"""A NetworkPolicy evaluator for rendered manifests: is a flow from one pod to another allowed?

Implements the networking.k8s.io/v1 semantics we use: a pod selected by any policy of a type
(Ingress or Egress) is isolated for it and admits only what one of those policies' rules admit;
a connection needs both the source's egress and the destination's ingress. Rule peers:
podSelector (the policy's namespace), namespaceSelector, both (pods in those namespaces),
ipBlock (addresses outside the cluster). Ports: numbers, `endPort` ranges, protocol; no port
list = every port.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Peer:
    """A pod (namespace + labels) or, with `ip`, an address outside the cluster."""

    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    ip: str | None = None

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions); {} selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _peer_matches(rule_peer: dict[str, Any], policy_ns: str, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        if peer.ip is None:
            return False
        block, address = rule_peer["ipBlock"], ipaddress.ip_address(peer.ip)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except") or [])
    if peer.ip is not None:
        return False
    if "namespaceSelector" in rule_peer:
        if not selects(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != policy_ns:
        return False
    return selects(rule_peer.get("podSelector"), peer.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        low = entry["port"]
        if isinstance(low, int) and low <= port <= entry.get("endPort", low):
            return True
    return False


def _types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def _admits(policies: list[dict[str, Any]], kind: str, subject: Peer, other: Peer,
            port: int, protocol: str) -> bool:
    """Whether the policies of `kind` selecting `subject` admit a flow with `other`."""
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    isolating = [p for p in policies if kind in _types(p)
                 and p["metadata"].get("namespace", "") == subject.namespace
                 and selects(p["spec"]["podSelector"], subject.labels)]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if peers is not None and not any(
                    _peer_matches(p, policy["metadata"].get("namespace", ""), other) for p in peers):
                continue
            if _port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def allowed(policies: list[dict[str, Any]], src: Peer, dst: Peer, port: int,
            protocol: str = "TCP") -> bool:
    """Whether src may open a connection to dst:port under the policies."""
    egress = src.ip is not None or _admits(policies, "Egress", src, dst, port, protocol)
    ingress = dst.ip is not None or _admits(policies, "Ingress", dst, src, port, protocol)
    return egress and ingress


def selecting(policies: list[dict[str, Any]], pod: Peer) -> list[str]:
    """Names of the policies that select a pod."""
    return [p["metadata"]["name"] for p in policies
            if p["metadata"].get("namespace", "") == pod.namespace
            and selects(p["spec"]["podSelector"], pod.labels)]
