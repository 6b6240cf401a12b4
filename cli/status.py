"""``gnn-service status`` and ``gnn-service dead-letters``: what an operator without
Prometheus needs, read from the broker, the workers and the database."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from cli.demo import duration_option
from cli.stored import answering_workers, read_stored, settings_of
from cli.views import print_table, wide_console

_PING_S = 1.0


def status(
    ctx: typer.Context,
    last: Annotated[
        str, typer.Option(help="The stretch of time the rates and latency cover (90s, 5m, 1h).")
    ] = "5m",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead.")] = False,
) -> None:
    """Queue depth, workers answering, and over --last: outcomes, rate, p50/p95 latency."""
    from producer.client import ProducerClient

    settings = settings_of(ctx)
    seconds = duration_option(last, "--last")
    if not seconds > 0:
        raise typer.BadParameter("must be longer than 0 s", param_hint="--last")
    with ProducerClient(settings) as client:
        depth = client.queue_depth()
    answering = answering_workers(settings, _PING_S)
    since = datetime.now(UTC) - timedelta(seconds=seconds)
    activity = read_stored(settings, lambda reader: reader.activity(since))
    totals = sorted(activity.total_ms)
    p50, p95 = _quantile(totals, 0.50), _quantile(totals, 0.95)
    summary: dict[str, object] = {
        "queue": settings.worker.queue,
        "queue_depth": depth,
        "workers_answering": answering,
        "last_s": seconds,
        **activity.counts,
        "diagnosed_per_s": activity.counts["diagnosed"] / seconds,
        "p50_ms": p50,
        "p95_ms": p95,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"gnn-service status (last {last})")
    table.add_column("", no_wrap=True)
    table.add_column("value")
    names = ", ".join(answering) or f"none within {_PING_S:g} s"
    rows = [
        ("queue", f"{summary['queue']}: {depth} waiting"),
        ("workers answering", f"{len(answering)} ({names})"),
        (
            "diagnosed",
            f"{activity.counts['diagnosed']} ({activity.counts['diagnosed'] / seconds:.2f}/s)",
        ),
        ("expired", str(activity.counts["expired"])),
        ("dead-lettered", str(activity.counts["dead_lettered"])),
        ("latency p50 / p95", _latency(p50, p95)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    print_table(wide_console(), table)


LimitOption = Annotated[int, typer.Option(min=1, max=10_000, help="Most rows shown.")]


def dead_letters(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Only those stored in the last (30m, 2h, 1d).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    limit: LimitOption = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines (one dead letter per line).")
    ] = False,
) -> None:
    """Stored dead letters, newest first: when, key, reason, the field at fault and why."""
    moment = _since(since)
    found = read_stored(
        settings_of(ctx),
        lambda reader: reader.dead_letters(since=moment, reason=reason, limit=limit),
    )
    _listing(
        [
            (
                json.dumps(
                    {
                        "message_key": entry.message_key,
                        "stored_at": entry.stored_at.isoformat(),
                        **entry.record.model_dump(mode="json"),
                    }
                ),
                (
                    f"{entry.stored_at:%Y-%m-%d %H:%M:%S}",
                    entry.message_key,
                    entry.record.reason.value,
                    entry.record.field or "-",
                    entry.record.detail,
                ),
            )
            for entry in found
        ],
        as_json=as_json,
        empty="no dead letters stored" + (f" with reason {reason}" if reason else ""),
        title="dead letters",
        headers=("stored (UTC)", "message key", "reason", "field", "detail"),
    )


def expirations(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Only those found expired in the last (30m, 2h, 1d).")
    ] = None,
    system: Annotated[str | None, typer.Option(help="Only this machine instance.")] = None,
    limit: LimitOption = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines (one expiration per line).")
    ] = False,
) -> None:
    """Snapshots skipped because their deadline passed, newest first: when, which, how late."""
    moment = _since(since)
    found = read_stored(
        settings_of(ctx),
        lambda reader: reader.expirations(since=moment, system_id=system, limit=limit),
    )
    _listing(
        [
            (
                item.model_dump_json(),
                (
                    f"{item.observed_at:%Y-%m-%d %H:%M:%S}",
                    item.snapshot_id,
                    item.system_id,
                    f"{item.deadline:%Y-%m-%d %H:%M:%S}",
                    f"{(item.observed_at - item.deadline).total_seconds():.1f} s",
                ),
            )
            for item in found
        ],
        as_json=as_json,
        empty="no expirations stored" + (f" for {system}" if system else ""),
        title="expired snapshots",
        headers=("found expired (UTC)", "snapshot", "system", "deadline (UTC)", "late by"),
    )


def _since(since: str | None) -> datetime | None:
    if since is None:
        return None
    return datetime.now(UTC) - timedelta(seconds=duration_option(since, "--since"))


def _listing(
    rows: list[tuple[str, tuple[str, ...]]],
    *,
    as_json: bool,
    empty: str,
    title: str,
    headers: tuple[str, ...],
) -> None:
    """Stored rows, newest first: a JSON line each, or a table (its last column wraps)."""
    if as_json:
        for line, _ in rows:
            typer.echo(line)
        return
    if not rows:
        typer.echo(empty)
        return
    table = Table(title=f"{title}, newest first ({len(rows)})")
    for header in headers:
        table.add_column(header, no_wrap=header != headers[-1])
    for _, cells in rows:
        table.add_row(*cells)
    print_table(wide_console(), table)


def _quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values`` (nearest rank), None for none."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def _latency(p50: float | None, p95: float | None) -> str:
    if p50 is None or p95 is None:
        return "no diagnosis in this stretch"
    return f"{p50:.0f} ms / {p95:.0f} ms (receipt to diagnosis)"
