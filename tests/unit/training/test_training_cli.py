from __future__ import annotations

from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner, Result

from cli.models import models_app
from cli.train import evaluate, train
from service.settings import Settings
from worker.model import (
    CheckpointMetadata,
    FeatureContract,
    ModelConfig,
    UniversalTemporalGNN,
    save_checkpoint,
)


def _app(data_dir: Path) -> typer.Typer:
    """The commands mounted as the root CLI mounts them, under real settings."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = Settings(data_dir=data_dir)

    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.add_typer(models_app, name="models")
    return app


def _invoke(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(_app(tmp_path / "data"), list(args))


def _one_error_line(result: Result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_config: ModelConfig) -> Path:
    torch.manual_seed(0)
    contract = FeatureContract()
    path = tmp_path / "made" / "universal.gnnckpt"
    save_checkpoint(
        path,
        model=UniversalTemporalGNN(tiny_config, contract),
        contract=contract,
        metadata=CheckpointMetadata(
            name="universal", version="7", systems={"excavator": ("normal",)}
        ),
    )
    return path


def test_train_writes_a_checkpoint_and_metrics_and_prints_validation_metrics(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    result = _invoke(
        tmp_path,
        "train",
        "--system",
        "cnc_machine",
        "--generate",
        "40m",
        "--epochs",
        "1",
        "--stride",
        "300",
        "--version",
        "0.1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert (out / "universal.gnnckpt").stat().st_size > 0
    assert (out / "universal.metrics.json").is_file()
    assert "validation metrics" in result.stdout
    assert "cnc_machine" in result.stdout


def test_the_training_schedule_and_class_weighting_are_options_recorded_in_the_checkpoint(
    tmp_path: Path,
) -> None:
    import json

    out = tmp_path / "out"
    result = _invoke(
        tmp_path, "train", "--system", "cnc_machine", "--generate", "40m", "--epochs", "1",
        "--stride", "300", "--out", str(out), "--learning-rate", "0.0005", "--batch-size", "8",
        "--patience", "3", "--faulty-weight", "2.5", "--false-alarm", "0.02",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "universal.metrics.json").read_text("utf-8"))
    config = metrics["training"]["config"]
    assert (config["learning_rate"], config["batch_size"], config["patience"]) == (0.0005, 8, 3)
    assert config["loss"]["faulty_weight"] == 2.5
    # 40 minutes of validation hold too few healthy windows to calibrate: it says so.
    assert metrics["calibration"]["calibrated"] is False
    assert "statuses: fixed GNN_DIAGNOSIS__* thresholds" in result.stdout


def test_evaluate_prints_metrics_of_a_checkpoint_on_generated_data(
    tmp_path: Path, checkpoint: Path
) -> None:
    result = _invoke(
        tmp_path, "evaluate", str(checkpoint), "--system", "excavator", "--generate", "30m"
    )
    assert result.exit_code == 0, result.output
    assert "universal 7 on" in result.stdout
    assert "excavator" in result.stdout


def test_a_corrupt_checkpoint_is_one_error_line_and_exit_1(
    tmp_path: Path, checkpoint: Path
) -> None:
    data = bytearray(checkpoint.read_bytes())
    data[-50] ^= 0x10
    checkpoint.write_bytes(bytes(data))
    result = _invoke(tmp_path, "evaluate", str(checkpoint))
    assert result.exit_code == 1
    assert "SHA-256 mismatch" in _one_error_line(result)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("evaluate", "nowhere.gnnckpt"), 1, "cannot read checkpoint"),
        (("train", "--out", "o"), 2, "give at least one --system or --data"),
        (("train", "--system", "submarine", "--out", "o"), 2, "unknown machine 'submarine'"),
        (("train", "--system", "excavator", "--generate", "soon", "--out", "o"), 2, "invalid duration"),
        (("train", "--data", "missing.parquet", "--out", "o"), 1, "missing.parquet"),
        (("train", "-s", "excavator", "--val-runs", "1", "--val-fraction", "0.3", "--out", "o"), 2, "not both"),
        (("train", "-s", "excavator", "--window-steps", "2", "--out", "o"), 2, "--window-steps must be >= 3"),
        (("train", "-s", "excavator", "--rate", "0", "--out", "o"), 2, "--rate must be a positive number"),
        (("models", "activate", "universal", "9"), 1, "no model named 'universal'"),
        (("models", "rollback", "universal"), 1, "no model named 'universal'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_line_with_a_status(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = _invoke(tmp_path, *args)
    assert result.exit_code == code, result.output
    assert message in _one_error_line(result)


def test_models_commands_register_activate_list_and_roll_back(
    tmp_path: Path, checkpoint: Path
) -> None:
    registered = _invoke(tmp_path, "models", "register", str(checkpoint))
    assert registered.exit_code == 0, registered.output
    assert "registered universal 7 (staged)" in registered.stdout
    assert _invoke(tmp_path, "models", "register", str(checkpoint), "--version", "8").exit_code == 0
    assert (tmp_path / "data" / "gnn.db").is_file()  # the registry is in the database

    assert _invoke(tmp_path, "models", "activate", "universal", "7").exit_code == 0
    assert (
        "activated universal 8" in _invoke(tmp_path, "models", "activate", "universal", "8").stdout
    )
    listing = _invoke(tmp_path, "models", "list")
    assert listing.exit_code == 0
    assert "retired" in listing.stdout
    assert "active" in listing.stdout
    assert "bundled: universal" in listing.stdout

    rolled = _invoke(tmp_path, "models", "rollback", "universal")
    assert rolled.exit_code == 0
    assert "rolled back universal to 7" in rolled.stdout
    duplicate = _invoke(tmp_path, "models", "register", str(checkpoint))
    assert duplicate.exit_code == 1
    assert "already registered" in _one_error_line(duplicate)
