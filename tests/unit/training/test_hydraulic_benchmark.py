"""UCI hydraulic benchmark: files, groups, folds, labels, metrics, no test leakage, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import typer
from typer.testing import CliRunner

from cli.benchmark_data import hydraulic
from training.benchmarks.hydraulic import run as bench_hydraulic
from training.benchmarks.hydraulic.baseline import cycle_features
from training.benchmarks.hydraulic.dataset import (
    SENSORS,
    TARGET_NAMES,
    TARGETS,
    HydraulicData,
    condition_runs,
    fit_normal_ranges,
    hydraulic_spec,
    label_indices,
    load_hydraulic,
)
from training.benchmarks.hydraulic.protocol import grouped_folds, random_folds
from training.benchmarks.hydraulic.report import plot_accuracy
from training.benchmarks.hydraulic.run import (
    BASELINE,
    HydraulicBenchConfig,
    component_labels,
    run_hydraulic_benchmark,
)
from training.metrics import accuracy, macro_f1
from worker.model import ModelConfig

REAL_DATA = Path(__file__).resolve().parents[3].parent / "shared/data/uci_hydraulic_1hz"

# (cooler, valve, pump, accumulator) settings cycled through by the synthetic runs.
_SETTINGS = [(100, 100, 0, 130), (20, 90, 1, 115), (3, 80, 2, 100), (100, 73, 0, 90)]


def _write_rig(directory: Path, *, runs: int = 8, run_length: int = 5, seed: int = 0) -> Path:
    """Synthetic files in the UCI format: ``runs`` runs of ``run_length`` cycles each."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in range(runs):
        cooler, valve, pump, accumulator = _SETTINGS[run % len(_SETTINGS)]
        for position in range(run_length):
            rows.append([cooler, valve, pump, accumulator, int(position < 2)])
    profile = np.array(rows)
    (directory / "profile.txt").write_text(
        "".join("\t".join(str(v) for v in row) + "\n" for row in profile)
    )
    for index, sensor in enumerate(SENSORS):
        values = 40.0 + index + rng.normal(size=(len(rows), 60))
        values += 0.05 * profile[:, index % 4][:, None]
        text = "".join("\t".join(f"{v:.3f}" for v in row) + "\n" for row in values)
        (directory / f"{sensor.id}.txt").write_text(text)
    return directory


def _tiny_config(**changes: Any) -> HydraulicBenchConfig:
    # Without identity embeddings and component messages, as the benchmark's own model.
    model = ModelConfig(
        hidden=8, layers=1, heads=2, dropout=0.0, temporal_channels=4, dilations=(1, 2),
        identity_buckets=0, component_messages=False,
    )  # fmt: skip
    values: dict[str, Any] = {
        "folds": 2,
        "epochs": 1,
        "batch_size": 16,
        "model": model,
        "baseline_trees": 5,
    }
    return HydraulicBenchConfig(**{**values, **changes})


def _ignore(stage: str, done: int, total: int) -> None:
    del stage, done, total


# --- groups and folds ---------------------------------------------------------------------


def test_condition_runs_start_a_group_at_every_change_but_not_at_the_stable_flag() -> None:
    profile = np.array(
        [
            [3, 100, 0, 130, 1],
            [3, 100, 0, 130, 0],  # only the stable flag changes: same run
            [3, 100, 0, 115, 0],
            [3, 100, 0, 115, 0],
            [20, 100, 0, 115, 0],
            [3, 100, 0, 130, 0],  # a setting seen before, after another: a new run
        ]
    )
    assert condition_runs(profile).tolist() == [0, 0, 1, 1, 2, 3]


def test_grouped_folds_never_split_a_run_and_are_reproducible() -> None:
    groups = np.repeat(np.arange(40), np.arange(40) % 7 + 1)
    fold = grouped_folds(groups, 5, seed=3)
    for group in range(40):
        assert np.unique(fold[groups == group]).size == 1
    assert set(fold.tolist()) == set(range(5))
    assert np.array_equal(fold, grouped_folds(groups, 5, seed=3))
    assert not np.array_equal(fold, grouped_folds(groups, 5, seed=4))


def test_grouped_folds_refuse_fewer_groups_than_folds() -> None:
    with pytest.raises(ValueError, match="3 groups cannot fill 5 folds"):
        grouped_folds(np.array([0, 0, 1, 2]), 5, seed=0)


