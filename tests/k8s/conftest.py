"""Fixtures of the manifest tests: rendered overlays (skipped without kustomize) and CRD checks."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from tests.k8s.manifests import CRD_DIR, K8S, kustomize_command, render

OVERLAYS = ("dev", "prod")


@pytest.fixture(scope="session")
def rendered() -> Callable[[str], list[dict[str, Any]]]:
    """rendered("dev") / rendered("dev/ingest"): the resources an overlay builds."""
    if kustomize_command() is None:
        pytest.skip("neither kustomize nor kubectl is installed: overlays are not rendered "
                    "(the base and patch files are still validated)")
    return lambda overlay: render(K8S / "overlays" / overlay)


@pytest.fixture(scope="session")
def crds() -> None:
    """Skips a test that needs the KubeRay / Milvus CRDs when they are not beside the repo."""
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD schemas not found at {CRD_DIR} (shared/k8s-crds beside the "
                    "repository, or PARDUS_K8S_CRDS); they are not vendored, so KubeRay and Milvus kinds go unchecked")
