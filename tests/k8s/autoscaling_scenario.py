"""Autoscaling on one machine: a step of load makes Serve add Embedder (then Reranker) replicas
and the Ray autoscaler (v2) start nodes of that worker group; when the load stops both shrink
back. Prints a timeline as it goes and writes what happened as JSON.

The app and the cluster have the prod profile's shape (k8s/placement.yaml, k8s/base/
rayservice.yaml: worker groups, node resources with one GPU each, replica resources, batch
sizes, targets), scaled down to fit 2 cores and 24 GiB: at most two nodes per group and two
replicas per deployment, shorter delays and idle timeouts (SCALED). GPUs are fake (a resource the nodes
advertise), so the models run on the CPU; the Embedder has the real architecture's size, so it,
not the HTTP path, is what the load waits on, as on a real cluster.

    python -m tests.k8s.autoscaling_scenario --work DIR --out facts.json

tests/k8s/test_autoscaling.py runs it in a fresh process and checks what it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.k8s.autoscaling_cluster import DRIVER_ENV, FakeCluster, NodeType
from tests.k8s.multinode_scenario import deployments_of, wait_for
from tests.support.processes import stop_processes

APP = "pardus"
PROFILE = "prod"
DEPLOYMENTS = ("Ingress", "Embedder", "Reranker")
FIXED_QUERY = "a red shoe"
# The prod profile scaled down to this machine: nodes per group and replicas per deployment as
# (min, max), and the times. Targets, batch sizes and queue limits stay as the profile has them.
SCALED = {
    "nodes": {"cpu-workers": (1, 1), "embedder-gpu": (1, 2), "reranker-gpu": (1, 2)},
    "replicas": {"Ingress": (1, 1), "Embedder": (1, 2), "Reranker": (1, 2)},
    # Serve: decide on a 10 s window, after 3 s of more load than the replicas' targets add,
    # after 90 s of less remove (more than a replica takes to start on a new node here, 30-76
    # s: with 15 s, Serve cancelled starting Reranker replicas whenever the load dipped, over
    # and over); the autoscaler: a node idle for 10 s goes.
    "autoscaling": {"look_back_period_s": 10, "upscale_delay_s": 3, "downscale_delay_s": 90},
    "idle_timeout_s": 10,
}
# Replicas and handles report their load every second (Serve's default: 10 s).
SERVE_ENV = {"RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
             "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"}
# The steps of load: closed-loop clients, each sending its next search when the last answered.
# More clients than one replica's target_ongoing_requests, fewer than two replicas' targets.
STEPS = {"Embedder": {"clients": 48, "rerank": False}, "Reranker": {"clients": 24, "rerank": True}}
BACKGROUND = {"clients": 1, "pace_s": 0.5}  # a trickle throughout: answers during scale-down
HOLD_S = 10  # load kept on after the scale-up, to see the larger deployment serve it
PHASE_TIMEOUT_S = 300


def stopped(*_) -> None:
    sys.exit(143)  # SIGTERM: the finally blocks still stop the cluster


# -- the shape: prod, scaled down ----------------------------------------------------------------

def node_types() -> list[NodeType]:
    """The prod RayService's worker groups as the autoscaler sees them (tests/k8s mirrors how
    KubeRay derives each node's resources), with SCALED's node counts and idle timeout."""
    from pardus.cli.serve_config import K8S_DIR, load_placement
    from tests.k8s.kuberay_reconcile import autoscaler_resources, ray_start_params
    from tests.k8s.manifests import load_docs, one
    from tests.k8s.workloads import ray_cluster

    manifest = load_placement()["profiles"][PROFILE]["manifest"]
    cluster = ray_cluster(one(load_docs(K8S_DIR / manifest), "RayService"))
    types = []
    for group in cluster["workerGroupSpecs"]:
        resources = {"CPU": float(ray_start_params(group)["num-cpus"]),
                     **autoscaler_resources(group)}
        low, high = SCALED["nodes"][group["groupName"]]
        types.append(NodeType(group["groupName"], resources, low, high,
                              SCALED["idle_timeout_s"]))
    return types


def app_config(work: Path, port: int) -> dict[str, Any]:
    """The prod profile's serveConfigV2 with SCALED's replicas and times, HTTP on loopback and
    the test's models; GPUs, CPUs and group resources per replica as in prod."""
    from pardus.cli.serve_config import serve_config
    from tests.k8s.multinode_scenario import app_settings

    settings = app_settings(work, full_size_embedder=True)
    settings["serving"].pop("embed_timeout_s")  # the default (30 s), as in production
    settings["reranker"].pop("timeout_s")
    config = serve_config(PROFILE)
    config["http_options"] = {**config["http_options"], "host": "127.0.0.1", "port": port}
    for app in config["applications"]:
        app["args"] = {"settings": settings}
        for deployment in app["deployments"]:
            low, high = SCALED["replicas"][deployment["name"]]
            deployment["autoscaling_config"] = {
                **deployment["autoscaling_config"], **SCALED["autoscaling"],
                "min_replicas": low, "max_replicas": high}
    return config


