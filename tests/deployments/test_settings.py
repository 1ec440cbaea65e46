"""Settings: PARDUS_ env prefix, nested sections, refusals with a message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pardus.deployments.settings import Settings


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
        # an empty key matched an empty header (compare_digest(b"", b"") is true): open writes
        ("PARDUS_SERVING__API_KEYS", '[""]', "API key 1 is empty or shorter than 16"),
        ("PARDUS_SERVING__API_KEYS", '["0123456789abcdef", "short"]', "API key 2"),
        # keys are compared byte for byte: one with whitespace would match no request
        ("PARDUS_SERVING__API_KEYS", '["0123456789abcdef\\n"]', "API key 1 has whitespace"),
        ("PARDUS_SERVING__API_KEYS", '["0123456789abcdef", " 0123456789abcdef"]',
         "API key 2 has whitespace"),
        ("PARDUS_SERVING__API_KEYS", '["0123456789abcdef\\u00a0"]', "API key 1 has whitespace"),
        ("PARDUS_SEARCH__MODE", "magic", "auto"),
        ("PARDUS_SEARCH__COMPOSED_WEIGHTS", '{"dense": 2}', "less than or equal to 1"),
    ],
)
def test_bad_values_are_refused_with_a_reason(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_listening_beyond_loopback_without_keys_is_warned_of():
    assert Settings().serving.exposure_warning() is None  # 127.0.0.1
    exposed = Settings(serving={"host": "0.0.0.0"}).serving.exposure_warning()
    assert exposed and "PARDUS_SERVING__API_KEYS" in exposed
    keyed = Settings(serving={"host": "0.0.0.0", "api_keys": ["0123456789abcdef"]})
    assert keyed.serving.exposure_warning() is None
