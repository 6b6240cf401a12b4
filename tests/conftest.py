"""Shared fixtures: real Redis, PostgreSQL, embedded servers and worker processes.

Servers are found at GNN_TEST_REDIS_URL (default redis://127.0.0.1:6379) and
GNN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres). Without them
the tests that need them skip with the reason; with CI=true they fail instead, so that CI
never passes by skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from service.embedded import EmbeddedRedis

pytest_plugins = ["pipeline_fixtures"]  # tests/support: worker processes, models, clients

REDIS_URL = os.environ.get("GNN_TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_URL = os.environ.get(
    "GNN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(what: str, why: str) -> None:
    message = f"{what} unavailable ({why})"
    if IN_CI:
        pytest.fail(message + "; CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short, private data directory (unix socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="gnn-"))
    yield path
    EmbeddedRedis(path).stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> str:
    """Base URL of a reachable Redis server."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        _unavailable(f"Redis at {REDIS_URL}", str(exc))
    finally:
        client.close()
    return REDIS_URL.rstrip("/")


@pytest.fixture
def redis_env(redis_server: str) -> dict[str, str]:
    """Settings environment for Redis broker and backend, on queues private to this test."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "GNN_BROKER__URL": f"{redis_server}/11",
        "GNN_RESULT_BACKEND__URL": f"{redis_server}/12",
        "GNN_WORKER__QUEUE": f"test.snapshots.{suffix}",
        "GNN_WORKER__CONTROL_QUEUE": f"test.control.{suffix}",
    }


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """asyncpg-style URL of a reachable PostgreSQL server's maintenance database."""
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _unavailable(f"PostgreSQL at {POSTGRES_URL}", str(exc))
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (SQLAlchemy asyncpg URL)."""
    from training.benchmarks.report import scratch_database

    with scratch_database(postgres_server, f"gnn_test_{uuid.uuid4().hex[:10]}") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """An empty service database: a SQLite file in a directory still to be created, or a
    fresh PostgreSQL database; every test using it runs on both."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite+aiosqlite:///{data_dir / 'db' / 'gnn.db'}"


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    """``database_url`` migrated to the head revision."""
    from service.db.migrate import upgrade

    upgrade(database_url)
    return database_url


CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def gnn_cli(tmp_path: Path) -> CliRunner:
    """Run ``gnn-service ARGS`` in a subprocess with only the given GNN_* variables set."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("GNN_")}
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**clean, **(env or {})},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
