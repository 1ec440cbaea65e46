"""Catalogue versions behind one name: the service reads `products`, which points at a version
(`products__v1`, `products__v2`, ...); ingest fills a new version while the old one serves, and
`promote` moves the name in one step.

The name is kept by the engine's alias book (engines/): a collection alias on a Milvus server
or cluster (alter_alias is atomic), a pointer row on the embedded core, which has no alias calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymilvus import MilvusClient

from pardus.deployments.catalogue.engines import Engine
from pardus.deployments.errors import BadQuery

SEPARATOR = "__"
LABEL = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")


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


def list_versions(engine: Engine, alias: str) -> list[Version]:
    client, live = engine.client, engine.aliases.target(alias)
    versions = []
    for collection in sorted(client.list_collections()):
        label = label_of(alias, collection)
        if label is None:
            continue
        rows = int(client.get_collection_stats(collection).get("row_count", 0))
        versions.append(Version(label, collection, rows, collection == live))
    return versions


def legacy_collection(client: MilvusClient, alias: str) -> dict | None:
    """The description of a real collection under the catalogue's name (an older Pardus's:
    a version is never named so), else None."""
    if not client.has_collection(alias):
        return None
    described = client.describe_collection(alias)
    return described if described.get("collection_name") == alias else None


def promote(engine: Engine, alias: str, label: str, replace_legacy: bool) -> str:
    """Point `alias` at a version in one step (an older collection under the name is dropped
    first, when asked: the one moment the name resolves to nothing)."""
    client, name = engine.client, version_name(alias, label)
    if not client.has_collection(name):
        raise VersionError(f"there is no version {label!r} of {alias!r}")
    if legacy_collection(client, alias) is not None:
        if not replace_legacy:
            raise VersionError(f"{alias!r} is an older collection, not a version: promote with "
                               f"--replace-legacy to drop it and point the name at {label!r}")
        client.drop_collection(alias)
    client.load_collection(name)
    engine.aliases.point(alias, name)
    return name


def drop_version(engine: Engine, alias: str, label: str) -> str:
    client, name = engine.client, version_name(alias, label)
    if name == engine.aliases.target(alias):
        raise VersionError(f"{label!r} is the live version of {alias!r}: promote another one "
                           "first")
    if not client.has_collection(name):
        raise VersionError(f"there is no version {label!r} of {alias!r}")
    client.drop_collection(name)
    return name
