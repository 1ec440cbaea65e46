"""k8s/milvus-users/milvus_users.py: the Milvus users and roles it makes, on a recording fake
of pymilvus' MilvusClient (no Milvus with RBAC runs here: Milvus Lite has no users)."""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from types import ModuleType
from typing import Any

import pytest

from tests.k8s.manifests import K8S


@lru_cache(maxsize=1)
def load_script() -> ModuleType:
    path = K8S / "milvus-users" / "milvus_users.py"
    spec = importlib.util.spec_from_file_location("milvus_users", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


class FakeMilvus:
    """The MilvusClient methods the script calls, over an in-memory RBAC state."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {"root": "rootpw"}
        self.user_roles: dict[str, set[str]] = {"root": {"admin"}}
        self.roles: set[str] = {"admin", "public"}
        self.grants: set[tuple[str, str, str, str]] = set()
        self.calls: list[str] = []

    def list_users(self) -> list[str]:
        return list(self.users)

    def list_roles(self) -> list[str]:
        return list(self.roles)

    def describe_user(self, name: str) -> dict[str, Any]:
        return {"user_name": name, "roles": tuple(sorted(self.user_roles.get(name, ())))}

    def create_role(self, role: str) -> None:
        self.calls.append(f"create_role {role}")
        self.roles.add(role)

    def grant_privilege_v2(self, role: str, privilege: str, collection: str, db_name: str) -> None:
        self.grants.add((role, privilege, collection, db_name))

    def create_user(self, name: str, password: str) -> None:
        assert name not in self.users
        self.calls.append(f"create_user {name}")
        self.users[name], self.user_roles[name] = password, set()

    def drop_user(self, name: str) -> None:
        self.calls.append(f"drop_user {name}")
        del self.users[name]
        self.user_roles.pop(name, None)

    def grant_role(self, name: str, role: str) -> None:
        self.user_roles[name].add(role)

    def revoke_role(self, name: str, role: str) -> None:
        self.calls.append(f"revoke_role {name} {role}")
        self.user_roles[name].discard(role)

    def logs_in(self, user) -> bool:
        return self.users.get(user.name) == user.password


def _run(milvus: FakeMilvus, serving: str = "pardus_serving:s1", ingest: str = "pardus_ingest:i1",
         prune: bool = False) -> list[str]:
    script = load_script()
    return script.apply(milvus, script.plan(serving, ingest), milvus.logs_in, prune)


def test_creates_a_read_only_and_a_write_user() -> None:
    milvus = FakeMilvus()
    done = _run(milvus)
    assert "created user pardus_serving" in done and "created user pardus_ingest" in done
    assert milvus.user_roles["pardus_serving"] == {"pardus_serving"}
    assert milvus.user_roles["pardus_ingest"] == {"pardus_ingest"}
    serving = {g[1] for g in milvus.grants if g[0] == "pardus_serving"}
    assert serving == {"CollectionReadOnly", "Load"}
    assert not serving & load_script().WRITE_PRIVILEGES
    ingest = {g[1] for g in milvus.grants if g[0] == "pardus_ingest"}
    # the catalogue's versions (products__v1, ...) and promoting one: all the database's
    assert ingest == {"CollectionReadWrite", "CreateCollection", "DropCollection",
                      "CreateAlias", "DropAlias"}
    assert all(g[2] == "*" and g[3] == "default" for g in milvus.grants)


def test_a_rerun_changes_nothing() -> None:
    milvus = FakeMilvus()
    _run(milvus)
    milvus.calls.clear()
    assert _run(milvus) == [] and milvus.calls == []


def test_a_changed_password_recreates_the_user_and_stray_roles_go() -> None:
    milvus = FakeMilvus()
    _run(milvus)
    milvus.user_roles["pardus_serving"].add("admin")
    done = _run(milvus, serving="pardus_serving:s2")
    assert "recreated user pardus_serving (new password)" in done
    assert milvus.users["pardus_serving"] == "s2"
    assert milvus.user_roles["pardus_serving"] == {"pardus_serving"}


def test_rotation_to_a_new_user_keeps_the_old_one_until_pruned() -> None:
    milvus = FakeMilvus()
    _run(milvus)
    done = _run(milvus, serving="pardus_serving_2:s2")
    assert "created user pardus_serving_2" in done and "pardus_serving" in milvus.users
    assert any("old user pardus_serving still holds" in line for line in done)
    done = _run(milvus, serving="pardus_serving_2:s2", prune=True)
    assert "dropped old user pardus_serving" in done and "pardus_serving" not in milvus.users
    assert "root" in milvus.users  # root holds no Pardus role and is never dropped


@pytest.mark.parametrize("serving,ingest,message", [
    ("root:pw", "pardus_ingest:x", "must not connect as root"),
    ("pardus_serving", "pardus_ingest:x", "user:password"),
    ("pardus_serving:", "pardus_ingest:x", "user:password"),
    ("same:a", "same:b", "two users"),
])
def test_refuses_shared_or_root_identities(serving: str, ingest: str, message: str) -> None:
    script = load_script()
    with pytest.raises(script.UsersError, match=message):
        script.plan(serving, ingest)


def test_the_job_wires_the_script_and_its_secrets(rendered) -> None:
    from tests.k8s.manifests import one
    from tests.k8s.workloads import by_where

    docs = rendered("prod/milvus-users")
    pod = by_where(docs)["Job/pardus-milvus-users"]
    env = pod.env()
    assert {"MILVUS_URI", "MILVUS_ROOT_PASSWORD", "SERVING_TOKEN",
            "INGEST_TOKEN", "PRUNE_USERS"} == set(env)
    assert env["MILVUS_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "pardus-milvus-root"
    script_map = one(docs, "ConfigMap")
    assert script_map["data"]["milvus_users.py"] == (K8S / "milvus-users" / "milvus_users.py").read_text()
    volume = next(v for v in pod.spec["volumes"] if v["name"] == "scripts")
    assert volume["configMap"]["name"] == script_map["metadata"]["name"]
    assert pod.spec["containers"][0]["command"] == ["python", "/scripts/milvus_users.py"]
