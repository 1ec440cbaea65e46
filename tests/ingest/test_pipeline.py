"""End to end ingest on a real local Ray, the embedded Milvus (shared server) and the tiny
embedder: every usable picture of an item is a row, items and pictures are counted apart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pardus.deployments.catalogue import lite_server
from pardus.deployments.catalogue.filters import SearchFilters
from pardus.deployments.catalogue.plans import make_plan
from pardus.deployments.catalogue.store import CatalogueStore
from pardus.deployments.names import QueryKind
from pardus.deployments.settings import (
    EmbedderSettings,
    IngestSettings,
    MilvusSettings,
    SearchSettings,
    Settings,
)
from pardus.ingest.pipeline import run_ingest
from pardus.ingest.samples import write_sample_catalogue
from tests.deployments.embedder.test_images import png_header_only

GOOD = 150  # sample items, with 1 to 3 pictures each
ROWS = sum(1 + i % 3 for i in range(GOOD)) + 1  # their pictures, and X-MIXED's good one
SMALL = 12  # items of the catalogue read through file:// URIs
BAD_PICTURES = {  # reason -> pictures left out (X-MIXED's second one among them)
    "not_an_image": 2, "truncated": 1, "empty": 1, "too_large": 1, "not_found": 1,
    "path_escape": 1, "http_disabled": 1,
}
SKIPPED = {"no_usable_image": 7, "bad_record": 2, "no_image": 1}  # items
IMAGE = make_plan(QueryKind.IMAGE, SearchSettings())


def write_broken(folder: Path) -> list[str]:
    """Broken files in the images folder, and manifest lines that point at trouble."""
    images = folder / "images"
    (images / "corrupt.jpg").write_bytes(b"this is no jpeg")
    good = (images / "item-0000-0.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (images / "empty.jpg").write_bytes(b"")
    (images / "bomb.png").write_bytes(png_header_only(30_000, 30_000))
    refs = {"X-CORRUPT": "images/corrupt.jpg", "X-TRUNC": "images/truncated.jpg",
            "X-EMPTY": "images/empty.jpg", "X-BOMB": "images/bomb.png", "X-MISSING": "images/nope.jpg",
            "X-ESCAPE": "../../../etc/passwd", "X-HTTP": "http://127.0.0.1:9/x.jpg"}
    lines = [json.dumps({"parent_asin": k, "title": k, "images": [{"large": v}]}) for k, v in refs.items()]
    lines += ['{"parent_asin": "X-NOIMG", "title": "no picture", "images": []}', "{broken json", "[1]"]
    lines.append(json.dumps({"parent_asin": "X-MIXED", "title": "one of two", "images": [
        {"large": "images/item-0001-0.jpg", "variant": "MAIN"}, {"large": "images/corrupt.jpg"}]}))
    return lines


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("catalogue")
    write_sample_catalogue(folder, count=GOOD)
    with open(folder / "items.jsonl", "a") as out:
        out.write("\n".join(write_broken(folder)) + "\n\n")
    return folder


@pytest.fixture(scope="module")
def settings(tiny_model, tmp_path_factory) -> Settings:
    work = tmp_path_factory.mktemp("ingest")
    yield Settings(
        embedder=EmbedderSettings(checkpoint=tiny_model["PARDUS_EMBEDDER__CHECKPOINT"],
                                  text_model=tiny_model["PARDUS_EMBEDDER__TEXT_MODEL"]),
        milvus=MilvusSettings(uri=str(work / "catalogue.db"), collection="products"),
        ingest=IngestSettings(batch_size=16, report=str(work / "report.jsonl")),
    )
    lite_server.stop(work / "catalogue.db")


def with_collection(settings: Settings, name: str, **milvus) -> Settings:
    return settings.model_copy(update={"milvus": settings.milvus.model_copy(
        update={"collection": name, **milvus})})


@pytest.fixture(scope="module")
def first_run(ray_local, catalogue, settings):
    return run_ingest(str(catalogue / "items.jsonl"), settings)


@pytest.fixture(scope="module")
def store(first_run, settings):
    store = CatalogueStore(settings.milvus, dim=768)
    yield store
    store.close()


def test_first_run_indexes_good_items_and_reports_the_rest(first_run, settings):
    assert (first_run.indexed, first_run.rows) == (GOOD + 1, ROWS)  # X-MIXED indexed
    assert first_run.already == 0 and first_run.duplicates == 0 and first_run.live
    assert dict(first_run.skipped) == SKIPPED
    assert dict(first_run.skipped_pictures) == BAD_PICTURES
    assert first_run.seen == GOOD + 1 + sum(SKIPPED.values())
    assert (first_run.count_after, first_run.rows_after) == (GOOD + 1, ROWS)
    report = [json.loads(line) for line in Path(settings.ingest.report).read_text().splitlines()]
    pictures = [r for r in report if r["scope"] == "picture"]
    assert sorted(r["reason"] for r in pictures) == sorted(
        reason for reason, n in BAD_PICTURES.items() for _ in range(n))
    by_id = {r["id"]: r for r in pictures}
    assert by_id["X-ESCAPE"]["reason"] == "path_escape" and "leaves" in by_id["X-ESCAPE"]["message"]
    assert by_id["X-BOMB"]["reason"] == "too_large"
    assert by_id["X-MIXED"]["image"] == "images/corrupt.jpg"


def test_rerun_adds_nothing_and_loses_nothing(first_run, catalogue, settings):
    again = run_ingest(str(catalogue / "items.jsonl"), settings)
    assert (again.indexed, again.rows, again.already) == (0, 0, GOOD + 1)
    assert (again.count_after, again.rows_after) == (GOOD + 1, ROWS)
    assert dict(again.skipped) == SKIPPED


def test_every_picture_finds_its_item(store, settings, catalogue):
    from pardus.deployments.embedder.encoder import Embedder

    embedder = Embedder(settings.embedder)
    picks = [(0, 0), (77, 1), (149, 1), (149, 2)]  # (item, picture)
    paths = [catalogue / "images" / f"item-{i:04d}-{j}.jpg" for i, j in picks]
    for (i, j), vector in zip(picks, embedder.encode_images(paths).vectors):
        hit = store.search(IMAGE, vector, "", k=1).hits[0]
        assert (hit.item.id, hit.image_index) == (f"SAMPLE{i:05d}", j) and hit.score > 0.999
        assert hit.image == f"images/item-{i:04d}-{j}.jpg" and hit.item.title
        assert hit.item.brand and len(hit.item.images) == 1 + i % 3


def test_filters_and_delete(store):
    query = np.ones(768, dtype=np.float32) / np.sqrt(768)
    filters = SearchFilters(categories=["Home & Kitchen"], price_max=40)
    hits = store.search(IMAGE, query, "", 50, filters).hits
    assert hits and all(h.item.category == "Home & Kitchen" and h.item.price <= 40 for h in hits)
    victim = hits[0].item.id
    assert store.delete([victim]) == [victim] and store.count() == GOOD
    assert victim not in {h.item.id for h in store.search(IMAGE, query, "", GOOD + 1).hits}


def test_parquet_manifest_gives_the_same_catalogue(ray_local, catalogue, settings, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in (catalogue / "items.jsonl").read_text().splitlines()
               if line.startswith('{"parent_asin": "SAMPLE')]
    pq.write_table(pa.Table.from_pylist(records), catalogue / "items.parquet")
    summary = run_ingest(str(catalogue / "items.parquet"), with_collection(settings, "from_parquet"))
    assert (summary.indexed, summary.rows, sum(summary.skipped.values())) == (GOOD, ROWS - 1, 0)


def test_folder_source_names_items_by_content(ray_local, catalogue, settings):
    folder_settings = with_collection(settings, "from_folder")
    summary = run_ingest(str(catalogue / "images"), folder_settings)
    files = ROWS - 1  # every good picture file is an item of its own
    assert summary.indexed == files and summary.count_after == files == summary.rows_after
    assert dict(summary.skipped) == {"no_usable_image": 4}
    assert dict(summary.skipped_pictures) == {"not_an_image": 1, "truncated": 1, "empty": 1,
                                              "too_large": 1}
    store = CatalogueStore(folder_settings.milvus, dim=768)
    item = store.search(IMAGE, np.ones(768, dtype=np.float32), "", k=1).hits[0].item
    assert item.id.startswith("sha256-") and item.images[0].startswith("item-")
    again = run_ingest(str(catalogue / "images"), folder_settings)
    assert (again.indexed, again.already) == (0, files)


def test_killed_run_resumes_to_the_exact_count(first_run, catalogue, settings, tiny_model,
                                                tmp_path, ray_local):
    # The killed run joins the session's Ray, as a RayJob's driver joins its cluster: a
    # second local cluster on two cores made this test flaky.
    address = ray_local.get_runtime_context().gcs_address
    env = {**os.environ, **tiny_model, "RAY_ADDRESS": address,
           "PARDUS_MILVUS__URI": settings.milvus.uri,
           "PARDUS_MILVUS__COLLECTION": "resumed", "PARDUS_INGEST__BATCH_SIZE": "4",
           "PARDUS_INGEST__REPORT": settings.ingest.report + ".killed"}
    cmd = [sys.executable, "-m", "pardus.cli.main", "ingest", str(catalogue / "items.jsonl")]
    log = tmp_path / "killed-run.log"
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=out,
                                   stderr=subprocess.STDOUT)
    store = CatalogueStore(with_collection(settings, "resumed").milvus, dim=768)
    deadline, partial = time.monotonic() + 240, 0
    try:
        while time.monotonic() < deadline and process.poll() is None:
            partial = store.count() if store.ping(5.0) else 0
            if partial >= 20:
                break
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert 0 < partial < GOOD, (f"the kill should land mid-run (had {partial} of {GOOD}; "
                                f"exit {process.returncode}): {log.read_text()[-3000:]}")
    summary = run_ingest(str(catalogue / "items.jsonl"), with_collection(settings, "resumed"))
    assert (summary.count_after, summary.rows_after) == (GOOD + 1, ROWS)  # exact, no duplicates
    assert summary.indexed + summary.already == GOOD + 1


def test_ingest_into_a_milvus_server(ray_local, milvus_server, catalogue, settings):
    server = with_collection(settings, "products_on_server", uri=milvus_server)
    summary = run_ingest(str(catalogue / "items.jsonl"), server)
    assert (summary.indexed, summary.rows_after) == (GOOD + 1, ROWS)
    again = run_ingest(str(catalogue / "items.jsonl"), server)
    assert (again.indexed, again.already, again.rows_after) == (0, GOOD + 1, ROWS)


@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory) -> Path:
    """A few items whose manifests (JSONL, Parquet) also point out of the folder at a real file
    and at a missing one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("by-uri") / "catalogue"
    write_sample_catalogue(folder, count=SMALL)
    (folder.parent / "outside.jpg").write_bytes((folder / "images" / "item-0000-0.jpg").read_bytes())
    with open(folder / "items.jsonl", "a") as out:
        for item_id, image in (("X-ESCAPE", "images/../../outside.jpg"),
                               ("X-MISSING", "images/nope.jpg")):
            out.write(json.dumps({"parent_asin": item_id, "images": [{"large": image}]}) + "\n")
    records = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(records), folder / "items.parquet")
    return folder


