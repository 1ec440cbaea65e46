"""Start and stop a real Milvus 2.3 standalone server (PyPI `milvus`) for tests and benchmarks.

It binds every interface, so callers run it only inside a loopback-only network namespace
(tests/run-isolated).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

PORT = 19530


def network_is_private() -> bool:
    """Only loopback here: safe to start servers that bind 0.0.0.0."""
    return {name for _, name in socket.if_nameindex()} == {"lo"}


def binary() -> str | None:
    beside = Path(sys.executable).with_name("milvus-server")
    return str(beside) if beside.exists() else shutil.which("milvus-server")


def _stop_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop the wrapper and everything it started (the server binary, its embedded etcd)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout)
            deadline = time.monotonic() + timeout  # the group may outlive the wrapper
            while time.monotonic() < deadline:
                os.killpg(process.pid, 0)
                time.sleep(0.2)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue


@contextmanager
def milvus_server(data_dir: Path, timeout: float = 90.0):
    """Yield the server's URI once it answers; stop it afterwards."""
    from pymilvus import MilvusClient

    exe = binary()
    if exe is None:
        raise RuntimeError("milvus-server is not installed (pip install milvus==2.3.5)")
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    with open(log_path, "w") as log:
        # Its own process group: `milvus-server` is a wrapper whose child is the real server.
        process = subprocess.Popen([exe, "--data", str(data_dir)], stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        uri = f"http://127.0.0.1:{PORT}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Milvus server did not start: {log_path.read_text()[-2000:]}")
                try:
                    socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                    MilvusClient(uri, timeout=5).list_collections()
                    break
                except Exception:
                    time.sleep(0.5)
            yield uri
        finally:
            _stop_group(process)
