"""serve/config.yaml is a valid Serve config for the app the builder makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serve.app import AppArgs, build_app
from deployments.embedder.deployment import DEFAULT_BATCHING, EmbedderDeployment
from serve.ingress import Ingress
from deployments.reranker.deployment import RerankerDeployment

CONFIG = Path(__file__).parents[2] / "serve" / "config.yaml"


def test_config_is_a_serve_deploy_schema_for_our_deployments():
    config = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (app,) = config.applications
    assert app.import_path == "serve.app:build_app"
    AppArgs.model_validate(app.args)  # the builder's typed arguments
    names = {d.name for d in app.deployments}
    assert names == {Ingress.name, EmbedderDeployment.name, RerankerDeployment.name}
    embedder = next(d for d in app.deployments if d.name == EmbedderDeployment.name)
    assert set(embedder.user_config) == set(DEFAULT_BATCHING)  # what reconfigure() reads
    assert config.http_options.host == "127.0.0.1"  # local runs never listen on all interfaces


def test_builder_refuses_bad_settings_at_deploy_time():
    build_app({"settings": {"reranker": {"enabled": False}}})
    with pytest.raises(ValueError, match="collection"):
        build_app({"settings": {"milvus": {"collection": "has spaces"}}})
    with pytest.raises(ValueError):
        build_app({"settings": {}, "unknown": 1})
