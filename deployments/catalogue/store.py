"""The catalogue store on Milvus (with connection.py, schema.py and versions.py, the only code
that speaks to pymilvus).

The URI alone picks the engine: a local path is the embedded Milvus core (shared between
processes through a loopback server, see lite_server.py), http(s)://host:port a Milvus server
or cluster. Reads and writes go to one version of the catalogue: a named one, or the live one
that the catalogue's name points at (versions.py).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from pardus.deployments.catalogue import schema
from pardus.deployments.catalogue.connection import (
    COLLECTION_NOT_FOUND,
    StoreError,
    StoreUnavailable,
    connect,
    fuses_weights_correctly,
    guard,
    resolve_uri,
)
from pardus.deployments.catalogue.filters import SearchFilters, string_literal, to_expression
from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.plans import SearchPlan, merge_routes, weighted_share
from pardus.deployments.catalogue.versions import (
    Version,
    alias_book,
    drop_version,
    legacy_collection,
    list_versions,
    promote,
    version_name,
)
from pardus.deployments.settings import MilvusSettings

__all__ = ["CatalogueStore", "Hit", "Picture", "StoreError", "StoreUnavailable"]
log = logging.getLogger(__name__)
_QUERY_CHUNK = 512
_NO_WORDS = "Invalid sparse row: NaN"


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


def _ids(column: str, ids: Iterable[str]) -> str:
    return f"{column} in [{', '.join(string_literal(i) for i in ids)}]"


class CatalogueStore:
    """One catalogue: a version (collection) of picture rows behind the catalogue's name."""

    def __init__(self, settings: MilvusSettings, dim: int | None = None,
                 shared: bool | None = None, version: str | None = None):
        """dim: the embedder's vector size (needed to create or check a version, not to read);
        version: a label to work on (ingest into a new version), None for the live one."""
        self.settings, self.dim, self.alias = settings, dim, settings.collection
        self.version = version_name(self.alias, version) if version else None
        self.uri = resolve_uri(settings, shared)
        self._client = connect(settings, self.uri)

    # What the engine can do, asked on first need: the stores of ingest's write tasks and
    # fetch stage, pinned to a version, need neither.
    @functools.cached_property
    def _aliases(self):
        return alias_book(self._client, self.settings.alias_refresh_s)

    @functools.cached_property
    def _milvus_weights(self) -> bool:
        return fuses_weights_correctly(self._client)

    # -- which collection -------------------------------------------------------------------
    def target(self) -> str | None:
        """The collection reads and writes go to (None: no live version yet)."""
        return self.version or self.live()

    def live(self) -> str | None:
        """The version the catalogue's name points at."""
        return self._aliases.target(self.alias)

    @guard
    def ensure_collection(self, create: bool = True) -> str | None:
        """The version to work on, created if missing (the first one, `v1`, becomes live),
        checked against this release and model, and loaded; idempotent."""
        if not self.dim:
            raise ValueError("the vector size (dim) is needed to create or check a collection")
        client = self._client
        legacy = legacy_collection(self._client, self.alias)
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
            self._aliases.point(self.alias, name)
        client.load_collection(name)
        return name

    # -- writes --------------------------------------------------------------------------------
    @guard
    def upsert(self, pictures: Sequence[Picture]) -> int:
        """Insert or replace picture rows (by item and index; the last of duplicates wins) and
        drop rows past each item's picture count; returns the rows written."""
        name = self._writable()
        rows = {}
        now = int(time.time())
        for p in pictures:
            item = p.item
            rows[schema.row_id(item.id, p.index)] = {
                "row_id": schema.row_id(item.id, p.index), "item_id": item.id,
                "image_index": p.index, "image_count": len(item.images),
                schema.IMAGE_VECTOR: np.asarray(p.image_vector, dtype=np.float32),
                schema.PAIR_VECTOR: np.asarray(p.pair_vector, dtype=np.float32),
                # BM25 reads the item's words on its main row only: see _merge_routes
                "words": item.words if p.index == 0 else "", "title": item.title,
                "category": item.category,
                "brand": item.brand, "price": item.price, "rating": item.rating,
                "images": list(item.images), "ingested_at": item.ingested_at or now}
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
        rows = self._query(f"{_ids('item_id', ids)} and image_index == 0", schema.ITEM_FIELDS)
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
    def search(self, plan: SearchPlan, vector: np.ndarray | None, text: str, k: int,
               filters: SearchFilters | None = None) -> list[Hit]:
        """The k best items for the plan, one hit per item (its best-matching picture)."""
        for attempt in range(3):
            name = self.target()
            if name is None:
                return []
            try:
                return self._search(name, plan, vector, text, k, filters)
            except Exception as exc:
                if getattr(exc, "code", None) == COLLECTION_NOT_FOUND and attempt == 0:
                    self._aliases.forget(self.alias)  # dropped under a cached pointer: look again
                elif plan.lexical and _NO_WORDS in str(exc):
                    # BM25 over a version with no words at all (empty, or titles all empty)
                    # divides by zero in the core: nothing lexical can match there.
                    if plan.dense_field is None:
                        return []
                    plan = replace(plan, lexical=False)
                else:
                    raise
        raise AssertionError("unreachable")

    def _search(self, name: str, plan: SearchPlan, vector, text: str, k: int,
                filters: SearchFilters | None) -> list[Hit]:
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        expr = to_expression(filters)  # every route obeys the filters
        routes = []
        if plan.dense_field is not None:
            params = dict(self.settings.search_params.get(self.settings.index_type, {}))
            if "ef" in params:
                params["ef"] = max(params["ef"], plan.candidates)
            routes.append(AnnSearchRequest([np.asarray(vector, dtype=np.float32).tolist()],
                                           plan.dense_field, {"metric_type": "COSINE",
                                                              "params": params},
                                           limit=plan.candidates, expr=expr))
        if plan.lexical:
            routes.append(AnnSearchRequest([text], schema.SPARSE, {"metric_type": "BM25"},
                                           limit=plan.candidates, expr=expr))
        common = dict(output_fields=schema.ROW_FIELDS, group_by_field="item_id",
                      consistency_level=self.settings.consistency_level,
                      timeout=self.settings.timeout_s)

        def search(route, limit: int) -> list[dict]:
            return self._client.search(name, data=route.data, anns_field=route.anns_field,
                                       search_params=route.param, filter=expr, limit=limit,
                                       **common)[0]

        if len(routes) == 1:
            found = search(routes[0], k)
        elif plan.fusion == "weighted" and not self._milvus_weights:
            # the engine would weigh BM25 upside down (connection.fuses_weights_correctly):
            # the same fusion here, from each route's grouped hits, normalised as Milvus does
            found = [{**row, "distance": weighted_share(route.param["metric_type"], weight,
                                                        row["distance"])}
                     for route, weight in zip(routes, (plan.weights.dense, plan.weights.lexical))
                     for row in search(route, plan.candidates)]
        else:
            ranker = (RRFRanker(plan.rrf_k) if plan.fusion == "rrf" else
                      WeightedRanker(plan.weights.dense, plan.weights.lexical, norm_score=True))
            # each item can come back once per route: twice k rows hold k items
            found = self._client.hybrid_search(name, routes, ranker, limit=2 * k, **common)[0]
        rows = [({f: row["entity"].get(f) for f in schema.ROW_FIELDS}, float(row["distance"]))
                for row in found]
        return [Hit(CatalogueItem.stored({**entity, "id": entity["item_id"]}),
                    int(entity["image_index"]), score)
                for entity, score in merge_routes(rows)[:k]]

    # -- versions and health ---------------------------------------------------------------------
    @guard
    def versions(self) -> list[Version]:
        return list_versions(self._client, self._aliases, self.alias)

    @guard
    def promote(self, label: str, replace_legacy: bool = False) -> str:
        """Point the catalogue's name at a version (atomically); returns its collection."""
        return promote(self._client, self._aliases, self.alias, label, replace_legacy)

    @guard
    def drop_version(self, label: str) -> str:
        return drop_version(self._client, self._aliases, self.alias, label)

    @guard
    def ping(self, timeout: float) -> bool:
        """True when Milvus answers within `timeout` and a live version exists (readiness)."""
        name = self.target()
        return name is not None and bool(self._client.has_collection(name, timeout=timeout))

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a dead connection must not raise
            pass
