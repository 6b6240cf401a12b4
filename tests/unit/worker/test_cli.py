from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GNN_")}
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_config_show_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    done = _cli(
        "config", "show",
        env={"GNN_DATABASE__URL": "postgresql+asyncpg://gnn:pw123@db/gnn",
             "GNN_BATCHING__MAX_WAIT_MS": "25"},
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["batching"]["max_wait_ms"] == 25
    assert shown["database"]["url"] == "postgresql+asyncpg://gnn:***@db/gnn"
    assert "pw123" not in done.stdout


@pytest.mark.parametrize("command", [("config", "show"), ("version",), ("db", "upgrade")])
def test_an_invalid_setting_ends_any_command_with_exit_2_and_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = _cli(*command, env={"GNN_BATCHING__MAX_WAIT_MS": "abc"}, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting GNN_BATCHING__MAX_WAIT_MS:")
    assert "Traceback" not in done.stderr


def test_db_upgrade_creates_the_embedded_database(tmp_path: Path) -> None:
    done = _cli("db", "upgrade", env={"GNN_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "at revision None" not in done.stdout
    assert "at revision" in done.stdout
    assert (tmp_path / "data" / "gnn.db").exists()
