"""The embedded Milvus 2.5 core (milvus-lite 2.5.1's native server, run on loopback by
lite_server.py or by pymilvus's local mode): aliases as pointer rows, weighted fusion here,
an item's rows of a hybrid search merged into one.

Every message this project matches instead of a code lives in this file (MESSAGES): the core
gives those failures no code of their own.
"""

from __future__ import annotations

import math

import numpy as np
from pymilvus import AnnSearchRequest, DataType, MilvusClient, RRFRanker
from pymilvus.exceptions import ConnectionConfigException, MilvusException

from pardus.deployments.catalogue.engines.base import AliasBook, Engine, Match, matches
from pardus.deployments.catalogue.filters import string_literal
from pardus.deployments.catalogue.plans import SearchPlan
from pardus.deployments.names import Fusion

POINTERS = "pardus_aliases"
SEGCORE_ERROR = 2000  # Milvus's code for any failure inside segcore (the C++ search core)

# -- the messages matched, in one place ---------------------------------------------------------
# milvus-lite 2.5.1: BM25 over a collection with no words at all divides by a zero average
# length and segcore asserts (code 2000, "Invalid sparse row: NaN or Inf value"). Milvus servers
# fixed it (milvus-io/milvus#41490); the core of milvus-lite 2.5.1 did not.
NO_WORDS = "Invalid sparse row: NaN"
# pymilvus 3.0.2's local mode (a .db path opened in this process, milvus-lite 2.5.1): a data file
# another process holds fails as ConnectionConfigException "Open local milvus failed", the same
# exception as a bad URI, without a code.
HELD_ELSEWHERE = "Open local milvus failed"


def no_words(exc: BaseException) -> bool:
    return (isinstance(exc, MilvusException) and exc.code == SEGCORE_ERROR
            and NO_WORDS in exc.message)


def held_elsewhere(exc: BaseException) -> bool:
    """Whether opening a local data file failed because another process holds it."""
    return isinstance(exc, ConnectionConfigException) and HELD_ELSEWHERE in exc.message


class PointerAliases(AliasBook):
    """The core has no alias calls: an alias is a row of a small collection of its own, and
    one upsert moves it; readers look it up (cached for `milvus.alias_refresh_s`)."""

    def _lookup(self, alias: str) -> str | None:
        if not self.client.has_collection(POINTERS):
            return None
        rows = self.client.query(POINTERS, filter=f"alias == {string_literal(alias)}",
                                 output_fields=["target"], consistency_level="Strong")
        return rows[0]["target"] if rows else None

    def _point(self, alias: str, collection: str) -> None:
        if not self.client.has_collection(POINTERS):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("alias", DataType.VARCHAR, is_primary=True, max_length=256)
            schema.add_field("target", DataType.VARCHAR, max_length=256)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector
            index = self.client.prepare_index_params()
            index.add_index("unused", index_type="FLAT", metric_type="L2")
            self.client.create_collection(POINTERS, schema=schema, index_params=index)
        self.client.upsert(POINTERS, [{"alias": alias, "target": collection,
                                       "unused": [0.0, 0.0]}])


class CoreEngine(Engine):
    """The Milvus 2.5 core: the engine that answers GetVersion with UNIMPLEMENTED."""

    kind = "core"

    def _alias_book(self) -> AliasBook:
        return PointerAliases(self.client, self.settings.alias_refresh_s)

    def search(self, name: str, plan: SearchPlan, vector: np.ndarray | None, text: str, k: int,
               expr: str, fields: list[str]) -> list[Match]:
        try:
            return self._fused(name, plan, self.routes(plan, vector, text, expr), k, expr,
                               fields)
        except MilvusException as exc:
            if not (plan.lexical and no_words(exc)):
                raise
        # No words in the whole version (empty, or every title empty): nothing lexical can
        # match there, the dense route alone answers.
        routes = self.routes(plan, vector, text, expr, lexical=False)
        return self._fused(name, plan, routes, k, expr, fields) if routes else []

    def _fused(self, name: str, plan: SearchPlan, routes: list[AnnSearchRequest], k: int,
               expr: str, fields: list[str]) -> list[Match]:
        if len(routes) == 1:
            return self.search_route(name, routes[0], expr, k, fields)
        if plan.fusion == Fusion.WEIGHTED:
            # The core's WeightedRanker normalises BM25 as a distance, 1 − 2·atan(s)/π, which
            # ranks the best lexical match last (servers: 2·atan(s)/π). The same fusion here,
            # from each route's grouped hits, each score normalised the way servers do.
            weights = (plan.weights.dense, plan.weights.lexical)
            found = [Match(m.entity, weighted_share(route.param["metric_type"], weight, m.score))
                     for route, weight in zip(routes, weights)
                     for m in self.search_route(name, route, expr, plan.candidates, fields)]
        else:
            # each item can come back once per route: twice k rows hold k items
            found = matches(self.client.hybrid_search(name, routes, RRFRanker(plan.rrf_k),
                                                      limit=2 * k, **self._grouped(fields))[0],
                            fields)
        return merge_routes(found)[:k]


def merge_routes(found: list[Match]) -> list[Match]:
    """One match per item, best first. The core groups each route of a hybrid search by item,
    then fuses rows by primary key: an item whose best picture differs between routes comes
    back twice, each row carrying one route's share. Each route gives an item at most one row,
    so the sum of an item's fused scores is its item-level RRF or weighted score. BM25 matches
    main rows only (the words are stored there), so a row other than the main one came from the
    dense route: that is the picture that matched."""
    merged: dict[str, list] = {}
    for entity, score in found:
        seen = merged.get(entity["item_id"])
        if seen is None:
            merged[entity["item_id"]] = [entity, score]
            continue
        seen[1] += score
        if entity["image_index"] != 0:
            seen[0] = entity
    return sorted((Match(e, s) for e, s in merged.values()), key=lambda m: -m.score)


def weighted_share(metric: str, weight: float, score: float) -> float:
    """A route's share of an item's weighted score, its score normalised to [0, 1] the way
    Milvus servers' WeightedRanker does: cosine (1 + s) / 2, BM25 2·atan(s) / π."""
    if metric == "COSINE":
        return weight * (1 + score) / 2
    if metric == "BM25":
        return weight * 2 * math.atan(score) / math.pi
    raise ValueError(f"no normalisation for metric {metric!r}")
