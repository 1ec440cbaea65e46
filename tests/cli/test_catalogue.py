"""`pardus ingest` and `pardus store`: exit codes and messages (in-process, real Ray and Lite)."""

from __future__ import annotations

import pytest

from pardus.deployments.catalogue import lite_server
from tests.support.cli import core_processes, documented_to_outlive, invoke


def env_for(tiny_model, tmp_path) -> dict[str, str]:
    return {**tiny_model, "PARDUS_MILVUS__URI": str(tmp_path / "cli.db"),
            "PARDUS_INGEST__REPORT": str(tmp_path / "report.jsonl")}


def test_missing_source_is_a_configuration_error(tiny_model, tmp_path, monkeypatch):
    result = invoke(["ingest", str(tmp_path / "nope")], env_for(tiny_model, tmp_path), monkeypatch)
    assert result.exit_code == 2 and "does not exist" in result.output


def test_nothing_indexable_exits_1_and_reports(ray_local, tiny_model, tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"not a picture")
    env = env_for(tiny_model, tmp_path)
    try:
        result = invoke(["ingest", str(tmp_path / "imgs")], env, monkeypatch)
        assert result.exit_code == 1, result.output
        assert "nothing could be indexed" in result.output and "not_an_image" in result.output
        status = invoke(["store", "status"], env, monkeypatch)
        assert status.exit_code == 0 and "0 items" in status.output
    finally:
        stop = invoke(["store", "stop"], env, monkeypatch)
    assert stop.exit_code == 0 and "stopped" in stop.output
    assert lite_server.running(tmp_path / "cli.db") is None


def test_store_stop_refuses_a_server_uri(tmp_path, monkeypatch):
    result = invoke(["store", "stop", "--milvus-uri", "http://127.0.0.1:19530"], {}, monkeypatch)
    assert result.exit_code == 2 and "not a local Milvus Lite path" in result.output


def test_ingest_shows_our_progress_and_table_and_keeps_the_libraries_in_a_log(
        tiny_model, tmp_path):
    """As a user runs it: a process of its own with a terminal-less output (Ray's INFO lines,
    deprecation warnings and core-worker messages used to land here)."""
    import os
    import subprocess
    import sys

    from pardus.ingest.samples import write_sample_catalogue
    from tests.cli.test_service import LIBRARY_LINES

    write_sample_catalogue(tmp_path / "catalogue", count=6)
    env = {**os.environ, **env_for(tiny_model, tmp_path), "PARDUS_LOG_DIR": str(tmp_path / "logs")}
    done = subprocess.run([sys.executable, "-m", "pardus.cli.main", "ingest",
                           str(tmp_path / "catalogue" / "items.jsonl")], env=env,
                          capture_output=True, text=True, timeout=420)
    outlived = bool(core_processes(tmp_path / "cli.db"))
    lite_server.stop(tmp_path / "cli.db")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "indexed now" in output and "pardus-ingest.log" in output
    assert not [line for line in output.splitlines() if any(s in line for s in LIBRARY_LINES)]
    assert "ray" in (tmp_path / "logs" / "pardus-ingest.log").read_text().lower()
    assert outlived == documented_to_outlive("pardus ingest")
    assert "`pardus store stop` stops it" in output


def test_attributes_only_changes_signals_and_nothing_else(ray_local, tiny_model, tmp_path,
                                                          monkeypatch):
    """A manifest's new stock, popularity and price reach every row of the items already
    indexed, without embedding; items the catalogue does not hold are reported."""
    import json

    from pardus.deployments.catalogue.store import CatalogueStore
    from pardus.deployments.settings import Settings
    from pardus.ingest.samples import write_sample_catalogue

    catalogue = tmp_path / "catalogue"
    write_sample_catalogue(catalogue, count=6)
    env = env_for(tiny_model, tmp_path)
    try:
        assert invoke(["ingest", str(catalogue / "items.jsonl")], env, monkeypatch).exit_code == 0
        settings = Settings(milvus={"uri": str(tmp_path / "cli.db")})
        store = CatalogueStore(settings.milvus)
        before = store.count_rows()
        rows = [json.loads(line) for line in (catalogue / "items.jsonl").read_text().splitlines()]
        changes = [{"parent_asin": row["parent_asin"], "in_stock": False, "rating_number": 4242}
                   for row in rows[:3]]  # an attribute feed: no pictures, no titles
        changes.append({"parent_asin": "NOT-HERE", "in_stock": True})
        update = tmp_path / "update.jsonl"
        update.write_text("".join(json.dumps(c) + "\n" for c in changes))
        result = invoke(["ingest", str(update), "--attributes-only"], env, monkeypatch)
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "updated (every picture row) │ 3" in said and "not in the catalogue │ 1" in said
        items = {item.id: item for item in store.get([row["parent_asin"] for row in rows])}
        for row in rows[:3]:
            item = items[row["parent_asin"]]
            assert (item.in_stock, item.popularity) == (False, 4242)
            assert item.price == pytest.approx(row["price"], rel=1e-6)  # untouched (float32)
        untouched = items[rows[4]["parent_asin"]]
        assert (untouched.in_stock, untouched.popularity) == (rows[4]["in_stock"],
                                                                rows[4]["rating_number"])
        assert store.count_rows() == before
        flags = store._query('item_id in ["SAMPLE00000", "SAMPLE00002"]', ["in_stock"])
        assert len(flags) == 1 + 3 and not any(r["in_stock"] for r in flags)  # every picture
        store.close()
    finally:
        invoke(["store", "stop"], env, monkeypatch)