def test_random_folds_are_balanced_and_seeded() -> None:
    fold = random_folds(23, 5, seed=1)
    assert sorted(np.bincount(fold).tolist()) == [4, 4, 5, 5, 5]
    assert np.array_equal(fold, random_folds(23, 5, seed=1))


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="UCI hydraulic data not present")
def test_real_data_has_the_documented_cycles_runs_and_class_counts() -> None:
    data = load_hydraulic(REAL_DATA)
    groups = condition_runs(data.profile)
    sizes = np.bincount(groups)
    assert data.readings.shape == (2205, 8, 60)
    assert (sizes.size, float(np.median(sizes))) == (194, 10.0)
    assert np.bincount(data.labels["cooler"]).tolist() == [741, 732, 732]
    assert np.bincount(data.labels["valve"]).tolist() == [1125, 360, 360, 360]
    assert np.bincount(data.labels["pump"]).tolist() == [1221, 492, 492]
    assert np.bincount(data.labels["accumulator"]).tolist() == [599, 399, 399, 808]
    assert np.bincount(data.labels["stable"]).tolist() == [1449, 756]
    fold = grouped_folds(groups, 5, seed=0)
    for group in range(sizes.size):
        assert np.unique(fold[groups == group]).size == 1


# --- labels and topology ------------------------------------------------------------------


def test_label_indices_put_the_optimal_condition_first_and_faults_in_spec_order() -> None:
    profile = np.array(
        [[100, 100, 0, 130, 0], [20, 90, 1, 115, 1], [3, 80, 2, 100, 0], [3, 73, 2, 90, 1]]
    )
    labels = label_indices(profile)
    assert labels["cooler"].tolist() == [0, 1, 2, 2]
    assert labels["valve"].tolist() == [0, 1, 2, 3]
    assert labels["pump"].tolist() == [0, 1, 2, 2]
    assert labels["accumulator"].tolist() == [0, 1, 2, 3]
    assert labels["stable"].tolist() == [0, 1, 0, 1]

    spec = hydraulic_spec({sensor.id: (0.0, 1.0) for sensor in SENSORS})
    for target in TARGETS:
        faults = [f.id for f in spec.fault_modes_of(target.component)]
        assert faults == list(target.faults)  # class k is the k-th fault mode
        sets = [frozenset(f.affected_sensors) for f in spec.fault_modes_of(target.component)]
        assert len(set(sets)) == len(sets)  # the fault head can tell them apart


def test_component_labels_place_each_target_on_its_component() -> None:
    profile = np.array([[20, 80, 1, 90, 1]])
    data = HydraulicData(
        readings=np.zeros((1, 8, 60)),
        profile=profile,
        labels=label_indices(profile),
        source=Path("."),
    )
    spec = hydraulic_spec({sensor.id: (0.0, 1.0) for sensor in SENSORS})
    row = dict(zip(spec.component_ids, component_labels(data)[0].tolist(), strict=True))
    assert row == {"cooler": 1, "valve": 2, "pump": 1, "accumulator": 3, "tank": 1}


