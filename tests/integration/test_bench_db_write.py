"""`gnn-service benchmark db-write` at tiny sizes: the result follows the shared format, every
variant wrote batches x batch size rows (counted in the databases), the benchmark never
empties a table holding diagnoses it did not write, and its row-by-row variant stores the
rows the repository's bulk statement stores."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from schemas import Diagnosis
from schemas.diagnosis import ComponentDiagnosis, Contribution, RemainingLife, Timings
from service.db import schema as tables
from service.db.database import Database, LoopRunner
from service.db.migrate import upgrade
from service.db.repositories import OutcomeRepository
from service.settings import DatabaseSettings
from training.benchmarks.db_write import RowByRowWriter

pytestmark = pytest.mark.integration

CliRunner = Callable[..., subprocess.CompletedProcess[str]]

ENVELOPE = {
    "benchmark", "created_at", "git_sha", "command", "machine", "config", "results",
    "baselines", "published", "ratios",
}  # fmt: skip
VARIANTS = {"postgresql_per_row", "postgresql_bulk", "sqlite_per_row", "sqlite_bulk"}
BATCHES, BATCH_SIZE = 3, 4


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _postgres(url: str, sql: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(_plain(url))
        try:
            return list(await connection.fetch(sql))
        finally:
            await connection.close()

    return asyncio.run(go())


def _snapshot_ids_postgres(url: str) -> set[str]:
    return {row["snapshot_id"] for row in _postgres(url, "SELECT snapshot_id FROM diagnoses")}


def _snapshot_ids_sqlite(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT snapshot_id FROM diagnoses")}


@pytest.mark.postgres
def test_db_write_reports_every_variant_and_writes_every_row(
    postgres_url: str, tmp_path: Path, gnn_cli: CliRunner
) -> None:
    out = tmp_path / "db-write.json"
    sqlite_dir = tmp_path / "sqlite"
    done = gnn_cli(
        "benchmark", "db-write", "--database-url", postgres_url, "--sqlite-dir", str(sqlite_dir),
        "--batch-size", str(BATCH_SIZE), "--batches", str(BATCHES), "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout

    result = json.loads(out.read_text())
    assert set(result) == ENVELOPE
    assert result["benchmark"] == "db-write"
    assert result["command"].startswith("gnn-service benchmark db-write ")
    assert {"cpus", "cpu_model", "torch", "device", "python"} <= set(result["machine"])
    assert result["config"]["batch_size"] == BATCH_SIZE
    assert result["config"]["batches"] == BATCHES
    assert result["config"]["rows_per_variant"] == BATCHES * BATCH_SIZE
    assert set(result["results"]) == VARIANTS
    for variant, metrics in result["results"].items():
        assert metrics["rows_written"] == BATCHES * BATCH_SIZE, variant
        assert metrics["retries"] == 0, variant
        for metric in ("throughput_rps", "p50_ms", "p95_ms"):
            assert isinstance(metrics[metric], float), (variant, metric)
            assert math.isfinite(metrics[metric]), (variant, metric)
    assert set(result["baselines"]) == {"postgresql_per_row", "sqlite_per_row"}
    assert set(result["ratios"]) == {"bulk_gain_postgresql", "bulk_gain_sqlite"}

    # The last variant on each database (bulk) left its rows: exactly the ones it was given.
    expected = {f"dbbench-{n:07d}" for n in range(BATCHES * BATCH_SIZE)}
    assert _snapshot_ids_postgres(postgres_url) == expected
    assert _snapshot_ids_sqlite(sqlite_dir / "db-write.db") == expected


@pytest.mark.postgres
def test_db_write_refuses_a_table_with_diagnoses_it_did_not_write(
    postgres_url: str, tmp_path: Path, gnn_cli: CliRunner
) -> None:
    upgrade(postgres_url)
    _postgres(
        postgres_url,
        "INSERT INTO diagnoses (snapshot_id, system_id, model_version, machine_health, status,"
        " top_fault, components, timings, warnings, created_at, stored_at) VALUES ('real-1',"
        " 'press-7', 'universal:1.0.0', 0.9, 'ok', 'normal', '[]', '{}', '[]', now(), now())",
    )
    done = gnn_cli(
        "benchmark", "db-write", "--database-url", postgres_url,
        "--sqlite-dir", str(tmp_path / "sqlite"), "--batches", "1", "--batch-size", "1",
        "--output", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert done.returncode == 2
    assert "1 rows this benchmark did not write" in done.stderr
    assert _snapshot_ids_postgres(postgres_url) == {"real-1"}
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:1/nothing", "is unreachable"),
        ("sqlite+aiosqlite:///elsewhere.db", "must name a PostgreSQL database"),
    ],
)
def test_db_write_names_an_unusable_postgres_url(
    url: str, message: str, tmp_path: Path, gnn_cli: CliRunner
) -> None:
    done = gnn_cli(
        "benchmark", "db-write", "--database-url", url, "--sqlite-dir", str(tmp_path / "sqlite"),
        "--output", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.json").exists()


T0 = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)


def _diagnosis(snapshot_id: str, created_at: datetime) -> Diagnosis:
    """A diagnosis with every optional field of a component set."""
    return Diagnosis(
        snapshot_id=snapshot_id,
        system_id="excavator-7",
        model_version="universal@3",
        created_at=created_at,
        correlation_id=f"req-{snapshot_id}",
        machine_health=0.82,
        components=[
            ComponentDiagnosis(
                component_id="hydraulic_pump",
                health=0.41,
                status="critical",
                fault="pump_internal_leak",
                fault_probabilities={"normal": 0.15, "pump_internal_leak": 0.85},
                anomaly_score=3.25,
                rul=RemainingLife(hours=12.5, low_hours=6.0, high_hours=30.0),
                top_sensors=[Contribution(id="pump_pressure", score=0.7)],
                top_connections=[Contribution(id="hydraulic_pump->boom_cylinder", score=0.2)],
            ),
            ComponentDiagnosis(component_id="engine", health=0.97, status="ok"),
        ],
        timings=Timings(queue_ms=4.5, batch_wait_ms=12.0, forward_ms=3.25, total_ms=21.0),
        warnings=["sensor boom_angle masked: 3 samples missing"],
    )


@pytest.fixture
def run() -> Iterator[LoopRunner]:
    runner = LoopRunner()
    yield runner
    runner.close()


@pytest.fixture
def database(migrated_database_url: str, run: LoopRunner) -> Iterator[Database]:
    database = Database(migrated_database_url, DatabaseSettings())
    yield database
    run(database.dispose())


def test_row_by_row_writes_store_the_same_rows_as_the_bulk_statement(
    run: LoopRunner, database: Database
) -> None:
    repository = OutcomeRepository(database)
    writer = RowByRowWriter(database)
    many = [_diagnosis(f"many-{i}", T0 + timedelta(seconds=i)) for i in range(5)]
    each = [item.model_copy(update={"snapshot_id": f"each-{i}"}) for i, item in enumerate(many)]
    assert run(repository.save_many(diagnoses=many)) == 5
    assert run(writer.save_each(diagnoses=each)) == 5
    # Each is idempotent, and each sees the other's rows.
    assert run(writer.save_each(diagnoses=many)) == 0
    assert run(repository.save_many(diagnoses=each)) == 0

    async def rows(prefix: str) -> list[dict[str, Any]]:
        table = tables.diagnoses
        query = select(table).where(table.c.snapshot_id.like(f"{prefix}-%")).order_by(table.c.id)
        async with database.engine.connect() as connection:
            found = (await connection.execute(query)).mappings().all()
        ignored = {"id", "snapshot_id", "stored_at"}
        return [{k: v for k, v in row.items() if k not in ignored} for row in found]

    assert run(rows("many")) == run(rows("each"))
    assert len(run(rows("each"))) == 5
    for item in each:
        assert run(repository.get_by_snapshot(snapshot_id=item.snapshot_id)) == item
    assert run(repository.count(table="diagnoses")) == 10
