"""What the commands reading the service's state share: the settings loaded once per command
line, a database read that fails in one line, and the workers that answer a ping."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from service.settings import Settings

if TYPE_CHECKING:
    from service.db.reader import DiagnosisReader

T = TypeVar("T")


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root command loaded."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def read_stored(settings: Settings, read: Callable[[DiagnosisReader], T]) -> T:
    """``read`` on a reader of the database, closed afterwards; a database the settings
    cannot use ends the command with its one-line reason and exit status 1."""
    from service.db.reader import DiagnosisReader
    from service.errors import ConfigurationError

    reader = DiagnosisReader(settings)
    try:
        return read(reader)
    except ConfigurationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        reader.close()


def answering_workers(settings: Settings, timeout_s: float) -> list[str]:
    """Names of the workers that answer a broadcast ping within ``timeout_s``."""
    from service.celery_app import create_service_app

    replies = create_service_app(settings).control.ping(timeout=timeout_s) or []
    return sorted(name for reply in replies for name in reply)
