"""Catalogue versions behind one name: the service reads `products`, which points at a version
(`products__v1`, `products__v2`, ...); ingest fills a new version while the old one serves, and
`promote` moves the name in one step.

On a Milvus server or cluster the name is a collection alias (alter_alias is atomic). The Milvus
2.5 core that milvus-lite ships has no alias calls, so there the name is a pointer row in a
small collection of its own: one upsert moves it, readers look it up (cached for
`milvus.alias_refresh_s`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from pardus.deployments.catalogue.connection import quiet_pymilvus, unimplemented
from pardus.deployments.catalogue.filters import string_literal
from pardus.deployments.errors import BadQuery

SEPARATOR = "__"
LABEL = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")
POINTERS = "pardus_aliases"


class VersionError(BadQuery):
    """A version request that cannot be done as asked; the message says why."""

    code = "invalid_version"


def version_name(alias: str, label: str) -> str:
    if not LABEL.match(label):
        raise VersionError(f"version {label!r}: use 1-32 lower-case letters, digits or '_' "
                           "(e.g. v2, 2026_11)")
    return f"{alias}{SEPARATOR}{label}"


def label_of(alias: str, collection: str) -> str | None:
    prefix = alias + SEPARATOR
    return collection[len(prefix):] if collection.startswith(prefix) else None


@dataclass
class Version:
    label: str
    collection: str
    rows: int
    live: bool


class _Aliases:
    """Which collection an alias names, looked up at most once per `refresh_s`."""

    def __init__(self, client, refresh_s: float):
        self.client, self.refresh_s = client, refresh_s
        self._cache: dict[str, tuple[float, str | None]] = {}

    def target(self, alias: str) -> str | None:
        cached = self._cache.get(alias)
        if cached and time.monotonic() - cached[0] < self.refresh_s:
            return cached[1]
        found = self._lookup(alias)
        self._cache[alias] = (time.monotonic(), found)
        return found

    def point(self, alias: str, collection: str) -> None:
        self._point(alias, collection)
        self._cache[alias] = (time.monotonic(), collection)

    def forget(self, alias: str) -> None:
        """Drop the cached lookup (its target went away)."""
        self._cache.pop(alias, None)

    def _lookup(self, alias: str) -> str | None:
        raise NotImplementedError

    def _point(self, alias: str, collection: str) -> None:
        raise NotImplementedError


class NativeAliases(_Aliases):
    """Milvus collection aliases (servers and clusters): alter_alias moves one atomically."""

    def _lookup(self, alias: str) -> str | None:
        from pymilvus.exceptions import MilvusException

        try:
            with quiet_pymilvus():
                return self.client.describe_alias(alias).get("collection_name") or None
        except MilvusException:  # no such alias
            return None

    def _point(self, alias: str, collection: str) -> None:
        if self._lookup(alias) is None:
            self.client.create_alias(collection, alias)
        else:
            self.client.alter_alias(collection, alias)


class PointerAliases(_Aliases):
    """Aliases as rows of a small collection (engines without alias calls): one upsert moves
    one."""

    def _lookup(self, alias: str) -> str | None:
        if not self.client.has_collection(POINTERS):
            return None
        rows = self.client.query(POINTERS, filter=f"alias == {string_literal(alias)}",
                                 output_fields=["target"], consistency_level="Strong")
        return rows[0]["target"] if rows else None

    def _point(self, alias: str, collection: str) -> None:
        from pymilvus import DataType, MilvusClient

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


def alias_book(client, refresh_s: float) -> _Aliases:
    """Native aliases where the engine has them, pointer rows where it has not."""
    try:
        with quiet_pymilvus():
            client.describe_alias(f"{POINTERS}_probe")
    except Exception as exc:  # pymilvus raises MilvusException or a raw grpc error
        if unimplemented(exc):
            return PointerAliases(client, refresh_s)
    return NativeAliases(client, refresh_s)


def list_versions(client, aliases: _Aliases, alias: str) -> list[Version]:
    live = aliases.target(alias)
    versions = []
    for collection in sorted(client.list_collections()):
        label = label_of(alias, collection)
        if label is None:
            continue
        rows = int(client.get_collection_stats(collection).get("row_count", 0))
        versions.append(Version(label, collection, rows, collection == live))
    return versions


def legacy_collection(client, alias: str) -> dict | None:
    """The description of a real collection under the catalogue's name (an older Pardus's:
    a version is never named so), else None."""
    if not client.has_collection(alias):
        return None
    described = client.describe_collection(alias)
    return described if described.get("collection_name") == alias else None


def promote(client, aliases: _Aliases, alias: str, label: str, replace_legacy: bool) -> str:
    """Point `alias` at a version in one step (an older collection under the name is dropped
    first, when asked: the one moment the name resolves to nothing)."""
    name = version_name(alias, label)
    if not client.has_collection(name):
        raise VersionError(f"there is no version {label!r} of {alias!r}")
    if legacy_collection(client, alias) is not None:
        if not replace_legacy:
            raise VersionError(f"{alias!r} is an older collection, not a version: promote with "
                               f"--replace-legacy to drop it and point the name at {label!r}")
        client.drop_collection(alias)
    client.load_collection(name)
    aliases.point(alias, name)
    return name


def drop_version(client, aliases: _Aliases, alias: str, label: str) -> str:
    name = version_name(alias, label)
    if name == aliases.target(alias):
        raise VersionError(f"{label!r} is the live version of {alias!r}: promote another one "
                           "first")
    if not client.has_collection(name):
        raise VersionError(f"there is no version {label!r} of {alias!r}")
    client.drop_collection(name)
    return name
