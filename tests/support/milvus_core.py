"""The Milvus 2.5 core (milvus-lite 2.5.1's server) as a Milvus server on 127.0.0.1, for tests:
a process of its own that a test may freeze, kill and start again on the same data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from pardus.deployments.catalogue.lite_server import core_binary
from tests.support.processes import free_port


def answers(uri: str, port: int, process: subprocess.Popen, timeout: float) -> bool:
    """Whether a starting Milvus server answers within `timeout` (False once it exits)."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            client = MilvusClient(uri, timeout=5)
            client.list_collections()
            client.close()  # left open, its idle pings earn GOAWAY lines from the core
            return True
        except Exception:  # not yet
            time.sleep(0.2)
    return False


class ServerProcess:
    """A Milvus server process leading its own process group: launched, then frozen and thawed
    (SIGSTOP / SIGCONT to the group: a server that stops answering and comes back)."""

    uri: str
    port: int
    timeout: float
    process: subprocess.Popen | None = None

    def _launch(self, command: list[str], log: Path) -> str:
        with open(log, "a") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        if not answers(self.uri, self.port, self.process, self.timeout):
            self.stop()
            raise RuntimeError(f"{command[0]} did not start: {log.read_text()[-2000:]}")
        return self.uri

    def pause(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        raise NotImplementedError


class MilvusCore(ServerProcess):
    """kill() and start() also make a crash and a restart on the same data file."""

    def __init__(self, data_file: Path, timeout: float = 30.0):
        self.data_file, self.timeout, self.port = data_file, timeout, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        self.data_file.parent.mkdir(parents=True, exist_ok=True)
        return self._launch([sys.executable, "-m", "pardus.deployments.catalogue.lite_server",
                             str(self.data_file), str(self.port), str(core_binary())],
                            self.data_file.with_suffix(".log"))

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a frozen process ignores SIGTERM until thawed
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def milvus_core(data_file: Path):
    """Yield a started MilvusCore; stop it afterwards."""
    server = MilvusCore(data_file)
    try:
        server.start()
        yield server
    finally:
        server.stop()
