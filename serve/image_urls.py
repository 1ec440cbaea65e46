"""Server-side fetching of query image URLs: off unless the host is on the allow-list."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx

from pardus.deployments.settings import ServingSettings
from pardus.deployments.streams import CappedBuffer, TooManyBytes
from pardus.serve.errors import ApiError, bad_request


async def fetch_allowed(url: str, serving: ServingSettings, max_bytes: int) -> bytes:
    """The bytes at url, if its host is allowed; redirects are not followed (they could leave
    the allow-list), and the download stops at max_bytes."""
    parsed = urlparse(url)
    if not serving.fetch_allow_hosts:
        raise bad_request("fetch_disabled", "this server does not fetch image URLs: upload the "
                          "image instead (PARDUS_SERVING__FETCH_ALLOW_HOSTS enables hosts)",
                          "image_url")
    if parsed.scheme not in ("http", "https") or parsed.hostname not in serving.fetch_allow_hosts:
        raise bad_request("fetch_not_allowed", f"image_url must be http(s) on an allowed host "
                          f"({', '.join(serving.fetch_allow_hosts)})", "image_url")
    try:
        async with httpx.AsyncClient(timeout=serving.fetch_timeout_s) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise bad_request("fetch_failed", f"{url} answered HTTP "
                                      f"{response.status_code}", "image_url")
                data = CappedBuffer(max_bytes)
                async for chunk in response.aiter_bytes():
                    data.add(chunk)
                return data.value()
    except TooManyBytes:
        raise ApiError(413, "image_too_large", f"{url} is over {max_bytes} bytes",
                       "image_url") from None
    except httpx.HTTPError as exc:
        raise bad_request("fetch_failed", f"cannot fetch {url}: {exc}", "image_url") from None
