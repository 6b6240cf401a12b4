"""The SKAB adapter and benchmark: split, no test leakage, metrics, input errors, end to end.

Synthetic files are written in SKAB's own format; where the real data set is present
(../shared/data/skab) the adapter is also checked against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from schemas.spec import load_spec
from training.benchmarks.skab.dataset import (
    ANOMALY_FREE_HEADER,
    EXPERIMENT_HEADER,
    EXPERIMENTS,
    read_experiments,
    read_recording,
    rig_spec,
    spec_yaml,
    split,
)
from training.benchmarks.skab.report import plot_scores, result, save_model, serving_spec
from training.benchmarks.skab.run import SkabBenchConfig, SkabRun, run_skab_benchmark
from training.benchmarks.skab.scoring import point_metrics, trailing_mean
from worker.model import ModelConfig, load_checkpoint

REAL_DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "skab"
FILES = ("valve1/0", "other/2")
# Typical levels of the eight sensors, in file order.
LEVELS = np.array([0.21, 0.27, 2.0, 0.4, 80.0, 27.0, 230.0, 120.0])
NOISE = np.array([0.005, 0.006, 0.3, 0.2, 0.5, 0.1, 3.0, 2.0])


def _write(
    path: Path, values: np.ndarray, labels: np.ndarray | None, header: tuple[str, ...]
) -> None:
    """A file in SKAB's format: ``;``-separated, a datetime column first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [";".join(header)]
    for row, readings in enumerate(values):
        cells = [f"2020-03-09 10:{row // 60 % 60:02d}:{row % 60:02d}"]
        cells += [repr(float(v)) for v in readings]
        if labels is not None:
            cells += [f"{float(labels[row])}", "0.0"]
        lines.append(";".join(cells))
    path.write_text("\n".join(lines) + "\n")


def _synthetic_rig(root: Path, rows: int = 160, seed: int = 0) -> Path:
    """Two experiments (a flow drop from row 110 to 140) and an anomaly-free file."""
    rng = np.random.default_rng(seed)
    for name in FILES:
        values = LEVELS + NOISE * rng.standard_normal((rows, 8))
        labels = np.zeros(rows)
        labels[110:140] = 1
        values[110:140, 7] -= 40.0
        _write(root / f"{name}.csv", values, labels, EXPERIMENT_HEADER)
    free = LEVELS + NOISE * rng.standard_normal((400, 8))
    _write(root / "anomaly-free" / "anomaly-free.csv", free, None, ANOMALY_FREE_HEADER)
    return root


def _tiny_config() -> SkabBenchConfig:
    return SkabBenchConfig(
        train_rows=80,
        experiments=FILES,
        free_chunk_rows=130,
        free_holdout_chunks=1,
        window_steps=12,
        forecast_horizon=3,
        train_stride=4,
        epochs=1,
        batch_size=16,
        model=ModelConfig(hidden=8, layers=1, heads=2, temporal_channels=4, dilations=(1, 2)),
        smoothing_steps=3,
    )


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _synthetic_rig(tmp_path_factory.mktemp("skab"))


@pytest.fixture(scope="module")
def tiny_run(rig: Path) -> SkabRun:
    return run_skab_benchmark(_tiny_config(), rig)


# --- split -------------------------------------------------------------------------------


def test_row_400_is_the_first_test_row_and_row_399_the_last_training_row(tmp_path: Path) -> None:
    values = np.arange(450, dtype=float)[:, None] + np.zeros(8)
    _write(tmp_path / "valve1" / "0.csv", values, np.zeros(450), EXPERIMENT_HEADER)
    recording = read_recording(tmp_path / "valve1" / "0.csv")
    part = split(recording, 400)
    assert part.train.shape == (400, 8)
    assert part.test.shape == (50, 8)
    assert part.train[-1, 0] == 399.0
    assert part.test[0, 0] == 400.0
    assert len(part.test_labels) == 50
    shorter = split(recording, 100)
    assert shorter.train[-1, 0] == 99.0
    assert shorter.test[0, 0] == 100.0


def test_a_prefix_that_leaves_no_test_row_is_refused_naming_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "valve1" / "0.csv", np.zeros((50, 8)), np.zeros(50), EXPERIMENT_HEADER)
    recording = read_recording(tmp_path / "valve1" / "0.csv")
    with pytest.raises(ValueError, match=r"valve1/0\.csv: --train-rows 50"):
        split(recording, 50)


