"""What a user sees is ours (tables, progress, messages): the libraries' own output goes to a
log file whose path we print.

Ray's core worker, gRPC and Milvus write straight to file descriptor 2 from C++, Ray's driver
prints its workers' and raylet's messages to standard output, and Ray, vLLM and transformers
log and warn through Python, so a handler alone is not enough: for the length of a command,
descriptors 1 and 2 are the log file, and our consoles write to copies of the terminal's.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def library_logs(folder: str | Path, command: str, consoles: tuple[Console, Console],
                 verbose: bool = False):
    """Inside: the libraries' output goes to <folder>/pardus-<command>.log (yielded); the
    consoles (standard output's, standard error's) keep the terminal."""
    path = Path(folder) / f"pardus-{command}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", buffering=1)
    log.write(f"\n--- pardus {command} {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
    out, err = consoles
    with _descriptor_to(2, sys.stderr, log, err), _descriptor_to(1, sys.stdout, log, out), \
            _python_logs_to(path, verbose):
        try:
            yield path
        finally:
            log.flush()
    log.close()


def _is_descriptor(stream, number: int) -> bool:
    try:
        return stream.fileno() == number
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False  # captured (a test runner): nothing to redirect


@contextmanager
def _descriptor_to(number: int, stream, log, console: Console):
    """Descriptor `number` into the log; `console` onto a copy of the terminal's."""
    if not _is_descriptor(stream, number):
        yield
        return
    stream.flush()
    terminal = os.dup(number)
    terminal_file = os.fdopen(os.dup(terminal), "w", buffering=1)
    saved_file = console.file
    console.file = terminal_file
    os.dup2(log.fileno(), number)
    try:
        yield
    finally:
        stream.flush()
        os.dup2(terminal, number)
        os.close(terminal)
        console.file = saved_file
        terminal_file.close()


@contextmanager
def _python_logs_to(path: Path, verbose: bool):
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers, root.level = saved_handlers, saved_level
        handler.close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (Kubernetes, process managers) stops a command as Ctrl-C does: through its
    clean-up, so Ray and what it started stop too and nothing is left behind (the embedded
    Milvus server outlives every command but `pardus demo`: see README, Catalogue ingest)."""
    signal.signal(signal.SIGTERM, _interrupt)
