"""``gnn-service produce``: stream snapshots of a simulated machine, or of a recorded file,
into the queue with a running count.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli.demo import FaultOption, SeedOption, duration_option, faults_option, spec_option
from cli.stored import answering_workers, settings_of
from machines.run_io import read_run
from machines.windows import demo_system_id
from producer.client import ProducerClient
from producer.stream import StreamStats, publish, run_prefix, simulated_run, snapshots_of
from schemas import Snapshot
from service.errors import InvalidInput, QueueFull
from service.settings import Settings


def produce(
    ctx: typer.Context,
    system: Annotated[
        str | None,
        typer.Option("--system", "-s", help="Built-in machine name or spec file to simulate."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Publish windows cut from this run (.parquet or .csv)."),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0, help="Snapshots per second; 0 publishes as fast as possible.")
    ] = 20.0,
    duration: Annotated[
        str | None,
        typer.Option(help="How long to stream (e.g. 10m); with --file, default: the whole file."),
    ] = None,
    window: Annotated[
        int,
        typer.Option(
            min=2,
            help="Steps per snapshot window; at least GNN_SECURITY__MIN_WINDOW_STEPS (8), "
            "which workers accept.",
        ),
    ] = 60,
    stride: Annotated[
        int | None, typer.Option(min=1, help="Steps between windows (default: --window).")
    ] = None,
    fault: FaultOption = None,
    seed: SeedOption = 0,
    deadline: Annotated[
        str | None, typer.Option(help="Each snapshot's deadline after publishing (e.g. 30s).")
    ] = None,
    system_id: Annotated[
        str | None, typer.Option(help="Machine-instance id the snapshots carry.")
    ] = None,
) -> None:
    """Stream snapshots into the queue with a running count.

    Either --system (a simulated machine, with optional --fault) or --file (a recorded run).
    """
    settings = settings_of(ctx)
    if (system is None) == (file is None):
        raise typer.BadParameter("give exactly one of --system or --file", param_hint="--system")
    step = stride or window
    _check_window(window, settings)
    deadline_s = duration_option(deadline, "--deadline") if deadline else None
    console = Console(stderr=True)
    prefix = run_prefix()
    if system is not None:
        spec = spec_option(system)
        faults = faults_option(spec, fault)
        duration_s = duration_option(duration or "10m", "--duration")
        count = max(1, int(duration_s * rate)) if rate > 0 else max(1, int(duration_s))
        with console.status(f"simulating {spec.name}"):
            run = simulated_run(
                spec, count=count, window=window, stride=step, faults=faults, seed=seed
            )
        snapshots = snapshots_of(
            run, window=window, stride=step, count=count, prefix=prefix, system_id=system_id
        )
        total: int | None = count
    else:
        assert file is not None
        try:
            run = read_run(file)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--file") from None
        limit = None
        if duration is not None and rate > 0:
            limit = max(1, int(duration_option(duration, "--duration") * rate))
        snapshots = snapshots_of(
            run, window=window, stride=step, count=limit, prefix=prefix, system_id=system_id
        )
        total = limit if limit is not None else max(0, (run.steps - window) // step + 1)
        if run.steps < window:
            raise typer.BadParameter(
                f"{file} has {run.steps} steps ({run.steps / run.sample_rate_hz:g} s at "
                f"{run.sample_rate_hz:g} Hz), fewer than one --window of {window} steps: pass "
                f"--window {run.steps} or fewer (the model's own window is in its checkpoint)",
                param_hint="--window",
            )

    from service.tracing import configure_tracing, shutdown_tracing

    configure_tracing(settings)  # the publish spans start each snapshot's trace
    # A BrokerUnavailable is left to the entry point: one line, exit status 3, as for every
    # server that cannot be reached.
    try:
        stats = _stream(
            settings,
            snapshots,
            title=f"producing {prefix}",
            total=total,
            rate=rate if rate > 0 else None,
            deadline_s=deadline_s,
            console=console,
        )
    except InvalidInput as exc:
        typer.echo(f"refused: {exc} (reason {exc.reason})", err=True)  # one line: not rich
        raise typer.Exit(1) from None
    except QueueFull as exc:
        typer.echo(f"stopped: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        shutdown_tracing()
    _warn_without_workers(settings)
    machine = system_id or demo_system_id(run)
    typer.echo(
        f"published {stats.published} snapshots with ids {prefix}-* in {stats.elapsed_s:.1f} s "
        f"({stats.rate:.1f}/s); queue depth {stats.queue_depth}; system id {machine}: see its "
        f"diagnoses with `gnn-service diagnoses --system {machine}`"
    )


_WORKER_WAIT_S = 1.0


def _check_window(window: int, settings: Settings) -> None:
    shortest = settings.security.min_window_steps
    if window < shortest:
        raise typer.BadParameter(
            f"{window} steps is shorter than workers accept ({shortest}, "
            f"GNN_SECURITY__MIN_WINDOW_STEPS): pass --window {shortest} or more",
            param_hint="--window",
        )


def _warn_without_workers(settings: Settings) -> None:
    """Say so when no worker answers a broadcast ping: the snapshots then wait in the queue."""
    try:
        replies = answering_workers(settings, _WORKER_WAIT_S)
    except Exception as exc:  # a check, never a reason to fail the command
        typer.echo(f"warning: could not ask for workers ({exc})", err=True)
        return
    if not replies:
        typer.echo(
            f"warning: no worker answered within {_WORKER_WAIT_S:g} s: the snapshots wait in "
            "the queue until one runs (gnn-service worker)",
            err=True,
        )


def _stream(
    settings: Settings,
    snapshots: Iterable[Snapshot],
    *,
    title: str,
    total: int | None,
    rate: float | None,
    deadline_s: float | None,
    console: Console,
) -> StreamStats:
    """Publish ``snapshots`` under a progress bar; the broker is asked for the queue depth
    before the bar is drawn, so that a broker that is down ends the command with its one
    error line alone."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} published"),
        TextColumn("{task.fields[rate]:.1f}/s, queue depth {task.fields[depth]}"),
        TimeElapsedColumn(),
    )
    with ProducerClient(settings) as client:
        client.queue_depth()
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(title, total=total, rate=0.0, depth=0)

            def show(stats: StreamStats) -> None:
                bar.update(
                    task, completed=stats.published, rate=stats.rate, depth=stats.queue_depth
                )

            return publish(client, snapshots, rate=rate, deadline_s=deadline_s, on_progress=show)