# -- what the cluster and Serve say ---------------------------------------------------------------

class Observer:
    """Reads replicas and queues from the Serve controller, nodes from the autoscaler."""

    def __init__(self, groups: dict[str, str], gcs_address: str) -> None:
        from ray.serve.context import _get_global_client

        self.client = _get_global_client()
        self.groups = groups  # the autoscaler's node types are the worker groups
        self.gcs_address = gcs_address

    def nodes(self) -> tuple[dict[str, str], dict[str, int]]:
        """As the autoscaler (v2) sees them: running node id -> its group ("head" for the
        head), and the nodes it is starting per group."""
        from ray.autoscaler.v2.sdk import get_cluster_status

        status = get_cluster_status(self.gcs_address)
        up = [*status.active_nodes, *status.idle_nodes]
        running = {node.node_id: self.group(node.ray_node_type_name) for node in up}
        pending: dict[str, int] = {}
        for launch in status.pending_launches:
            name = launch.ray_node_type_name
            pending[name] = pending.get(name, 0) + launch.count
        for node in status.pending_nodes:  # for a moment, a node that just joined is both
            if node.instance_id not in {n.instance_id for n in up}:
                pending[node.ray_node_type_name] = pending.get(node.ray_node_type_name, 0) + 1
        return running, pending

    def group(self, node_type: str) -> str:
        return node_type if node_type in self.groups else "head"

    def replicas(self) -> dict[str, list[dict[str, Any]]]:
        import ray

        details = ray.get(self.client._controller.get_serve_instance_details.remote())
        app = details["applications"].get(APP) or {"deployments": {}}
        keep = ("replica_id", "node_id", "state", "start_time_s")
        return {name: [{key: r.get(key) for key in keep} for r in deployment["replicas"]]
                for name, deployment in app["deployments"].items()}

    def requests(self) -> dict[str, float]:
        """Per deployment, the requests the Serve controller counts for autoscaling: running
        on a replica plus queued in a caller's handle."""
        import ray
        from ray.serve._private.common import DeploymentID

        controller = self.client._controller
        return {name: round(ray.get(
            controller._get_total_num_requests_for_deployment_for_testing.remote(
                DeploymentID(name=name, app_name=APP))) or 0, 1) for name in DEPLOYMENTS}


def scrape_metrics() -> list[tuple[str, str, float]]:
    """What Prometheus would scrape from every node's metrics port: (metric name, its labels as
    written, value) per sample."""
    import re

    import httpx
    import ray

    samples = []
    for node in ray.nodes():
        if not node["Alive"] or not node.get("MetricsExportPort"):
            continue
        url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        try:
            text = httpx.get(url, timeout=10).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            found = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)", line)
            if found:
                samples.append((found[1], found[2] or "", float(found[3])))
    return samples


def record_metrics(facts: dict[str, Any], samples: list[tuple[str, str, float]]) -> None:
    """Each metric's `deployment` label values, kept across scrapes."""
    import re

    for name, labels, _ in samples:
        seen = set(facts["metrics"].get(name, []))
        seen.update(re.findall(r'deployment="([^"]*)"', labels))
        facts["metrics"][name] = sorted(seen)


