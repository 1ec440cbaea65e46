"""A manifest built to hurt: every kind of row that once stopped a whole ingest, mixed with
good rows. All good rows are indexed, every bad one is reported with its reason, and a rerun
adds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pardus.deployments.catalogue import lite_server
from pardus.deployments.settings import EmbedderSettings, IngestSettings, MilvusSettings, Settings
from pardus.ingest.pipeline import run_ingest
from pardus.ingest.samples import write_sample_catalogue

GOOD = 12
BAD = {  # id (or a name for an id-less line) -> (manifest line, the reason it is reported with)
    "deeply nested": ('{"parent_asin": ' + "[" * 100_000 + "]" * 100_000 + "}", "bad_record"),
    "A\nB": (json.dumps({"parent_asin": "A\nB", "images": ["images/item-0000-0.jpg"]}), "bad_id"),
    "X" * 300: (json.dumps({"parent_asin": "X" * 300, "images": ["images/item-0000-0.jpg"]}),
                "bad_id"),
    "NUL": (json.dumps({"parent_asin": "NUL", "images": ["images/a\u0000.jpg"]}), "bad_image"),
    "IPV6": (json.dumps({"parent_asin": "IPV6", "images": ["//[x/a.jpg"]}), "no_usable_image"),
    "QUERY": (json.dumps({"parent_asin": "QUERY", "images": [
        "s3://bucket/a.jpg?endpoint_override=evil.example&scheme=http"]}), "no_usable_image"),
    "not UTF-8": ('{"parent_asin": "LATIN", "title": "caf\xe9"}', "bad_record"),
    "a number": ("42", "bad_record"),
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    write_sample_catalogue(folder, count=GOOD)
    good = (folder / "items.jsonl").read_bytes().splitlines()
    long_title = json.loads(good[1])
    long_title.update(parent_asin="LONG", title="é" * 2000, price="NaN",
                      images=[{"large": f"images/item-0001-{i % 2}.jpg"} for i in range(50)])
    lines = [line.encode("latin-1") if name == "not UTF-8" else line.encode()
             for name, (line, _) in BAD.items()]
    lines += [good[0], json.dumps(long_title).encode()]  # SAMPLE00000 comes again: twice
    (folder / "items.jsonl").write_bytes(b"\n".join(good + lines) + b"\n")
    return folder / "items.jsonl"


@pytest.fixture(scope="module")
def settings(tiny_model, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile-store")
    yield Settings(
        embedder=EmbedderSettings(checkpoint=tiny_model["PARDUS_EMBEDDER__CHECKPOINT"],
                                  text_model=tiny_model["PARDUS_EMBEDDER__TEXT_MODEL"]),
        milvus=MilvusSettings(uri=str(work / "hostile.db"), collection="hostile"),
        ingest=IngestSettings(batch_size=64, report=str(work / "report.jsonl")))
    lite_server.stop(work / "hostile.db")


def test_every_good_row_indexed_every_bad_one_reported(ray_local, manifest, settings):
    summary = run_ingest(str(manifest), settings)
    assert summary.indexed == GOOD + 1  # the samples and LONG (title cut, 4 of its 50 pictures)
    assert summary.count_after == GOOD + 1
    report = [json.loads(line) for line in Path(settings.ingest.report).read_text().splitlines()]
    reasons = sorted(r["reason"] for r in report if r["scope"] == "item")
    assert [r for r in reasons if r != "duplicate_id"] == sorted(r for _, r in BAD.values())
    # SAMPLE00000 twice: dropped before Milvus within a batch, replaced by id across batches
    assert "duplicate_id" in reasons or summary.duplicates == 1
    pictures = {r["id"]: r["reason"] for r in report if r["scope"] == "picture"}
    assert pictures == {"IPV6": "bad_reference", "QUERY": "bad_reference"}
    again = run_ingest(str(manifest), settings)
    assert (again.indexed, again.rows, again.count_after) == (0, 0, GOOD + 1)
