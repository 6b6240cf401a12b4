from __future__ import annotations

from worker.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, **overrides: float) -> CircuitBreaker:
    options = {
        "failure_threshold": 3,
        "failure_rate": 0.5,
        "window": 10,
        "min_calls": 6,
        "reset_timeout_s": 5.0,
    }
    options.update(overrides)
    return CircuitBreaker(clock=clock, **options)  # type: ignore[arg-type]


def test_consecutive_failures_open_then_half_open_then_close() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    changes: list[tuple[str, str]] = []
    breaker.on_change(lambda old, new: changes.append((old.value, new.value)))
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows()
    assert breaker.seconds_until_trial() == 5.0
    clock.now += 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allows()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_trial_opens_the_breaker_again() -> None:
    clock = Clock()
    breaker = _breaker(clock, failure_threshold=1)
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.seconds_until_trial() == 5.0


def test_a_failure_rate_over_the_window_opens_it_without_a_streak() -> None:
    breaker = _breaker(Clock(), failure_threshold=100)
    for _ in range(3):
        breaker.record_success()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN  # 3 of 6 failed: rate 0.5


def test_successes_reset_the_streak() -> None:
    breaker = _breaker(Clock(), failure_rate=1.0)
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
