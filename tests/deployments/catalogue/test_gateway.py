"""The store gateway over a real embedded Milvus server that gets killed: the next call
restarts it and succeeds, the dead process is reaped, and the log says so in one line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

from pardus.deployments.catalogue import lite_server
from pardus.deployments.catalogue.gateway import StoreGateway
from pardus.deployments.settings import MilvusSettings


def test_a_killed_milvus_server_costs_no_error_and_one_log_line(tmp_path, capfd, caplog):
    path = tmp_path / "killed.db"
    settings = MilvusSettings(uri=str(path), collection="gw", timeout_s=10)

    async def main() -> tuple[str, list[str]]:
        gateway = StoreGateway(settings, 8)
        try:
            before = await gateway.check(5)  # a call to the server: "ok" or what is wrong
            killed = lite_server.running(path).pid
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{killed}").exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not Path(f"/proc/{killed}").exists(), "the dead server was not reaped"
            return before, [await gateway.check(5) for _ in range(3)]
        finally:
            await gateway.close()

    caplog.set_level(logging.WARNING)
    capfd.readouterr()
    try:
        before, after = asyncio.run(main())
    finally:
        lite_server.stop(path)
    assert before == "ok" and after == ["ok"] * 3  # the first call after the kill too
    printed = capfd.readouterr()
    assert "Traceback" not in printed.out + printed.err
    said = [r.getMessage() for r in caplog.records if "Milvus" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("lost Milvus at "), said
