"""The ``gnn-service`` command line: thin commands over the service's core functions.

Settings are read once, in the root callback; an invalid value ends any command with exit
status 2 and one line naming the environment variable. Any other error a command lets
escape is turned into one line and an exit status by :func:`main` (the table is in
:mod:`cli.errors`: 3 when a server is unreachable or refuses, 1 otherwise). This module
is the one edge that composes every package (worker, producer, training); nothing imports it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from cli.benchmark import benchmark_app
from cli.demo import demo_app
from cli.importing import import_runs
from cli.machines import machines_app
from cli.models import models_app
from cli.produce import produce
from cli.run_command import flower_basic_auth, run
from cli.status import dead_letters, expirations, status
from cli.stored import read_stored, settings_of
from cli.train import evaluate, train
from service.settings import Settings, describe_error, misspelled_variables

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
metrics_app = typer.Typer(help="Prometheus metrics reference.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")
schemas_app = typer.Typer(help="Message contracts as JSON Schema.", no_args_is_help=True)
app.add_typer(embedded_app, name="embedded")
app.add_typer(schemas_app, name="schemas")
app.add_typer(demo_app, name="demo")
app.command("produce")(produce)
app.add_typer(benchmark_app, name="benchmark")
app.command("import")(import_runs)
app.command("status")(status)
app.command("dead-letters")(dead_letters)
app.command("expirations")(expirations)
app.command("train")(train)
app.command("evaluate")(evaluate)
app.add_typer(models_app, name="models")
app.add_typer(machines_app, name="machines")
app.command()(run)


def load_settings() -> Settings:
    """Read the settings, or exit 2 with one line naming the invalid variable; a ``GNN_*``
    variable that looks like a setting but sets nothing is warned about on stderr."""
    for line in misspelled_variables():
        typer.echo(f"warning: {line}", err=True)
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


@app.command()
def version() -> None:
    """Print the versions of gnn-service and its main libraries."""
    for name in ("gnn-service", "celery", "kombu", "torch", "torch-geometric", "sqlalchemy"):
        typer.echo(f"{name} {package_version(name)}")


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets masked; unset broker and result-backend
    URLs show the embedded redis-server's (started on demand, not by this command), and the
    database URL the one used."""
    from service.embedded import EmbeddedRedis
    from service.settings import mask_url

    settings = settings_of(ctx)
    shown = settings.masked()
    embedded = EmbeddedRedis(settings.data_dir)
    for section, url in (("broker", embedded.broker_url), ("result_backend", embedded.backend_url)):
        if shown[section]["url"] is None:
            shown[section]["url"] = url
            shown[section]["embedded"] = True
    if shown["database"].get("url") is None:
        shown["database"]["url"] = mask_url(settings.database_url)
        shown["database"]["embedded"] = True
    typer.echo(json.dumps(shown, indent=2))


@config_app.command("docs")
def config_docs(
    out: Annotated[Path, typer.Option(help="File to write.")] = Path("docs/configuration.md"),
) -> None:
    """Regenerate the settings reference (docs/configuration.md) from the code."""
    from service.settings_doc import configuration_doc

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


