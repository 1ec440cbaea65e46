"""A Ray cluster on one machine that grows and shrinks as the RayService does: the real autoscaler
(v2, the version the RayService runs) over Ray's fake node provider, whose worker nodes are local
processes carrying the resources of their worker group.

Why not `ray.cluster_utils.AutoscalingCluster`: in the Ray 2.60 wheel it reads
`fake_multi_node/example.yaml`, which the wheel does not ship (FileNotFoundError), and its
start() and shutdown() run `ray stop --force`, which kills every Ray process on the machine. This
writes the whole autoscaler config itself, asks for the provider by module path (the "external"
provider type, so the missing defaults file is never read), gives the head a free port and a
private temp dir, and stops only the processes that mention that dir, with their children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import free_port, stop_processes

# What a driver of this cluster needs too: set in its environment before `ray` is imported.
DRIVER_ENV = {
    "RAY_AUTH_MODE": "disabled",  # a local test cluster: no token to hand around
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # loopback addresses only (serve/ray_env.py)
}
PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
HEAD_TYPE = "ray.head.default"  # the provider's name for the head's node type


@dataclass(frozen=True)
class NodeType:
    """One worker group as the autoscaler sees it."""

    name: str
    resources: dict[str, float]  # CPU, GPU and custom resources of one node
    min_workers: int
    max_workers: int
    idle_timeout_s: float


def autoscaling_config(node_types: list[NodeType], gcs_address: str,
                       head_node_id: str) -> dict[str, Any]:
    """The cluster config `ray start --autoscaling-config` reads: the fields the fake provider
    and the v2 autoscaler use (node types, limits, idle timeouts); the rest empty."""
    types: dict[str, Any] = {HEAD_TYPE: {"resources": {}, "node_config": {}, "max_workers": 0}}
    for node_type in node_types:
        types[node_type.name] = {
            "resources": dict(node_type.resources), "node_config": {},
            "min_workers": node_type.min_workers, "max_workers": node_type.max_workers,
            "idle_timeout_s": node_type.idle_timeout_s}
    return {
        "cluster_name": "pardus-autoscaling",
        "max_workers": sum(node_type.max_workers for node_type in node_types),
        "provider": {"type": "external", "module": PROVIDER, "gcs_address": gcs_address,
                     "head_node_id": head_node_id, "launch_multiple": True,
                     "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "available_node_types": types,
        "head_node_type": HEAD_TYPE,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": max(n.idle_timeout_s for n in node_types) / 60,
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


class FakeCluster:
    """`start()` runs the head (no resources, like the RayService's num-cpus 0 head) with the
    autoscaler; worker nodes come and go as it decides. `env` reaches every Ray process."""

    def __init__(self, node_types: list[NodeType], temp_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

        self.node_types = node_types
        self.temp_dir = Path(temp_dir)
        self.head_node_id = FAKE_HEAD_NODE_ID
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {
            **(env or {}),
            "RAY_TMPDIR": str(self.temp_dir),
            "RAY_FAKE_CLUSTER": "1",  # the fake provider refuses to start without it
            "RAY_enable_autoscaler_v2": "1",
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            # The v2 autoscaler matches instances to Ray nodes by these ids (the provider sets
            # them on the workers it starts, ...00001 and up).
            "RAY_CLOUD_INSTANCE_ID": self.head_node_id,
            "RAY_OVERRIDE_NODE_ID_FOR_TESTING": self.head_node_id,
            "RAY_USAGE_STATS_ENABLED": "0",
            **DRIVER_ENV,
        }

    def start(self, log: Path) -> None:
        """Start the head; its output goes to `log`. Raises CalledProcessError on failure."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        config = self.temp_dir / "autoscaling.json"
        config.write_text(json.dumps(autoscaling_config(
            self.node_types, self.address, self.head_node_id), indent=2))
        port = self.address.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
                   f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=0",
                   "--num-gpus=0", f"--autoscaling-config={config}",
                   "--include-dashboard=false", f"--temp-dir={self.temp_dir}",
                   "--disable-usage-stats"]
        with open(log, "a") as out:
            subprocess.run(command, env={**os.environ, **self.env}, stdout=out,
                           stderr=subprocess.STDOUT, check=True)

    def stop(self, grace_s: float = 10) -> set[int]:
        """Stop every process of the cluster (stop_processes); returns those still there."""
        return stop_processes(self.temp_dir, grace_s)
