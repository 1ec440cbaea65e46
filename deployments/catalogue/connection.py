"""Reaching Milvus: the URI picks the engine, failures become two errors the callers act on."""

from __future__ import annotations

import functools
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from pardus.deployments.catalogue import lite_server
from pardus.deployments.errors import Refused, Unavailable
from pardus.deployments.settings import MilvusSettings


class StoreUnavailable(Unavailable):
    """Milvus cannot be reached or did not answer in time (a retry may succeed)."""

    code = "store_unavailable"


class StoreError(Refused):
    """Milvus refused a request, or the collection does not fit this model."""

    code = "store_refused"


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


# pymilvus pings every 10 s, idle or not; the embedded core's gRPC server allows a ping per
# 5 minutes without calls and answers more with GOAWAY "too_many_pings" (then reconnects can
# fail). Against it: no pings while idle, and the gateway reconnects a dropped channel. The
# same for a server on loopback (the core run as a server, in tests and benchmarks): a local
# connection needs no pings to find out it is dead.
EMBEDDED_GRPC = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@contextmanager
def quiet_pymilvus():
    """pymilvus logs a traceback at ERROR for every refused call, expected ones too (an alias
    that does not exist yet, a call the engine lacks): silence it for those."""
    logger = logging.getLogger("pymilvus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def unimplemented(exc: Exception) -> bool:
    code = getattr(exc, "code", None)
    code = code() if callable(code) else code
    return "UNIMPLEMENTED" in f"{getattr(code, 'name', code)} {exc}"


def fuses_weights_correctly(client) -> bool:
    """Whether the engine's WeightedRanker may fuse a BM25 route. Milvus servers normalise a
    BM25 score as 2·atan(s)/π (higher is better) before weighting; the Milvus Lite core (2.5.1)
    treats BM25 as a distance, 1 − 2·atan(s)/π, which ranks the best lexical match last
    (measured: weights 0 dense / 1 lexical put the weakest match first). The core is the engine
    that answers GetVersion with UNIMPLEMENTED; every server reports its version."""
    try:
        with quiet_pymilvus():
            client.get_server_version()
    except Exception as exc:  # pymilvus raises MilvusException or a raw grpc error
        return not unimplemented(exc)
    return True


def connect(settings: MilvusSettings, uri: str):
    """A MilvusClient for uri; StoreUnavailable with the reason when there is none."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    token = settings.token.get_secret_value()
    local = settings.is_local or urlparse(uri).hostname in LOOPBACK
    options = {"grpc_options": EMBEDDED_GRPC} if local else {}
    for attempt in range(2):  # one retry: a busy server can miss the first handshake
        try:
            return MilvusClient(uri, token=token, timeout=settings.timeout_s, **options)
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