def test_train_rows_decides_the_calibration_and_the_scored_rows(
    rig: Path, tiny_run: SkabRun
) -> None:
    assert [item.train_rows for item in tiny_run.data.experiments] == [80, 80]
    assert all(len(f.alarms()) == 160 - 80 for f in tiny_run.files.values())
    assert tiny_run.results["gnn"]["test_rows"] == 2 * (160 - 80)
    prefix = read_recording(rig / "valve1" / "0.csv").values[:80]
    expected = rig_spec("x", prefix).sensors
    assert [s.normal for s in tiny_run.data.experiments[0].spec.sensors] == [
        s.normal for s in expected
    ]


# --- no test row reaches fitting -----------------------------------------------------------


def test_poisoned_test_rows_change_no_weight_range_scale_or_threshold(
    rig: Path, tiny_run: SkabRun, tmp_path: Path
) -> None:
    poisoned = tmp_path / "poisoned"
    train_rows = tiny_run.config.train_rows
    for name in FILES:
        recording = read_recording(rig / f"{name}.csv")
        values = recording.values.copy()
        values[train_rows::2] = 1e9  # absurd readings in every other test row...
        values[train_rows + 1 :: 2] = np.nan  # ...and missing ones in the rest
        labels = recording.labels
        assert labels is not None
        flipped = labels.copy()
        flipped[train_rows:] = 1 - flipped[train_rows:]
        _write(poisoned / f"{name}.csv", values, flipped, EXPERIMENT_HEADER)
    free = rig / "anomaly-free" / "anomaly-free.csv"
    (poisoned / "anomaly-free").mkdir()
    (poisoned / "anomaly-free" / "anomaly-free.csv").write_bytes(free.read_bytes())

    other = run_skab_benchmark(tiny_run.config, poisoned)

    for clean, dirty in zip(tiny_run.data.experiments, other.data.experiments, strict=True):
        assert clean.spec == dirty.spec
    before = tiny_run.detector.model.state_dict()
    after = other.detector.model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert tiny_run.detector.contract == other.detector.contract
    for name in FILES:
        assert tiny_run.files[name].threshold == other.files[name].threshold
        np.testing.assert_array_equal(
            tiny_run.files[name].score[:train_rows], other.files[name].score[:train_rows]
        )
    assert not np.array_equal(
        tiny_run.files[FILES[0]].score[train_rows:], other.files[FILES[0]].score[train_rows:]
    )


def test_pca_baseline_limits_come_from_the_prefix_only() -> None:
    from training.benchmarks.skab.scoring import fit_pca

    rng = np.random.default_rng(1)
    values = LEVELS + NOISE * rng.standard_normal((120, 8))
    poisoned = values.copy()
    poisoned[100:] = 1e9
    clean_fit = fit_pca(values[:100], 0.9, 0.99, seed=0)
    dirty_fit = fit_pca(poisoned[:100], 0.9, 0.99, seed=0)
    assert clean_fit.t2_limit == dirty_fit.t2_limit
    assert clean_fit.q_limit == dirty_fit.q_limit


# --- metrics ------------------------------------------------------------------------------


def test_point_metrics_match_a_hand_count() -> None:
    # labels 1 1 1 1 0 0 0 0 0 0; alarms 1 1 1 0 1 0 0 0 0 0 -> TP 3, FN 1, FP 1, TN 5.
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    alarms = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    metrics = point_metrics(labels, alarms)
    assert metrics["f1"] == pytest.approx(6 / 8)  # 2 TP / (2 TP + FP + FN)
    assert metrics["far_pct"] == pytest.approx(100 / 6)  # FP / (FP + TN)
    assert metrics["mar_pct"] == pytest.approx(25.0)  # FN / (FN + TP)
    assert metrics["precision"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(0.75)


def test_point_metrics_without_alarms_or_anomalies_are_zero_not_nan() -> None:
    silent = point_metrics(np.array([1, 1, 0]), np.array([0, 0, 0]))
    assert silent == {"f1": 0.0, "far_pct": 0.0, "mar_pct": 100.0, "precision": 0.0, "recall": 0.0}
    calm = point_metrics(np.array([0, 0]), np.array([1, 0]))
    assert calm["far_pct"] == pytest.approx(50.0)
    assert calm["mar_pct"] == 0.0


def test_trailing_mean_reads_only_the_past() -> None:
    series = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(trailing_mean(series, 2), [1.0, 2.0, 4.0, 6.0])
    changed = series.copy()
    changed[3] = 1e9
    np.testing.assert_array_equal(trailing_mean(changed, 2)[:3], trailing_mean(series, 2)[:3])


# --- input errors ---------------------------------------------------------------------------


def test_a_wrong_header_names_the_file_and_the_missing_column(tmp_path: Path) -> None:
    header = tuple(c for c in EXPERIMENT_HEADER if c != "Pressure")
    path = tmp_path / "valve2" / "1.csv"
    _write(path, np.zeros((3, 7)), np.zeros(3), header)
    with pytest.raises(ValueError, match="expected") as caught:
        read_recording(path)
    message = str(caught.value)
    assert str(path) in message
    assert "missing: Pressure" in message


def test_a_missing_file_and_a_bad_cell_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"other/3\.csv: SKAB file not found"):
        read_experiments(tmp_path, ["other/3"])
    path = tmp_path / "valve1" / "0.csv"
    _write(path, np.zeros((2, 8)), np.zeros(2), EXPERIMENT_HEADER)
    path.write_text(path.read_text().replace("0.0", "n/a", 1))
    with pytest.raises(ValueError, match=r"row 2, column 'Accelerometer1RMS': 'n/a'"):
        read_recording(path)


