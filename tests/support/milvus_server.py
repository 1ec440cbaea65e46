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


class MilvusServer:
    """A server process on one data directory. pause()/resume() freeze and thaw it (SIGSTOP /
    SIGCONT to its group): a server that stops answering and comes back, for readiness tests.
    (A stop and a fresh start on the same data did not come back within 90 s on 2.3.5 here:
    its root coordinator never registered again.)"""

    def __init__(self, data_dir: Path, timeout: float = 90.0):
        self.data_dir, self.timeout = data_dir, timeout
        self.uri = f"http://127.0.0.1:{PORT}"
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        from pymilvus import MilvusClient

        exe = binary()
        if exe is None:
            raise RuntimeError("milvus-server is not installed (pip install milvus==2.3.5)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "server.log"
        with open(log_path, "a") as log:
            # Its own process group: `milvus-server` is a wrapper whose child is the real server.
            self.process = subprocess.Popen([exe, "--data", str(self.data_dir)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Milvus server did not start: {log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                MilvusClient(self.uri, timeout=5).list_collections()
                return self.uri
            except Exception:
                time.sleep(0.5)

    def pause(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

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
