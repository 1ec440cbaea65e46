"""Create Pardus' Milvus users from root: a read-only serving user and a write user for ingest.

Run by the Job in this folder (k8s/README.md, step 5), in the Pardus image (pymilvus), with
Milvus' root password and the two app tokens ("user:password") from their Secrets. Idempotent:
a rerun changes nothing, except a user whose token no longer logs in, which is recreated with
its new password. A rotation names a new user (README, step 9): both users hold the role until
the RayService has rolled out; a run with PRUNE_USERS=true then drops the users that hold a
Pardus role but are no longer in the Secrets. Nothing secret is printed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DB = "default"
ROOT = "root"
# Milvus 2.5+ built-in privilege groups (rbac v2). Serving reads: search, query, describe
# (aliases too), and Load so a replica can load a collection after a Milvus restart; no insert,
# upsert, delete, index or DDL privilege. Ingest writes the catalogue's versions, creates them,
# and (`pardus store promote` / `drop`, run with the ingest token) moves the alias and drops old
# versions. Grants cover every collection of the database (`*`): the catalogue is a name over
# versions (`products__v1`, `products__v2`, ...), and Milvus grants exact names only.
SERVING_COLLECTION_PRIVILEGES = ("CollectionReadOnly", "Load")
INGEST_COLLECTION_PRIVILEGES = ("CollectionReadWrite",)
INGEST_DATABASE_PRIVILEGES = ("CreateCollection", "DropCollection", "CreateAlias", "DropAlias")
GRANTED_ON = "*"
WRITE_PRIVILEGES = frozenset({
    "CollectionReadWrite", "CollectionAdmin", "DatabaseReadWrite", "DatabaseAdmin",
    "ClusterReadWrite", "ClusterAdmin", "Insert", "Upsert", "Delete", "Import", "CreateIndex",
    "DropIndex", "CreateCollection", "DropCollection", "RenameCollection", "CreateAlias",
    "DropAlias", "CreatePartition", "DropPartition", "Flush", "Compaction",
})


@dataclass(frozen=True)
class AppUser:
    name: str
    password: str
    role: str
    collection_privileges: tuple[str, ...]
    database_privileges: tuple[str, ...] = ()


class UsersError(ValueError):
    """A token or setting that would give Pardus a wrong or shared Milvus identity."""


def parse_token(token: str, what: str) -> tuple[str, str]:
    """("user", "password") of a PARDUS_MILVUS__TOKEN value; root and empty parts refused."""
    user, sep, password = token.strip().partition(":")
    if not sep or not user or not password:
        raise UsersError(f"{what}: the token must be 'user:password'")
    if user == ROOT:
        raise UsersError(f"{what}: the app must not connect as {ROOT}")
    return user, password


def plan(serving_token: str, ingest_token: str) -> list[AppUser]:
    """The two app users and their roles; they must differ (one identity per use)."""
    serving, serving_pw = parse_token(serving_token, "serving token")
    ingest, ingest_pw = parse_token(ingest_token, "ingest token")
    if serving == ingest:
        raise UsersError("the serving and the ingest users must be two users")
    return [
        AppUser(serving, serving_pw, "pardus_serving", SERVING_COLLECTION_PRIVILEGES),
        AppUser(ingest, ingest_pw, "pardus_ingest", INGEST_COLLECTION_PRIVILEGES,
                INGEST_DATABASE_PRIVILEGES),
    ]


def _user_roles(client: Any, name: str) -> set[str]:
    described = client.describe_user(name) or {}
    return set(described.get("roles") or ())


def _holders(client: Any, users: list[str], role: str) -> set[str]:
    return {name for name in users if name != ROOT and role in _user_roles(client, name)}


def apply(client: Any, users: list[AppUser], logs_in: Callable[[AppUser], bool],
          prune: bool = False) -> list[str]:
    """Bring roles, grants and users to the plan; returns what was done (no secrets)."""
    done = []
    roles, existing = set(client.list_roles()), list(client.list_users())
    for user in users:
        if user.role not in roles:
            client.create_role(user.role)
            done.append(f"created role {user.role}")
        for privilege in user.collection_privileges:
            client.grant_privilege_v2(user.role, privilege, GRANTED_ON, db_name=DB)
        for privilege in user.database_privileges:
            client.grant_privilege_v2(user.role, privilege, "*", db_name=DB)
        if user.name not in existing:
            client.create_user(user.name, user.password)
            done.append(f"created user {user.name}")
        elif not logs_in(user):
            client.drop_user(user.name)  # the token changed: recreate with the new password
            client.create_user(user.name, user.password)
            done.append(f"recreated user {user.name} (new password)")
        roles_now = _user_roles(client, user.name)
        for stray in sorted(roles_now - {user.role}):
            client.revoke_role(user.name, stray)
            done.append(f"revoked role {stray} from {user.name}")
        if user.role not in roles_now:
            client.grant_role(user.name, user.role)
            done.append(f"granted role {user.role} to {user.name}")
        for old in sorted(_holders(client, existing, user.role) - {user.name}):
            if prune:
                client.drop_user(old)
                done.append(f"dropped old user {old}")
            else:
                done.append(f"old user {old} still holds {user.role}: rerun with "
                            "PRUNE_USERS=true once the RayService has rolled out")
    return done


def _connect(uri: str, token: str, attempts: int, wait_s: float):
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    for attempt in range(1, attempts + 1):
        try:
            return MilvusClient(uri, token=token, timeout=10)
        except (MilvusException, OSError) as exc:  # Milvus still starting: retry
            if attempt == attempts:
                raise SystemExit(f"Milvus at {uri} did not accept root: {type(exc).__name__}")
            time.sleep(wait_s)


def _logs_in(uri: str) -> Callable[[AppUser], bool]:
    def check(user: AppUser) -> bool:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        try:
            MilvusClient(uri, token=f"{user.name}:{user.password}", timeout=10).close()
            return True
        except MilvusException:  # refused: unknown user or wrong password
            return False
    return check


def main(env: dict[str, str] = os.environ) -> int:
    uri = env["MILVUS_URI"]
    users = plan(env["SERVING_TOKEN"], env["INGEST_TOKEN"])
    root = _connect(uri, f"{ROOT}:{env['MILVUS_ROOT_PASSWORD']}", attempts=60, wait_s=10)
    prune = env.get("PRUNE_USERS", "").lower() == "true"
    for line in apply(root, users, _logs_in(uri), prune) or ["nothing to change"]:
        print(line)
    root.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
