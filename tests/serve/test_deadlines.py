"""Every search keeps its deadlines, also while a model replica is killed and replaced: the
rerank stage ends at reranker.timeout_s (the answer flagged), whatever the handle waits for."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from ray import serve

from pardus.serve.rerank_stage import within

RERANK_TIMEOUT = 3.0
SEARCH_BOUND = RERANK_TIMEOUT + 7.0  # plus embedding and retrieval of tiny models, 2 cores


def test_within_abandons_a_call_that_ignores_cancellation():
    async def stubborn():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # stops slowly when asked, as a handle waiting for a
            await asyncio.sleep(3)  # replica that is being replaced does

    async def main():
        start = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            await within(stubborn(), 0.2)
        return time.perf_counter() - start

    assert asyncio.run(main()) < 1.0
    assert asyncio.run(within(asyncio.sleep(0, result=7), 1.0)) == 7


@serve.deployment(name="Reranker", ray_actor_options={"num_cpus": 0.05})
class Stuck:
    """A reranker that never answers (the replica then gets killed)."""

    async def rerank(self, request):
        await asyncio.sleep(3600)

    def stats(self) -> dict:
        return {}


@pytest.fixture(scope="module")
def app_url(serve_local, service_settings, service_url):
    from pardus.deployments.embedder.deployment import EmbedderDeployment
    from pardus.serve.ingress import Ingress

    settings = {**service_settings, "reranker": {**service_settings["reranker"],
                                                 "timeout_s": RERANK_TIMEOUT}}
    embedder = EmbedderDeployment.options(ray_actor_options={"num_cpus": 0.25},
                                          user_config={"max_batch_size": 8})
    app = Ingress.options(ray_actor_options={"num_cpus": 0.1}).bind(
        embedder.bind(settings), Stuck.bind(), settings)
    serve_local.run(app, name="deadlines", route_prefix="/deadlines")
    url = f"{service_url}/deadlines"
    deadline = time.monotonic() + 180
    while httpx.get(f"{url}/healthz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the deadlines app never answered"
        time.sleep(1)
    yield url
    serve_local.delete("deadlines")


def kill_replica(app: str, deployment: str) -> None:
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith(f"SERVE_REPLICA::{app}#{deployment}#")]
    assert names, f"no {deployment} replica of {app}"
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)


def test_killing_the_reranker_replica_under_load_keeps_every_deadline(app_url):
    answers: list[tuple[float, int, dict]] = []

    def shop(n: int) -> None:
        with httpx.Client(timeout=120) as client:
            for _ in range(n):
                start = time.perf_counter()
                response = client.post(f"{app_url}/v1/search",
                                       json={"text": "a yellow bag", "k": 4, "rerank": True})
                answers.append((time.perf_counter() - start, response.status_code,
                                response.json()))

    shoppers = [threading.Thread(target=shop, args=(3,)) for _ in range(4)]
    for shopper in shoppers:
        shopper.start()
    time.sleep(1.5)
    kill_replica("deadlines", "Reranker")  # while every shopper waits on it
    for shopper in shoppers:
        shopper.join()
    latencies = sorted(seconds for seconds, _, _ in answers)
    assert [status for _, status, _ in answers] == [200] * 12
    assert all(body["rerank"]["outcome"] in ("timeout", "unavailable")
               and body["results"] for _, _, body in answers)
    assert latencies[-1] < SEARCH_BOUND, f"slowest answer {latencies[-1]:.1f} s: {latencies}"
