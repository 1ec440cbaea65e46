"""The embedded Milvus: the Milvus 2.5 core that milvus-lite 2.5.1 ships, shared per data file.

pymilvus's own local mode starts that core for one process. Pardus needs several processes
on one catalogue (Ray Data workers, Serve replicas, the CLI), so the first one starts the
core on 127.0.0.1 (a free port) and records it beside the data file; the others find it there
and connect over gRPC. Start-up is serialised with a file lock. The server holds the same
record lock pymilvus's local mode takes, so a foreign process opening the file directly is
refused (and a file that process holds gives a clear error here, never a hang).

The milvus-lite package offers no command for this (its Python `Server` ties the core to the
lifetime of the process that started it), hence this small launcher.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOCKED_EXIT = 75  # the launcher's exit status when another process holds the data file
_NAME = re.compile(r"^[a-zA-Z0-9.\-_]{1,36}$")  # what the core accepts as a data file name


class LiteServerError(RuntimeError):
    """The shared Milvus Lite server could not be started; the message says why."""


@dataclass(frozen=True)
class LiteServer:
    data_file: Path
    pid: int
    port: int

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _beside(data_file: Path, suffix: str) -> Path:
    return data_file.with_name(data_file.name + suffix)


def _record_lock(data_file: Path) -> Path:
    """The lock file pymilvus's local mode uses for this data file."""
    return data_file.with_name(f".{data_file.name}.lock")


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
def _locked(data_file: Path):
    with open(_beside(data_file, ".server.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def core_binary() -> Path:
    """The Milvus core inside the milvus-lite package."""
    try:
        # Here: a missing milvus-lite gets the message below, not an ImportError at start.
        import milvus_lite
    except ImportError:
        raise LiteServerError(
            "milvus-lite is not installed: pip install milvus-lite==2.5.1") from None
    binary = Path(milvus_lite.__file__).with_name("lib") / "milvus"
    if not binary.is_file():
        raise LiteServerError(f"{binary} is missing: reinstall milvus-lite==2.5.1 (Linux x86-64 "
                              "or macOS)")
    return binary


def running(data_file: str | Path) -> LiteServer | None:
    """The live shared server of this data file, if one is recorded and answering."""
    data_file = Path(data_file).resolve()
    try:
        state = json.loads(_beside(data_file, ".server.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    server = LiteServer(data_file, int(state["pid"]), int(state["port"]))
    return server if _alive(server.pid) and _port_open(server.port) else None


def _wait_ready(process: subprocess.Popen, port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if process.returncode == LOCKED_EXIT:
                raise LiteServerError(
                    f"another process holds the Milvus Lite data file {log.parent}: stop it, or "
                    "point PARDUS_MILVUS__URI at its server, or use another path")
            tail = log.read_text(errors="replace")[-800:]
            raise LiteServerError(f"the Milvus Lite server exited ({process.returncode}): {tail}")
        if _port_open(port):
            return
        time.sleep(0.1)
    process.kill()
    raise LiteServerError(f"the Milvus Lite server did not listen on port {port} in "
                          f"{timeout:.0f} s")


def ensure(data_file: str | Path, timeout: float = 60.0) -> LiteServer:
    """This data file's shared server, started (detached) if none is running."""
    data_file = Path(data_file).resolve()
    if not _NAME.match(data_file.name):
        raise LiteServerError(f"the Milvus Lite file name {data_file.name!r} must be 1-36 letters, "
                              "digits, '.', '-' or '_' (PARDUS_MILVUS__URI)")
    data_file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(data_file):
        server = running(data_file)
        if server is not None:
            return server
        port, binary = _free_port(), core_binary()
        log = _beside(data_file, ".server.log")
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "pardus.deployments.catalogue.lite_server", str(data_file),
                 str(port), str(binary)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this process: other processes share it
            )
        _wait_ready(process, port, log, timeout)
        # Its parent reaps it whenever it ends (killed, crashed): else it stays a zombie
        # that `running` takes for alive until this process ends.
        threading.Thread(target=process.wait, name=f"reap-milvus-{process.pid}",
                         daemon=True).start()
        server = LiteServer(data_file, process.pid, port)
        _beside(data_file, ".server.json").write_text(
            json.dumps({"pid": server.pid, "port": server.port}))
        return server


def stop(data_file: str | Path, timeout: float = 15.0) -> bool:
    """Stop this data file's shared server; False when none was running."""
    data_file = Path(data_file).resolve()
    with _locked(data_file):
        server = running(data_file)
        _beside(data_file, ".server.json").unlink(missing_ok=True)
        if server is None:
            return False
        os.kill(server.pid, signal.SIGTERM)  # the core's writes are durable (checked on kill)
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


def _exec_core(data_file: str, port: str, binary: str) -> None:
    """Take the data file's record lock, then become the core (the lock survives exec)."""
    handle = open(_record_lock(Path(data_file)), "a")
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"{data_file} is held by another process", flush=True)
        sys.exit(LOCKED_EXIT)
    os.set_inheritable(handle.fileno(), True)
    library = str(Path(binary).parent)
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (library, os.environ.get("LD_LIBRARY_PATH")) if p)
    os.execv(binary, [binary, data_file, f"127.0.0.1:{port}", "ERROR"])


if __name__ == "__main__":
    _exec_core(*sys.argv[1:4])
