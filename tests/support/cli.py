"""The `pardus` command line run in process, with its settings read from a given environment;
what the README says of the embedded Milvus server a command leaves, and the server's
processes as they are."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from pardus.cli.main import app

runner = CliRunner()
README = Path(__file__).resolve().parents[2] / "README.md"
KEEPS = "running for the next command"
STOPS = "stops the embedded Milvus server"


def invoke(args: list[str], env: dict[str, str], monkeypatch):
    """`pardus ARGS` with `env` set (settings are read afresh before and cleared after)."""
    from pardus.deployments.settings import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        return runner.invoke(app, args)
    finally:
        get_settings.cache_clear()


def documented_to_outlive(command: str) -> bool:
    """What the README says of the embedded Milvus server once `command` (e.g. "pardus demo")
    has ended: True, it keeps running for the next command; False, the command stops it. Every
    sentence that says either and names the command in a code span counts; they must agree."""
    text = " ".join(README.read_text().split())
    said = set()
    for sentence in re.split(r"(?<=[.;])\s", text):
        if command in re.findall(r"`(pardus [a-z-]+)", sentence):
            said |= {True} if KEEPS in sentence else set()
            said |= {False} if STOPS in sentence else set()
    assert len(said) == 1, (f"the README says {'both' if said else 'nothing'} of whether the "
                            f"embedded Milvus server outlives `{command}`")
    return said.pop()


def core_processes(data_file: Path) -> list[int]:
    """The live processes of the embedded Milvus core serving this data file (read from /proc:
    the record beside the file may say otherwise)."""
    wanted = str(Path(data_file).resolve())
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if len(args) > 1 and args[0].endswith(b"/milvus") and args[1].decode() == wanted:
            found.append(int(cmdline.parent.name))
    return found
