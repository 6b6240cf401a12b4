"""``gnn-service run``: start the worker pool and Flower and stream machines through the
queue (the demo machines, or a user's ``--machine`` and recorded ``--data``), and the Flower
credentials check it shares with ``gnn-service flower``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.stored import settings_of
from cli.train import errors_as_lines
from service.settings import SecuritySettings


def run(
    ctx: typer.Context,
    duration: Annotated[
        str,
        typer.Option(
            help="How long to stream the demo machines: seconds (40) or a duration like "
            "produce's (90s, 2m); at least 5 s."
        ),
    ] = "40s",
    workers: Annotated[int, typer.Option(min=1, max=16, help="Worker processes to start.")] = 1,
    flower: Annotated[bool, typer.Option(help="Start Flower next to the workers.")] = True,
    machine: Annotated[
        Path | None,
        typer.Option(help="Your machine's spec: registered, then its --data runs are streamed."),
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(help="Run files, or folders of them (gnn-service import), of --machine."),
    ] = None,
) -> None:
    """Start the worker pool and Flower, and diagnose the four demo machines (or your
    --machine's recorded --data runs) live."""
    from cli.demo_run import demo_machines, run_demo
    from cli.views import wide_console
    from service.db.migrate import upgrade
    from service.settings import mask_url

    seconds = _run_seconds(duration)
    if (machine is None) != (data is None):
        raise typer.BadParameter(
            "give both --machine SPEC.yaml and --data RUNS, or neither (the demo machines)",
            param_hint="--machine" if machine is None else "--data",
        )
    settings = settings_of(ctx)
    if flower and settings.security.flower_password is not None:
        flower_basic_auth(settings.security)  # unset, the demo makes one up; blank is refused
    upgrade(settings.database_url)
    console = wide_console()
    if machine is not None and data is not None:
        from cli.run_recorded import RecordedRunsError, recorded_machines
        from schemas.spec import load_spec

        with errors_as_lines():
            try:
                streamed = recorded_machines(settings, load_spec(machine), data, console)
            except RecordedRunsError as exc:
                raise typer.BadParameter(str(exc), param_hint="--data") from None
    else:
        streamed = demo_machines(seconds, console)
    stored = run_demo(
        settings, streamed, duration_s=seconds, workers=workers, flower=flower, console=console
    )
    if stored == 0:
        typer.echo("no diagnosis was stored", err=True)
        raise typer.Exit(1)
    typer.echo(f"{stored} diagnoses stored in {mask_url(settings.database_url)}")


def _run_seconds(text: str) -> float:
    """``run --duration``: a number of seconds or a duration (``90s``, ``2m``), >= 5 s."""
    from cli.demo import duration_option

    try:
        seconds = float(text)
    except ValueError:
        seconds = duration_option(text, "--duration")
    if not seconds >= _MIN_RUN_S:
        raise typer.BadParameter(
            f"{text!r} is shorter than {_MIN_RUN_S:g} s", param_hint="--duration"
        )
    return seconds


_MIN_RUN_S = 5.0


def flower_basic_auth(security: SecuritySettings) -> str:
    """Flower's ``--basic-auth`` value, or exit 2 with one line naming the setting at fault.

    Flower reads that option as comma-separated ``user:password`` pairs and lets in whoever
    sends one of them: a blank password would be no password, and a comma would split off a
    credential of its own.
    """
    secret = security.flower_password
    password = secret.get_secret_value() if secret is not None else None  # SecretStr("") is falsy
    user = security.flower_user
    problem = None
    if password is None:
        problem = (
            "GNN_SECURITY__FLOWER_PASSWORD: Flower needs a password "
            "(and GNN_SECURITY__FLOWER_USER, default admin)"
        )
    elif not password.strip():
        problem = "GNN_SECURITY__FLOWER_PASSWORD: is empty or blank; Flower needs a password"
    elif "," in password:
        problem = "GNN_SECURITY__FLOWER_PASSWORD: must not contain ',' (Flower splits on it)"
    elif not user.strip() or any(mark in user for mark in ":,"):
        problem = "GNN_SECURITY__FLOWER_USER: must be a name without ':' or ','"
    if problem is not None:
        typer.echo(f"invalid setting {problem}", err=True)
        raise typer.Exit(2)
    return f"{user}:{password}"
