"""Settings: PARDUS_ env prefix, nested sections, refusals with a message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.settings import Settings


def test_nested_env_overrides(monkeypatch):
    monkeypatch.setenv("PARDUS_EMBEDDER__BATCH_SIZE", "8")
    monkeypatch.setenv("PARDUS_MILVUS__URI", "http://127.0.0.1:19530")
    settings = Settings()
    assert settings.embedder.batch_size == 8
    assert settings.milvus.uri == "http://127.0.0.1:19530"
    assert settings.embedder.text_model == "BAAI/bge-base-en-v1.5"


def test_explicit_overrides_win_over_env(monkeypatch):
    monkeypatch.setenv("PARDUS_EMBEDDER__BATCH_SIZE", "8")
    assert Settings(embedder={"batch_size": 2}).embedder.batch_size == 2


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("PARDUS_EMBEDDER__BATCH_SIZE", "0", "greater than or equal to 1"),
        ("PARDUS_EMBEDDER__DTYPE", "float64", "float32"),
        ("PARDUS_EMBEDDER__CHECKPOINT", "/models/weights.safetensors", "must name a .pth"),
    ],
)
def test_bad_values_are_refused_with_a_reason(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=message):
        Settings()