def test_the_cli_reports_a_missing_data_directory_as_a_bad_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.benchmark import benchmark_app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"COLUMNS": "200"})
    outcome = runner.invoke(benchmark_app, ["skab", "--data-dir", "none"])
    assert outcome.exit_code == 2
    assert "none/valve1/0.csv: SKAB file not found" in outcome.output
    assert not (tmp_path / "benchmarks").exists()


# --- end to end -------------------------------------------------------------------------------


def test_a_tiny_run_writes_a_complete_result_a_servable_model_and_a_plot(
    rig: Path, tiny_run: SkabRun, tmp_path: Path
) -> None:
    document = result(tiny_run, command="gnn-service benchmark skab", data_dir=rig)
    assert list(document) == [
        "benchmark",
        "created_at",
        "git_sha",
        "command",
        "machine",
        "config",
        "results",
        "baselines",
        "published",
        "ratios",
    ]
    gnn = document["results"]["gnn"]
    assert {"f1", "far_pct", "mar_pct", "training_s", "test_rows"} <= set(gnn)
    assert {"f1", "far_pct", "mar_pct"} <= set(document["baselines"]["pca_t2_q"])
    assert document["published"]["conv_ae"]["f1"] == 0.78
    assert "waico/SKAB" in document["published"]["conv_ae"]["source"]
    assert document["config"]["train_rows"] == 80
    assert document["config"]["seed"] == 0
    assert set(document["ratios"]) == {"f1_vs_best_published", "f1_vs_pca_baseline"}

    spec = serving_spec(rig)
    (tmp_path / "rig.yaml").write_text(spec_yaml(spec))
    assert load_spec(tmp_path / "rig.yaml") == spec
    save_model(tiny_run, tmp_path / "skab.gnnckpt", spec)
    loaded = load_checkpoint(tmp_path / "skab.gnnckpt")
    assert loaded.metadata.systems == {"skab-pump-rig": ("normal",)}
    assert loaded.contract == tiny_run.detector.contract
    plot_scores(tiny_run, tmp_path / "scores.png", FILES)
    assert (tmp_path / "scores.png").stat().st_size > 0


def test_the_same_seed_gives_the_same_scores(rig: Path, tiny_run: SkabRun) -> None:
    again = run_skab_benchmark(tiny_run.config, rig)
    assert again.results["gnn"]["f1"] == tiny_run.results["gnn"]["f1"]
    for name in FILES:
        np.testing.assert_array_equal(again.files[name].score, tiny_run.files[name].score)


# --- the real data set -------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="SKAB data not present")
def test_the_real_files_parse_and_split_at_row_400() -> None:
    recordings = read_experiments(REAL_DATA, EXPERIMENTS)
    assert len(recordings) == 34
    assert all(r.rows > 400 and r.labels is not None for r in recordings)
    first = recordings[0]
    part = split(first, 400)
    assert part.train[-1].tolist() == first.values[399].tolist()
    assert part.test[0].tolist() == first.values[400].tolist()
    other2 = recordings[EXPERIMENTS.index("other/2")]
    assert other2.labels is not None
    assert other2.labels[:400].any()
    spec = load_spec(
        Path(__file__).resolve().parents[3] / "training/benchmarks/skab/specs/skab_pump_rig.yaml"
    )
    assert spec == serving_spec(REAL_DATA)
