"""``gnn-service models``: the model registry (list, register, activate, roll back,
deactivate) in the service database; running workers are told to check it after a change.

A model version serves the machines it declares (``--serves``, by default those it was
trained on); every other machine goes to the fallback model (``GNN_MODEL__NAME``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.stored import settings_of
from cli.train import errors_as_lines

if TYPE_CHECKING:
    from worker.model_store import DatabaseRegistry

models_app = typer.Typer(
    name="models",
    help="Model registry: list, register, activate, roll back and deactivate model versions.",
    no_args_is_help=True,
    add_completion=False,
)


def _registry(ctx: typer.Context) -> AbstractContextManager[DatabaseRegistry]:
    from worker.model_store import open_registry

    return open_registry(settings_of(ctx))


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
) -> None:
    """List registered model versions and the bundled checkpoints."""
    from worker.model.registry import bundled_checkpoints

    with errors_as_lines(), _registry(ctx) as registry:
        versions = registry.list_versions(name)
        table = Table(title=f"models in {registry.location}")
        columns = ("name", "version", "status", "serves", "created", "sha256", "size KiB")
        for column in columns:
            table.add_column(column, justify="right" if column == "size KiB" else "left")
        for item in versions:
            table.add_row(
                item.name,
                item.version,
                item.status.value,
                ", ".join(item.serves) or "(fallback only)",
                item.created_at,
                item.sha256[:12],
                f"{item.size_bytes / 1024:.0f}",
            )
        console = Console()
        console.print(table if versions else f"no registered models in {registry.location}")
        for bundled, path in bundled_checkpoints().items():
            if name is None or bundled == name:
                console.print(f"bundled: {bundled} ({path})")


@models_app.command("register")
def models_register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Checkpoint file (.gnnckpt).")],
    name: Annotated[str | None, typer.Option(help="Name (default: the checkpoint's).")] = None,
    version: Annotated[
        str | None, typer.Option(help="Version (default: the checkpoint's).")
    ] = None,
    serves: Annotated[
        list[str] | None,
        typer.Option(
            help="Machine (name or pattern such as press_*) this version serves once active; "
            "repeat for several. Default: the machines it was trained on."
        ),
    ] = None,
) -> None:
    """Verify a checkpoint and copy it into the registry as staged."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.register(path, name=name, version=version, serves=serves)
    machines = ", ".join(item.serves) or "no machine (only as the fallback model)"
    typer.echo(
        f"registered {item.name} {item.version} ({item.status.value}), serving {machines}, "
        f"at {item.path}"
    )


@models_app.command("activate")
def models_activate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to serve.")],
) -> None:
    """Make VERSION the active version of NAME (workers switch between batches).

    Refused when it would serve no machine in service, when another model serves one of its
    machines, or when it fails on its machines as a worker would run it."""
    from service.db.machines import MachineRegistry
    from worker.activation import check_activation

    settings = settings_of(ctx)
    with errors_as_lines(), _registry(ctx) as registry:
        machines = MachineRegistry(registry.database, run=registry.run)
        plan = check_activation(registry, machines, name, version, fallback=settings.model.name)
        item = registry.activate(name, version)
    if plan.machines:
        typer.echo(f"activated {item.name} {item.version}: serves {', '.join(plan.machines)}")
    else:
        typer.echo(f"activated {item.name} {item.version}: the fallback for every other machine")
    for note in plan.notes:
        typer.echo(f"note: {note}")
    tell_workers(ctx)


@models_app.command("rollback")
def models_rollback(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Model name.")]
) -> None:
    """Re-activate the previously active version of NAME; the current one is retired."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.rollback(name)
    typer.echo(f"rolled back {item.name} to {item.version}")
    tell_workers(ctx)


@models_app.command("deactivate")
def models_deactivate(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Model name.")]
) -> None:
    """Retire the active version of NAME: its machines go back to the fallback model."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.deactivate(name)
    typer.echo(f"deactivated {item.name} {item.version}: its machines go to the fallback model")
    tell_workers(ctx)


def tell_workers(ctx: typer.Context) -> None:
    """Ask every worker to check the registry now; they also check on their own within
    GNN_MODEL__REGISTRY_CHECK_INTERVAL_S, so a broker that cannot be reached is no error."""
    from service.embedded import EmbeddedRedis
    from worker.app import create_app

    settings = settings_of(ctx)
    if settings.broker.url is None and not EmbeddedRedis(settings.data_dir).is_running():
        return  # no embedded broker running: no worker to tell, and none is started for it
    try:
        app = create_app(settings)
        replies = app.control.broadcast("gnn_check_model", reply=True, timeout=1.0)
        app.close()
    except Exception as exc:  # the activation stands; workers poll the registry anyway
        typer.echo(f"workers not told directly ({exc}); they check the registry themselves")
        return
    typer.echo(f"{len(replies)} worker(s) told to check the registry")
