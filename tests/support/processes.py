"""Child processes for the tests, started the same way however the test runner was started, and
the processes they leave behind."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE)


def with_default_signals(argv: list[str]) -> list[str]:
    """argv, run by a launcher that first gives every signal its default action and unblocks
    them all: a runner started in the background ignores SIGINT, and its children inherit that.
    (An exec after the reset, not Popen's preexec_fn, which is unsafe beside Ray's threads.)"""
    return [sys.executable, "-m", "tests.support.processes", *argv]


class Running:
    """A command started in its own session, with default signal dispositions, whose output
    (standard output and error together) is read as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            with_default_signals(argv), env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.pid = self.process.pid
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def wait_until(self, check: Callable[[], object], timeout: float,
                   every: float = 0.05) -> bool:
        """Whether check() came true before the command ended or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if check():
                return True
            time.sleep(every)
        return bool(check())

    def wait_for(self, text: str, timeout: float) -> bool:
        """Whether `text` appeared in the output before the command ended or time ran out."""
        return self.wait_until(lambda: text in self.output, timeout, every=0.2)

    def started(self, names: set[str]) -> bool:
        """Whether a process of one of these names runs in its session (Ray's gcs_server...)."""
        return bool(names & command_names(session_processes(self.pid)))

    def stop(self, signum: signal.Signals, timeout: float = 120) -> int:
        """Send the signal; the exit code once the command has ended."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code


def session_processes(session: int) -> set[int]:
    """The pids of a process session (Ray starts its raylet, GCS and agents inside it)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == session:
            pids.add(int(stat.parent.name))
    return pids


def command_names(pids: set[int]) -> set[str]:
    names = set()
    for pid in pids:
        try:
            names.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names


def ignored_signals(pid: int) -> set[signal.Signals]:
    """The signals a process ignores (SigIgn in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {signal.Signals(n) for n in range(1, 65) if mask >> (n - 1) & 1
                    and n in signal.Signals._value2member_map_}
    return set()


def listening_addresses(pids: set[int]) -> dict[str, str]:
    """"address:port" -> process name, for every TCP socket these processes listen on
    (/proc/net/tcp and tcp6, matched to their file descriptors by inode)."""
    inodes: dict[str, str] = {}
    for pid in pids:
        name = next(iter(command_names({pid})), "?")
        for link in _links(pid):
            if link.startswith("socket:["):
                inodes[link[8:-1]] = f"{name} ({pid})"
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found[_address(fields[1])] = inodes[fields[9]]
    return found


def _links(pid: int) -> list[str]:
    """What a process's descriptors point at; one closed while they are read is skipped, not
    the whole process (a busy server opens and closes connections all the time)."""
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # the process is gone
        return []
    links = []
    for descriptor in descriptors:
        try:
            links.append(os.readlink(descriptor))
        except OSError:  # closed meanwhile
            continue
    return links


def _address(hex_address: str) -> str:
    """/proc/net/tcp's "0100007F:1F90" as "127.0.0.1:8080" (IPv6, and IPv4 in IPv6, too)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return f"{ip}:{int(port, 16)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    for number in SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    os.execv(sys.argv[1], sys.argv[1:])


def processes(temp_dir: Path) -> set[int]:
    """Every process of a Ray cluster whose files are in temp_dir: those naming that dir, and
    their descendants (a replica's own children, such as vLLM's engine process, name nothing)."""
    parents: dict[int, int] = {}
    mine: set[int] = set()
    marker = str(temp_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while it was read
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker in command:
            mine.add(int(entry.name))
    mine.discard(os.getpid())  # the scenario itself, when its arguments name the dir
    while children := {pid for pid, parent in parents.items() if parent in mine} - mine:
        mine |= children
    return mine


def stop_processes(temp_dir: Path, grace_s: float = 10) -> set[int]:
    """SIGTERM every process of the Ray cluster in temp_dir (processes()), SIGKILL what is left
    after grace_s; returns the processes still there afterwards (none, normally). Never
    `ray stop`: that kills every Ray process on the machine."""
    pids: set[int] = set()
    for signum, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        # Those found before count too: a child whose parent ended on SIGTERM is no longer
        # anyone's descendant (it moved to init) and names nothing.
        pids = {pid for pid in pids | processes(temp_dir) if alive(pid)}
        for pid in pids:
            try:
                os.kill(pid, signum)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = {pid for pid in pids if alive(pid)}
        if not pids:
            break
    return {pid for pid in processes(temp_dir) if alive(pid)}


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie waiting for its parent counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