def embed_batches(samples: list[tuple[str, str, float]]) -> tuple[float, float]:
    """(queries embedded, forward passes) so far, summed over the Embedder replicas."""
    total = sum(v for name, _, v in samples if name == "ray_pardus_embed_batch_size_sum")
    count = sum(v for name, _, v in samples if name == "ray_pardus_embed_batch_size_count")
    return total, count


# -- the timeline ----------------------------------------------------------------------------------

COLUMNS = ("t_s", "phase", "Ingress", "Embedder", "Reranker", "cpu", "emb", "rer", "qps",
           "p50_ms", "p99_ms", "q_emb", "q_rer", "non200")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Timeline(threading.Thread):
    """Every `every` s: replicas per deployment (running, +starting), nodes per group
    (+pending), queries/s, p50/p99 of the answers in that window, requests the controller
    counts per model deployment, and non-200 answers; printed and kept."""

    def __init__(self, observer: Observer, loads: Callable[[], list], started: float,
                 every: float) -> None:
        super().__init__(daemon=True)
        self.observer, self.loads, self.started, self.every = observer, loads, started, every
        self.rows: list[dict[str, Any]] = []
        self.placements: list[dict[str, Any]] = []  # every replica seen, with its node's group
        self.phase = "start"
        self._halt = threading.Event()
        self._seen = 0.0

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        print(" ".join(f"{c:>8}" for c in COLUMNS), flush=True)
        while not self._halt.wait(self.every):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a sample lost, not the scenario
                print(f"(sample failed: {exc!r})", flush=True)

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        nodes, pending = self.observer.nodes()
        replicas = self.observer.replicas()
        requests = self.observer.requests()
        window = [a for load in self.loads() for a in list(load.answers)
                  if self._seen <= load.start + a.sent + a.seconds < now]
        self._seen = now
        latencies = [a.seconds * 1000 for a in window]
        row = {"t_s": round(now - self.started, 1), "phase": self.phase,
               "qps": round(len(window) / self.every, 1),
               "p50_ms": round(percentile(latencies, 0.5)),
               "p99_ms": round(percentile(latencies, 0.99)),
               "q_emb": requests["Embedder"], "q_rer": requests["Reranker"],
               "non200": sum(not a.ok for a in window),
               "replicas": {}, "nodes": {}, "pending": pending}
        for name in DEPLOYMENTS:
            states = [r["state"] for r in replicas.get(name, [])]
            row["replicas"][name] = {"running": states.count("RUNNING"),
                                     "starting": states.count("STARTING")}
        for group in ("cpu-workers", "embedder-gpu", "reranker-gpu"):
            row["nodes"][group] = sum(g == group for g in nodes.values())
        for name, found in replicas.items():
            for replica in found:
                if replica["state"] == "RUNNING":
                    self.placements.append({"deployment": name, "replica": replica["replica_id"],
                                            "group": nodes.get(replica["node_id"], "gone")})
        self.rows.append(row)
        print(self.format(row), flush=True)
        return row

    @staticmethod
    def format(row: dict[str, Any]) -> str:
        def replicas(name: str) -> str:
            r = row["replicas"][name]
            return f"{r['running']}" + (f"+{r['starting']}" if r["starting"] else "")

        def nodes(group: str) -> str:
            pending = row["pending"].get(group, 0)
            return f"{row['nodes'][group]}" + (f"+{pending}" if pending else "")

        cells = [row["t_s"], row["phase"], replicas("Ingress"), replicas("Embedder"),
                 replicas("Reranker"), nodes("cpu-workers"), nodes("embedder-gpu"),
                 nodes("reranker-gpu"), row["qps"], row["p50_ms"], row["p99_ms"],
                 row["q_emb"], row["q_rer"], row["non200"]]
        return " ".join(f"{c:>8}" for c in cells)


# -- the phases ------------------------------------------------------------------------------------

