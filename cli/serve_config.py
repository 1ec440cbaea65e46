"""The RayService's serveConfigV2, generated from serve/config.yaml and k8s/placement.yaml."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
K8S_DIR = REPO_ROOT / "k8s"
PLACEMENT = K8S_DIR / "placement.yaml"
SERVE_CONFIG = REPO_ROOT / "serve" / "config.yaml"
# Every replica placed on a worker group asks for this much of the group's custom resource.
GROUP_RESOURCE_PER_REPLICA = 1
_BLOCK_KEY = re.compile(r"^(?P<indent>[ \t]*)serveConfigV2:[ \t]*\|[-+]?[ \t]*$")


class PlacementError(ValueError):
    """The placement rules, the Serve config or a manifest do not fit together."""


def load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_placement(path: Path = PLACEMENT) -> dict[str, Any]:
    """The placement rules, checked for shape (groups, profiles with manifest and deployments)."""
    rules = load_yaml(path)
    if not isinstance(rules, dict) or not isinstance(rules.get("groups"), dict):
        raise PlacementError(f"{path}: needs a `groups` mapping (worker group -> Ray resource)")
    profiles = rules.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise PlacementError(f"{path}: needs a `profiles` mapping")
    for name, profile in profiles.items():
        if not isinstance(profile, dict) or not isinstance(profile.get("deployments"), dict):
            raise PlacementError(f"{path}: profile {name!r} needs a `deployments` mapping")
        if not isinstance(profile.get("manifest"), str):
            raise PlacementError(f"{path}: profile {name!r} needs a `manifest` path")
        for deployment, rule in profile["deployments"].items():
            group = rule.get("group") if isinstance(rule, dict) else None
            if group not in rules["groups"]:
                raise PlacementError(
                    f"{path}: {name}.{deployment}: `group` must be one of "
                    f"{sorted(rules['groups'])} (got {group!r})")
    return rules


def profile_rules(profile: str, placement: dict[str, Any]) -> dict[str, Any]:
    """One profile's entry, or a PlacementError naming the profiles that exist."""
    try:
        return placement["profiles"][profile]
    except KeyError:
        raise PlacementError(
            f"unknown profile {profile!r}: choose one of {sorted(placement['profiles'])}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """base with override on top: nested dicts merged key by key, other values replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def place_deployment(deployment: dict[str, Any], rule: dict[str, Any],
                     groups: dict[str, str]) -> dict[str, Any]:
    """One Serve deployment entry with its placement rule applied."""
    overrides = {key: value for key, value in rule.items() if key != "group"}
    placed = _merge(deployment, overrides)
    if "autoscaling_config" in overrides:
        placed.pop("num_replicas", None)
    options = placed.setdefault("ray_actor_options", {})
    resources = options.setdefault("resources", {})
    resources[groups[rule["group"]]] = GROUP_RESOURCE_PER_REPLICA
    return placed


def apply_placement(config: dict[str, Any], profile: str,
                    placement: dict[str, Any]) -> dict[str, Any]:
    """The Serve config for one profile: every deployment pinned to its worker group."""
    rules = profile_rules(profile, placement)["deployments"]
    result = copy.deepcopy(config)
    result["http_options"] = _merge(result.get("http_options") or {},
                                    placement.get("http_options") or {})
    seen: set[str] = set()
    for app in result.get("applications", []):
        placed = []
        for deployment in app.get("deployments", []):
            name = deployment["name"]
            if name not in rules:
                raise PlacementError(
                    f"deployment {name!r} of app {app.get('name')!r} has no placement rule in "
                    f"profile {profile!r}: add it to k8s/placement.yaml")
            seen.add(name)
            placed.append(place_deployment(deployment, rules[name], placement["groups"]))
        app["deployments"] = placed
    unused = sorted(set(rules) - seen)
    if unused:
        raise PlacementError(f"profile {profile!r} places {unused}, which serve/config.yaml "
                             "does not deploy")
    return result


def serve_config(profile: str, config_path: Path = SERVE_CONFIG,
                 placement_path: Path = PLACEMENT) -> dict[str, Any]:
    """serve/config.yaml with the profile's placement applied, as a dict."""
    return apply_placement(load_yaml(config_path), profile, load_placement(placement_path))


def render(profile: str, config_path: Path = SERVE_CONFIG,
           placement_path: Path = PLACEMENT) -> str:
    """The serveConfigV2 text for one profile (YAML, with a do-not-edit header)."""
    body = yaml.safe_dump(serve_config(profile, config_path, placement_path),
                          sort_keys=False, default_flow_style=False, width=100)
    header = (f"# Generated by `pardus k8s sync` (profile {profile}): edit serve/config.yaml or "
              "k8s/placement.yaml instead.\n")
    return header + body


def embedded_serve_config(text: str) -> str | None:
    """The serveConfigV2 string of the first document in a manifest that has one."""
    for document in yaml.safe_load_all(text):
        spec = document.get("spec") if isinstance(document, dict) else None
        if isinstance(spec, dict) and "serveConfigV2" in spec:
            return spec["serveConfigV2"]
    return None


def replace_serve_config(text: str, serve_yaml: str) -> str:
    """The manifest text with its `serveConfigV2: |` block replaced; the rest left as it is."""
    lines = text.splitlines(keepends=True)
    keys = [i for i, line in enumerate(lines) if _BLOCK_KEY.match(line.rstrip("\r\n"))]
    if len(keys) != 1:
        raise PlacementError(f"expected one `serveConfigV2: |` literal block, found {len(keys)}")
    start = keys[0]
    indent = _BLOCK_KEY.match(lines[start].rstrip("\r\n")).group("indent")
    end = start + 1
    while end < len(lines) and (not lines[end].strip()
                                or len(lines[end]) - len(lines[end].lstrip()) > len(indent)):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # blank lines after the block separate it from what follows: keep them
    body = [f"{indent}  {line}\n" if line else "\n" for line in serve_yaml.splitlines()]
    return "".join(lines[:start + 1] + body + lines[end:])


def sync(k8s_dir: Path = K8S_DIR, config_path: Path = SERVE_CONFIG,
         placement_path: Path | None = None, check: bool = False) -> list[Path]:
    """Rewrite every profile's manifest whose serveConfigV2 is stale; returns those files.

    With check=True nothing is written: the stale files are only reported.
    """
    placement_path = placement_path or k8s_dir / "placement.yaml"
    placement = load_placement(placement_path)
    stale = []
    for profile, rules in placement["profiles"].items():
        manifest = k8s_dir / rules["manifest"]
        text = manifest.read_text(encoding="utf-8")
        wanted = render(profile, config_path, placement_path)
        if embedded_serve_config(text) == wanted:
            continue
        stale.append(manifest)
        if not check:
            updated = replace_serve_config(text, wanted)
            if embedded_serve_config(updated) != wanted:  # never write a broken manifest
                raise PlacementError(f"{manifest}: the rewritten serveConfigV2 does not read back")
            manifest.write_text(updated, encoding="utf-8")
    return stale
