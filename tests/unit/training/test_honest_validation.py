"""``train`` and ``evaluate`` on run files: whole runs validate, a baseline stands beside the
GNN, undefined metrics and short runs are explained, and ``--strict`` fails a GNN that loses.

One training of a real (default-size) model for one epoch on small simulated run files serves
most tests; the others train on a few windows or stop before training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from typer.testing import CliRunner, Result

from cli.train import evaluate, train
from machines import generate, write_run
from training.comparison import MARGIN
from worker.model.loader import load_checkpoint

HEALTHY = (1, 2, 3)
FAULTS = {4: "spindle_bearing_wear", 5: "spindle_bearing_wear", 6: "coolant_pump_failure"}
FAULTS |= {7: "coolant_pump_failure"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    return app


def _invoke(*args: str | Path) -> Result:
    # Wide enough that no table column wraps its header.
    return CliRunner(env={"COLUMNS": "250"}).invoke(_app(), [str(arg) for arg in args])


def _write(directory: Path, name: str, seed: int, seconds: float, fault: str | None) -> Path:
    faults = [f"{fault}@0s:step:1:1h"] if fault else []
    run = generate("cnc_machine", duration_s=seconds, faults=faults, seed=seed)
    return write_run(run, directory / f"{name}.parquet")


@pytest.fixture(scope="module")
def run_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Seven 10-minute CNC runs, each one condition throughout: three healthy, two with a
    worn spindle bearing, two with a failed coolant pump (faults at full effect from 0 s)."""
    directory = tmp_path_factory.mktemp("runs")
    paths = [_write(directory, f"healthy_{seed}", seed, 600, None) for seed in HEALTHY]
    paths += [_write(directory, f"{f}_{seed}", seed, 600, f) for seed, f in FAULTS.items()]
    return paths


@dataclass(frozen=True)
class Trained:
    result: Result
    checkpoint: Path
    metrics: dict[str, Any]


