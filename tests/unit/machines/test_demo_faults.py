"""Fault strings, durations, and the health / RUL curves a fault implies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from machines import (
    FAILURE_HEALTH,
    RUL_CAP_HOURS,
    DurationError,
    FaultSpec,
    FaultSpecError,
    format_duration,
    parse_duration,
    parse_fault,
)

KNOWN = ("pump_internal_leak", "cooler_fouling")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("10m", 600.0), ("6h", 21_600.0), ("2d", 172_800.0), ("1.5h", 5400.0)],
)
def test_durations_accept_the_documented_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "h", "-1h", "6 hours", "1e3s", "6x"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(DurationError, match="invalid duration"):
        parse_duration(text)


def test_durations_format_in_the_largest_exact_unit() -> None:
    assert [format_duration(s) for s in (21_600, 5400, 90, 86_400, 1.5)] == [
        "6h",
        "90m",
        "90s",
        "1d",
        "1.5s",
    ]


def test_a_fault_string_with_defaults() -> None:
    fault = parse_fault("pump_internal_leak@6h", KNOWN)

    assert fault == FaultSpec("pump_internal_leak", 21_600.0, "linear", 1.0, 43_200.0)


def test_a_fault_string_with_every_field() -> None:
    fault = parse_fault("pump_internal_leak@6h:exponential:0.8:2d", KNOWN)

    assert fault == FaultSpec("pump_internal_leak", 21_600.0, "exponential", 0.8, 172_800.0)
    assert parse_fault(str(fault), KNOWN) == fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pump_internal_leak", "expected <fault_id>@<onset>"),
        ("pump_internal_leak@6h:quadratic", "unknown progression 'quadratic'"),
        ("pump_internal_leak@6h:linear:1.5", "severity must be in (0, 1]"),
        ("pump_internal_leak@6h:linear:0", "severity must be in (0, 1]"),
        ("pump_internal_leak@6h:linear:high", "could not convert"),
        ("pump_internal_leak@soon", "invalid duration 'soon'"),
        ("pump_internal_leak@6h:linear:1:0s", "time to failure must be > 0"),
        ("pump_internal_leak@6h:linear:1:1h:x", "too many"),
        (
            "pump_leak@6h",
            "unknown fault 'pump_leak'; this machine's faults are: pump_internal_leak, cooler_fouling",
        ),
    ],
)
def test_bad_fault_strings_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_fault(text, KNOWN)

    assert message in str(caught.value)


def test_linear_fault_fails_exactly_at_onset_plus_time_to_failure() -> None:
    fault = FaultSpec("f", onset_s=100.0, progression="linear", time_to_failure_s=1000.0)
    t = np.array([0.0, 99.0, 100.0, 600.0, 1100.0, 2000.0])

    health = fault.health(t)
    rul = fault.rul_hours(t)

    assert health[:3].tolist() == [1.0, 1.0, 1.0]
    assert health[3] == pytest.approx(1 - 0.5 * (1 - FAILURE_HEALTH))
    assert health[4] == pytest.approx(FAILURE_HEALTH)
    assert health[5] == 0.0
    assert rul[:2].tolist() == [RUL_CAP_HOURS, RUL_CAP_HOURS]
    assert rul[2] == pytest.approx(1000 / 3600)
    assert rul[4:].tolist() == [0.0, 0.0]


def test_exponential_fault_starts_slowly_and_reaches_failure_on_time() -> None:
    fault = FaultSpec("f", onset_s=0.0, progression="exponential", time_to_failure_s=100.0)

    health = fault.health(np.array([25.0, 75.0, 100.0]))

    assert health[0] > 0.97
    assert 0.6 < health[1] < 0.8
    assert health[2] == pytest.approx(FAILURE_HEALTH)
    assert fault.failure_time_s == pytest.approx(100.0)


def test_lower_severity_delays_failure_and_a_mild_step_never_fails() -> None:
    assert FaultSpec("f", 0.0, "linear", 0.5, 100.0).failure_time_s == pytest.approx(200.0)
    assert FaultSpec("f", 0.0, "exponential", 0.5, 100.0).failure_time_s > 100.0
    assert FaultSpec("f", 50.0, "step", 1.0).failure_time_s == 50.0
    assert math.isinf(FaultSpec("f", 50.0, "step", 0.5).failure_time_s)
    assert FaultSpec("f", 50.0, "step", 0.5).rul_hours(np.array([60.0]))[0] == RUL_CAP_HOURS
