from __future__ import annotations

from typing import Any

import pytest

from service.settings import DiagnosisSettings
from worker.postprocess import status_of


@pytest.mark.parametrize(
    ("health", "anomaly", "fault_probability", "expected"),
    [
        (0.95, 0.8, 0.1, "ok"),
        (0.69, 0.8, 0.1, "warning"),
        (0.95, 3.0, 0.1, "warning"),
        (0.95, 0.8, 0.5, "warning"),
        (0.29, 0.8, 0.1, "critical"),
        (0.95, 6.0, 0.1, "critical"),
    ],
)
def test_status_follows_the_configured_thresholds(
    health: float, anomaly: float, fault_probability: float, expected: str
) -> None:
    assert status_of(health, anomaly, fault_probability, DiagnosisSettings()) == expected


def test_thresholds_are_settings() -> None:
    strict = DiagnosisSettings(warning_health=0.99, critical_health=0.9)
    assert status_of(0.95, 0.1, 0.0, strict) == "warning"


def _robot_output() -> tuple[Any, Any, Any, Any]:
    """A seeded small model's output on one industrial-robot window: runner, snapshot,
    sample, output."""
    import torch

    from machines.catalog import builtin_spec
    from machines.generator import generate
    from machines.windows import windows
    from worker.engine import ModelRunner
    from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN, encode_window

    torch.manual_seed(0)
    contract = FeatureContract()
    runner = ModelRunner(
        model=UniversalTemporalGNN(ModelConfig(hidden=16, heads=2), contract),
        contract=contract,
        version="test:1",
        device=torch.device("cpu"),
    )
    spec = builtin_spec("industrial_robot")
    run = generate(spec, duration_s=120, seed=4, faults=["gearbox_wear@30s:step"])
    _, snapshot = next(windows(run, 60, 60))
    sample = encode_window(
        runner.specs.get(spec), snapshot.window.readings, snapshot.window.sample_rate_hz, contract
    )
    (output,), _ = runner.forward([sample])
    return runner, snapshot, sample, output


def test_diagnoses_built_without_validation_still_satisfy_the_schema() -> None:
    from datetime import UTC, datetime

    from schemas import Diagnosis, Timings
    from worker.postprocess import assemble, component_diagnoses

    runner, snapshot, sample, output = _robot_output()
    # The batch processor's two steps: schema-checked component records, then the unchecked
    # Diagnosis around them.
    components, machine_health = component_diagnoses(sample, output, DiagnosisSettings())
    built = assemble(
        snapshot=snapshot,
        sample=sample,
        components=components,
        machine_health=machine_health,
        model_version=runner.version,
        spec_version="builtin",
        created_at=datetime.now(UTC),
        timings=Timings(),
    )
    validated = Diagnosis.model_validate(built.model_dump(mode="json"))
    assert [c.component_id for c in validated.components] == list(sample.graph.component_ids)
    for component in validated.components:
        assert abs(sum(component.fault_probabilities.values()) - 1.0) < 1e-4
        assert component.rul is not None
        assert component.rul.low_hours <= component.rul.hours <= component.rul.high_hours
        assert len(component.top_sensors) <= 3


def test_remaining_life_never_exceeds_the_cap_the_model_was_trained_to() -> None:
    from dataclasses import replace

    from machines import RUL_CAP_HOURS
    from worker.postprocess import component_diagnoses

    _, _, sample, output = _robot_output()
    beyond = replace(output, rul_hours=output.rul_hours + 2 * RUL_CAP_HOURS)
    components, _ = component_diagnoses(sample, beyond, DiagnosisSettings())
    for component in components:
        assert component.rul is not None
        assert component.rul.hours == RUL_CAP_HOURS
        assert component.rul.low_hours <= RUL_CAP_HOURS
        assert component.rul.high_hours == RUL_CAP_HOURS
