"""`gnn-service produce` publishing into the embedded broker, from a simulation and a file."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from service.embedded import EmbeddedRedis

pytestmark = pytest.mark.integration

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def _depth(data_dir: Path) -> int:
    client = EmbeddedRedis(data_dir).client()
    try:
        return int(client.llen("gnn.snapshots"))
    finally:
        client.close()


def test_produce_streams_a_simulated_machine_with_a_fault(
    data_dir: Path, gnn_cli: CliRunner
) -> None:
    done = gnn_cli(
        "produce", "--system", "excavator", "--rate", "20", "--duration", "1s",
        "--fault", "pump_internal_leak@10m:exponential", "--stride", "30", env={"GNN_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "published 20 snapshots" in done.stdout
    assert _depth(data_dir) == 20


def test_produce_publishes_windows_cut_from_a_file(
    data_dir: Path, tmp_path: Path, gnn_cli: CliRunner
) -> None:
    env = {"GNN_DATA_DIR": str(data_dir)}
    run = tmp_path / "run.parquet"
    generated = gnn_cli(
        "demo", "generate", "--system", "cnc_machine", "--duration", "10m",
        "--seed", "3", "--out", str(run), env=env,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    done = gnn_cli("produce", "--file", str(run), "--window", "60", "--rate", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert "published 10 snapshots" in done.stdout  # 600 steps / 60
    assert _depth(data_dir) == 10


def test_produce_refuses_an_unknown_machine_with_a_clear_line(gnn_cli: CliRunner) -> None:
    done = gnn_cli("produce", "--system", "bulldozer", "--duration", "1s")
    assert done.returncode == 2
    assert "unknown machine 'bulldozer'" in done.stderr
    assert "Traceback" not in done.stderr
