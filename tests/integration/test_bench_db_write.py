"""`gnn-service benchmark db-write` at tiny sizes: the result follows the shared format, every
variant wrote batches x batch size rows (counted in the databases), and the benchmark never
empties a table holding diagnoses it did not write."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from service.db.migrate import upgrade

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
