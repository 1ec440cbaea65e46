"""The `pardus` command line run in process, with its settings read from a given environment."""

from __future__ import annotations

from typer.testing import CliRunner

from pardus.cli.main import app

runner = CliRunner()


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
