"""Every search keeps its deadlines, also while a model replica is killed and replaced: the
rerank stage ends at reranker.timeout_s (the answer flagged), whatever the handle waits for;
while a model deployment has no running replica, its calls fail at once (unreranked results,
or a 503 with Retry-After) instead of waiting for the replacement to load."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from ray import serve

from pardus.deployments.embedder.deployment import EmbedderDeployment
from pardus.serve.rerank_stage import within

RERANK_TIMEOUT = 3.0
EMBED_TIMEOUT = 6.0
SEARCH_BOUND = RERANK_TIMEOUT + 7.0  # plus embedding and retrieval of tiny models, 2 cores
AT_ONCE = 1.5  # an answer that did not wait for a model (tiny models, 2 busy cores)
UNSEEN = itertools.count()


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


def loading(flag: str | None) -> None:
    """A replica's start while `flag` exists (at most 120 s): a replacement loading its model."""
    deadline = time.monotonic() + 120
    while flag and Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.2)


class SlowToReplace(EmbedderDeployment.func_or_class):
    """The real Embedder, whose replacement takes as long as the test says."""

    def __init__(self, settings: dict, flag: str):
        loading(flag)
        super().__init__(settings)


@serve.deployment(name="Reranker", ray_actor_options={"num_cpus": 0.05})
class Stuck:
    """A reranker that never answers (the replica then gets killed), and whose replacement
    takes as long as the test says."""

    def __init__(self, flag: str | None = None):
        loading(flag)

    async def rerank(self, request):
        await asyncio.sleep(3600)

    def stats(self) -> dict:
        return {}


@pytest.fixture(scope="module")
def flags(tmp_path_factory) -> dict[str, Path]:
    """While one exists, that deployment's replacement replica is loading."""
    folder = tmp_path_factory.mktemp("loading")
    return {name: folder / name for name in ("Embedder", "Reranker")}


@pytest.fixture(scope="module")
def app_url(serve_local, service_settings, service_url, flags):
    from pardus.serve.ingress import Ingress

    settings = {**service_settings,
                "reranker": {**service_settings["reranker"], "timeout_s": RERANK_TIMEOUT},
                "serving": {**service_settings["serving"], "embed_timeout_s": EMBED_TIMEOUT,
                            "replica_watch_s": 0.5}}
    embedder = serve.deployment(name="Embedder")(SlowToReplace).options(
        ray_actor_options={"num_cpus": 0.25}, user_config={"max_batch_size": 8})
    app = Ingress.options(ray_actor_options={"num_cpus": 0.1}).bind(
        embedder.bind(settings, str(flags["Embedder"])), Stuck.bind(str(flags["Reranker"])),
        settings)
    serve_local.run(app, name="deadlines", route_prefix="/deadlines")
    url = f"{service_url}/deadlines"
    deadline = time.monotonic() + 180
    while httpx.get(f"{url}/healthz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the deadlines app never answered"
        time.sleep(1)
    yield url
    serve_local.delete("deadlines")


def kill_replica(app: str, deployment: str) -> None:
    """Kill one replica of the deployment (waiting for one, should an earlier test have
    killed the last and its replacement still be starting)."""
    import ray

    deadline = time.monotonic() + 60
    while not (names := [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                         if a["name"].startswith(f"SERVE_REPLICA::{app}#{deployment}#")]):
        assert time.monotonic() < deadline, f"no {deployment} replica of {app}"
        time.sleep(0.5)
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


def search(url: str, rerank: bool) -> tuple[float, httpx.Response]:
    """A search the query cache has not seen: it needs the embedder."""
    start = time.perf_counter()
    response = httpx.post(f"{url}/v1/search", json={
        "text": f"a yellow bag {next(UNSEEN)}", "k": 4, "rerank": rerank}, timeout=60)
    return time.perf_counter() - start, response


@contextmanager
def replaced(app_url: str, flags: dict[str, Path], deployment: str):
    """Inside: `deployment`'s replica was killed and its replacement is loading. After: it
    has loaded, and searches are answered again."""
    flags[deployment].touch()
    try:
        kill_replica("deadlines", deployment)
        yield
    finally:
        flags[deployment].unlink()
    deadline = time.monotonic() + 120
    while search(app_url, rerank=False)[1].status_code != 200:
        assert time.monotonic() < deadline, f"no answers after {deployment} was replaced"
        time.sleep(1)


def answered_at_once(app_url: str, rerank: bool, fallback) -> list[tuple[float, httpx.Response]]:
    """Once the first answer came at once (the controller has seen the replica die), three
    more in a row: all of them."""
    deadline = time.monotonic() + 30
    while True:
        seconds, response = search(app_url, rerank)
        if seconds < AT_ONCE and fallback(response):
            break
        assert time.monotonic() < deadline, (
            f"no answer at once: {seconds:.1f} s, {response.status_code} {response.text[:200]}")
    return [search(app_url, rerank) for _ in range(3)]


def test_a_reranker_being_replaced_is_skipped_at_once(app_url, flags):
    with replaced(app_url, flags, "Reranker"):
        answers = answered_at_once(app_url, True, lambda r: r.status_code == 200 and r.json()[
            "rerank"]["outcome"] == "unavailable")
    for seconds, response in answers:
        assert response.status_code == 200 and response.json()["results"]
        assert response.json()["rerank"]["outcome"] == "unavailable"  # flagged, not reranked
        assert seconds < AT_ONCE, f"{seconds:.1f} s: waited for the replacement"


def test_an_embedder_being_replaced_is_a_503_with_retry_after_at_once(app_url, flags):
    with replaced(app_url, flags, "Embedder"):
        answers = answered_at_once(app_url, False, lambda r: r.status_code == 503)
    for seconds, response in answers:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "embedder_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        assert seconds < AT_ONCE, f"{seconds:.1f} s: waited for the replacement"
