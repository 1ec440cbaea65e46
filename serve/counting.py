"""Counting requests by route and status, as plain ASGI middleware.

Not Starlette's BaseHTTPMiddleware (`@app.middleware("http")`): that one runs the rest of the
app in a task of its own and streams the response back through memory channels, a cost on
every request; this one only watches the status go by.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pardus.deployments.metrics import metrics


class RequestCounter:
    """Counts each HTTP request by route template (not the raw path: item ids must not become
    label values) and status, in this process's metrics (none outside Ray)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        recorder = metrics()
        if scope["type"] != "http" or recorder is None:
            await self.app(scope, receive, send)
            return
        status = 500  # an app that fails before answering

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = scope.get("route")  # FastAPI's routing puts the matched route here
            recorder.request(getattr(route, "path", "unmatched"), status)
