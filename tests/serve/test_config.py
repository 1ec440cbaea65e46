"""serve/config.yaml is a valid Serve config for the app the builder makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from pardus.deployments.embedder.deployment import EmbedderDeployment
from pardus.deployments.reranker.deployment import RerankerDeployment
from pardus.serve.app import AppArgs, build_app, deployment_options
from pardus.serve.ingress import Ingress

CONFIG = Path(__file__).parents[2] / "serve" / "config.yaml"


def test_config_is_a_serve_deploy_schema_for_our_deployments():
    config = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (app,) = config.applications
    assert app.import_path == "pardus.serve.app:build_app"
    AppArgs.model_validate(app.args)  # the builder's typed arguments
    names = {d.name for d in app.deployments}
    assert names == {Ingress.name, EmbedderDeployment.name, RerankerDeployment.name}
    embedder = next(d for d in app.deployments if d.name == EmbedderDeployment.name)
    # what reconfigure() reads; the decorator has no batching of its own
    assert set(embedder.user_config) == {"max_batch_size", "batch_wait_timeout_s"}
    assert config.http_options.host == "127.0.0.1"  # local runs never listen on all interfaces


def test_builder_refuses_bad_settings_at_deploy_time():
    build_app({"settings": {"reranker": {"enabled": False}}})
    with pytest.raises(ValueError, match="collection"):
        build_app({"settings": {"milvus": {"collection": "has spaces"}}})
    with pytest.raises(ValueError):
        build_app({"settings": {}, "unknown": 1})


def test_the_config_is_the_one_source_of_deployment_options():
    """build_app (pardus serve, the tests) applies serve/config.yaml's options: the
    deployments start the same way as under `serve run serve/config.yaml`."""
    options = deployment_options()
    ingress = build_app({"settings": {}})._bound_deployment
    assert ingress.name == "Ingress"
    assert ingress.ray_actor_options == options["Ingress"]["ray_actor_options"]
    assert ingress._deployment_config.max_ongoing_requests == options["Ingress"][
        "max_ongoing_requests"]
    for deployment in (Ingress, EmbedderDeployment, RerankerDeployment):  # no hidden defaults
        assert deployment._deployment_config.max_ongoing_requests == 5  # Serve's own default
