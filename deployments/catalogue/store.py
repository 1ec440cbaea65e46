"""The catalogue store on Milvus (with schema.py and versions.py, the only code that speaks to
pymilvus; what differs between kinds of Milvus lives in the engine adapters, engines/).

The URI picks where: a local path is the embedded Milvus core (shared between processes through
a loopback server, see lite_server.py), http(s)://host:port a Milvus server or cluster. A store
connects on first use, and the adapter for that Milvus is chosen then. Reads and writes go to
one version of the catalogue: a named one, or the live one that the catalogue's name points at
(versions.py).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np
from pymilvus import MilvusClient

from pardus.deployments.catalogue import engines, schema
from pardus.deployments.catalogue.connection import StoreError, StoreUnavailable
from pardus.deployments.catalogue.engines import Engine
from pardus.deployments.catalogue.filters import SearchFilters, string_literal, to_expression
from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.plans import SearchPlan
from pardus.deployments.catalogue.versions import (
    Version,
    drop_version,
    legacy_collection,
    list_versions,
    promote,
    version_name,
)
from pardus.deployments.errors import Conflict, PardusError
from pardus.deployments.settings import MilvusSettings

__all__ = ["CatalogueStore", "Found", "Hit", "Picture", "StoreError", "StoreUnavailable"]
log = logging.getLogger(__name__)
_QUERY_CHUNK = 512
_PICTURE_READS = 3  # reads of a page's picture lists before an item counts as deleted


def guard(method):
    """Failures of Milvus become StoreUnavailable or StoreError, as the engine sorts them."""

    @functools.wraps(method)
    def wrapper(self: CatalogueStore, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (PardusError, ValueError):
            raise
        except Exception as exc:
            engine = self._engine  # None: connecting failed, and says why itself
            error = engine.classify(exc, method.__name__) if engine is not None else None
            if error is None:
                raise
            raise error from None

    return wrapper


@dataclass(frozen=True)
class Picture:
    """One row to write: a picture of an item and its two vectors."""

    item: CatalogueItem
    index: int  # which of item.images
    image_vector: np.ndarray
    pair_vector: np.ndarray


@dataclass(frozen=True)
class Hit:
    item: CatalogueItem
    image_index: int  # which picture matched best (grouping keeps one per item)
    score: float  # of the plan's mode: cosine (dense), BM25 (lexical), fused (hybrid)

    @property
    def image(self) -> str:
        images = self.item.images
        return images[self.image_index] if 0 <= self.image_index < len(images) else images[0]


@dataclass(frozen=True)
class Found:
    """What a search found, and where: the version (collection) it read, and whether that
    version holds the business signals (schema 3)."""

    hits: list[Hit]
    version: str | None  # None: the catalogue has no live version yet
    signals: bool = True


# What an attribute update may change: none of it is embedded or searched by words.
ATTRIBUTES = ("price", "rating", "in_stock", "popularity", "added_at")


def outdated(version: str) -> Conflict:
    return Conflict(f"the catalogue version {version!r} was written before business signals "
                    "(in stock, popularity, added): ingest the catalogue again as a new version "
                    "(`pardus ingest SOURCE --version NAME`), then promote it (`pardus store "
                    "promote NAME`)", code="catalogue_outdated")


def _ids(column: str, ids: Iterable[str]) -> str:
    return f"{column} in [{', '.join(string_literal(i) for i in ids)}]"


class CatalogueStore:
    """One catalogue: a version (collection) of picture rows behind the catalogue's name."""

    def __init__(self, settings: MilvusSettings, dim: int | None = None,
                 shared: bool | None = None, version: str | None = None):
        """dim: the embedder's vector size (needed to create or check a version, not to read);
        shared: serve a local path to other processes (None: settings.lite_server);
        version: a label to work on (ingest into a new version), None for the live one.
        Constructing a store does no I/O: it connects on first use."""
        self.settings, self.dim, self.shared = settings, dim, shared
        self.alias = settings.collection
        self.version = version_name(self.alias, version) if version else None
        self._engine: Engine | None = None
        self._connecting = threading.Lock()
        self._fields: dict[str, list[str]] = {}  # the fields each collection holds

    @guard
    def connect(self) -> Engine:
        """The adapter of the Milvus this store talks to, connected on first need."""
        with self._connecting:
            if self._engine is None:
                self._engine = engines.connect(self.settings, self.shared)
            return self._engine

    @property
    def engine(self) -> Engine:
        return self._engine or self.connect()

    @property
    def _client(self) -> MilvusClient:
        return self.engine.client

    @property
    def uri(self) -> str:
        """Where Milvus is: once connected, the URI reached (a local path's shared server)."""
        return self._engine.uri if self._engine is not None else self.settings.uri

    # -- which collection -------------------------------------------------------------------
    def target(self) -> str | None:
        """The collection reads and writes go to (None: no live version yet)."""
        return self.version or self.live()

    @guard
    def live(self) -> str | None:
        """The version the catalogue's name points at."""
        return self.engine.aliases.target(self.alias)

    @guard
    def ensure_collection(self, create: bool = True) -> str | None:
        """The version to work on, created if missing (the first one, `v1`, becomes live),
        checked against this release and model, and loaded; idempotent."""
        if not self.dim:
            raise ValueError("the vector size (dim) is needed to create or check a collection")
        client = self._client
        legacy = legacy_collection(client, self.alias)
        if legacy is not None and self.version is None:  # say what to do (LegacyCollection)
            schema.check(legacy, self.alias, self.dim)
        name = self.target()
        if name is None and not create:
            return None
        first = self.live() is None
        name = name or version_name(self.alias, "v1")
        if not client.has_collection(name):
            if not create:
                raise StoreError(f"version {name!r} does not exist")
            client.create_collection(name, schema=schema.collection_schema(self.dim),
                                     index_params=schema.index_params(client, self.settings),
                                     consistency_level=self.settings.consistency_level)
            log.info("created %s (%d-d, %s)", name, self.dim, self.settings.index_type)
        else:
            schema.check(client.describe_collection(name), name, self.dim)
        if first and legacy is None:  # the first version of a catalogue goes live
            self.engine.aliases.point(self.alias, name)
        client.load_collection(name)
        return name

    def _held(self, name: str) -> list[str]:
        """The fields collection `name` holds (described once: a version never changes)."""
        if name not in self._fields:
            described = self._client.describe_collection(name)
            self._fields[name] = [f["name"] for f in described["fields"]]
        return self._fields[name]

    def _readable(self, name: str, fields: list[str]) -> list[str]:
        held = self._held(name)
        return [field for field in fields if field in held]

    def _signals(self, name: str) -> bool:
        return all(field in self._held(name) for field in schema.SIGNAL_FIELDS)

    # -- writes --------------------------------------------------------------------------------
    @guard
    def upsert(self, pictures: Sequence[Picture]) -> int:
        """Insert or replace picture rows (by item and index; the last of duplicates wins) and
        drop rows past each item's picture count; returns the rows written."""
        name = self._writable()
        rows = {}
        now = int(time.time())
        signals = self._signals(name)
        for p in pictures:
            item = p.item
            row = rows[schema.row_id(item.id, p.index)] = {
                "row_id": schema.row_id(item.id, p.index), "item_id": item.id,
                "image_index": p.index, "image_count": len(item.images),
                schema.IMAGE_VECTOR: np.asarray(p.image_vector, dtype=np.float32),
                schema.PAIR_VECTOR: np.asarray(p.pair_vector, dtype=np.float32),
                # BM25 reads the item's words on its main row only (engines/core.py merges)
                "words": item.words if p.index == 0 else "", "title": item.title,
                "category": item.category,
                "brand": item.brand, "price": item.price, "rating": item.rating,
                "images": list(item.images), "ingested_at": item.ingested_at or now}
            if signals:
                row.update(in_stock=item.in_stock, popularity=item.popularity,
                           added_at=item.added_at or item.ingested_at or now)
        if not rows:
            return 0
        self._client.upsert(name, list(rows.values()), timeout=self.settings.timeout_s)
        by_count: dict[int, set[str]] = {}
        for row in rows.values():
            by_count.setdefault(row["image_count"], set()).add(row["item_id"])
        for count, ids in by_count.items():  # one flat expression per count (at most 8)
            self._client.delete(name, filter=f"{_ids('item_id', sorted(ids))} and "
                                             f"image_index >= {count}",
                                timeout=self.settings.timeout_s)
        return len(rows)

    def _writable(self) -> str:
        name = self.target()
        if name is None:
            raise StoreError(f"{self.alias!r} has no live version: ingest one first")
        return name

    @guard
    def update_attributes(self, changes: dict[str, dict]) -> list[CatalogueItem]:
        """Change attributes (ATTRIBUTES: nothing embedded) of items, by id: every picture row
        of an item is written again whole, with its vectors, so none is lost or duplicated.
        Returns the items as they are now; ids not in the catalogue are left out."""
        name = self._writable()
        unknown = {key for change in changes.values() for key in change} - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"not attributes: {sorted(unknown)}")
        if not self._signals(name) and any(
                key in schema.SIGNAL_FIELDS for change in changes.values() for key in change):
            raise outdated(name)
        fields = self._readable(name, schema.STORED_FIELDS)
        updated, rows = [], []
        ids = list(changes)
        for start in range(0, len(ids), _QUERY_CHUNK):
            chunk = ids[start : start + _QUERY_CHUNK]
            for row in self._query(_ids("item_id", chunk), fields):
                row = {**row, **changes[row["item_id"]]}
                rows.append(row)
                if row["image_index"] == 0:
                    updated.append(CatalogueItem.stored({**row, "id": row["item_id"]}))
        for start in range(0, len(rows), _QUERY_CHUNK):
            self._client.upsert(name, rows[start : start + _QUERY_CHUNK],
                                timeout=self.settings.timeout_s)
        return updated

    @guard
    def flush(self) -> None:
        """Seal what was written so it is indexed (after bulk writes)."""
        name = self.target()
        if name is not None:
            self._client.flush(name, timeout=max(60.0, self.settings.timeout_s))

    @guard
    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete items (all their pictures) by id; returns the ids that existed."""
        present = sorted({row["item_id"] for row in self._query(
            f"{_ids('item_id', ids)} and image_index == 0", ["item_id"])}) if ids else []
        if present:
            self._client.delete(self._writable(), filter=_ids("item_id", present),
                                timeout=self.settings.timeout_s)
        return present

    # -- reads ---------------------------------------------------------------------------------
    def _query(self, expression: str, fields: list[str]) -> list[dict]:
        # Reads by id and counts decide what to write (resume, 404s): always Strong.
        name = self.target()
        if name is None:
            return []
        return self._client.query(name, filter=expression, output_fields=fields,
                                  consistency_level="Strong", timeout=self.settings.timeout_s)

    @guard
    def complete_ids(self, ids: Sequence[str]) -> set[str]:
        """The ids whose every picture is stored (an item a killed run left half-written is
        not among them, so a resumed run writes it again)."""
        rows: dict[str, list[int]] = {}
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), _QUERY_CHUNK):
            chunk = ids[start : start + _QUERY_CHUNK]
            for row in self._query(_ids("item_id", chunk), ["item_id", "image_count"]):
                rows.setdefault(row["item_id"], []).append(int(row["image_count"]))
        return {i for i, counts in rows.items() if len(counts) == counts[0]}

    @guard
    def get(self, ids: Sequence[str]) -> list[CatalogueItem]:
        if not ids:
            return []
        name = self.target()
        if name is None:
            return []
        rows = self._query(f"{_ids('item_id', ids)} and image_index == 0",
                           self._readable(name, schema.ITEM_FIELDS))
        order = {item_id: i for i, item_id in enumerate(ids)}
        items = [CatalogueItem.stored({**row, "id": row["item_id"]}) for row in rows]
        return sorted(items, key=lambda item: order.get(item.id, len(order)))

    @guard
    def count(self) -> int:
        """Items (not rows) in the version."""
        rows = self._query("image_index == 0", ["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    @guard
    def count_rows(self) -> int:
        rows = self._query("", ["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    @guard
    def vectors(self, item_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored (image, image + title) vectors of an item's main picture; None when the
        catalogue has no such item."""
        rows = self._query(f"{_ids('item_id', [item_id])} and image_index == 0",
                           [schema.IMAGE_VECTOR, schema.PAIR_VECTOR])
        if not rows:
            return None
        return (np.asarray(rows[0][schema.IMAGE_VECTOR], dtype=np.float32),
                np.asarray(rows[0][schema.PAIR_VECTOR], dtype=np.float32))

    @guard
    def search(self, plan: SearchPlan, vector: np.ndarray | None, text: str, k: int,
               filters: SearchFilters | None = None, exclude: str | None = None,
               pictures: bool = True) -> Found:
        """The k best items for the plan, one hit per item (its best-matching picture); every
        route obeys the filters, and leaves out the item `exclude` names. pictures=False: the
        items come without their picture lists (schema.WINDOW_FIELDS), which `with_pictures`
        adds to the few that are shown."""
        expr = to_expression(filters)
        if exclude is not None:
            expr = " and ".join(part for part in (expr, f"item_id != {string_literal(exclude)}")
                                if part)
        engine = self.engine
        for attempt in range(2):
            name = self.target()
            if name is None:
                return Found([], None)
            try:
                fields = self._readable(
                    name, schema.ROW_FIELDS if pictures else schema.WINDOW_FIELDS)
                found = engine.search(name, plan, vector, text, k, expr, fields)
            except Exception as exc:
                if attempt or not engine.collection_missing(exc):
                    raise
                engine.aliases.forget(self.alias)  # dropped under a cached pointer: look again
                self._fields.pop(name, None)
                continue
            hits = [Hit(CatalogueItem.stored({**m.entity, "id": m.entity["item_id"]}),
                        int(m.entity["image_index"]), m.score) for m in found]
            return Found(hits, name, self._signals(name))
        raise AssertionError("unreachable")

    @guard
    def with_pictures(self, version: str, hits: Sequence[Hit]) -> list[Hit]:
        """The hits with their items' picture lists, read from the version they were found
        in; an item deleted since is left out."""
        images: dict[str, tuple[str, ...]] = {}
        # An item whose rows are being upserted (an attribute update) can be missing from a
        # read for that moment: the Milvus 2.5 core's upsert is a delete and an insert that a
        # reader can fall between, Strong consistency or not (~10 % of reads during a tight
        # update loop, measured). So the missing are asked again before being left out.
        for _ in range(_PICTURE_READS):
            missing = [hit.item.id for hit in hits if hit.item.id not in images]
            if not missing:
                break
            rows = self._client.query(
                version, filter=f"{_ids('item_id', missing)} and image_index == 0",
                output_fields=["item_id", "images"],
                consistency_level=self.settings.consistency_level,
                timeout=self.settings.timeout_s)
            images.update((row["item_id"], tuple(row["images"])) for row in rows)
        return [replace(hit, item=hit.item.model_copy(update={"images": images[hit.item.id]}))
                for hit in hits if hit.item.id in images]

    # -- versions and health ---------------------------------------------------------------------
    @guard
    def versions(self) -> list[Version]:
        return list_versions(self.engine, self.alias)

    @guard
    def promote(self, label: str, replace_legacy: bool = False) -> str:
        """Point the catalogue's name at a version (atomically); returns its collection."""
        return promote(self.engine, self.alias, label, replace_legacy)

    @guard
    def drop_version(self, label: str) -> str:
        return drop_version(self.engine, self.alias, label)

    @guard
    def ping(self, timeout: float) -> bool:
        """True when Milvus answers within `timeout` and a live version exists (readiness)."""
        name = self.target()
        return name is not None and bool(self._client.has_collection(name, timeout=timeout))

    def close(self) -> None:
        """Close the connection, if one was made (the URI reached stays known)."""
        if self._engine is not None:
            self._engine.close()
