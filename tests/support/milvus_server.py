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

from tests.support.milvus_core import ServerProcess

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


class MilvusServer(ServerProcess):
    """A server process on one data directory. (A stop and a fresh start on the same data did
    not come back within 90 s on 2.3.5 here: its root coordinator never registered again.)"""

    def __init__(self, data_dir: Path, timeout: float = 90.0):
        self.data_dir, self.timeout, self.port = data_dir, timeout, PORT
        self.uri = f"http://127.0.0.1:{PORT}"

    def start(self) -> str:
        exe = binary()
        if exe is None:
            raise RuntimeError("milvus-server is not installed (pip install milvus==2.3.5)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # `milvus-server` is a wrapper whose child is the real server: the group holds both.
        return self._launch([exe, "--data", str(self.data_dir)], self.data_dir / "server.log")

    def stop(self) -> None:
        if self.process is not None:
            self.resume()  # a frozen group ignores SIGTERM until thawed
            _stop_group(self.process)
            self.process = None


@contextmanager
def milvus_server(data_dir: Path, timeout: float = 90.0):
    """Yield a started MilvusServer; stop it afterwards."""
    server = MilvusServer(data_dir, timeout)
    try:
        server.start()
        yield server
    finally:
        server.stop()