@pytest.mark.parametrize("name", ["items.jsonl", "items.parquet"])
def test_manifests_given_as_uris(ray_local, small_catalogue, settings, name):
    """file:// takes the pyarrow path an s3:// or gs:// manifest takes (there is no S3 here);
    a folder URI differs from a local folder only in its listing (test_sources.py)."""
    uri, report = f"file://{small_catalogue}/{name}", f"{settings.ingest.report}.{name}"
    by_uri = with_collection(settings, "by_uri_" + name.replace(".", "_"))
    ingest = by_uri.ingest.model_copy(update={"report": report})
    by_uri = by_uri.model_copy(update={"ingest": ingest})
    summary = run_ingest(uri, by_uri)
    assert summary.source == uri and dict(summary.skipped_pictures) == {"path_escape": 1,
                                                                         "not_found": 1}
    assert (summary.indexed, summary.count_after) == (SMALL, SMALL)
    # The messages name URIs: the Ray workers resolved the images under the folder URI.
    by_id = {row["id"]: row for row in map(json.loads, Path(report).read_text().splitlines())
             if row["scope"] == "picture"}
    root = f"file://{small_catalogue}"
    assert by_id["X-MISSING"]["message"] == f"image not found: {root}/images/nope.jpg"
    assert by_id["X-ESCAPE"]["message"].endswith(f"leaves the source folder {root}")
