"""Reaching a Milvus and choosing its adapter: where the URI leads (a local path: the embedded
core, served on loopback for other processes), the client, one GetVersion to tell the kinds
apart."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlparse

import grpc
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from pardus.deployments.catalogue import lite_server
from pardus.deployments.catalogue.connection import StoreUnavailable
from pardus.deployments.catalogue.engines.base import (
    Engine,
    classify,
    not_now,
    quiet_pymilvus,
    status_code,
)
from pardus.deployments.catalogue.engines.core import CoreEngine, held_elsewhere
from pardus.deployments.catalogue.engines.server import ServerEngine
from pardus.deployments.settings import MilvusSettings

log = logging.getLogger(__name__)

# pymilvus pings every 10 s, idle or not; the embedded core's gRPC server allows a ping per
# 5 minutes without calls and answers more with GOAWAY "too_many_pings" (then reconnects can
# fail). Against it: no pings while idle, and the gateway reconnects a dropped channel. The
# same for a server on loopback (the core run as a server, in tests and benchmarks): a local
# connection needs no pings to find out it is dead.
EMBEDDED_GRPC = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def shared_server(settings: MilvusSettings) -> lite_server.LiteServer | None:
    """The loopback server sharing an embedded catalogue's data file between processes, when
    one runs (None for a server's URI)."""
    return lite_server.running(settings.uri) if settings.is_local else None


def start_shared_server(settings: MilvusSettings) -> lite_server.LiteServer | None:
    """The loopback server of an embedded catalogue, started here if none runs (None for a
    server's URI, or a local path opened in process: lite_server off). A process that outlives
    the ones it serves should start it: Ray kills a worker's child processes with the worker."""
    if not (settings.is_local and settings.lite_server):
        return None
    return lite_server.ensure(Path(settings.uri).expanduser())


def stop_shared_server(settings: MilvusSettings) -> bool | None:
    """Stop an embedded catalogue's loopback server: whether one ran (None: the URI names a
    Milvus server, which is not ours to stop)."""
    return lite_server.stop(settings.uri) if settings.is_local else None


def connect(settings: MilvusSettings, shared: bool | None = None) -> Engine:
    """The adapter for the Milvus that settings.uri leads to (a local path: its shared
    loopback server when `shared`, see resolve_uri), connected."""
    uri = resolve_uri(settings, shared)
    client = open_client(settings, uri)
    try:
        kind = engine_kind(client, settings, uri)
    except BaseException:
        client.close()
        raise
    log.info("Milvus at %s: %s engine", uri, kind.kind)
    return kind(client, settings, uri)


def open_client(settings: MilvusSettings, uri: str) -> MilvusClient:
    """A MilvusClient for uri; StoreUnavailable or StoreError with the reason when none."""
    local = settings.is_local or urlparse(uri).hostname in LOOPBACK
    options = {"grpc_options": EMBEDDED_GRPC} if local else {}
    for attempt in range(2):  # one retry: a busy server can miss the first handshake
        try:
            return MilvusClient(uri, token=settings.token.get_secret_value(),
                                timeout=settings.timeout_s, **options)
        except MilvusException as exc:
            if held_elsewhere(exc):
                raise StoreUnavailable(
                    f"the Milvus Lite data at {uri} is held by another process; stop it, or "
                    "let processes share it (PARDUS_MILVUS__LITE_SERVER=true)") from None
            if attempt or not not_now(exc):
                raise classify(exc, uri, "connect") from None
            time.sleep(1.0)
    raise AssertionError("unreachable")


def engine_kind(client: MilvusClient, settings: MilvusSettings, uri: str) -> type[Engine]:
    """Which adapter fits: every Milvus server reports its version; the core answers GetVersion
    with UNIMPLEMENTED (measured on milvus-lite 2.5.1)."""
    try:
        with quiet_pymilvus():  # pymilvus logs the core's UNIMPLEMENTED as an error
            client.get_server_version(timeout=settings.timeout_s)
    except Exception as exc:  # pymilvus raises a raw grpc error or a MilvusException
        if status_code(exc) == grpc.StatusCode.UNIMPLEMENTED:
            return CoreEngine
        error = classify(exc, uri, "GetVersion")
        if error is None:
            raise
        if isinstance(error, StoreUnavailable):
            raise error from None
        # Refused outright (a permission, say): only the core lacks the call.
    return ServerEngine
