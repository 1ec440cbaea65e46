"""Our own checks: generated serve config embedded, deployments fit their worker groups, wiring."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from pardus.cli.serve_config import load_placement, render, serve_config
from tests.k8s.manifests import (
    K8S,
    RAY_KINDS,
    REPO,
    fits,
    load_docs,
    one,
    pack,
    parse_quantity,
    ray_groups,
    serve_fit_problems,
)
from tests.k8s.workloads import by_where, pods, secret_refs

PLACEMENT = load_placement()
PROFILES = sorted(PLACEMENT["profiles"])
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _rayservice(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "RayService", "pardus")


def _placement(profile: str) -> dict[str, str]:
    rules = PLACEMENT["profiles"][profile]["deployments"]
    return {name: rule["group"] for name, rule in rules.items()}


def _ray_containers(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(group, container, pod spec) of every Ray container of a RayService or RayJob."""
    cluster = doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]
    return [(g.name, g.container, g.pod) for g in ray_groups(cluster).values()]


def test_profiles_are_the_overlays() -> None:
    assert PROFILES == ["dev", "prod"]
    for profile in PROFILES:
        assert (K8S / "overlays" / profile / "kustomization.yaml").is_file()


@pytest.mark.parametrize("profile", PROFILES)
def test_embedded_serve_config_is_the_generated_one(profile: str, rendered) -> None:
    """What `kubectl apply -k overlays/<profile>` deploys is what `pardus k8s` generates."""
    embedded = _rayservice(rendered(profile))["spec"]["serveConfigV2"]
    assert embedded == render(profile)
    assert yaml.safe_load(embedded) == serve_config(profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_deployments_fit_their_worker_groups(profile: str, rendered) -> None:
    cluster = _rayservice(rendered(profile))["spec"]["rayClusterConfig"]
    groups = ray_groups(cluster)
    assert serve_fit_problems(serve_config(profile), groups, _placement(profile)) == []
    for group, resource in PLACEMENT["groups"].items():  # each marker on its own group only
        assert [g.name for g in groups.values() if g.capacity.get(resource)] == [group]
    assert groups["head"].capacity["CPU"] == 0, "replicas must not land on the head"


@pytest.mark.parametrize("profile", PROFILES)
def test_gpu_deployments_land_on_gpu_groups(profile: str, rendered) -> None:
    groups = ray_groups(_rayservice(rendered(profile))["spec"]["rayClusterConfig"])
    config = serve_config(profile)
    gpu_groups = set()
    for deployment in config["applications"][0]["deployments"]:
        group = groups[_placement(profile)[deployment["name"]]]
        if deployment["ray_actor_options"].get("num_gpus", 0) > 0:
            gpu_groups.add(group.name)
            resources = group.container["resources"]
            limits, requests = resources["limits"], resources["requests"]
            assert limits["nvidia.com/gpu"] == requests["nvidia.com/gpu"] >= 1
            assert group.pod["nodeSelector"] and GPU_TOLERATION in group.pod["tolerations"]
    assert gpu_groups == {"embedder-gpu", "reranker-gpu"}
    cpu = groups["cpu-workers"]
    assert cpu.capacity["GPU"] == 0
    assert "nvidia.com/gpu" not in str(cpu.container["resources"]) and "tolerations" not in cpu.pod


def test_base_is_the_prod_profile_and_fits() -> None:
    """Checked without kustomize: the base RayService carries profile prod, and it fits."""
    service = _rayservice(load_docs(K8S / "base" / "rayservice.yaml"))
    assert PLACEMENT["profiles"]["prod"]["manifest"] == "base/rayservice.yaml"
    assert service["spec"]["serveConfigV2"] == render("prod")
    groups = ray_groups(service["spec"]["rayClusterConfig"])
    assert serve_fit_problems(serve_config("prod"), groups, _placement("prod")) == []


def test_fit_check_catches_what_would_not_fit(rendered) -> None:
    groups = ray_groups(_rayservice(rendered("prod"))["spec"]["rayClusterConfig"])
    config, placed = serve_config("prod"), _placement("prod")
    assert serve_fit_problems(config, groups, placed) == []
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    too_big = copy.deepcopy(config)
    too_big["applications"][0]["deployments"][1]["ray_actor_options"]["num_gpus"] = 2
    assert any("Embedder" in p for p in serve_fit_problems(too_big, groups, placed))
    too_many = copy.deepcopy(config)
    too_many["applications"][0]["deployments"][2]["autoscaling_config"]["max_replicas"] = 7
    assert any("reranker-gpu" in p for p in serve_fit_problems(too_many, groups, placed))
    crowded = copy.deepcopy(config)  # one Ingress per node: 8 replicas need 8 CPU nodes
    crowded["applications"][0]["deployments"][0]["autoscaling_config"]["max_replicas"] = 9
    assert any("cpu-workers" in p for p in serve_fit_problems(crowded, groups, placed))
    unpinned = copy.deepcopy(config)
    unpinned["applications"][0]["deployments"][0]["ray_actor_options"].pop("resources")
    assert any("Ingress" in p for p in serve_fit_problems(unpinned, groups, placed))
    assert deployments["Reranker"]["ray_actor_options"]["num_gpus"] == 1


def test_pack_is_first_fit_decreasing() -> None:
    node = {"CPU": 4.0, "GPU": 1.0}
    assert pack([{"CPU": 2, "GPU": 0.5}] * 4, [node, node]) == []
    assert len(pack([{"CPU": 2, "GPU": 0.5}] * 5, [node, node])) == 1
    assert not fits({"CPU": 1, "pardus_cpu": 1}, {"CPU": 8})


@pytest.mark.parametrize("profile", PROFILES)
def test_ingest_stages_fit_the_job_cluster(profile: str, rendered) -> None:
    """The ingest settings of the RayJob (PARDUS_INGEST__*) fit its worker groups: Ray Data's
    actors would otherwise wait forever for a GPU or CPU that never comes."""
    from pardus.deployments.settings import IngestSettings

    job = one(rendered(f"{profile}/ingest"), "RayJob", "pardus-ingest")
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    opts = IngestSettings(**{k.removeprefix("PARDUS_INGEST__").lower(): v for k, v in env.items()
                             if k.startswith("PARDUS_INGEST__")})
    groups = ray_groups(job["spec"]["rayClusterSpec"])
    # torch threads of each embed actor: within the CPUs the actor holds (0 = the node's cores)
    threads = int(env.get("PARDUS_EMBEDDER__THREADS", 0))
    assert "PARDUS_INGEST__EMBED_THREADS" not in env, "renamed PARDUS_EMBEDDER__THREADS"
    assert 0 <= threads <= opts.embed_num_cpus
    nodes = [g.capacity for g in groups.values() for _ in range(g.max_nodes) if g.name != "head"]
    demands = ([{"CPU": opts.embed_num_cpus, "GPU": opts.embed_num_gpus}] * opts.embed_actors
               + [{"CPU": opts.fetch_num_cpus}] * (opts.fetch_actors + 1)  # + a read task
               + [{"CPU": opts.write_num_cpus}])
    assert pack(demands, nodes) == []
    assert opts.embed_num_gpus > 0 and job["spec"]["entrypoint"].startswith("pardus ingest ")
    assert pack(demands * 4, nodes), "the fit check must be able to fail"


def _is_setting(section: str, name: str) -> bool:
    from pardus.deployments.settings import Settings

    return name in Settings.model_fields[section].annotation.model_fields


def test_configmap_keys_are_settings(monkeypatch: pytest.MonkeyPatch, rendered) -> None:
    """Every PARDUS_* key names a real setting (pydantic ignores unknown ones) and parses."""
    from pardus.deployments.settings import Settings

    for profile in PROFILES:
        data = one(rendered(profile), "ConfigMap", "pardus-config")["data"]
        for key, value in data.items():
            monkeypatch.setenv(key, value)
            if key.startswith("PARDUS_"):
                section, name = key.removeprefix("PARDUS_").lower().split("__")
                assert _is_setting(section, name), f"{key} is not a setting"
        settings = Settings(_env_file=None)
        assert settings.milvus.uri == data["PARDUS_MILVUS__URI"]
        assert settings.serving.image_root == data["PARDUS_SERVING__IMAGE_ROOT"]
        assert str(settings.reranker.max_model_len) == data["PARDUS_RERANKER__MAX_MODEL_LEN"]


# Which Ray pods load the weights (the models PVC is mounted there only): the GPU model groups
# and the ingest driver, which resolves the checkpoint and reads the vector size from it.
MODEL_READERS = {"RayService/embedder-gpu", "RayService/reranker-gpu", "RayJob/ingest-head",
                 "RayJob/ingest-gpu"}


@pytest.mark.parametrize("overlay", ["dev", "prod", "dev/ingest", "prod/ingest"])
def test_ray_pods_are_wired(overlay: str, rendered) -> None:
    """Settings, the Milvus user, the weights (only where read) and one image in every Ray pod."""
    docs = rendered(overlay)
    service_image = {c["image"] for d in rendered(overlay.split("/")[0]) if d["kind"] in RAY_KINDS
                     for _, c, _ in _ray_containers(d)}
    assert len(service_image) == 1 and "/" in next(iter(service_image))  # the overlay's registry
    token_secret = {"RayService": "pardus-milvus-serving", "RayJob": "pardus-milvus-ingest"}
    for pod in (p for p in pods(docs) if p.where.split("/")[0] in RAY_KINDS):
        container = pod.spec["containers"][0]
        assert container["image"] in service_image, pod.where
        if pod.where == "RayJob/submitter":
            continue
        assert {"configMapRef": {"name": "pardus-config"}} in container["envFrom"], pod.where
        token = pod.env().get("PARDUS_MILVUS__TOKEN")
        if token is not None:  # the Milvus clients: serving's CPU workers, every ingest pod
            ref = token["valueFrom"]["secretKeyRef"]
            assert ref == {"name": token_secret[pod.where.split("/")[0]], "key": "token"}, pod.where
        assert (pod.claim("/models") == "pardus-models") == (pod.where in MODEL_READERS), pod.where
        if pod.where in MODEL_READERS:
            assert pod.mounts()["/models"]["readOnly"] is True, pod.where
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), pod.where
    if overlay in PROFILES:
        assert "PARDUS_MILVUS__TOKEN" in by_where(docs)["RayService/cpu-workers"].env()


