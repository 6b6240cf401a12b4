"""The window-statistics branch: its statistics, its place in the model, and checkpoints
saved before it existed."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from schemas.spec import SystemSpec
from service.errors import ConfigurationError
from worker.model import (
    FeatureContract,
    ModelConfig,
    ModelOutput,
    SpecGraph,
    UniversalTemporalGNN,
    bundled_checkpoints,
    collate,
    encode_window,
    load_checkpoint,
)
from worker.model.statistics import SENSOR_STATISTICS, StatisticsEncoder, sensor_statistics

CONTRACT = FeatureContract()

# Outputs of the bundled model on _reference_windows, computed with the code before the
# statistics branch existed (commit ee73d66); the same on this machine bit for bit.
BUNDLED_MACHINE_HEALTH = [0.9756829, 0.9786012, 0.9683936]
BUNDLED_NORMAL_PROB = [
    0.1043024, 0.5575189, 0.7910504, 0.03856066, 0.2977783, 0.8806707, 0.1423849, 0.1613796,
    0.8492156,
]  # fmt: skip
BUNDLED_SENSOR_ANOMALY = [
    4.448136, 3.718463, 22.70343, 2.998975, 4.384959, 4.343876, 5.540963, 3.413913, 3.46046,
    4.018676, 16.88102, 3.664887, 4.946957, 4.530573, 3.109839, 3.183262, 3.55372, 4.073883,
    26.42997, 3.593154, 4.195569, 3.634724, 3.333594, 5.228006,
]  # fmt: skip
BUNDLED_RUL_HOURS = [
    917.1527, 959.678, 738.4058, 823.7075, 939.777, 789.5494, 869.4993, 897.3538, 603.4655,
]  # fmt: skip


def _reference_windows(spec: SystemSpec) -> list[dict[str, list[float | None]]]:
    rng = np.random.default_rng(20261207)
    windows = []
    for _ in range(3):
        readings: dict[str, list[float | None]] = {}
        for sensor in spec.sensors:
            low, high = sensor.normal
            centre, half = (low + high) / 2, (high - low) / 2
            series = centre + half * rng.uniform(-1.2, 1.2, size=60)
            readings[sensor.id] = [round(float(v), 4) for v in series]
        windows.append(readings)
    return windows


def test_the_statistics_of_a_row_are_those_of_its_observed_values() -> None:
    x = torch.tensor([[1.0, 3.0, 0.0, 2.0, 6.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    stats = sensor_statistics(x, mask)
    assert stats.shape == (2, SENSOR_STATISTICS)
    fraction, mean, std, last, low, high, roughness = stats[0].tolist()
    observed = np.array([1.0, 3.0, 2.0, 6.0])
    assert fraction == pytest.approx(0.8)
    assert mean == pytest.approx(observed.mean())
    assert std == pytest.approx(observed.std(), abs=2e-3)
    assert (last, low, high) == (6.0, 1.0, 6.0)
    # |3 - 1| and |6 - 2|: the pairs across the gap are not differences.
    assert roughness == pytest.approx(3.0)
    assert stats[1].tolist() == [0.0] * SENSOR_STATISTICS


def test_the_encoder_gives_one_finite_vector_per_row_even_for_extreme_windows() -> None:
    torch.manual_seed(0)
    encoder = StatisticsEncoder(16)
    x = torch.tensor([[20.0] * 10, [-20.0, 20.0] * 5, [0.0] * 10])
    mask = torch.tensor([[1.0] * 10, [1.0] * 10, [0.0] * 10])
    out = encoder(x, mask)
    assert out.shape == (3, 16)
    assert torch.isfinite(out).all()


def test_new_models_have_the_branch_and_it_changes_what_they_read(
    tiny_config: ModelConfig, press_spec: SystemSpec
) -> None:
    assert ModelConfig().window_stats
    torch.manual_seed(0)
    model = UniversalTemporalGNN(tiny_config, CONTRACT).eval()
    assert model.statistics is not None
    assert any(key.startswith("statistics.") for key in model.state_dict())
    graph = SpecGraph.build(press_spec, CONTRACT)
    batch = collate(
        [encode_window(graph, w, 1.0, CONTRACT) for w in _reference_windows(press_spec)]
    )
    with torch.inference_mode():
        before = model(batch).machine_health
        torch.nn.init.normal_(model.statistics.mlp[2].weight)
        after = model(batch).machine_health
    assert not torch.equal(before, after)


def test_the_branch_reads_only_the_steps_before_the_forecast_horizon(
    tiny_config: ModelConfig, press_spec: SystemSpec
) -> None:
    torch.manual_seed(0)
    model = UniversalTemporalGNN(tiny_config, CONTRACT).eval()
    graph = SpecGraph.build(press_spec, CONTRACT)
    window = _reference_windows(press_spec)[0]
    changed = {sensor: list(values) for sensor, values in window.items()}
    changed["pump_temp"][-1] = 1000.0  # inside the horizon H: forecast targets only
    with torch.inference_mode():
        first = model(collate([encode_window(graph, window, 1.0, CONTRACT)]))
        second = model(collate([encode_window(graph, changed, 1.0, CONTRACT)]))
    torch.testing.assert_close(first.forecast, second.forecast)
    torch.testing.assert_close(first.machine_health, second.machine_health)


def test_a_config_saved_before_the_flag_builds_the_model_without_the_branch(
    tiny_config: ModelConfig,
) -> None:
    saved = tiny_config.to_dict()
    assert saved["window_stats"] is True
    del saved["window_stats"]
    config = ModelConfig.from_dict(saved)
    assert config.window_stats is False
    model = UniversalTemporalGNN(config, CONTRACT)
    assert model.statistics is None
    assert not any(key.startswith("statistics.") for key in model.state_dict())
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_under_one_seed_the_other_weights_start_the_same_with_or_without_the_branch(
    tiny_config: ModelConfig,
) -> None:
    torch.manual_seed(0)
    with_branch = UniversalTemporalGNN(tiny_config, CONTRACT).state_dict()
    torch.manual_seed(0)
    without = UniversalTemporalGNN(replace(tiny_config, window_stats=False), CONTRACT).state_dict()
    assert set(with_branch) - set(without) == {
        "statistics.mlp.0.weight",
        "statistics.mlp.0.bias",
        "statistics.mlp.2.weight",
        "statistics.mlp.2.bias",
    }
    for key, value in without.items():
        assert torch.equal(with_branch[key], value), key


def test_a_flag_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="window_stats must be true or false"):
        ModelConfig.from_dict({"window_stats": "yes"})


def test_the_bundled_model_loads_without_the_branch_and_gives_its_earlier_outputs(
    press_spec: SystemSpec,
) -> None:
    loaded = load_checkpoint(bundled_checkpoints()["universal"])
    assert loaded.config.window_stats is False
    assert loaded.model.statistics is None
    graph = SpecGraph.build(press_spec, loaded.contract)
    windows = _reference_windows(press_spec)
    batch = collate([encode_window(graph, w, 1.0, loaded.contract) for w in windows])
    with torch.inference_mode():
        output: ModelOutput = loaded.model(batch)
    assert all(torch.isfinite(getattr(output, f.name)).all() for f in fields(output))
    for name, expected in (
        ("machine_health", BUNDLED_MACHINE_HEALTH),
        ("normal_prob", BUNDLED_NORMAL_PROB),
        ("sensor_anomaly", BUNDLED_SENSOR_ANOMALY),
        ("rul_hours", BUNDLED_RUL_HOURS),
    ):
        torch.testing.assert_close(
            getattr(output, name), torch.tensor(expected), rtol=1e-5, atol=1e-5, msg=name
        )
