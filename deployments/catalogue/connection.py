"""Reaching Milvus: the URI picks the engine, failures become two errors the callers act on."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from deployments.catalogue import lite_server
from deployments.settings import MilvusSettings


class StoreUnavailable(RuntimeError):
    """Milvus cannot be reached (the caller may retry: a 503)."""


class StoreError(RuntimeError):
    """Milvus refused a request, or the collection does not fit this model."""


COLLECTION_NOT_FOUND = 100  # Milvus's error code


def guard(method):
    """Translate pymilvus/grpc failures into StoreUnavailable / StoreError."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        import grpc
        from pymilvus.exceptions import MilvusException, MilvusUnavailableException

        try:
            return method(self, *args, **kwargs)
        except (StoreError, StoreUnavailable, ValueError):
            raise
        except MilvusUnavailableException as exc:
            raise StoreUnavailable(f"Milvus at {self.uri} is unavailable: {exc.message}") from None
        except MilvusException as exc:
            text = str(exc.message)
            if any(s in text.lower() for s in ("unavailable", "connect", "deadline", "timeout")):
                raise StoreUnavailable(f"Milvus at {self.uri} is unreachable: {text}") from None
            raise StoreError(f"Milvus refused {method.__name__}: {text}") from None
        except (ConnectionError, OSError) as exc:
            raise StoreUnavailable(f"Milvus at {self.uri} is unreachable: {exc}") from None
        except grpc.RpcError as exc:  # deadlines and dropped streams surface raw from pymilvus
            code = exc.code() if hasattr(exc, "code") else None
            raise StoreUnavailable(f"Milvus at {self.uri} did not answer {method.__name__} "
                                   f"({getattr(code, 'name', code)})") from None

    return wrapper


def resolve_uri(settings: MilvusSettings, shared: bool | None = None) -> str:
    """The URI to connect to: a shared loopback server for a local path when asked."""
    if not settings.is_local:
        return settings.uri
    path = Path(settings.uri).expanduser().resolve()
    use_server = settings.lite_server if shared is None else shared
    if use_server:
        return lite_server.ensure(path).uri
    server = lite_server.running(path)  # someone already serves this file: join it
    if server is not None:
        return server.uri
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def connect(settings: MilvusSettings, uri: str):
    """A MilvusClient for uri; StoreUnavailable with the reason when there is none."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    token = settings.token.get_secret_value()
    for attempt in range(2):  # one retry: a busy server can miss the first handshake
        try:
            return MilvusClient(uri, token=token, timeout=settings.timeout_s)
        except MilvusException as exc:
            text = str(exc.message)
            if "lock" in text.lower() or "Open local milvus failed" in text:
                raise StoreUnavailable(
                    f"the Milvus Lite data at {uri} is held by another process; stop it, or "
                    "let processes share it (PARDUS_MILVUS__LITE_SERVER=true)") from None
            if attempt:
                raise StoreUnavailable(f"cannot connect to Milvus at {uri}: {text}") from None
            time.sleep(1.0)
    raise AssertionError("unreachable")
