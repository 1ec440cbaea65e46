"""Every manifest validates: core kinds with Kubernetes' schemas, KubeRay/Milvus kinds with CRDs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.manifests import (
    K8S,
    is_custom,
    load_docs,
    one,
    strict_schema,
    validate_core,
    validate_custom,
)

KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))
RENDERED = ("dev", "prod", "dev/ingest", "prod/ingest", "dev/milvus-users", "prod/milvus-users")


def _entries(kustomization: Path, key: str) -> list[tuple[Path, dict[str, Any]]]:
    spec = yaml.safe_load(kustomization.read_text())
    out = []
    for entry in spec.get(key) or []:
        entry = {"path": entry} if isinstance(entry, str) else entry
        path = kustomization.parent / entry["path"]
        if path.is_file():
            out.append((path, entry))
    return out


RESOURCE_FILES = sorted({p for k in KUSTOMIZATIONS for p, _ in _entries(k, "resources")})
PATCHES = [(k, p, e) for k in KUSTOMIZATIONS for p, e in _entries(k, "patches")]


def _errors(doc: dict[str, Any], request: pytest.FixtureRequest) -> list[str]:
    if is_custom(doc):
        request.getfixturevalue("crds")
        return validate_custom(doc)
    return validate_core(doc)


def test_every_kustomization_is_found() -> None:
    # base, ingest, milvus-users, the monitoring component; per overlay (dev, prod): the
    # service, its ingest and its milvus-users kustomizations
    assert len(KUSTOMIZATIONS) == 10, KUSTOMIZATIONS
    assert len(RESOURCE_FILES) >= 14 and len(PATCHES) >= 6


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda p: str(p.relative_to(K8S)))
def test_resource_file_validates(path: Path, request: pytest.FixtureRequest) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no resource"
    for doc in docs:
        assert _errors(doc, request) == []


@pytest.mark.parametrize("overlay", RENDERED)
def test_rendered_overlay_validates(overlay: str, rendered, request: pytest.FixtureRequest) -> None:
    docs = rendered(overlay)
    namespace = "pardus-dev" if overlay.startswith("dev") else "pardus"
    for doc in docs:
        assert _errors(doc, request) == []
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]


def _resolve(doc: Any, pointer: str) -> Any:
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _base_target(kustomization: Path, target: dict[str, str]) -> dict[str, Any]:
    """The resource a patch targets, from the resource files of the kustomization's bases."""
    docs = [d for p in RESOURCE_FILES for d in load_docs(p)]
    return one(docs, target["kind"], target["name"])


@pytest.mark.parametrize("kustomization,path,entry", PATCHES,
                         ids=[str(p.relative_to(K8S)) for _, p, _ in PATCHES])
def test_patch_file_fits_its_target(kustomization: Path, path: Path, entry: dict[str, Any],
                                    request: pytest.FixtureRequest) -> None:
    """Checked without kustomize: JSON patches address paths that exist (and `test` ops hold);
    strategic-merge patches validate against their kind's schema with nothing required."""
    patch = yaml.safe_load(path.read_text())
    if isinstance(patch, list):
        base = _base_target(kustomization, entry["target"])
        for op in patch:
            parent, _, last = op["path"].rpartition("/")
            container = _resolve(base, parent) if parent else base
            if op["op"] in ("replace", "test", "remove"):
                value = _resolve(base, op["path"])
                if op["op"] == "test":
                    assert value == op["value"], op
            else:
                assert isinstance(container, (dict, list)), op
        return
    if is_custom(patch):
        request.getfixturevalue("crds")
        from tests.k8s.manifests import crd_validator
        group, version = patch["apiVersion"].split("/")
        schema = _without_required(crd_validator(group, patch["kind"], version).schema)
        import jsonschema
        errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(patch)]
        assert errors == []
    else:
        assert validate_core(patch) == []


def _without_required(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


# -- the validators catch what they should -------------------------------------------------------

def _base_rayservice() -> dict[str, Any]:
    return one(load_docs(K8S / "base" / "rayservice.yaml"), "RayService")


def test_crd_validator_rejects_broken_rayservice(crds) -> None:
    good = _base_rayservice()
    assert validate_custom(good) == []
    misspelled = copy.deepcopy(good)
    group = misspelled["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    group["maxReplica"] = group.pop("maxReplicas")
    errors = validate_custom(misspelled)
    assert any("maxReplica" in e for e in errors) and any("maxReplicas" in e for e in errors)
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]["minReplicas"] = "two"
    assert any("'two' is not of type 'integer'" in e for e in validate_custom(wrong_type))
    bad_enum = copy.deepcopy(good)
    bad_enum["spec"]["rayClusterConfig"]["authOptions"]["mode"] = "password"
    assert validate_custom(bad_enum)


def test_crd_validator_rejects_broken_milvus(crds) -> None:
    milvus = one(load_docs(K8S / "base" / "milvus.yaml"), "Milvus")
    assert validate_custom(milvus) == []
    milvus["spec"]["mode"] = "distributed"
    milvus["spec"]["components"]["queryNode"]["replica"] = 3
    errors = validate_custom(milvus)
    assert len(errors) == 2, errors


def test_strict_schema_keeps_open_maps_open() -> None:
    schema = strict_schema({"type": "object", "properties": {
        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "note": {"type": "string", "nullable": True}}})
    assert schema["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["config"]
    assert schema["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert schema["properties"]["note"]["type"] == ["string", "null"]


def test_core_validator_rejects_broken_objects() -> None:
    pdb = one(load_docs(K8S / "base" / "pdb.yaml"), "PodDisruptionBudget", "pardus-cpu-workers")
    assert validate_core(pdb) == []
    pdb["spec"]["maxUnavailabel"] = pdb["spec"].pop("maxUnavailable")
    assert any("maxUnavailabel" in e for e in validate_core(pdb))
    job = one(load_docs(K8S / "base" / "models-job.yaml"), "Job")
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = [2]
    assert validate_core(job)