def counts(observer: Observer, name: str, group: str) -> tuple[int, int, int]:
    """(running replicas, replicas running or starting, alive nodes of the group)."""
    states = [r["state"] for r in observer.replicas().get(name, [])]
    nodes = sum(g == group for g in observer.nodes()[0].values())
    return states.count("RUNNING"), len(states), nodes


def step(name: str, group: str, url: str, observer: Observer, timeline: Timeline,
         loads: list, facts: dict[str, Any]) -> None:
    """A step of load on one deployment until it runs at its max replicas on as many nodes of
    its group, HOLD_S more, then quiet until both are back at their min. Times from the start
    of the load (up) and from its end (down)."""
    from tests.support.load import Load

    low, high = SCALED["replicas"][name]
    spec = STEPS[name]
    times: dict[str, float] = {}
    timeline_phase = timeline.phase = f"{name[:3].lower()}-load"
    load = Load(url, clients=spec["clients"], pace_s=0.0,
                rerank_every=1 if spec["rerank"] else 10**9, max_requests=20000,
                timeout_s=120)
    loads.append(load)
    batches_before = embed_batches(scrape_metrics())
    with load:
        began = time.monotonic()

        def grown() -> bool:
            running, placed, nodes = counts(observer, name, group)
            elapsed = round(time.monotonic() - began, 1)
            if placed > low:
                times.setdefault("replica_added_s", elapsed)
            if nodes > SCALED["nodes"][group][0]:
                times.setdefault("node_added_s", elapsed)
            if running >= high:
                times.setdefault("replica_running_s", elapsed)
            return running >= high and nodes >= high

        wait_for(f"{name} at {high} replicas on {high} {group} nodes", grown, PHASE_TIMEOUT_S)
        time.sleep(HOLD_S)
        samples = scrape_metrics()  # while the load runs
        record_metrics(facts, samples)
        batches = [now - before for now, before in zip(embed_batches(samples), batches_before,
                                                        strict=True)]
    ended = time.monotonic()
    timeline.phase = f"{name[:3].lower()}-quiet"

    def shrunk() -> bool:
        _, placed, nodes = counts(observer, name, group)
        elapsed = round(time.monotonic() - ended, 1)
        if placed <= low:
            times.setdefault("replica_removed_s", elapsed)
        if nodes <= SCALED["nodes"][group][0]:
            times.setdefault("node_removed_s", elapsed)
        return placed <= low and nodes <= SCALED["nodes"][group][0]

    wait_for(f"{name} back at {low} replica on {low} {group} node", shrunk, PHASE_TIMEOUT_S)
    facts["steps"][name] = {**times, "load_s": round(ended - began, 1),
                            "requests": len(load.answers)}
    if name == "Embedder":  # the batches its replicas formed (the counters live with them)
        facts["steps"][name]["mean_embed_batch"] = round(batches[0] / max(batches[1], 1), 1)
        rows = [row for row in timeline.rows if row["phase"] == timeline_phase
                and row["q_emb"] and row["replicas"][name]["running"]]
        facts["steps"][name]["mean_requests_per_replica"] = round(statistics.fmean(
            row["q_emb"] / row["replicas"][name]["running"] for row in rows), 1) if rows else 0


def answers_summary(loads: list) -> dict[str, Any]:
    answers = [a for load in loads for a in load.answers]
    statuses: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    for answer in answers:
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
        if answer.ok and answer.rerank:
            outcomes[answer.outcome] = outcomes.get(answer.outcome, 0) + 1
    bad = [{"status": a.status, "code": a.code, "retry_after": a.retry_after}
           for a in answers if not a.ok]
    return {"total": len(answers), "statuses": statuses, "rerank_outcomes": outcomes,
            "non_200": bad}