@db_app.command("prune")
def db_prune(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Delete outcomes stored longer ago than this (30d, 12h); default "
            "GNN_DATABASE__RETENTION_DAYS (30 days)."
        ),
    ] = None,
) -> None:
    """Delete stored outcomes past their retention: diagnoses, expirations, dead letters and
    their keys (a later message with such a key is diagnosed afresh)."""
    from cli.demo import duration_option

    settings = settings_of(ctx)
    seconds = (
        duration_option(older_than, "--older-than")
        if older_than is not None
        else settings.database.retention_days * 86_400
    )
    before = datetime.now(UTC) - timedelta(seconds=seconds)
    deleted = read_stored(settings, lambda reader: reader.prune(before))
    counts = ", ".join(f"{rows} {table}" for table, rows in deleted.items())
    typer.echo(f"deleted what was stored before {before.isoformat(timespec='seconds')}: {counts}")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations up to REVISION."""
    from service.db.migrate import current_revision, upgrade
    from service.settings import mask_url

    settings = settings_of(ctx)
    upgrade(settings.database_url, revision)
    now = current_revision(settings.database_url)
    typer.echo(f"database {mask_url(settings.database_url)} at revision {now}")
    if revision == "head":
        from service.db.machines import open_machines, register_builtin_machines

        with open_machines(settings) as machines:
            added = register_builtin_machines(machines)
        if added:
            typer.echo("registered demo machines: " + ", ".join(item.name for item in added))


@embedded_app.command("status")
def embedded_status(ctx: typer.Context) -> None:
    """Say whether the embedded redis-server of the data directory runs."""
    from service.embedded import EmbeddedRedis

    server = EmbeddedRedis(settings_of(ctx).data_dir)
    state = "running" if server.is_running() else "stopped"
    typer.echo(f"embedded redis-server {state} on {server.socket}")


@embedded_app.command("stop")
def embedded_stop(ctx: typer.Context) -> None:
    """Stop the embedded redis-server (its queue is kept on disk for the next start)."""
    from service.embedded import EmbeddedRedis

    stopped = EmbeddedRedis(settings_of(ctx).data_dir).stop()
    typer.echo("stopped" if stopped else "was not running")


@app.command()
def worker(
    ctx: typer.Context,
    hostname: Annotated[str, typer.Option(help="Celery node name.")] = "gnn@%h",
) -> None:
    """Run a worker node with the settings (pool, queues, health port: GNN_WORKER__*)."""
    from service.logging import configure_logging
    from worker.app import create_app, run_worker

    settings = settings_of(ctx)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    run_worker(create_app(settings), hostname=hostname)


@app.command()
def ping(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(min=1, help="Pings to send.")] = 1,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each.")] = 10.0,
) -> None:
    """Send ping tasks through the broker and wait for the workers' answers."""
    from celery.exceptions import TimeoutError as NoAnswer

    from service.celery_app import create_service_app
    from service.results import release_result
    from service.wire import CORRELATION_HEADER, TASK_PING

    celery_app = create_service_app(settings_of(ctx))
    # Celery reconnects to a lost result backend 20 times, a second apart, by default; a
    # ping gives up on it within its own --timeout instead.
    celery_app.conf.result_backend_transport_options = {
        **celery_app.conf.result_backend_transport_options,
        "retry_policy": {"max_retries": max(1, round(timeout)), "interval_max": 1},
    }
    failures = 0
    for _ in range(count):
        started = time.perf_counter()
        correlation_id = uuid.uuid4().hex
        result = celery_app.send_task(TASK_PING, headers={CORRELATION_HEADER: correlation_id})
        try:
            answer = result.get(timeout=timeout)
        except (TimeoutError, NoAnswer):
            failures += 1
            typer.echo(f"no answer within {timeout} s (task {result.id})", err=True)
            continue
        finally:
            release_result(result)
        elapsed_ms = (time.perf_counter() - started) * 1000
        typer.echo(
            f"pong from {answer['hostname']} pid {answer['pid']} in {elapsed_ms:.1f} ms "
            f"(correlation {correlation_id})"
        )
    if failures:
        raise typer.Exit(1)


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> datetime:
    """An ISO-8601 moment (UTC if it has no offset) or a duration back from now (30m, 2h)."""
    match = _RELATIVE.match(text.strip())
    if match:
        return datetime.now(UTC) - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an ISO-8601 time nor a duration like 30m, 2h or 1d",
            param_hint="--since",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def diagnoses(
    ctx: typer.Context,
    system: Annotated[
        str | None, typer.Option(help="System id; without it, the latest of every system.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO-8601 time, or a duration back from now: 30m, 2h, 1d.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most rows shown.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines (one diagnosis per line) instead of a table.")
    ] = False,
    stale_after: Annotated[
        str,
        typer.Option(
            help="In the latest-per-system table, mark a machine whose latest diagnosis is "
            "older than this as stale (90s, 10m, 2h)."
        ),
    ] = "10m",
) -> None:
    """Stored diagnoses: a system's history, newest first, or the latest of every system."""
    from cli.demo import duration_option
    from cli.views import fleet_table, history_table, print_table, wide_console

    settings = settings_of(ctx)
    moment = parse_since(since) if since else None
    if system is None:
        found = read_stored(settings, lambda reader: reader.latest_per_system(limit=limit))
        if moment is not None:
            found = [item for item in found if item.created_at >= moment]
    else:
        found = read_stored(
            settings, lambda reader: reader.history(system, since=moment, limit=limit)
        )
    if as_json:
        for item in found:
            typer.echo(item.model_dump_json())
        return
    if not found:
        typer.echo(f"no diagnoses stored{f' for {system}' if system else ''}")
        return
    title = f"{system}: {len(found)} newest" if system else "latest diagnosis per system"
    stale_s = duration_option(stale_after, "--stale-after")
    table = (
        history_table(title, found) if system else fleet_table(title, found, stale_after_s=stale_s)
    )
    print_table(wide_console(), table)