def test_a_value_outside_the_documented_conditions_names_file_line_and_column(
    tmp_path: Path,
) -> None:
    directory = _write_rig(tmp_path / "rig")
    lines = (directory / "profile.txt").read_text().splitlines()
    lines[2] = "3\t85\t0\t130\t0"
    (directory / "profile.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"profile\.txt: line 3, column 2 \(valve\): value 85"):
        load_hydraulic(directory)


# --- file format errors -------------------------------------------------------------------


def test_a_missing_sensor_file_is_named(tmp_path: Path) -> None:
    directory = _write_rig(tmp_path / "rig")
    (directory / "VS1.txt").unlink()
    with pytest.raises(ValueError, match=r"VS1\.txt: file not found"):
        load_hydraulic(directory)


def test_a_short_row_names_file_and_line(tmp_path: Path) -> None:
    directory = _write_rig(tmp_path / "rig")
    lines = (directory / "CE.txt").read_text().splitlines()
    lines[4] = "\t".join(lines[4].split("\t")[:59])
    (directory / "CE.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"CE\.txt: line 5: expected 60 tab-separated values"):
        load_hydraulic(directory)


def test_a_word_among_numbers_names_file_line_and_column(tmp_path: Path) -> None:
    directory = _write_rig(tmp_path / "rig")
    lines = (directory / "SE.txt").read_text().splitlines()
    fields = lines[0].split("\t")
    fields[6] = "n/a"
    lines[0] = "\t".join(fields)
    (directory / "SE.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"SE\.txt: line 1, column 7: 'n/a' is not a number"):
        load_hydraulic(directory)


def test_files_of_different_lengths_are_named(tmp_path: Path) -> None:
    directory = _write_rig(tmp_path / "rig")
    lines = (directory / "TS3.txt").read_text().splitlines()
    (directory / "TS3.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"TS3\.txt: 39 cycles, but .*profile\.txt has 40"):
        load_hydraulic(directory)


# --- metrics and features -----------------------------------------------------------------


def test_accuracy_and_macro_f1_match_hand_computed_values() -> None:
    truth = np.array([0, 1, 1, 2])
    predicted = np.array([0, 1, 2, 2])
    assert accuracy(truth, predicted) == 0.75
    # F1 per class: 0 -> 1, 1 -> 2*1/(1+2), 2 -> 2*1/(2+1).
    assert macro_f1(truth, predicted) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    # A class only predicted counts with F1 0; a class in neither is not scored.
    assert macro_f1(np.array([0, 0]), np.array([0, 3])) == pytest.approx((2 / 3 + 0) / 2)


def test_cycle_features_of_a_ramp() -> None:
    ramp = np.tile(np.arange(60.0), (1, 8, 1))
    features = cycle_features(ramp).reshape(7, 8)
    mean, std, low, high, first, last, slope = features[:, 0]
    assert (mean, low, high, first, last) == (29.5, 0.0, 59.0, 0.0, 59.0)
    assert std == pytest.approx(np.arange(60.0).std())
    assert slope == pytest.approx(1.0)


# --- nothing fitted on test cycles --------------------------------------------------------


def _marked(data: HydraulicData) -> HydraulicData:
    """The data with each cycle's id written into its first TS1 sample."""
    readings = data.readings.copy()
    readings[:, 0, 0] = 1000.0 + np.arange(data.num_cycles)
    return HydraulicData(readings, data.profile, data.labels, data.source)


def _ids(readings: npt.NDArray[np.float64]) -> set[int]:
    return {int(v) - 1000 for v in readings[:, 0, 0]}


def test_normal_ranges_samples_and_forests_use_training_cycles_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _marked(load_hydraulic(_write_rig(tmp_path / "rig")))
    seen: dict[str, list[Any]] = {"ranges": [], "gnn": [], "forest": []}

    def spy(name: str, real: Callable[..., Any], record: Callable[..., Any]) -> None:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen[name].append(record(*args))
            return real(*args, **kwargs)

        monkeypatch.setattr(bench_hydraulic, real.__name__, wrapper)

    spy("ranges", fit_normal_ranges, _ids)
    spy("gnn", bench_hydraulic.train_gnn, lambda samples, labels, *_: (len(samples), labels))
    spy("forest", bench_hydraulic.baseline_predictions, lambda train, test: _ids(train.readings))

    run_hydraulic_benchmark(data, _tiny_config(), command="test", tick=_ignore)

    groups = condition_runs(data.profile)
    expected = []
    for fold in (grouped_folds(groups, 2, seed=0), random_folds(data.num_cycles, 2, seed=0)):
        expected += [np.flatnonzero(fold != k) for k in range(2)]
    assert seen["ranges"] == [set(rows.tolist()) for rows in expected]
    assert seen["forest"] == [set(rows.tolist()) for rows in expected]
    every = component_labels(data)
    for (count, labels), rows in zip(seen["gnn"], expected, strict=True):
        assert count == rows.size
        assert np.array_equal(labels, every[rows])


def test_changing_test_cycles_leaves_the_fitted_normal_ranges_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_hydraulic(_write_rig(tmp_path / "rig"))
    fold = grouped_folds(condition_runs(data.profile), 2, seed=0)
    changed = data.readings.copy()
    changed[fold == 1] *= 100.0  # fold 1's test cycles, fold 0's training cycles
    other = HydraulicData(changed, data.profile, data.labels, data.source)
    fitted: list[dict[str, tuple[float, float]]] = []
    real = fit_normal_ranges

    def recording(readings: npt.NDArray[np.float64]) -> dict[str, tuple[float, float]]:
        fitted.append(real(readings))
        return fitted[-1]

    monkeypatch.setattr(bench_hydraulic, "fit_normal_ranges", recording)
    config = _tiny_config(schemes=("grouped",))
    run_hydraulic_benchmark(data, config, command="a", tick=_ignore)
    run_hydraulic_benchmark(other, config, command="b", tick=_ignore)
    first_fold0, first_fold1, second_fold0, second_fold1 = fitted
    assert first_fold1 == second_fold1  # trained on fold 0, tested on the changed cycles
    assert first_fold0 != second_fold0  # trained on the changed cycles


# --- end to end ---------------------------------------------------------------------------


def test_a_tiny_run_writes_the_result_document_and_is_reproducible(tmp_path: Path) -> None:
    data = load_hydraulic(_write_rig(tmp_path / "rig"))
    ticks: list[tuple[str, int, int]] = []
    document = run_hydraulic_benchmark(
        data,
        _tiny_config(),
        command="gnn-service benchmark hydraulic",
        tick=lambda *a: ticks.append(a),
    )
    again = run_hydraulic_benchmark(data, _tiny_config(), command="x", tick=_ignore)

    assert document["benchmark"] == "hydraulic"
    assert set(document) >= {"config", "results", "baselines", "published", "ratios", "per_fold"}
    assert set(document["results"]) == {"gnn_grouped", "gnn_random"}
    assert set(document["baselines"]) == {f"{BASELINE}_grouped", f"{BASELINE}_random"}
    for metrics in (*document["results"].values(), *document["baselines"].values()):
        for name in TARGET_NAMES:
            for metric in ("accuracy", "accuracy_std", "macro_f1", "macro_f1_std"):
                assert 0.0 <= metrics[f"{name}_{metric}"] <= 1.0
    assert document["results"]["gnn_grouped"]["training_s"] > 0
    assert document["config"]["condition_runs"] == 8
    assert document["config"]["seed"] == 0
    assert ticks == [
        (f"{scheme} fold {k}/2", 1, 1) for scheme in ("grouped", "random") for k in (1, 2)
    ]
    for scheme in ("grouped", "random"):
        for model in ("gnn", BASELINE):
            assert document["per_fold"][scheme][model] == again["per_fold"][scheme][model]
    json.dumps(document)  # JSON-ready

    plot = tmp_path / "img" / "accuracy.png"
    plot_accuracy(document, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_seed_moves_the_gnn_only(tmp_path: Path) -> None:
    data = load_hydraulic(_write_rig(tmp_path / "rig"))
    config = _tiny_config(schemes=("grouped",), epochs=2)
    default = run_hydraulic_benchmark(data, config, command="a", tick=_ignore)
    same = run_hydraulic_benchmark(data, replace(config, train_seed=0), command="b", tick=_ignore)
    other = run_hydraulic_benchmark(data, replace(config, train_seed=7), command="c", tick=_ignore)

    first, again, moved = (run["per_fold"]["grouped"] for run in (default, same, other))
    assert again["gnn"] == first["gnn"]  # train_seed defaults to seed
    assert moved[BASELINE] == first[BASELINE]
    assert other["config"]["fold_sizes"] == default["config"]["fold_sizes"]
    assert moved["gnn"] != first["gnn"]
    assert other["config"]["train_seed"] == 7


def test_the_command_writes_json_and_plot_and_rejects_a_bad_directory(tmp_path: Path) -> None:
    directory = _write_rig(tmp_path / "rig")
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("hydraulic")(hydraulic)
    app.command("other")(lambda: None)  # keep "hydraulic" a subcommand
    out, plot = tmp_path / "result.json", tmp_path / "plot.png"
    args = ["hydraulic", "--data-dir", str(directory), "--folds", "2", "--epochs", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["benchmark"] == "hydraulic"
    assert plot.is_file()
    assert f"wrote {out}" in result.output

    missing = CliRunner().invoke(
        app, ["hydraulic", "--data-dir", str(tmp_path / "nowhere")], env={"COLUMNS": "300"}
    )
    assert "profile.txt: file not found" in missing.output
