"""Server-side fetching of query image URLs: off unless the host is on the allow-list."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx

from pardus.deployments.embedder.images import ImageTooLarge
from pardus.deployments.errors import BadQuery
from pardus.deployments.settings import ServingSettings
from pardus.deployments.streams import CappedBuffer, TooManyBytes


async def fetch_allowed(url: str, serving: ServingSettings, max_bytes: int) -> bytes:
    """The bytes at url, if its host is allowed; redirects are not followed (they could leave
    the allow-list), and the download stops at max_bytes."""
    parsed = urlparse(url)
    if not serving.fetch_allow_hosts:
        raise BadQuery("this server does not fetch image URLs: upload the image instead "
                       "(PARDUS_SERVING__FETCH_ALLOW_HOSTS enables hosts)",
                       code="fetch_disabled", field="image_url")
    if parsed.scheme not in ("http", "https") or parsed.hostname not in serving.fetch_allow_hosts:
        raise BadQuery(f"image_url must be http(s) on an allowed host "
                       f"({', '.join(serving.fetch_allow_hosts)})", code="fetch_not_allowed",
                       field="image_url")
    try:
        async with httpx.AsyncClient(timeout=serving.fetch_timeout_s) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise BadQuery(f"{url} answered HTTP {response.status_code}",
                                   code="fetch_failed", field="image_url")
                data = CappedBuffer(max_bytes)
                async for chunk in response.aiter_bytes():
                    data.add(chunk)
                return data.value()
    except TooManyBytes:
        raise ImageTooLarge(f"{url} is over {max_bytes} bytes", field="image_url") from None
    except httpx.HTTPError as exc:
        raise BadQuery(f"cannot fetch {url}: {exc}", code="fetch_failed",
                       field="image_url") from None
