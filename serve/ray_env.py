"""The Ray Serve mode Pardus runs in, as environment variables every Ray process must see.

Ray Serve's throughput-optimised mode (measured in benchmarks/README.md#serving-throughput):
user code and the router share the replica's event loop, deployment calls go over gRPC, and
the Ingress replica serves HTTP itself (direct ingress) instead of answering through the
Python proxy. Where HAProxy runs (Kubernetes), it forwards each node's port 8000 to the
Ingress replicas' own ports.

These are read when Ray's processes start, so they are environment variables, not Serve
config: `pardus serve` and the tests set them before Ray starts, the Kubernetes ConfigMap
(k8s/base/config.yaml) gives them to every Ray container, and a test keeps both equal to
this module.
"""

from __future__ import annotations

import os

# The replica's gRPC message limit (RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH, 4 MiB) is left
# alone: measured with Ray 2.60, a 30 MB argument crosses a deployment call in this mode at
# that limit (tests/serve/test_api.py sends a 6 MiB picture through the Embedder hop).


def serve_environment(haproxy: bool = False, local: bool = False) -> dict[str, str]:
    """The variables of Pardus' Serve mode. haproxy: the HAProxy ingress too (it binds its
    stats and metrics ports, 8404 and 9101, on every interface: meant for pods). local: one
    machine, where no load balancer has to take a stopping Ingress replica out of rotation:
    Ray's direct ingress otherwise holds each one open 30 s on every stop, Ctrl-C and
    redeploy (measured: two Serve test modules took 229 s with it, 141 s without)."""
    # A dead Serve proxy is replaced after 3 failed health checks, one per period: 10 s by
    # default, so ~30 s of refused connections on its node (measured: 32 s); 2 s makes it ~6
    # s. A proxy that is alive but slow still needs 3 checks past their 10 s timeout.
    env = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S": "2"}
    if haproxy:
        env["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    if local:
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    return env


def loopback_environment() -> dict[str, str]:
    """A Ray that this process starts on one machine listens on loopback only (GCS, raylets,
    workers, agents, metrics), where RAY_ADDRESS names no cluster to join. Ray 2.60 has no
    bind-address setting: it binds to 127.0.0.1 exactly when the node's address is loopback,
    and it keeps a loopback address only where this variable (meant for Windows and macOS)
    turns multi-node off (ray/_private/services.py, get_node_ip_address). Read when `ray` is
    imported, so it must be in the environment before that."""
    if os.environ.get("RAY_ADDRESS"):
        return {}
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def apply_loopback_environment() -> None:
    """loopback_environment() into this process's environment; a value the user set wins."""
    for name, value in loopback_environment().items():
        os.environ.setdefault(name, value)


def apply_serve_environment(haproxy: bool = False) -> dict[str, str]:
    """Put the local mode in this process's environment before Ray starts (what Ray then
    starts inherits it); a variable already set by the user wins. Returns what is in effect."""
    wanted = serve_environment(haproxy, local=True)
    for name, value in wanted.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in wanted}
