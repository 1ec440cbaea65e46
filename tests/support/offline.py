"""The HTTP API over a service that never reaches Milvus or a model, and a raw ASGI call: for
tests of what the API refuses before any work (bodies, fields, keys), in process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Message

from pardus.deployments.settings import Settings
from pardus.serve.api import create_api
from pardus.serve.factory import build_search_service
from pardus.serve.search import Models

KEY = "offline-key-0123456789"


async def _never(*_) -> None:
    raise AssertionError("the request got past the checks to a model")


def offline_api(folder: Path, **serving) -> FastAPI:
    """The API with one key (KEY); the store is never opened unless a request gets past its
    checks (then Milvus Lite in `folder`, in this process)."""
    settings = Settings(embedder={"dim": 8},
                        milvus={"uri": str(folder / "offline.db"), "lite_server": False,
                                "collection": "offline"},
                        serving={"image_root": str(folder), "api_keys": [KEY], **serving})
    return create_api(build_search_service(settings, Models(_never, _never)))


def http_scope(method: str, path: str, headers: dict[str, str]) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]}


async def call(app: ASGIApp, method: str, path: str, headers: dict[str, str],
               messages: list[Message], within_s: float = 10) -> list[Message]:
    """What `app` sends to a client that sends `messages` and then nothing, keeping the
    connection open; TimeoutError when the app has not finished within `within_s`."""
    pending, sent = list(messages), []
    silence = asyncio.Event()  # never set: the client says nothing more

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await silence.wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(http_scope(method, path, headers), receive, send), within_s)
    return sent
