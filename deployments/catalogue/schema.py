"""The catalogue's collection in Milvus: one row per picture of an item, two vectors per row, the
item's words analysed for BM25, and the check that tells an older Pardus collection apart.

A row holds the picture's image-only vector (what image and composed queries search) and its
image + title vector (what text queries search: Visualized BGE's candidate for a text query is
an image-text pair), the item's fields (repeated on each of its rows, so any matched row is the
whole product) and `words`, from which Milvus's BM25 function derives the sparse vector.

Schema 3 adds the business signals (in_stock, popularity, added_at). A version written by
schema 2 still serves searches (its products count as in stock, unknown popularity and age);
what needs the signals says to ingest a new version.
"""

from __future__ import annotations

from typing import Any

from pymilvus import DataType, Function, FunctionType, MilvusClient

from pardus.deployments.catalogue.connection import StoreError
from pardus.deployments.catalogue.items import (
    MAX_CATEGORY_BYTES,
    MAX_ID_BYTES,
    MAX_IMAGE_REF_BYTES,
    MAX_IMAGES,
    MAX_TITLE_BYTES,
)
from pardus.deployments.settings import MilvusSettings

SCHEMA_VERSION = 3
ROW_ID_BYTES = MAX_ID_BYTES + 4  # "<item id>#<picture index>"
WORDS_BYTES = MAX_TITLE_BYTES + 2 * MAX_CATEGORY_BYTES + 2
IMAGE_VECTOR, PAIR_VECTOR, SPARSE = "image_vector", "pair_vector", "sparse"
# Read back with every hit; the vectors and the sparse field never leave Milvus.
SIGNAL_FIELDS = ["in_stock", "popularity", "added_at"]  # schema 3
ITEM_FIELDS = ["item_id", "title", "category", "brand", "price", "rating", "images",
               "ingested_at", *SIGNAL_FIELDS]
ROW_FIELDS = [*ITEM_FIELDS, "image_index", "image_count"]
# What a search window reads for each of its (up to a thousand) items: all it ranks, counts and
# sorts by. Not the picture list: reading that array field made a 1000-item search 17 times
# slower on Milvus 2.5 (benchmarks/README.md#results-pages); the page's items get it after.
WINDOW_FIELDS = [f for f in ROW_FIELDS if f != "images"]
# Everything a row holds that can be read back (not the sparse vector, which Milvus derives).
STORED_FIELDS = ["row_id", *ROW_FIELDS, IMAGE_VECTOR, PAIR_VECTOR, "words"]


class LegacyCollection(StoreError):
    """The name holds a collection written by an older Pardus; the message says what to do."""


def row_id(item_id: str, index: int) -> str:
    return f"{item_id}#{index}"


def collection_schema(dim: int):
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                        description=f"pardus catalogue, schema {SCHEMA_VERSION}")
    schema.add_field("row_id", DataType.VARCHAR, is_primary=True, max_length=ROW_ID_BYTES)
    schema.add_field("item_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
    schema.add_field("image_index", DataType.INT32)  # 0: the main picture
    schema.add_field("image_count", DataType.INT32)  # the item's rows: how resume knows it whole
    schema.add_field(IMAGE_VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field(PAIR_VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("words", DataType.VARCHAR, max_length=WORDS_BYTES, enable_analyzer=True)
    schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("title", DataType.VARCHAR, max_length=MAX_TITLE_BYTES)
    schema.add_field("category", DataType.VARCHAR, max_length=MAX_CATEGORY_BYTES)
    schema.add_field("brand", DataType.VARCHAR, max_length=MAX_CATEGORY_BYTES)
    schema.add_field("price", DataType.FLOAT)
    schema.add_field("rating", DataType.FLOAT)
    schema.add_field("images", DataType.ARRAY, element_type=DataType.VARCHAR,
                     max_capacity=MAX_IMAGES, max_length=MAX_IMAGE_REF_BYTES)
    schema.add_field("ingested_at", DataType.INT64)
    schema.add_field("in_stock", DataType.BOOL)
    schema.add_field("popularity", DataType.FLOAT)
    schema.add_field("added_at", DataType.INT64)
    schema.add_function(Function(name="words_bm25", function_type=FunctionType.BM25,
                                 input_field_names=["words"], output_field_names=[SPARSE]))
    return schema


def index_params(client, settings: MilvusSettings):
    """Both vector fields with the configured index, COSINE; BM25 on the sparse field."""
    params = client.prepare_index_params()
    for field in (IMAGE_VECTOR, PAIR_VECTOR):
        params.add_index(field, index_type=settings.index_type, metric_type="COSINE",
                         params=settings.index_params.get(settings.index_type, {}))
    params.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return params


def has_signals(described: dict[str, Any]) -> bool:
    """Whether a collection holds the business signals (schema 3 and later)."""
    names = {field["name"] for field in described["fields"]}
    return all(name in names for name in SIGNAL_FIELDS)


def fields_of(described: dict[str, Any], fields: list[str]) -> list[str]:
    """The fields of a list that a collection holds (schema 2 lacks the signals)."""
    names = {field["name"] for field in described["fields"]}
    return [name for name in fields if name in names or name == "row_id"]


def check(described: dict[str, Any], name: str, dim: int) -> None:
    """A collection found under `name` fits this release and model, or a clear error (one of
    schema 2 fits: it lacks only the signals)."""
    fields = {field["name"]: field for field in described["fields"]}
    if "vector" in fields and PAIR_VECTOR not in fields:
        raise LegacyCollection(
            f"collection {name!r} was written by an older Pardus (one image vector per item, no "
            "BM25), which this release cannot search. Re-index the catalogue beside it: "
            "`pardus ingest SOURCE --version v1`, then `pardus store promote v1 --replace-legacy`"
            f" (points {name!r} at the new version and drops the old collection)")
    missing = [f for f in (*ROW_FIELDS, IMAGE_VECTOR, PAIR_VECTOR, SPARSE)
               if f not in fields and f not in SIGNAL_FIELDS]
    if missing:
        raise LegacyCollection(f"collection {name!r} is not a Pardus catalogue (lacks "
                               f"{missing}): choose another collection name")
    have = int(fields[IMAGE_VECTOR].get("params", {}).get("dim", dim))
    if have != dim:
        raise LegacyCollection(
            f"collection {name!r} holds {have}-d vectors but the embedder makes {dim}-d ones: "
            "ingest this model into a new version (`pardus ingest SOURCE --version NAME`)")
