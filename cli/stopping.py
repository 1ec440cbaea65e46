"""SIGTERM and Ctrl-C stop a long command through its clean-up, every time: the first signal
asks for the stop, later ones cannot cut the clean-up short, and a handler that a library
installs while starting (ray.init's exits at once) is put back to ours."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}  # the shells' 128 + signal number


class Stopping:
    """The signals of one command: `requested` is the first that came (None: none)."""

    def __init__(self, say: Callable[[str], None], signals: tuple[signal.Signals, ...]) -> None:
        self.requested: signal.Signals | None = None
        self.cleaning = False
        self.signals = signals
        self._say = say

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signal.Signals(signum)
            if not self.cleaning:
                raise KeyboardInterrupt
        self._say("stopping: the clean-up ends by itself")  # never cut it short

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for number in self.signals:
                signal.signal(number, self.handle)

    def check(self) -> None:
        """The stop, raised here, where a library may have swallowed its KeyboardInterrupt."""
        if self.requested is not None and not self.cleaning:
            raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.requested] if self.requested is not None else 0


_current: Stopping | None = None


def reinstall() -> None:
    """Ours again after a library's start-up (ray.init sets a SIGTERM handler that exits
    without our clean-up); then the stop, if one came meanwhile."""
    if _current is not None:
        _current.install()
        _current.check()


@contextmanager
def stops_cleanly(say: Callable[[str], None]) -> Iterator[Stopping]:
    """Inside: SIGTERM and Ctrl-C raise KeyboardInterrupt once, and only note later signals
    while `cleaning_up()`; the old handlers after. SIGINT stays ignored where the command
    was started with it ignored (a shell's background job: Ctrl-C is not for it)."""
    global _current
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    sigint_ignored = saved[signal.SIGINT] is signal.SIG_IGN
    stopping = Stopping(say, (signal.SIGTERM,) if sigint_ignored else (signal.SIGTERM,
                                                                        signal.SIGINT))
    _current = stopping
    stopping.install()
    try:
        yield stopping
    finally:
        _current = None
        for number, handler in saved.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


@contextmanager
def cleaning_up() -> Iterator[None]:
    """A command's clean-up: signals that come meanwhile are noted, not raised."""
    stopping = _current
    if stopping is None:
        yield
        return
    was, stopping.cleaning = stopping.cleaning, True
    try:
        yield
    finally:
        stopping.cleaning = was  # nested clean-ups: the outer one goes on
