"""``gnn-service diagnoses`` reads what the repository stored, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas import Diagnosis
from service.db.database import Database, LoopRunner
from service.db.migrate import upgrade
from service.db.repositories import OutcomeRepository
from service.settings import DatabaseSettings

CliRunner = Callable[..., Any]


def _diagnosis(snapshot_id: str, system_id: str, created_at: datetime) -> Diagnosis:
    return Diagnosis.model_validate(
        {
            "snapshot_id": snapshot_id,
            "system_id": system_id,
            "model_version": "universal:9",
            "created_at": created_at.isoformat(),
            "machine_health": 0.8,
            "components": [
                {
                    "component_id": "main_pump",
                    "health": 0.4,
                    "status": "warning",
                    "fault": "pump_internal_leak",
                    "fault_probabilities": {"normal": 0.2, "pump_internal_leak": 0.8},
                    "anomaly_score": 2.5,
                }
            ],
        }
    )


def _store(url: str, diagnoses: list[Diagnosis]) -> None:
    upgrade(url)
    run = LoopRunner()
    database = Database(url, DatabaseSettings())
    try:
        run(OutcomeRepository(database).save_many(diagnoses=diagnoses))
    finally:
        run(database.dispose())
        run.close()


def test_history_latest_since_and_json(
    gnn_cli: CliRunner, database_url: str, data_dir: Path
) -> None:
    now = datetime.now(UTC)
    old = [_diagnosis(f"ex-{i}", "ex-7", now - timedelta(hours=3, minutes=i)) for i in range(3)]
    new = [_diagnosis(f"ex-new-{i}", "ex-7", now - timedelta(seconds=i)) for i in range(2)]
    _store(database_url, [*old, *new, _diagnosis("cnc-1", "cnc-2", now)])
    env = {"GNN_DATA_DIR": str(data_dir), "GNN_DATABASE__URL": database_url}

    listed = gnn_cli("diagnoses", "--system", "ex-7", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    ids = [json.loads(line)["snapshot_id"] for line in listed.stdout.splitlines()]
    assert ids == ["ex-new-0", "ex-new-1", "ex-0", "ex-1", "ex-2"]  # newest first

    recent = gnn_cli("diagnoses", "--system", "ex-7", "--since", "1h", "--json", env=env)
    assert [json.loads(line)["snapshot_id"] for line in recent.stdout.splitlines()] == [
        "ex-new-0",
        "ex-new-1",
    ]
    limited = gnn_cli("diagnoses", "--system", "ex-7", "--limit", "2", "--json", env=env)
    assert len(limited.stdout.splitlines()) == 2

    table = gnn_cli("diagnoses", env={**env, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "ex-7" in table.stdout
    assert "cnc-2" in table.stdout
    assert "pump_internal_leak (0.80)" in table.stdout

    unknown = gnn_cli("diagnoses", "--system", "nobody", env=env)
    assert "no diagnoses stored for nobody" in unknown.stdout
    bad = gnn_cli("diagnoses", "--since", "yesterday", env=env)
    assert bad.returncode == 2
    assert "--since" in bad.stderr


def test_a_database_without_tables_is_one_clear_line(gnn_cli: CliRunner, data_dir: Path) -> None:
    env = {"GNN_DATA_DIR": str(data_dir)}
    done = gnn_cli("diagnoses", env=env)
    assert done.returncode == 1
    assert "gnn-service db upgrade" in done.stderr
