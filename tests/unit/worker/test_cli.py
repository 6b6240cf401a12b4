from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def test_config_show_prints_effective_settings_with_secrets_masked(gnn_cli: CliRunner) -> None:
    done = gnn_cli(
        "config", "show",
        env={"GNN_DATABASE__URL": "postgresql+asyncpg://gnn:pw123@db/gnn",
             "GNN_BATCHING__MAX_WAIT_MS": "25"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["batching"]["max_wait_ms"] == 25
    assert shown["database"]["url"] == "postgresql+asyncpg://gnn:***@db/gnn"
    assert "pw123" not in done.stdout


@pytest.mark.parametrize("command", [("config", "show"), ("version",), ("db", "upgrade")])
def test_an_invalid_setting_ends_any_command_with_exit_2_and_one_line(
    gnn_cli: CliRunner, command: tuple[str, ...]
) -> None:
    done = gnn_cli(*command, env={"GNN_BATCHING__MAX_WAIT_MS": "abc"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting GNN_BATCHING__MAX_WAIT_MS:")
    assert "Traceback" not in done.stderr


def test_db_upgrade_creates_the_embedded_database(gnn_cli: CliRunner, tmp_path: Path) -> None:
    done = gnn_cli("db", "upgrade", env={"GNN_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    assert "at revision None" not in done.stdout
    assert "at revision" in done.stdout
    assert (tmp_path / "data" / "gnn.db").exists()
