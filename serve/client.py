"""A typed client of the Pardus HTTP API: the API's own models in and out, and an error answer
raised as the domain error it stands for (serve/errors.py's table read backwards), so callers
handle the same failures over HTTP as in process."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from pardus.deployments.catalogue.filters import SearchFilters
from pardus.deployments.errors import PardusError, Unavailable
from pardus.serve.errors import kind_of
from pardus.serve.schemas import ErrorResponse, Item, Readiness, SearchRequest, SearchResponse


class ServiceUnreachable(Unavailable):
    """Nothing answers at the URL (no service started there, or a wrong address)."""

    code = "service_unreachable"


class NotPardus(PardusError):
    """Something answered that is not a Pardus service (a wrong URL, a proxy's error page)."""

    code = "not_pardus"


class PardusClient:
    """POST /v1/search, GET /v1/items/{id} and /readyz of one service."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 300,
                 transport: httpx.AsyncBaseTransport | None = None):
        """transport: another way to reach the service than the network (an ASGI app)."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout_s,
                                       transport=transport)

    async def search(self, request: SearchRequest) -> SearchResponse:
        response = await self._send("POST", "/v1/search",
                                    json=request.model_dump(mode="json", exclude_none=True))
        return self._parse(SearchResponse, response)

    async def similar(self, item_id: str, k: int = 10, filters: SearchFilters | None = None,
                      cursor: str | None = None, debug: bool = False) -> SearchResponse:
        """Products like an item (GET /v1/items/{id}/similar); NotFound without the item."""
        params: dict = {"k": k, "debug": str(debug).lower()}
        if cursor:
            params["cursor"] = cursor
        if filters is not None:
            if filters.categories:
                params["category"] = filters.categories
            for name in ("price_min", "price_max", "rating_min"):
                if getattr(filters, name) is not None:
                    params[name] = getattr(filters, name)
        response = await self._send("GET", f"/v1/items/{item_id}/similar", params=params)
        return self._parse(SearchResponse, response)

    async def item(self, item_id: str) -> Item:
        """The item; NotFound when the catalogue has none with this id."""
        response = await self._send("GET", f"/v1/items/{item_id}")
        return self._parse(Item, response)

    async def readiness(self) -> Readiness:
        response = await self._send("GET", "/readyz", ok=(200, 503))
        return self._parse(Readiness, response)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PardusClient:
        return self

    async def __aexit__(self, *_) -> None:
        await self.close()

    # -- answers --------------------------------------------------------------------------------
    async def _send(self, method: str, path: str, ok: tuple[int, ...] = (200,),
                    **options) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **options)
        except httpx.ConnectError:
            raise ServiceUnreachable(f"no Pardus service answers at {self.url}: start one with "
                                     "`pardus serve`, or check the URL") from None
        except httpx.HTTPError as exc:  # a timeout, a dropped connection
            raise Unavailable(f"no answer from the service at {self.url}: {exc!r}",
                              code="service_unavailable") from None
        if response.status_code not in ok:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> PardusError:
        try:
            body = ErrorResponse.model_validate_json(response.content).error
        except ValidationError:
            return NotPardus(f"{self.url} answered HTTP {response.status_code} without a Pardus "
                             f"error: {response.text[:200]!r}")
        kind = kind_of(response.status_code)
        if kind is Unavailable:
            retry = response.headers.get("retry-after", "")
            return Unavailable(body.message, body.code, body.field,
                               retry_after_s=int(retry) if retry.isdigit() else None)
        return kind(body.message, body.code, body.field)

    def _parse(self, model, response: httpx.Response):
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise NotPardus(f"{self.url} answered something that is not a Pardus "
                            f"{model.__name__}") from None

