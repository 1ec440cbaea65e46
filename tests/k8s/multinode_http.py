"""What the multi-node scenario asks the app over HTTP: readiness, items, searches."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx

API_KEY = "multinode-key-0123456789"
COLOURS = {"red-shoe": (200, 30, 30), "green-bag": (30, 160, 60), "blue-hat": (40, 60, 200)}


def jpeg_data_url(colour: tuple[int, int, int]) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=20).status_code == 200
    except httpx.HTTPError:
        return False


def not_ready(url: str) -> dict[str, Any] | None:
    """The /readyz body while it answers 503 (the outage seen from outside), else None."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=20)
    except httpx.HTTPError as exc:
        return {"error": type(exc).__name__}
    return response.json() if response.status_code == 503 else None


def search(url: str, timeout: float = 30, text: str = "a red shoe") -> dict[str, Any]:
    query = {"text": text, "k": 3, "rerank": False}
    try:
        response = httpx.post(f"{url}/v1/search", json=query, timeout=timeout)
    except httpx.HTTPError as exc:
        return {"status": None, "error": type(exc).__name__}
    body = response.json()
    return {"status": response.status_code,
            "ids": sorted(r["id"] for r in body.get("results", [])) if response.is_success else [],
            "error": None if response.is_success else body.get("error")}


def rerank(url: str) -> dict[str, Any]:
    """One reranked search: the call crosses from the CPU node to the reranker's node."""
    started = time.monotonic()
    response = httpx.post(f"{url}/v1/search", json={"text": "a red shoe", "k": 3},
                          timeout=180)
    body = response.json()
    outcome = body.get("rerank", {}).get("outcome")
    return {"status": response.status_code, "reranked": outcome == "reranked",
            "outcome": outcome, "seconds": round(time.monotonic() - started, 1)}


def search_ok(url: str) -> dict[str, Any] | None:
    answer = search(url)
    return answer if answer["status"] == 200 else None


def add_items(url: str) -> list[str]:
    items = [{"id": name, "title": name.replace("-", " "), "image": jpeg_data_url(colour)}
             for name, colour in COLOURS.items()]
    response = httpx.post(f"{url}/v1/items", json={"items": items},
                          headers={"X-API-Key": API_KEY}, timeout=120)
    response.raise_for_status()
    return sorted(response.json()["upserted"])
