"""cli/stopping.py alone, with real signals sent to this process: the first stops, later ones
do not cut the clean-up short, a library's handler is replaced, the old handlers come back.
(Whole commands: tests/cli/test_service.py.)"""

from __future__ import annotations

import os
import signal

import pytest

from pardus.cli import stopping
from pardus.cli.stopping import cleaning_up, stops_cleanly


@pytest.fixture(autouse=True)
def sigint_as_python_sets_it():
    """SIGINT raising KeyboardInterrupt, as in a terminal, whatever the runner inherited (a
    runner started in the background ignores it, and stops_cleanly keeps it ignored then)."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


def send(signum: signal.Signals) -> None:
    os.kill(os.getpid(), signum)  # handled before kill returns to Python code


def test_the_first_signal_stops_later_ones_wait_for_the_clean_up():
    said: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with stops_cleanly(said.append) as stop:
        with pytest.raises(KeyboardInterrupt):
            send(signal.SIGTERM)
        with cleaning_up():
            with cleaning_up():  # nested, as stop_service inside the demo's clean-up
                send(signal.SIGINT)
            send(signal.SIGTERM)  # still cleaning up: noted, not raised
        assert stop.requested is signal.SIGTERM and stop.exit_code == 143
    assert said == ["stopping: the clean-up ends by itself"] * 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_handler_a_library_installed_is_replaced_and_a_stop_meanwhile_raised():
    def libraries_own(signum, frame):  # ray.init's exits at once, skipping our clean-up
        raise SystemExit(signum)

    with stops_cleanly(lambda text: None) as stop:
        signal.signal(signal.SIGTERM, libraries_own)
        stopping.reinstall()
        with pytest.raises(KeyboardInterrupt):
            send(signal.SIGTERM)
        assert stop.requested is signal.SIGTERM
        with cleaning_up():
            stopping.reinstall()  # ours again; the clean-up goes on


def test_a_stop_a_library_swallowed_is_raised_at_the_next_check():
    with stops_cleanly(lambda text: None) as stop:
        try:
            send(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # a library that catches it
        assert stop.requested is signal.SIGINT and stop.exit_code == 130
        with pytest.raises(KeyboardInterrupt):
            stopping.reinstall()


def test_sigint_ignored_at_the_start_stays_ignored():
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a shell's background job
    try:
        with stops_cleanly(lambda text: None) as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            send(signal.SIGINT)
            assert stop.requested is None
            with pytest.raises(KeyboardInterrupt):
                send(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGINT, saved)
