"""A shared loopback `milvus-lite server` per local data directory, for multi-process use.

Milvus Lite lets one process hold a data directory. When several processes need the same
catalogue (Ray Data workers, Serve replicas), the first one starts `milvus-lite server` on
127.0.0.1 and records it beside the directory; the others find it there and connect over
gRPC. Start-up is serialised with a file lock, and a directory held by a foreign process gives
a clear error instead of a hang.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class LiteServerError(RuntimeError):
    """The shared Milvus Lite server could not be started; the message says why."""


@dataclass(frozen=True)
class LiteServer:
    data_dir: Path
    pid: int
    port: int

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _state_file(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".server.json")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _locked(data_dir: Path):
    lock_path = data_dir.with_name(data_dir.name + ".server.lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def running(data_dir: str | Path) -> LiteServer | None:
    """The live shared server of this directory, if one is recorded and answering."""
    data_dir = Path(data_dir).resolve()
    try:
        state = json.loads(_state_file(data_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None
    server = LiteServer(data_dir, int(state["pid"]), int(state["port"]))
    return server if _alive(server.pid) and _port_open(server.port) else None


def _executable() -> str:
    beside = Path(sys.executable).with_name("milvus-lite")
    found = str(beside) if beside.exists() else shutil.which("milvus-lite")
    if not found:
        raise LiteServerError("the milvus-lite command is missing: pip install milvus-lite")
    return found


def _wait_ready(process: subprocess.Popen, port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-800:]
            if "DataDirLockedError" in tail or "holds the lock" in tail:
                raise LiteServerError(
                    f"another process holds the Milvus Lite data directory {log.parent}: stop "
                    "it, or point PARDUS_MILVUS__URI at its server, or use another path"
                )
            raise LiteServerError(f"milvus-lite server exited ({process.returncode}): {tail}")
        if _port_open(port):
            return
        time.sleep(0.1)
    process.kill()
    raise LiteServerError(f"milvus-lite server did not listen on port {port} in {timeout:.0f} s")


def ensure(data_dir: str | Path, timeout: float = 60.0) -> LiteServer:
    """Return this directory's shared server, starting it (detached) if none is running."""
    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        server = running(data_dir)
        if server is not None:
            return server
        port = _free_port()
        log = data_dir.with_name(data_dir.name + ".server.log")
        with open(log, "w") as out:
            process = subprocess.Popen(
                [_executable(), "server", "--data-dir", str(data_dir),
                 "--host", "127.0.0.1", "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this process: other processes share it
            )
        _wait_ready(process, port, log, timeout)
        server = LiteServer(data_dir, process.pid, port)
        _state_file(data_dir).write_text(json.dumps({"pid": server.pid, "port": server.port}))
        return server


def stop(data_dir: str | Path, timeout: float = 15.0) -> bool:
    """Stop this directory's shared server; False when none was running."""
    data_dir = Path(data_dir).resolve()
    with _locked(data_dir):
        server = running(data_dir)
        _state_file(data_dir).unlink(missing_ok=True)
        if server is None:
            return False
        os.kill(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(server.pid) and time.monotonic() < deadline:
            try:  # reap it if it is our child
                os.waitpid(server.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if _alive(server.pid):
            os.kill(server.pid, signal.SIGKILL)
        return True