@pytest.fixture(scope="module")
def trained(run_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One epoch on the run files, two runs held out, a 20-step window at 0.5 Hz, --strict.

    Inputs scaled by the spec's normal ranges (one training, not the auto choice between two,
    which test_input_quantiles.py covers): on these windows the forest is then near perfect,
    which the --strict test relies on."""
    out = tmp_path_factory.mktemp("out")
    data = [arg for path in run_files for arg in ("--data", path)]
    result = _invoke(
        "train", *data, "--epochs", "1", "--threads", "1", "--val-runs", "2",
        "--window-steps", "20", "--rate", "0.5", "--stride", "10", "--version", "1",
        "--input-scaling", "range", "--strict", "--out", out,
    )  # fmt: skip
    metrics = json.loads((out / "universal.metrics.json").read_text("utf-8"))
    return Trained(result, out / "universal.gnnckpt", metrics)


def test_validation_holds_out_whole_runs_never_trained_on(
    trained: Trained, run_files: list[Path]
) -> None:
    split = trained.metrics["training"]["data"]["files"]["split"]
    assert split["method"] == "runs"
    assert len(split["val_runs"]) == 2
    assert set(split["val_runs"]).isdisjoint(split["train_runs"])
    assert set(split["val_runs"]) | set(split["train_runs"]) == {p.name for p in run_files}
    roles = {
        row["file"]: row["role"] for row in trained.metrics["training"]["data"]["files"]["runs"]
    }
    assert {name for name, role in roles.items() if role == "validation"} == set(split["val_runs"])
    assert "2 of 7 runs held out whole" in trained.result.stdout
    # Both validation runs have a condition that training runs also have, and they differ.
    conditions = [row["conditions"] for row in trained.metrics["baseline_comparison"]["per_run"]]
    assert len(conditions) == 2
    assert conditions[0] != conditions[1]


def test_the_baseline_stands_beside_the_gnn_in_the_output_the_metrics_and_the_checkpoint(
    trained: Trained,
) -> None:
    out = trained.result.stdout
    assert "GNN and baseline on the same windows" in out
    assert "window anomaly AUROC" in out
    assert "random forest (200 trees, seed 0)" in out
    compared = trained.metrics["baseline_comparison"]
    for model in ("gnn", "baseline"):
        assert 0.0 <= compared[model]["window_anomaly_auroc"] <= 1.0
        assert compared[model]["windows"] == compared["gnn"]["windows"] > 0
    loaded = load_checkpoint(trained.checkpoint)
    assert loaded.metadata.training["baseline_comparison"]["baseline"] == compared["baseline"]
    assert loaded.metadata.metrics["baseline_comparison"]["gnn"] == compared["gnn"]


def test_strict_exits_1_when_the_gnn_is_not_better_than_the_baseline(trained: Trained) -> None:
    # Full-effect faults from 0 s: window statistics rank them almost perfectly, so no GNN
    # can win by the margin (it would need an AUROC above 1).
    compared = trained.metrics["baseline_comparison"]
    assert compared["baseline"]["window_anomaly_auroc"] + MARGIN > 1.0
    assert trained.result.exit_code == 1, trained.result.output
    assert "WARNING: the GNN is not better than the window-statistics baseline" in (
        trained.result.stdout
    )
    assert "must win by at least 0.01" in trained.result.stdout
    assert trained.checkpoint.is_file()  # written before the verdict


def test_window_options_end_up_in_the_checkpoint_contract(trained: Trained) -> None:
    contract = load_checkpoint(trained.checkpoint).contract
    assert (contract.window_steps, contract.sample_rate_hz) == (20, 0.5)
    # Run files alone train the machine recipe: at most 2 forecast steps (a sixth of 20 is 3).
    assert contract.forecast_horizon == 2
    assert "window: 20 steps at 0.5 Hz = 40 s" in trained.result.stdout


def test_evaluate_reports_each_run_beside_the_baseline_refitted_on_the_training_files(
    trained: Trained, run_files: list[Path], tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    data = [arg for path in run_files for arg in ("--data", path)]
    result = _invoke("evaluate", trained.checkpoint, *data, "--json", report_path)
    assert result.exit_code == 0, result.output
    assert "per run (GNN / baseline)" in result.stdout
    assert "refitted on the checkpoint's 5 recorded training run files" in result.stdout
    assert "WARNING: 5 evaluated run(s) were used in training" in result.stdout
    report = json.loads(report_path.read_text("utf-8"))
    rows = report["comparison"]["per_run"]
    assert [row["run"] for row in rows] == [path.name for path in run_files]
    healthy = rows[0]
    assert healthy["conditions"] == ["normal"]
    assert healthy["windows"] > 0
    assert set(healthy["gnn"]) == set(healthy["baseline"])
    assert healthy["gnn"]["runs_scored"] == 1


def test_evaluate_on_the_validation_runs_reproduces_the_figures_of_train(
    trained: Trained, run_files: list[Path], tmp_path: Path
) -> None:
    val = set(trained.metrics["training"]["data"]["files"]["split"]["val_runs"])
    data = [arg for path in run_files if path.name in val for arg in ("--data", path)]
    report_path = tmp_path / "report.json"
    result = _invoke(
        "evaluate", trained.checkpoint, *data, "--stride", "10", "--json", report_path, "--strict"
    )
    report = json.loads(report_path.read_text("utf-8"))
    # The same windows, the same baseline (recorded files and seed): the same figures.
    assert report["comparison"]["baseline"] == trained.metrics["baseline_comparison"]["baseline"]
    assert report["comparison"]["gnn"] == trained.metrics["baseline_comparison"]["gnn"]
    assert "WARNING: 0 evaluated" not in result.stdout
    assert result.exit_code == 1  # --strict: the GNN still loses


def test_healthy_only_data_explains_undefined_metrics_instead_of_nan(
    trained: Trained, run_files: list[Path]
) -> None:
    result = _invoke("evaluate", trained.checkpoint, "--data", run_files[0], "--data", run_files[1])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "window anomaly AUROC: undefined, the evaluated data has no faulty window" in out
    assert "fault macro-F1: undefined, the evaluated data has no faulty component" in out
    assert "undefined: no component is faulty in these windows" in out
    assert "nan" not in out
    # No F1 of 1.000 over healthy windows: the compared rows show what is undefined instead.
    compared = [line for line in out.splitlines() if line.startswith(("│ GNN", "│ basel"))]
    assert compared
    assert not any("1.000" in line for line in compared)
    assert "fault label right, per component" in out


def test_a_healthy_only_validation_and_a_short_run_are_said_in_words(tmp_path: Path) -> None:
    files = [_write(tmp_path, f"healthy_{seed}", seed, 240, None) for seed in (1, 2)]
    files.append(_write(tmp_path, "stub", 9, 30, None))
    data = [arg for path in files for arg in ("--data", path)]
    result = _invoke(
        "train", *data, "--epochs", "1", "--threads", "1", "--window-steps", "60",
        "--stride", "60", "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "run files: 2 of 3 give windows" in out
    assert (
        "stub.parquet: 30 s long gives no window; the window needs 60 s (60 steps at 1 Hz)" in out
    )
    assert "window anomaly AUROC: undefined, validation has no faulty window" in out
    assert "nan" not in out


def test_runs_shorter_than_the_window_fail_with_what_is_needed(tmp_path: Path) -> None:
    files = [_write(tmp_path, f"stub_{seed}", seed, 30, None) for seed in (1, 2)]
    data = [arg for path in files for arg in ("--data", path)]
    result = _invoke("train", *data, "--window-steps", "60", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: no run gives a window: runs are 30 s long; the model's window is 60 steps at "
        "1 Hz = 60 s; pass --window-steps 30 or fewer, or longer runs"
    )


def test_the_default_window_shrinks_to_the_shortest_run(tmp_path: Path) -> None:
    files = [_write(tmp_path, "stub", 1, 30, None), _write(tmp_path, "long", 2, 600, None)]
    data = [arg for path in files for arg in ("--data", path)]
    result = _invoke("train", *data, "--epochs", "1", "--threads", "1", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "window: 30 steps instead of 60: the shortest run, stub.parquet, is 30 s long" in out
    assert "rate: the run files' rate, 1 Hz" in out
    contract = load_checkpoint(tmp_path / "o" / "universal.gnnckpt").contract
    # The machine recipe (run files alone): a sixth of 30 steps would be 5, it keeps 2.
    assert (contract.window_steps, contract.sample_rate_hz, contract.forecast_horizon) == (
        30,
        1.0,
        2,
    )


def test_one_run_file_is_split_in_time_with_a_gap_of_a_window(tmp_path: Path) -> None:
    path = _write(tmp_path, "only", 3, 600, None)
    result = _invoke(
        "train", "--data", path, "--epochs", "1", "--threads", "1", "--out", tmp_path / "o"
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "only one run file (only.parquet), so it is split in time" in out
    split = json.loads((tmp_path / "o" / "universal.metrics.json").read_text("utf-8"))
    split = split["training"]["data"]["files"]["split"]
    assert split["method"] == "chronological"
    assert split["train_runs"] == ["only.parquet (until 419 s)"]
    assert split["val_runs"] == ["only.parquet (from 480 s)"]