@pytest.mark.parametrize("profile", PROFILES)
def test_services_find_each_other(profile: str, rendered) -> None:
    docs = rendered(profile)
    milvus = one(docs, "Milvus", "pardus")
    assert milvus["spec"]["mode"] == "cluster"
    assert milvus["spec"]["components"]["queryNode"]["replicas"] >= 1
    uri = one(docs, "ConfigMap", "pardus-config")["data"]["PARDUS_MILVUS__URI"]
    assert uri == f"http://{milvus['metadata']['name']}-milvus:19530"
    labels = [g["template"]["metadata"]["labels"]
              for g in _rayservice(docs)["spec"]["rayClusterConfig"]["workerGroupSpecs"]]
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        if "pardus.io/ray-group" in selector:
            assert any(selector.items() <= group.items() for group in labels), pdb["metadata"]
    ft = _rayservice(docs)["spec"]["rayClusterConfig"].get("gcsFaultToleranceOptions")
    if profile == "prod":
        host = ft["redisAddress"].split(":")[0]
        assert one(docs, "Service", host) and one(docs, "StatefulSet", host)
    else:
        assert ft is None


def test_readme_creates_every_secret_key(rendered) -> None:
    """The README's `kubectl create secret` commands give every Secret and key the manifests
    read (env, envFrom and the etcd chart's existingSecret)."""
    readme = (K8S / "README.md").read_text()
    wanted = set()
    for overlay in ("prod", "prod/ingest", "prod/milvus-users"):
        for doc in rendered(overlay):
            wanted |= secret_refs(doc)
    etcd = one(rendered("prod"), "Milvus", "pardus")["spec"]["dependencies"]["etcd"]["inCluster"]
    rbac = etcd["values"]["auth"]["rbac"]
    wanted.add((rbac["existingSecret"], rbac["existingSecretPasswordKey"], False))
    for name, key, optional in sorted(wanted, key=str):
        assert f"secret generic {name}" in readme, name
        if key and not optional:
            assert f"--from-literal={key}=" in readme, (name, key)


def test_one_ray_version_everywhere(rendered) -> None:
    """The image's Ray, the package's Ray pin and the clusters' rayVersion are one version."""
    import re

    pin = re.search(r'"ray\[[a-z,]+\]==([0-9.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    dockerfile = (K8S / "Dockerfile").read_text()
    assert f"rayproject/ray:{pin}-" in dockerfile and f"== '{pin}'" in dockerfile
    for overlay in ("prod", "prod/ingest"):
        for doc in (d for d in rendered(overlay) if d["kind"] in RAY_KINDS):
            cluster = doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]
            assert cluster["rayVersion"] == pin
    assert parse_quantity("500m") == 0.5 and parse_quantity(4) == 4.0
