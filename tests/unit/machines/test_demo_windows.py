"""Windows: a run cut into valid snapshot payloads."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from machines import generate, windows
from schemas import Snapshot, SystemSpec, load_spec

REPO = Path(__file__).resolve().parents[3]


def test_windows_are_valid_snapshots_of_the_right_length() -> None:
    run = generate("excavator", duration_s=600, seed=7, missing_rate=0.05)

    snapshots = list(windows(run, length=60, stride=30))

    assert [start for start, _ in snapshots] == list(range(0, 541, 30))
    for start, snapshot in snapshots:
        assert snapshot.window.steps == 60
        assert set(snapshot.window.readings) == set(run.sensor_ids)
        assert snapshot.window.start == run.start + timedelta(seconds=start)
        assert snapshot.spec == "excavator"
        assert Snapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


def test_window_values_match_the_run_with_missing_samples_as_none() -> None:
    run = generate("cnc_machine", duration_s=300, seed=1, missing_rate=0.1)

    start, snapshot = next(windows(run, length=100, stride=100))

    for index, sensor_id in enumerate(run.sensor_ids):
        series = snapshot.window.readings[sensor_id]
        for step, value in enumerate(series):
            expected = float(run.readings[start + step, index])
            if math.isnan(expected):
                assert value is None
            else:
                assert value == pytest.approx(expected, rel=1e-6)


def test_snapshot_ids_are_deterministic_and_unique() -> None:
    first = [
        s.snapshot_id for _, s in windows(generate("industrial_robot", duration_s=300, seed=4), 50)
    ]
    again = [
        s.snapshot_id for _, s in windows(generate("industrial_robot", duration_s=300, seed=4), 50)
    ]

    assert first == again
    assert len(set(first)) == len(first) == 6
    assert first[1] == "industrial_robot-s4-000050"


def test_a_user_machine_travels_inline() -> None:
    spec = load_spec(REPO / "docs" / "examples" / "hydraulic_press.yaml")
    run = generate(spec, duration_s=120, seed=0)

    _, snapshot = next(windows(run, length=60))

    assert isinstance(snapshot.spec, SystemSpec)
    assert snapshot.spec == spec


@pytest.mark.parametrize(("length", "stride"), [(1, 10), (10, 0)])
def test_bad_window_shapes_are_rejected(length: int, stride: int) -> None:
    run = generate("excavator", duration_s=60)

    with pytest.raises(ValueError, match="must be >="):
        next(windows(run, length, stride))
