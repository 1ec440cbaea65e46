"""The typed Ray Serve application builder: ingress + embedder + reranker, each scaled alone.

`serve run serve/config.yaml` (and the RayService) call build_app with the config's `args`.
The config's `deployments` section is the one source of each deployment's options (replicas,
resources, batching, timeouts): build_app applies it too, so `pardus serve`, the tests and
`serve run` start the same application.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict
from ray.serve import Application

from pardus.deployments.embedder.deployment import EmbedderDeployment
from pardus.deployments.reranker.deployment import RerankerDeployment
from pardus.deployments.settings import Settings
from pardus.serve.ingress import Ingress

SERVE_CONFIG = Path(__file__).with_name("config.yaml")
APP_NAME = "pardus"


class AppArgs(BaseModel):
    """The `args` of the application in a Serve config."""

    model_config = ConfigDict(extra="forbid")
    # Overrides on top of the PARDUS_* environment of each replica, in Settings' nested shape,
    # e.g. {"milvus": {"collection": "shoes"}, "reranker": {"enabled": false}}.
    settings: dict[str, Any] = {}


@lru_cache(maxsize=1)
def deployment_options() -> dict[str, dict[str, Any]]:
    """Each deployment's options from serve/config.yaml, by deployment name."""
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    app = next(a for a in config["applications"] if a["name"] == APP_NAME)
    return {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app["deployments"]}


def bind_app(settings: dict[str, Any], options: dict[str, dict[str, Any]]) -> Application:
    """The application graph with these settings overrides and deployment options."""
    embedder = EmbedderDeployment.options(**options["Embedder"]).bind(settings)
    # Bound even when disabled (an idle placeholder then): the Serve config names it.
    reranker = RerankerDeployment.options(**options["Reranker"]).bind(settings)
    return Ingress.options(**options["Ingress"]).bind(embedder, reranker, settings)


def build_app(args: AppArgs) -> Application:
    """Builder for `serve run`/RayService; validates the settings here, at deploy time, so a
    typo fails the deploy instead of every replica."""
    args = AppArgs.model_validate(args) if not isinstance(args, AppArgs) else args
    Settings(**args.settings)
    return bind_app(args.settings, deployment_options())
