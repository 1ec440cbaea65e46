"""The shared loopback milvus-lite server: started once, reused, stopped; no hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pardus.deployments.catalogue import lite_server
from tests.support.lite_holder import foreign_holder


def test_ensure_starts_once_and_is_reused(tmp_path):
    path = tmp_path / "shared.db"
    try:
        first = lite_server.ensure(path)
        assert first.uri.startswith("http://127.0.0.1:")
        assert lite_server.ensure(path) == first == lite_server.running(path)
        # another process joins the same server
        code = ("from deployments.catalogue import lite_server; "
                f"print(lite_server.ensure({str(path)!r}).pid)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        assert int(out.stdout.strip()) == first.pid
    finally:
        assert lite_server.stop(path)
    assert lite_server.running(path) is None and not lite_server.stop(path)


def test_concurrent_starts_make_one_server(tmp_path):
    path = tmp_path / "race.db"
    code = ("from deployments.catalogue import lite_server; "
            f"print(lite_server.ensure({str(path)!r}).pid)")

    def start(_):
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        with ThreadPoolExecutor(3) as pool:
            pids = set(pool.map(start, range(3)))
        assert len(pids) == 1
    finally:
        lite_server.stop(path)


def test_a_data_file_held_elsewhere_fails_with_a_reason(tmp_path):
    with foreign_holder(tmp_path / "held.db"):
        with pytest.raises(lite_server.LiteServerError, match="another process holds"):
            lite_server.ensure(tmp_path / "held.db", timeout=30)


def test_a_killed_server_is_reaped_and_the_next_ensure_starts_another(tmp_path):
    path = tmp_path / "killed.db"
    try:
        first = lite_server.ensure(path)
        os.kill(first.pid, signal.SIGKILL)  # a crash, an OOM kill
        deadline = time.monotonic() + 10
        while Path(f"/proc/{first.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{first.pid}").exists(), "left a zombie"
        second = lite_server.ensure(path)
        assert second.pid != first.pid and lite_server.running(path) == second
    finally:
        lite_server.stop(path)
