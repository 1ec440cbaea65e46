"""API keys (serve/api.py), in process: a key is compared byte for byte in constant time,
nothing trimmed; the Bearer scheme's name is case-insensitive (RFC 9110 §11.1)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.offline import KEY, call, offline_api

# PATCH with an empty body: 422 once the key is accepted (nothing reaches the store), else 401.
ACCEPTED, REFUSED = 422, 401


def status(tmp_path, headers: dict[str, str]) -> int:
    sent = asyncio.run(call(offline_api(tmp_path), "PATCH", "/v1/items/a", {
        "content-type": "application/json", "content-length": "2", **headers},
        [{"type": "http.request", "body": b"{}"}]))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {KEY}"},
    {"Authorization": f"bearer {KEY}"},  # the scheme's name is case-insensitive
    {"Authorization": f"BEARER {KEY}"},
    {"Authorization": f"Bearer   {KEY}"},  # 1*SP between the scheme and the key (RFC 9110)
    {"X-API-Key": KEY},
    {"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": KEY},  # not a bearer: the header's
])
def test_the_key_as_configured_is_accepted(tmp_path, headers):
    assert status(tmp_path, headers) == ACCEPTED


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {KEY} "},
    {"Authorization": f"Bearer {KEY}\t"},
    {"Authorization": f"Bearer {KEY}\xa0"},  # byte 0xA0 (a no-break space), which HTTP keeps
    {"Authorization": f"Bearer {KEY.upper()}"},
    {"Authorization": f"Bearer {KEY[:-1]}"},
    {"Authorization": f"Bearer{KEY}"},
    {"X-API-Key": f" {KEY}"},
    {"X-API-Key": f"{KEY} "},
    {"X-API-Key": f"\xa0{KEY}"},
    {"X-API-Key": f"{KEY}\n"},
    {"X-API-Key": ""},
    {},
])
def test_a_key_with_anything_around_or_changed_is_refused(tmp_path, headers):
    """No trimming: the bytes the client sent are the key it sent (HTTP servers already drop
    spaces and tabs at a header's ends, RFC 9110 §5.5; whatever reaches the app counts)."""
    assert status(tmp_path, headers) == REFUSED


def test_the_openapi_names_both_schemes_as_before(tmp_path):
    schemes = offline_api(tmp_path).openapi()["components"]["securitySchemes"]
    assert schemes == {"HTTPBearer": {"type": "http", "scheme": "bearer",
                                      "description": "An API key as a bearer token."},
                       "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                        "description": "An API key."}}
