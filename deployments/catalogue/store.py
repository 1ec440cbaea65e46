"""The catalogue store on Milvus (the only module that imports pymilvus).

The URI alone picks the backend: a local path is Milvus Lite (shared between processes through
a loopback `milvus-lite server`, see lite_server.py), http(s)://host:port a Milvus server or
cluster. One collection per catalogue, keyed by a stable item id, COSINE over 768-d vectors,
typed scalar fields for filters.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from deployments.catalogue import lite_server
from deployments.catalogue.filters import SearchFilters, string_literal, to_expression
from deployments.catalogue.items import (FIELDS, MAX_CATEGORY_BYTES, MAX_ID_BYTES,
                                         MAX_IMAGE_REF_BYTES, MAX_TITLE_BYTES, CatalogueItem)
from deployments.settings import MilvusSettings

log = logging.getLogger(__name__)

_QUERY_CHUNK = 512


class StoreUnavailable(RuntimeError):
    """Milvus cannot be reached (the caller may retry: a 503)."""


class StoreError(RuntimeError):
    """Milvus refused a request, or the collection does not fit this model."""


@dataclass(frozen=True)
class Hit:
    item: CatalogueItem
    score: float  # cosine similarity, higher is closer


def _guard(method):
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
    server = lite_server.running(path)  # someone already serves this directory: join it
    if server is not None:
        return server.uri
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


class CatalogueStore:
    """One Milvus collection holding a catalogue's vectors and typed item fields."""

    def __init__(self, settings: MilvusSettings, dim: int | None = None,
                 shared: bool | None = None):
        """dim: the embedder's vector size; needed to create or check the collection, not to
        read it (None)."""
        self.settings = settings
        self.dim = dim
        self.collection = settings.collection
        self.uri = resolve_uri(settings, shared)
        self._client = self._connect()

    def _connect(self):
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        token = self.settings.token.get_secret_value()
        for attempt in range(2):  # one retry: a busy server can miss the first handshake
            try:
                return MilvusClient(self.uri, token=token, timeout=self.settings.timeout_s)
            except MilvusException as exc:
                text = str(exc.message)
                if "lock" in text.lower() or "Open local milvus failed" in text:
                    raise StoreUnavailable(
                        f"the Milvus Lite data at {self.uri} is locked by another process; stop "
                        "it, or let processes share it (PARDUS_MILVUS__LITE_SERVER=true)"
                    ) from None
                if attempt:
                    raise StoreUnavailable(
                        f"cannot connect to Milvus at {self.uri}: {text}") from None
                time.sleep(1.0)

    # -- schema ------------------------------------------------------------------------------
    def _schema(self):
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("title", DataType.VARCHAR, max_length=MAX_TITLE_BYTES)
        schema.add_field("category", DataType.VARCHAR, max_length=MAX_CATEGORY_BYTES)
        schema.add_field("price", DataType.FLOAT)
        schema.add_field("rating", DataType.FLOAT)
        schema.add_field("image", DataType.VARCHAR, max_length=MAX_IMAGE_REF_BYTES)
        schema.add_field("ingested_at", DataType.INT64)
        return schema

    def _index_params(self):
        params = self._client.prepare_index_params()
        index_params = self.settings.index_params if self.settings.index_type.startswith(
            ("HNSW", "IVF")) else {}
        params.add_index("vector", index_type=self.settings.index_type, metric_type="COSINE",
                         params=index_params)
        return params

    @_guard
    def ensure_collection(self) -> None:
        """Create the collection and its index if missing (idempotent), check it, load it."""
        if not self.dim:
            raise ValueError("the vector size (dim) is needed to create or check a collection")
        client = self._client
        if not client.has_collection(self.collection):
            client.create_collection(
                self.collection, schema=self._schema(), index_params=self._index_params(),
                consistency_level=self.settings.consistency_level,
            )
            log.info("created collection %s (%d-d, %s)", self.collection, self.dim,
                     self.settings.index_type)
        else:
            self._check_schema()
        if not client.list_indexes(self.collection, field_name="vector"):
            client.create_index(self.collection, self._index_params())
        client.load_collection(self.collection)

    def _check_schema(self) -> None:
        described = self._client.describe_collection(self.collection)
        by_name = {f["name"]: f for f in described["fields"]}
        missing = [name for name in ["vector", *FIELDS] if name not in by_name]
        if missing:
            raise StoreError(
                f"collection {self.collection!r} exists with another schema (lacks {missing}): "
                "choose another collection name or drop it"
            )
        dim = int(by_name["vector"].get("params", {}).get("dim", self.dim))
        if dim != self.dim:
            raise StoreError(
                f"collection {self.collection!r} holds {dim}-d vectors but the embedder makes "
                f"{self.dim}-d ones: use another collection for this model"
            )

    # -- writes ------------------------------------------------------------------------------
    @_guard
    def upsert(self, items: Sequence[CatalogueItem], vectors: np.ndarray) -> int:
        """Insert or replace items by id; returns how many rows were written."""
        if len(items) != len(vectors):
            raise ValueError(f"{len(items)} items but {len(vectors)} vectors")
        if not len(items):
            return 0
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or (self.dim and vectors.shape[1] != self.dim):
            raise ValueError(f"vectors must be (n, {self.dim}), got {vectors.shape}")
        now = int(time.time())
        rows = [{**item.model_dump(), "ingested_at": item.ingested_at or now, "vector": vec}
                for item, vec in zip(items, vectors)]
        self._client.upsert(self.collection, rows, timeout=self.settings.timeout_s)
        return len(rows)

    @_guard
    def flush(self) -> None:
        """Seal what was written so it is indexed (after bulk writes: searches over unsealed
        rows are brute force, and on Milvus Lite they also re-read the in-memory table)."""
        self._client.flush(self.collection, timeout=max(60.0, self.settings.timeout_s))

    @_guard
    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete items by id; returns the ids that existed."""
        present = sorted(self.existing_ids(ids))
        if present:
            self._client.delete(self.collection, ids=present, timeout=self.settings.timeout_s)
        return present

    # -- reads -------------------------------------------------------------------------------
    def _query(self, expression: str, output_fields: list[str]):
        # Reads by id and counts decide what to write (resume, 404s): always Strong.
        return self._client.query(
            self.collection, filter=expression, output_fields=output_fields,
            consistency_level="Strong", timeout=self.settings.timeout_s,
        )

    @staticmethod
    def _id_filter(ids: Iterable[str]) -> str:
        return f"id in [{', '.join(string_literal(i) for i in ids)}]"

    @_guard
    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), _QUERY_CHUNK):
            chunk = ids[start : start + _QUERY_CHUNK]
            found |= {row["id"] for row in self._query(self._id_filter(chunk), ["id"])}
        return found

    @_guard
    def get(self, ids: Sequence[str]) -> list[CatalogueItem]:
        if not ids:
            return []
        rows = self._query(self._id_filter(ids), FIELDS)
        order = {item_id: i for i, item_id in enumerate(ids)}
        items = [CatalogueItem.stored(row) for row in rows]
        return sorted(items, key=lambda item: order.get(item.id, len(order)))

    @_guard
    def count(self) -> int:
        rows = self._query("", ["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    @_guard
    def search(
        self, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        """The k nearest items by cosine similarity that pass the filters."""
        params = dict(self.settings.search_params)
        if "ef" in params:
            params["ef"] = max(params["ef"], k)
        results = self._client.search(
            self.collection, data=[np.asarray(vector, dtype=np.float32).tolist()],
            anns_field="vector", limit=k, filter=to_expression(filters),
            output_fields=FIELDS, search_params={"metric_type": "COSINE", "params": params},
            consistency_level=self.settings.consistency_level, timeout=self.settings.timeout_s,
        )
        hits = []
        for row in results[0]:
            entity = {name: row["entity"].get(name, row.get(name)) for name in FIELDS}
            hits.append(Hit(item=CatalogueItem.stored(entity), score=float(row["distance"])))
        return hits

    @_guard
    def ping(self, timeout: float) -> bool:
        """True when Milvus answers within `timeout` and the collection exists (readiness)."""
        return bool(self._client.has_collection(self.collection, timeout=timeout))

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a dead connection must not raise
            pass
