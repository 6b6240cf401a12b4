from __future__ import annotations

import pytest

from worker.postprocess import status_of
from worker.settings import DiagnosisSettings


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
