"""Milvus servers and clusters (2.5, 2.6; a 2.3 server for aliases alone): native collection
aliases, fusion by hybrid_search inside Milvus, one row per item from its grouping."""

from __future__ import annotations

import numpy as np
from pymilvus import RRFRanker, WeightedRanker
from pymilvus.exceptions import MilvusException

from pardus.deployments.catalogue.engines.base import (
    AliasBook,
    Engine,
    Match,
    matches,
    not_now,
    quiet_pymilvus,
)
from pardus.deployments.catalogue.plans import SearchPlan
from pardus.deployments.names import Fusion


class NativeAliases(AliasBook):
    """Milvus collection aliases: alter_alias moves one atomically."""

    def _lookup(self, alias: str) -> str | None:
        try:
            with quiet_pymilvus():  # an alias that does not exist yet is no error to log
                return self.client.describe_alias(alias).get("collection_name") or None
        except MilvusException as exc:
            if not_now(exc):  # "no answer" is not "no such alias"
                raise
            return None

    def _point(self, alias: str, collection: str) -> None:
        if self._lookup(alias) is None:
            self.client.create_alias(collection, alias)
        else:
            self.client.alter_alias(collection, alias)


class ServerEngine(Engine):
    """A Milvus server or cluster: the engines that report their version."""

    kind = "server"

    def _alias_book(self) -> AliasBook:
        return NativeAliases(self.client, self.settings.alias_refresh_s)

    def search(self, name: str, plan: SearchPlan, vector: np.ndarray | None, text: str, k: int,
               expr: str, fields: list[str]) -> list[Match]:
        routes = self.routes(plan, vector, text, expr)
        if len(routes) == 1:
            return self.search_route(name, routes[0], expr, k, fields)
        # Servers normalise BM25 for WeightedRanker the right way up (2·atan(s)/π) and group
        # the fused rows by item (one row per item, its best row's score).
        ranker = (WeightedRanker(plan.weights.dense, plan.weights.lexical, norm_score=True)
                  if plan.fusion == Fusion.WEIGHTED else RRFRanker(plan.rrf_k))
        return matches(self.client.hybrid_search(name, routes, ranker, limit=k,
                                                 **self._grouped(fields))[0], fields)