def scenario(cluster: FakeCluster, config: dict[str, Any], url: str,
             facts: dict[str, Any]) -> None:
    import ray
    from ray import serve

    from pardus.cli.serve_config import load_placement
    from tests.k8s.multinode_http import add_items, ready
    from tests.k8s.multinode_scenario import deploy, group_of
    from tests.support.load import Load, top_ids

    started = time.monotonic()
    groups = load_placement()["groups"]
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    signal.signal(signal.SIGTERM, stopped)  # ray.init put its own in, which aborts
    serve.start(proxy_location=config["proxy_location"], http_options=config["http_options"])
    observer = Observer(groups, cluster.address)
    facts["deployment_groups"] = {name: group_of(config, name) for name in DEPLOYMENTS}
    loads: list = []
    timeline = Timeline(observer, lambda: list(loads), started, facts["every_s"])
    timeline.start()
    try:
        timeline.phase = "deploy"
        deploy(observer.client, config)
        wait_for("the app at its min replicas on the groups' min nodes", lambda: all(
            counts(observer, name, facts["deployment_groups"][name])[0] == low
            for name, (low, _) in SCALED["replicas"].items()), PHASE_TIMEOUT_S, every=1)
        wait_for("/readyz 200", lambda: ready(url), 120)
        facts["deploy_s"] = round(time.monotonic() - started, 1)
        facts["upserted"] = add_items(url)
        facts["top_before"] = top_ids(url, [FIXED_QUERY])
        facts["ingress_before"] = sorted(r["replica_id"] for r in observer.replicas()["Ingress"])
        with Load(url, clients=BACKGROUND["clients"], pace_s=BACKGROUND["pace_s"],
                  rerank_every=4, max_requests=100000, timeout_s=120) as background:
            loads.append(background)
            for name in ("Embedder", "Reranker"):
                step(name, facts["deployment_groups"][name], url, observer, timeline, loads,
                     facts)
        timeline.phase = "end"
        time.sleep(facts["every_s"] + 0.5)  # a last row: the replicas and nodes at the end
        facts["top_after"] = top_ids(url, [FIXED_QUERY])
        facts["ingress_after"] = sorted(r["replica_id"] for r in observer.replicas()["Ingress"])
    finally:
        facts["answers"] = answers_summary(loads)
        facts["timeline"] = timeline.rows
        facts["placements"] = timeline.placements
        timeline.stop()


def run(work: Path, port: int, temp_dir: Path, facts: dict[str, Any]) -> None:
    import ray
    from ray import serve

    from pardus.deployments.catalogue import lite_server
    from pardus.serve.ray_env import serve_environment

    started = time.monotonic()
    facts["scaled"] = SCALED
    facts["steps"] = {}
    facts["metrics"] = {}
    config = app_config(work, port)
    facts["autoscaling_config"] = {name: d["autoscaling_config"]
                                   for name, d in deployments_of(config).items()}
    types = node_types()
    facts["node_types"] = [vars(t) for t in types]
    cluster = FakeCluster(types, temp_dir, env={**serve_environment(), **SERVE_ENV})
    cluster.start(work / "ray-start.log")
    try:
        scenario(cluster, config, f"http://127.0.0.1:{port}", facts)
    finally:
        try:
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        finally:
            facts["left_behind"] = sorted(cluster.stop())
            lite_server.stop(work / "pardus.db")
    facts["total_s"] = round(time.monotonic() - started, 1)


def main(argv: list[str] | None = None) -> int:
    from tests.support.processes import free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a fresh folder for models, data")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON facts go")
    parser.add_argument("--port", type=int, help="Serve's HTTP port on loopback (default: free)")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between timeline rows")
    parser.add_argument("--ray-tmp", type=Path, help="Ray's temp dir, removed at the end "
                        "(default: a new one in /tmp)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    # Short (under /tmp): Ray's unix socket paths must stay under 108 characters.
    temp_dir = args.ray_tmp or Path(tempfile.mkdtemp(prefix="pardus-as-", dir="/tmp"))
    os.environ.update(DRIVER_ENV)  # `ray` is imported later, in run()
    signal.signal(signal.SIGTERM, stopped)
    facts: dict[str, Any] = {"every_s": args.every}
    try:
        run(args.work.resolve(), args.port or free_port(), temp_dir, facts)
    except BaseException:
        import traceback

        facts["error"] = traceback.format_exc()
        raise
    finally:
        args.out.write_text(json.dumps(facts, indent=2))
        stop_processes(temp_dir)  # what a failed start left, if anything
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
