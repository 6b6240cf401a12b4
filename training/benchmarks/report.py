"""The result document every ``gnn-service benchmark NAME`` writes (../BENCHMARKS "Result
format"): who ran what, on which commit and machine, around the benchmark's own figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch


def result_document(
    benchmark: str,
    *,
    command: str,
    config: Mapping[str, Any],
    results: Mapping[str, Any],
    ratios: Mapping[str, Any],
    baselines: Mapping[str, Any] | None = None,
    published: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One result document, keys in the order of the shared format."""
    return {
        "benchmark": benchmark,
        "created_at": datetime.now(UTC).isoformat(),
        "git_sha": git_sha(),
        "command": command,
        "machine": machine_info(),
        "config": dict(config),
        "results": dict(results),
        "baselines": dict(baselines or {}),
        "published": dict(published or {}),
        "ratios": dict(ratios),
    }


def write_result(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as indented JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed: ``gnn-service`` and the arguments, shell-quoted."""
    args = sys.argv[1:] if argv is None else argv
    return "gnn-service " + " ".join(shlex.quote(arg) for arg in args)


def git_sha() -> str:
    """The commit checked out in the working directory, or ``unknown``."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """CPUs, CPU model, torch and Python versions of the machine measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "torch": torch.__version__,
        "device": "cpu",
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one benchmark run or test, dropped afterwards.

    Args:
        admin_url: Any database on the server, for CREATE/DROP DATABASE.
        name: The scratch database's name (letters, digits, underscores).

    Yields:
        The scratch database's async URL.
    """
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from service.db.urls import prepare_database_url

    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    admin = prepare_database_url(admin_url)

    async def admin_sql(sql: str) -> None:
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
