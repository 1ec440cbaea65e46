"""Every command the READMEs and our messages tell a user to run exists in the environment
Pardus installs: each one's `--help` answers (`huggingface-cli` became `hf`, for one)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", REPO / "k8s" / "README.md", REPO / "benchmarks" / "README.md"]
SOURCES = [path for folder in ("cli", "serve", "deployments", "ingest")
           for path in (REPO / folder).rglob("*.py")]
# A command of our environment where a user is told to run it: at the start of a line (a
# shell block), or opening an inline `code span` or a parenthesis in a message.
COMMAND = re.compile(r"(?:^[ \t]*(?:\$ )?|[`(])(?:\.venv/bin/)?(pardus|hf|serve|huggingface-cli)"
                     r"((?: [a-z][a-z0-9-]*)*)", re.MULTILINE)
WORD = re.compile(r"[a-z][a-z0-9-]*$")


def documented() -> dict[str, Path]:
    """Each distinct command line (program and its leading plain words) -> where it was seen."""
    found: dict[str, Path] = {}
    for path in DOCS + SOURCES:
        for match in COMMAND.finditer(path.read_text()):
            words = [match.group(1), *match.group(2).split()]
            found.setdefault(" ".join(words[:4]), path)
    return found


def answers_help(words: list[str]) -> bool:
    program = BIN / words[0]
    if not program.exists():
        return False
    done = subprocess.run([str(program), *words[1:], "--help"], capture_output=True, text=True,
                          timeout=120)
    return done.returncode == 0


@pytest.mark.parametrize("line", sorted(documented()))
def test_documented_command_exists(line):
    """The longest leading run of words that is a command answers --help; a program with
    subcommands must have its subcommand exist (plain words after it are arguments)."""
    words = line.split()
    while len(words) > 2 and not answers_help(words):
        words = words[:-1]
    assert answers_help(words), f"`{line}` (from {documented()[line]}) is not a command here"
    if line.split()[0] == "pardus" and len(line.split()) > 1 and WORD.match(line.split()[1]):
        assert len(words) >= 2, f"`{line}`: no such pardus command"


def test_the_scan_finds_the_commands_it_must():
    lines = documented()
    assert "hf download" in {" ".join(line.split()[:2]) for line in lines}
    assert any(line.startswith("pardus store promote") for line in lines)
    assert not any(line.startswith("huggingface-cli") for line in lines)
