from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from machines import Run, builtin_spec, write_run
from machines.labels import UNKNOWN_FAULT_CODE
from training.data.demo import (
    DemoPlan,
    LabelledWindow,
    collate_labelled,
    file_windows,
    label_windows,
    labelled_windows,
)
from training.evaluate import evaluate_windows
from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN, model_loss


def test_a_plan_gives_every_fault_mode_a_run_and_keeps_one_healthy() -> None:
    plan = DemoPlan(("excavator", "cnc_machine"), hours=24.0, seed=5, max_run_hours=4.0)
    recipes = plan.recipes()
    for system in ("excavator", "cnc_machine"):
        runs = [r for r in recipes if r.system == system]
        faults = [r.faults[0].fault_id for r in runs if r.faults]
        assert set(faults) == set(builtin_spec(system).fault_ids)
        assert sum(not r.faults for r in runs) >= 1
        assert sum(r.duration_s for r in runs) == 24 * 3600
        assert max(r.duration_s for r in runs) <= 4 * 3600


def test_a_plan_is_a_function_of_its_seed() -> None:
    same = DemoPlan(("excavator",), hours=12.0, seed=5).recipes()
    assert same == DemoPlan(("excavator",), hours=12.0, seed=5).recipes()
    other = DemoPlan(("excavator",), hours=12.0, seed=6).recipes()
    assert {r.seed for r in same}.isdisjoint({r.seed for r in other})
    assert [r.faults for r in same] != [r.faults for r in other]


def test_windows_are_labelled_at_their_last_step_with_the_batch_fault_convention(
    leak_run: Run, leak_windows: list[LabelledWindow]
) -> None:
    spec = leak_run.spec
    pump = spec.component_index["main_pump"]
    affected = {
        spec.sensor_index[s] for s in spec.fault_mode("pump_internal_leak").affected_sensors
    }
    onset_window = 10  # windows end at 59 s, 119 s, ...: the 10th ends at 659 s > 600 s
    before, after = leak_windows[onset_window - 1], leak_windows[onset_window]

    assert len(leak_windows) == 60
    assert not before.fault_code.any()
    assert not before.sensor_label.any()
    assert before.health.tolist() == [1.0] * len(spec.components)
    # The pump's only fault mode is candidate 1 of the pump; its code is its vocabulary index.
    assert after.fault_index[pump] == 1
    assert after.fault_code[pump] == spec.fault_index["pump_internal_leak"] + 1
    assert set(np.flatnonzero(after.sensor_label).tolist()) == affected
    assert 0.0 < after.sensor_effect.max() < 0.05  # barely started
    assert after.rul_hours[pump] == leak_run.rul_hours[659, pump]
    assert after.health[pump] == leak_run.health[659, pump] < 1.0
    assert leak_windows[-1].health[pump] < 0.2  # failed by the end


def test_labelled_batches_feed_the_model_loss(
    leak_windows: list[LabelledWindow], contract: FeatureContract, tiny_config: ModelConfig
) -> None:
    labelled = collate_labelled(leak_windows[:12])
    assert labelled.sensor_label.shape == (labelled.batch.num_nodes,)
    assert labelled.targets.fault_index.shape == (labelled.batch.num_components,)
    torch.manual_seed(0)
    model = UniversalTemporalGNN(tiny_config, contract)
    terms = model_loss(model(labelled.batch), labelled.batch, labelled.targets)
    assert all(bool(torch.isfinite(value)) for value in terms.values())


def test_run_files_give_the_same_windows_as_the_run(
    tmp_path: Path, leak_run: Run, contract: FeatureContract
) -> None:
    path = write_run(leak_run, tmp_path / "leak.parquet")
    from_file, runs = file_windows([path], contract, stride_s=300)
    direct = label_windows(leak_run, contract, stride_s=300)
    assert runs[0].same_as(leak_run)
    assert len(from_file) == len(direct) == 12
    for a, b in zip(from_file, direct, strict=True):
        assert np.array_equal(a.sample.x, b.sample.x)
        assert np.array_equal(a.fault_index, b.fault_index)
        assert np.array_equal(a.sensor_label, b.sensor_label)


def test_unknown_labels_are_masked_and_windows_without_a_reading_are_left_out(
    leak_run: Run, contract: FeatureContract, tiny_config: ModelConfig
) -> None:
    spec = leak_run.spec
    pump = spec.component_index["main_pump"]
    readings, health = leak_run.readings.copy(), leak_run.health.copy()
    codes = leak_run.fault_codes.copy()
    readings[600:720] = np.nan  # the windows ending at 659 s and 719 s see nothing
    health[:1200] = np.nan
    codes[:300, pump] = UNKNOWN_FAULT_CODE
    recorded = replace(
        leak_run, faults=(), readings=readings, health=health, fault_codes=codes, run_id="r"
    )
    windows, ends, empty = labelled_windows(recorded, contract, stride_s=60)
    assert empty == 2
    assert len(windows) == len(ends) == 58
    assert {659, 719}.isdisjoint(ends.tolist())
    assert windows[0].fault_index[pump] == windows[0].fault_code[pump] == -1

    labelled = collate_labelled(windows)
    targets = labelled.targets
    offsets = np.cumsum([0] + [len(w.fault_code) for w in windows[:-1]])
    assert not targets.fault_valid[offsets[0] + pump]
    assert targets.fault_valid[offsets[-1] + pump]
    assert torch.equal(targets.health_valid, torch.isfinite(torch.from_numpy(np.concatenate(
        [w.health for w in windows]
    ))))  # fmt: skip
    # Without a fault schedule, a labelled fault marks its mode's sensors.
    leak_sensors = {
        spec.sensor_index[s] for s in spec.fault_mode("pump_internal_leak").affected_sensors
    }
    assert set(np.flatnonzero(windows[-1].sensor_label).tolist()) == leak_sensors
    assert windows[-1].sensor_effect.max() == 1.0  # failed by the end

    torch.manual_seed(0)
    model = UniversalTemporalGNN(tiny_config, contract)
    terms = model_loss(model(labelled.batch), labelled.batch, targets)
    assert all(bool(torch.isfinite(value)) for value in terms.values())
    metrics = evaluate_windows(model, windows)["overall"]
    assert np.isfinite(metrics["health_mae"])
