"""Re-indexing without downtime: a new version fills beside the live one while the service
answers; promoting it (and back) under concurrent searches gives no 5xx and no empty answer."""

from __future__ import annotations

import threading
import time

import httpx

from pardus.deployments.catalogue.store import CatalogueStore
from pardus.deployments.settings import Settings
from pardus.ingest.pipeline import run_ingest


def test_promote_under_concurrent_searches(service_url, service_settings, sample_catalogue):
    settings = Settings(**service_settings)
    summary = run_ingest(str(sample_catalogue / "items.jsonl"), settings, version="v2")
    assert not summary.live and summary.count_after == 24  # filled beside the live version
    store = CatalogueStore(settings.milvus)
    live = store.live()
    answers, failures, stop = [], [], threading.Event()

    def shop(text: str):
        with httpx.Client(base_url=service_url, timeout=60) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/search", json={"text": text, "k": 5,
                                                               "rerank": False})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200 or not response.json()["results"]:
                    failures.append(f"{response.status_code}: {response.text[:300]}")
                answers.append(response.status_code)

    shoppers = [threading.Thread(target=shop, args=(text,))
                for text in ("a yellow bag", "red mug", "striped shirt")]
    for shopper in shoppers:
        shopper.start()
    try:
        for _ in range(3):
            time.sleep(1.0)
            store.promote("v2")
            time.sleep(1.0)
            store.promote(live.split("__")[-1])
        time.sleep(1.5)  # past every replica's pointer refresh
    finally:
        stop.set()
        for shopper in shoppers:
            shopper.join()
    assert not failures and len(answers) > 10, failures[:5]
    assert store.live() == live
    store.drop_version("v2")
    store.close()