@metrics_app.command("docs")
def metrics_docs(
    out: Annotated[Path, typer.Option(help="File to write.")] = Path("docs/metrics.md"),
) -> None:
    """Regenerate the metrics reference (docs/metrics.md) from the code."""
    from service.metrics_doc import metrics_doc

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(metrics_doc())
    typer.echo(f"wrote {out}")


@app.command()
def exporter(ctx: typer.Context) -> None:
    """Serve the queue metrics (depth, oldest message age, unacked) on /metrics, with or
    without workers, on GNN_OBSERVABILITY__EXPORTER_HOST:EXPORTER_PORT."""
    from prometheus_client import CollectorRegistry, start_http_server

    from service.errors import ConfigurationError
    from worker.app import queue_collector

    settings = settings_of(ctx)
    registry = CollectorRegistry()
    registry.register(queue_collector(settings))
    config = settings.observability
    try:
        server, thread = start_http_server(
            config.exporter_port, addr=config.exporter_host, registry=registry
        )
    except OSError as exc:
        raise ConfigurationError(
            f"queue metrics cannot listen on {config.exporter_host}:{config.exporter_port} "
            f"({exc.strerror or exc}): set GNN_OBSERVABILITY__EXPORTER_PORT to a free port"
        ) from exc
    typer.echo(
        f"queue metrics on http://{config.exporter_host}:{config.exporter_port}/metrics "
        f"for {settings.worker.queue}"
    )
    try:
        while thread.is_alive():
            thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


@app.command()
def flower(ctx: typer.Context) -> None:
    """Start Flower (the Celery monitor) on the service's broker, with basic auth.

    It refuses to start without GNN_SECURITY__FLOWER_PASSWORD, or with a blank one; it listens on
    GNN_SECURITY__FLOWER_ADDRESS:GNN_SECURITY__FLOWER_PORT (127.0.0.1:5555 by default).
    """
    from worker.app import create_app

    settings = settings_of(ctx)
    security = settings.security
    auth = flower_basic_auth(security)
    celery_app = create_app(settings)
    celery_app.start(
        argv=[
            "flower",
            f"--address={security.flower_address}",
            f"--port={security.flower_port}",
            f"--basic-auth={auth}",
        ]
    )


def main() -> None:
    """Console-script entry point: an error of the service, or of a server it talks to, ends
    the command with one line on stderr and the exit status of :mod:`cli.errors`."""
    from cli.errors import describe_failure

    try:
        app()
    except Exception as exc:
        failure = describe_failure(exc)
        if failure is None:
            raise  # a bug: its traceback is what a report needs
        typer.echo(f"gnn-service: {failure.line}", err=True)
        raise SystemExit(int(failure.status)) from None
