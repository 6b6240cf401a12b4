"""``gnn-service machines``: the machine registry (register, list, show, retire) in the
service database. Snapshots name a registered machine (``"spec": "press_line_3"``) instead
of carrying its spec; running workers are told to read the registry after a change."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.models import tell_workers
from cli.stored import settings_of
from cli.train import errors_as_lines

if TYPE_CHECKING:
    from service.db.machines import MachineRegistry

machines_app = typer.Typer(
    name="machines",
    help="Machine registry: register, list, show and retire machine specs.",
    no_args_is_help=True,
    add_completion=False,
)


def _registry(ctx: typer.Context) -> AbstractContextManager[MachineRegistry]:
    from service.db.machines import open_machines

    return open_machines(settings_of(ctx))


@machines_app.command("register")
def machines_register(
    ctx: typer.Context,
    spec_file: Annotated[Path, typer.Argument(help="The machine's spec (.yaml or .json).")],
) -> None:
    """Register SPEC_FILE as the machine's next version (the same spec again changes nothing)."""
    from schemas.spec import load_spec

    with errors_as_lines():
        spec = load_spec(spec_file)
        with _registry(ctx) as registry:
            item, created = registry.register(spec)
    if created:
        typer.echo(
            f"registered {item.name} version {item.version}: {len(spec.components)} "
            f"components, {len(spec.sensors)} sensors; snapshots may now give "
            f'"spec": "{item.name}"'
        )
        tell_workers(ctx)
    else:
        typer.echo(f"{item.name} version {item.version} already holds this spec: nothing changed")


@machines_app.command("list")
def machines_list(ctx: typer.Context) -> None:
    """Every registered machine: newest version, status, components (parts), sensors and
    the model serving it."""
    from worker.model_router import route, routes_of
    from worker.model_store import DatabaseRegistry

    settings = settings_of(ctx)
    with errors_as_lines(), _registry(ctx) as registry:
        items = registry.newest()
        models = DatabaseRegistry(
            registry.database, run=registry.run, cache_dir=settings.data_dir / "model-cache"
        )
        fallback = settings.model.name
        routes = routes_of(models.active_versions(), fallback)
        table = Table(title=f"machines in {registry.location}")
        table.add_column("name", no_wrap=True)
        for column in ("version", "status", "parts", "sensors", "model", "registered"):
            table.add_column(column)
        for item in items:
            table.add_row(
                item.name,
                str(item.version),
                item.status.value,
                str(len(item.spec.components)),
                str(len(item.spec.sensors)),
                route(item.name, routes, fallback) if item.status.value == "active" else "-",
                item.registered_at.strftime("%Y-%m-%d %H:%M"),
            )
    Console().print(table if items else f"no registered machines in {registry.location}")


@machines_app.command("show")
def machines_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Machine name.")],
    version: Annotated[
        int | None, typer.Option(help="Version (default: the newest).", min=1)
    ] = None,
) -> None:
    """Print a machine's spec (JSON) with its version and status on the first lines."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.get(name, version)
        history = registry.history(name)
    versions = ", ".join(f"{entry.version} ({entry.status.value})" for entry in history)
    typer.echo(f"# {item.name} version {item.version} ({item.status.value}); versions: {versions}")
    typer.echo(json.dumps(item.spec.model_dump(mode="json"), indent=2))


@machines_app.command("retire")
def machines_retire(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Machine name.")]
) -> None:
    """Take NAME out of service: snapshots naming it become dead letters (unknown_spec)."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.retire(name)
    typer.echo(f"retired {item.name} (version {item.version}); register it again to bring it back")
    tell_workers(ctx)
