"""The ``gnn-service`` command line: thin commands over the service's core functions.

Settings are read once, in the root callback; an invalid value ends any command with exit
status 2 and one line naming the environment variable. This module is the one edge that
composes every package (worker, producer, training); nothing imports it.
"""

from __future__ import annotations

import json
import time
import uuid
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from producer.cli import produce
from producer.demo.cli import demo_app
from training.benchmark_cli import benchmark_app
from training.cli import evaluate, models_app, train
from worker.settings import Settings, describe_error

app = typer.Typer(
    name="gnn-service",
    help="Graph neural network diagnostics for industrial machines, as a Celery worker pool.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
embedded_app = typer.Typer(
    help="The embedded redis-server used when no broker URL is set.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
schemas_app = typer.Typer(help="Message contracts as JSON Schema.", no_args_is_help=True)
app.add_typer(embedded_app, name="embedded")
app.add_typer(schemas_app, name="schemas")
app.add_typer(demo_app, name="demo")
app.command("produce")(produce)
app.add_typer(benchmark_app, name="benchmark")
app.command("train")(train)
app.command("evaluate")(evaluate)
app.add_typer(models_app, name="models")

_CELERY_LEVELS = {"TRACE": "DEBUG", "SUCCESS": "INFO"}


def load_settings() -> Settings:
    """Read the settings, or exit 2 with one line naming the invalid variable."""
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(describe_error(exc), err=True)
        raise typer.Exit(2) from None
    except SettingsError as exc:
        typer.echo(f"invalid setting: {exc}", err=True)
        raise typer.Exit(2) from None


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = load_settings()


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


@app.command()
def version() -> None:
    """Print the versions of gnn-service and its main libraries."""
    for name in ("gnn-service", "celery", "kombu", "torch", "torch-geometric", "sqlalchemy"):
        typer.echo(f"{name} {package_version(name)}")


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(_settings(ctx).masked(), indent=2))


@config_app.command("docs")
def config_docs(
    out: Annotated[Path, typer.Option(help="File to write.")] = Path("docs/configuration.md"),
) -> None:
    """Regenerate the settings reference (docs/configuration.md) from the code."""
    from worker.settings import configuration_doc

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(configuration_doc())
    typer.echo(f"wrote {out}")


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="Directory to write the files into.")],
) -> None:
    """Write JSON Schema files of the spec, snapshot, diagnosis and outcome contracts."""
    from schemas.export import export_schemas

    for path in export_schemas(directory):
        typer.echo(f"wrote {path}")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations up to REVISION."""
    from worker.db.migrate import current_revision, upgrade
    from worker.settings import mask_url

    settings = _settings(ctx)
    upgrade(settings.database_url, revision)
    now = current_revision(settings.database_url)
    typer.echo(f"database {mask_url(settings.database_url)} at revision {now}")


@embedded_app.command("status")
def embedded_status(ctx: typer.Context) -> None:
    """Say whether the embedded redis-server of the data directory runs."""
    from worker.embedded import EmbeddedRedis

    server = EmbeddedRedis(_settings(ctx).data_dir)
    state = "running" if server.is_running() else "stopped"
    typer.echo(f"embedded redis-server {state} on {server.socket}")


@embedded_app.command("stop")
def embedded_stop(ctx: typer.Context) -> None:
    """Stop the embedded redis-server (its queue is kept on disk for the next start)."""
    from worker.embedded import EmbeddedRedis

    stopped = EmbeddedRedis(_settings(ctx).data_dir).stop()
    typer.echo("stopped" if stopped else "was not running")


@app.command()
def worker(
    ctx: typer.Context,
    hostname: Annotated[str, typer.Option(help="Celery node name.")] = "gnn@%h",
) -> None:
    """Run a worker node with the settings (pool, queues, health port: GNN_WORKER__*)."""
    from worker.app import create_app
    from worker.db.migrate import upgrade
    from worker.logging import configure_logging

    settings = _settings(ctx)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    if settings.database.migrate_on_start:
        upgrade(settings.database_url)
    celery_app = create_app(settings)
    worker_settings = settings.worker
    argv = [
        "worker",
        f"--pool={worker_settings.pool}",
        f"--concurrency={worker_settings.concurrency}",
        # The snapshot queue is read by the micro-batching consumer, not by Celery's own
        # (except in the naive benchmark baseline, where a plain task takes each snapshot).
        "--queues="
        + (
            f"{worker_settings.queue},{worker_settings.control_queue}"
            if worker_settings.mode == "naive"
            else worker_settings.control_queue
        ),
        f"--hostname={hostname}",
        f"--loglevel={_CELERY_LEVELS.get(settings.log_level, settings.log_level)}",
        "--without-mingle",
        "--without-gossip",
    ]
    if worker_settings.send_task_events:
        argv.append("--task-events")
    celery_app.worker_main(argv)


@app.command()
def ping(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(min=1, help="Pings to send.")] = 1,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each.")] = 10.0,
) -> None:
    """Send ping tasks through the broker and wait for the workers' answers."""
    from worker.app import TASK_PING, create_app
    from worker.messages import CORRELATION_HEADER

    celery_app = create_app(_settings(ctx))
    failures = 0
    for _ in range(count):
        started = time.perf_counter()
        correlation_id = uuid.uuid4().hex
        result = celery_app.send_task(TASK_PING, headers={CORRELATION_HEADER: correlation_id})
        try:
            answer = result.get(timeout=timeout)
        except TimeoutError:
            failures += 1
            typer.echo(f"no answer within {timeout} s (task {result.id})", err=True)
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        typer.echo(
            f"pong from {answer['hostname']} pid {answer['pid']} in {elapsed_ms:.1f} ms "
            f"(correlation {correlation_id})"
        )
    if failures:
        raise typer.Exit(1)


@app.command()
def run(
    ctx: typer.Context,
    duration: Annotated[
        float, typer.Option(min=5, help="Seconds to stream the demo machines.")
    ] = 40.0,
) -> None:
    """Start a worker and diagnose the four demo machines live, faults developing."""
    from rich.console import Console

    from worker.db.migrate import upgrade
    from worker.demo_run import run_demo

    settings = _settings(ctx)
    upgrade(settings.database_url)
    shown = run_demo(settings, duration_s=duration, console=Console())
    if shown == 0:
        typer.echo("no diagnosis arrived", err=True)
        raise typer.Exit(1)
    typer.echo(f"{shown} diagnoses")


def main() -> None:
    """Console-script entry point."""
    app()
