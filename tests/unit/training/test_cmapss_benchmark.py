"""The C-MAPSS adapter and benchmark on small files written in the data set's own format."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from training.benchmarks.cmapss.dataset import (
    SENSORS,
    engine_spec,
    read_cmapss,
    read_rul,
    rul_labels,
    split_units,
)
from training.benchmarks.cmapss.run import (
    CmapssBenchConfig,
    evaluation_set,
    phm08_score,
    rmse,
    run_cmapss_benchmark,
    validation_cuts,
)

# One FD001 row's 3 settings and 21 sensors (train_FD001.txt, unit 1, cycle 1).
_HEALTHY = [-0.0007, -0.0004, 100.0, 518.67, 641.82, 1589.70, 1400.60, 14.62, 21.61, 554.36]
_HEALTHY += [2388.06, 9046.19, 1.30, 47.47, 521.66, 2388.02, 8138.62, 8.4195, 0.03, 392]
_HEALTHY += [2388, 100.00, 39.06, 23.4190]
# How far each sensor drifts by failure (T24, T30, T50, P30, Ps30, phi, BPR, W31, W32, ...).
_DRIFT = np.zeros(24)
_DRIFT[[4, 5, 6, 8, 13, 14, 17, 19, 21, 22]] = [1.5, 20, 30, -4, 1.2, -5, 0.2, 6, -1, -0.6]


def _engine_rows(unit: int, cycles: int, rng: np.random.Generator) -> list[str]:
    """An engine that drifts quadratically towards failure, with sensor noise."""
    rows = []
    for cycle in range(1, cycles + 1):
        wear = (cycle / cycles) ** 2
        values = np.array(_HEALTHY) + _DRIFT * wear + rng.normal(0, 0.05, 24) * (_DRIFT != 0)
        rows.append(" ".join([str(unit), str(cycle), *(f"{v:.4f}" for v in values)]) + " ")
    return rows


def _write(path: Path, lengths: dict[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = [row for unit, cycles in lengths.items() for row in _engine_rows(unit, cycles, rng)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    """Eight engines run to failure after 40 to 75 cycles."""
    return _write(tmp_path / "train_FD001.txt", {u: 35 + 5 * u for u in range(1, 9)})


def test_rul_counts_down_to_zero_at_the_last_cycle_and_is_capped(tmp_path: Path) -> None:
    recording = read_cmapss(_write(tmp_path / "one.txt", {7: 130}))

    labels = rul_labels(recording, cap=125)

    assert recording.unit_ids == (7,)
    assert labels[0] == 125  # 129 cycles remain, capped
    assert labels[4] == 125  # exactly 125 remain at cycle 5
    assert labels[5] == 124
    assert labels[-1] == 0
    assert rul_labels(recording, cap=None)[0] == 129


def test_split_keeps_every_unit_on_exactly_one_side_and_is_seeded() -> None:
    units = list(range(1, 101))

    train, held = split_units(units, validation=20, seed=0)

    assert len(held) == 20
    assert len(train) == 80
    assert not set(train) & set(held)
    assert sorted(train + held) == units
    assert split_units(units, validation=20, seed=0) == (train, held)
    assert split_units(units, validation=20, seed=1)[1] != held


def test_nothing_is_learned_from_validation_units(train_file: Path, tmp_path: Path) -> None:
    recording = read_cmapss(train_file)
    train_units, held = split_units(recording.unit_ids, validation=2, seed=0)
    # Same file, but every sensor of the held-out engines reads ten times higher.
    poisoned = []
    for line in train_file.read_text().splitlines():
        fields = line.split()
        if int(fields[0]) in held:
            fields[5:] = [str(float(v) * 10) for v in fields[5:]]
        poisoned.append(" ".join(fields))
    other = tmp_path / "poisoned.txt"
    other.write_text("\n".join(poisoned) + "\n")

    clean = run_cmapss_benchmark(_tiny(), train_path=train_file, command="x")
    dirty = run_cmapss_benchmark(_tiny(), train_path=other, command="x")

    assert engine_spec(read_cmapss(other), train_units) == engine_spec(recording, train_units)
    assert dirty["config"]["normal_ranges"] == clean["config"]["normal_ranges"]
    # Identical training losses: the weights never saw a validation row.
    assert dirty["config"]["epoch_losses"] == clean["config"]["epoch_losses"]
    assert dirty["results"]["gnn"]["validation_rmse"] != clean["results"]["gnn"]["validation_rmse"]
    assert engine_spec(read_cmapss(other), recording.unit_ids) != engine_spec(
        recording, train_units
    )


def test_spec_puts_every_sensor_on_its_engine_module(train_file: Path) -> None:
    spec = engine_spec(read_cmapss(train_file), (1, 2, 3))

    assert spec.sensor_ids == tuple(sensor.id for sensor in SENSORS)
    assert spec.sensor("t30").component == "hpc"
    assert spec.sensor("nf").component == "low_spool"
    assert spec.sensor("w31").unit == "kg/s"
    shafts = {(c.source, c.target) for c in spec.connections if c.type == "mechanical_shaft"}
    assert {("lpt", "low_spool"), ("low_spool", "fan"), ("hpt", "high_spool")} <= shafts
    assert {s.kind for s in spec.sensors} == {"temperature", "pressure", "speed", "flow", "other"}


def test_test_protocol_scores_each_unit_at_its_last_cycle(tmp_path: Path) -> None:
    test = read_cmapss(_write(tmp_path / "test_FD001.txt", {1: 31, 2: 45, 3: 33}))
    rul_path = tmp_path / "RUL_FD001.txt"
    rul_path.write_text("112\n98\n69\n")

    truth = read_rul(rul_path, units=len(test.unit_ids))
    evaluation = evaluation_set(test, test.unit_ids, test.last_rows(), truth)

    assert test.last_rows().tolist() == [30, 75, 108]
    assert evaluation.truth.tolist() == [112, 98, 69]
    # Earlier cycles of unit 2 are further from failure by the cycles still to come.
    unit2 = evaluation.row_truth[test.unit[evaluation.rows] == 2]
    assert unit2[0] == 98 + 44
    assert unit2[-1] == 98


def test_rul_file_with_another_unit_count_is_refused_naming_it(tmp_path: Path) -> None:
    rul_path = tmp_path / "RUL_FD001.txt"
    rul_path.write_text("112\n98\n")

    with pytest.raises(ValueError, match=r"RUL_FD001\.txt: 2 RUL values for 3 test units"):
        read_rul(rul_path, units=3)


def test_rmse_and_phm08_score_match_hand_computed_values() -> None:
    predicted, true = [10.0, 20.0, 30.0], [12.0, 15.0, 30.0]  # d = -2 (early), +5 (late), 0

    assert rmse(predicted, true) == pytest.approx(math.sqrt((4 + 25 + 0) / 3))
    expected = (math.exp(2 / 13) - 1) + (math.exp(5 / 10) - 1) + 0.0
    assert phm08_score(predicted, true) == pytest.approx(expected)
    # Late predictions cost more than early ones by the same margin.
    assert phm08_score([20.0], [10.0]) > phm08_score([0.0], [10.0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1 1 0.1 0.2\n", r"line 1 has 4 columns, expected 26"),
        ("1 1 " + " ".join(["x"] * 24) + "\n", r"line 1 has a value that is not a number"),
        ("1 2 " + " ".join(["1"] * 24) + "\n", r"line 1: unit 1 cycle 2, expected 1"),
        ("", r"no data rows"),
    ],
)
def test_bad_files_are_refused_naming_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "train_bad.txt"
    path.write_text(content)

    with pytest.raises(ValueError, match=rf"train_bad\.txt: {message}"):
        read_cmapss(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nowhere\.txt: cannot read C-MAPSS file"):
        read_cmapss(tmp_path / "nowhere.txt")


def test_validation_cut_keeps_at_least_a_window_and_stops_before_failure(
    train_file: Path,
) -> None:
    recording = read_cmapss(train_file)

    cuts = validation_cuts(recording, (1, 8), window=30, max_rul=20, seed=0)

    for unit, row in zip((1, 8), cuts.tolist(), strict=True):
        length = recording.rows_of(unit).size
        assert recording.unit[row] == unit
        assert max(30, length - 20) <= recording.cycle[row] <= length - 1
    again = validation_cuts(recording, (1, 8), window=30, max_rul=20, seed=0)
    assert again.tolist() == cuts.tolist()


def _tiny() -> CmapssBenchConfig:
    return CmapssBenchConfig(
        window=10,
        validation_units=2,
        epochs=1,
        windows_per_epoch=32,
        batch_size=16,
        hidden=8,
        heads=2,
        baseline_iterations=5,
    )


def test_benchmark_run_writes_a_complete_result_document(train_file: Path, tmp_path: Path) -> None:
    plot = tmp_path / "rul.png"
    ticks: list[int] = []

    document = run_cmapss_benchmark(
        _tiny(),
        train_path=train_file,
        command="gnn-service benchmark cmapss",
        plot_path=plot,
        tick=lambda stage, done, total: ticks.append(done),
    )

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
    expected = {
        "validation_rmse",
        "validation_score",
        "validation_rmse_uncapped",
        "validation_score_uncapped",
        "validation_rmse_all_cuts",
        "validation_rmse_all_windows",
        "training_s",
    }
    assert set(document["results"]["gnn"]) == expected
    assert set(document["baselines"]["hist_gradient_boosting"]) == expected
    assert document["config"]["validation_units_list"] == list(
        split_units(tuple(range(1, 9)), validation=2, seed=0)[1]
    )
    assert document["published"]["hagcn"]["test_rmse"] == 11.93
    assert all(np.isfinite(v) for v in document["ratios"].values())
    assert ticks[-1] == 2  # one epoch of two steps
    assert plot.stat().st_size > 0


def test_benchmark_with_test_files_scores_the_test_units(train_file: Path, tmp_path: Path) -> None:
    test_path = _write(tmp_path / "test_FD001.txt", {1: 31, 2: 25, 3: 40}, seed=5)
    rul_path = tmp_path / "RUL_FD001.txt"
    rul_path.write_text("20\n60\n5\n")

    document = run_cmapss_benchmark(
        _tiny(), train_path=train_file, test_path=test_path, rul_path=rul_path, command="x"
    )

    assert document["config"]["evaluation"] == "test"
    assert document["config"]["train_units"] == 8
    assert document["config"]["evaluated_units"] == 3
    assert "test_rmse" in document["results"]["gnn"]


def test_benchmark_refuses_a_test_file_without_its_rul_file(train_file: Path) -> None:
    with pytest.raises(ValueError, match="--test and --rul go together"):
        run_cmapss_benchmark(_tiny(), train_path=train_file, test_path=train_file, command="x")


def test_command_refuses_bad_input_naming_the_problem(train_file: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.benchmark import benchmark_app

    runner = CliRunner(env={"COLUMNS": "400"})  # error panels unwrapped
    alone = runner.invoke(benchmark_app, ["cmapss", "--train", str(train_file), "--test", "t"])
    short = tmp_path / "short.txt"
    short.write_text("1 1 2 3\n")
    bad = runner.invoke(
        benchmark_app, ["cmapss", "--train", str(short), "--out", str(tmp_path / "r.json")]
    )

    assert alone.exit_code == 2
    assert "--test and --rul together" in alone.output
    assert bad.exit_code == 2
    assert f"{short}: line 1 has 4 columns, expected 26" in bad.output
    assert not (tmp_path / "r.json").exists()
