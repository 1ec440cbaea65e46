"""The Milvus engine adapters: one per kind of Milvus, chosen once when a store connects, each
owning what differs between kinds (aliases, fusion, grouping, failures of its own). No code
outside this package asks which Milvus it talks to.

- CoreEngine (core.py): the embedded Milvus 2.5 core of milvus-lite 2.5.1.
- ServerEngine (server.py): Milvus servers and clusters (2.5, 2.6).
"""

from __future__ import annotations

from pardus.deployments.catalogue.engines.base import AliasBook, Engine, Match
from pardus.deployments.catalogue.engines.choose import (
    connect,
    shared_server,
    start_shared_server,
    stop_shared_server,
)
from pardus.deployments.catalogue.engines.core import CoreEngine, PointerAliases
from pardus.deployments.catalogue.engines.server import NativeAliases, ServerEngine

__all__ = ["AliasBook", "CoreEngine", "Engine", "Match", "NativeAliases", "PointerAliases",
           "ServerEngine", "connect", "shared_server", "start_shared_server", "stop_shared_server"]
