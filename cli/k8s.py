"""`pardus k8s`: print or sync the RayService's serveConfigV2 (generated, never hand-copied)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pardus.cli.console import Console
from pardus.cli.serve_config import (
    K8S_DIR,
    SERVE_CONFIG,
    PlacementError,
    load_placement,
    render,
    sync,
)

k8s_app = typer.Typer(
    help="Kubernetes manifests: the RayService's serveConfigV2 from serve/config.yaml.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option(help="The Serve config to start from.")]
K8sDirOption = Annotated[Path, typer.Option(help="The k8s/ folder (placement.yaml, manifests).")]


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[red]{exc}[/]", soft_wrap=True)
    return typer.Exit(2)


@k8s_app.command("serve-config")
def serve_config_cmd(
    profile: Annotated[str, typer.Option(help="Placement profile (k8s/placement.yaml).")] = "prod",
    config: ConfigOption = SERVE_CONFIG,
    k8s_dir: K8sDirOption = K8S_DIR,
) -> None:
    """Print the serveConfigV2 of a profile: serve/config.yaml placed on the worker groups."""
    try:
        text = render(profile, config, k8s_dir / "placement.yaml")
    except (PlacementError, OSError) as exc:
        raise _fail(exc) from None
    typer.echo(text, nl=False)


@k8s_app.command("sync")
def sync_cmd(
    check: Annotated[bool, typer.Option(
        "--check", help="Write nothing; exit 1 if a manifest is out of date (for CI).")] = False,
    config: ConfigOption = SERVE_CONFIG,
    k8s_dir: K8sDirOption = K8S_DIR,
) -> None:
    """Rewrite the serveConfigV2 field of every profile's RayService manifest in place."""
    try:
        stale = sync(k8s_dir, config, check=check)
    except (PlacementError, OSError) as exc:
        raise _fail(exc) from None
    for path in stale:
        verb = "out of date" if check else "rewritten"
        console.print(f"{path}: serveConfigV2 {verb}", soft_wrap=True)
    if not stale:
        console.print("serveConfigV2 up to date in every profile's manifest")
    elif check:
        err_console.print("[red]run `pardus k8s sync` and commit the result[/]")
        raise typer.Exit(1)


@k8s_app.command("placement")
def placement_cmd(k8s_dir: K8sDirOption = K8S_DIR) -> None:
    """Show which worker group each deployment lands on, per profile, with its resources."""
    try:
        placement = load_placement(k8s_dir / "placement.yaml")
    except (PlacementError, OSError) as exc:
        raise _fail(exc) from None
    table = Table()
    for column in ("profile", "deployment", "worker group", "CPUs", "GPUs", "replicas"):
        table.add_column(column)
    for profile, rules in placement["profiles"].items():
        for name, rule in rules["deployments"].items():
            options = rule.get("ray_actor_options", {})
            scaling = rule.get("autoscaling_config", {})
            replicas = (f"{scaling.get('min_replicas', '?')}-{scaling.get('max_replicas', '?')}"
                        if scaling else str(rule.get("num_replicas", "config")))
            table.add_row(profile, name, rule["group"], str(options.get("num_cpus", "config")),
                          str(options.get("num_gpus", 0)), replicas)
    console.print(table)
