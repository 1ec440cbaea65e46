"""The typed Ray Serve application builder: ingress + embedder + reranker, each scaled alone.

`serve run serve/config.yaml` calls build_app with the config's `args`; replicas, resources
and batching come from the config's `deployments` section, which overrides the defaults here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from ray.serve import Application

from deployments.settings import Settings
from deployments.embedder.deployment import EmbedderDeployment
from serve.ingress import Ingress
from deployments.reranker.deployment import RerankerDeployment


class AppArgs(BaseModel):
    """The `args` of the application in a Serve config."""

    model_config = ConfigDict(extra="forbid")
    # Overrides on top of the PARDUS_* environment of each replica, in Settings' nested shape,
    # e.g. {"milvus": {"collection": "shoes"}, "reranker": {"enabled": false}}.
    settings: dict[str, Any] = {}


def build_app(args: AppArgs) -> Application:
    """Builder for `serve run`/RayService; validates the settings here, at deploy time, so a
    typo fails the deploy instead of every replica."""
    args = AppArgs.model_validate(args) if not isinstance(args, AppArgs) else args
    Settings(**args.settings)
    embedder = EmbedderDeployment.bind(args.settings)
    # Bound even when disabled (an idle placeholder then): the Serve config names it.
    reranker = RerankerDeployment.bind(args.settings)
    return Ingress.bind(embedder, reranker, args.settings)
