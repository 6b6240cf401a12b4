"""A circuit breaker around model execution.

Closed: batches run. After ``failure_threshold`` consecutive failures, or when the failure
rate over the last ``window`` outcomes reaches ``failure_rate`` (with at least
``min_calls`` outcomes), it opens: the worker stops consuming, so its messages go to healthy
workers. After ``reset_timeout_s`` it half-opens and lets one batch through; success closes
it, failure opens it again. Thread-safe: the batch thread records outcomes, the health
endpoint reads the state.

No library fitted: pybreaker counts consecutive failures only and raises on open, while the
worker needs a rate window and a state to poll between batches. This class is small and its
tests drive every transition.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable

StateListener = Callable[["BreakerState", "BreakerState"], None]


class BreakerState(enum.Enum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts model failures and decides when the worker may consume.

    Args:
        failure_threshold: Consecutive failures that open the breaker.
        failure_rate: Failure share over the window that opens it (1.0 disables).
        window: Outcomes kept for the rate.
        min_calls: Outcomes needed before the rate counts.
        reset_timeout_s: Seconds open before a trial batch.
        clock: Monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        failure_rate: float,
        window: int,
        min_calls: int,
        reset_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.failure_rate = failure_rate
        self.min_calls = min_calls
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._consecutive = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._lock = threading.RLock()  # listeners may read the state
        self._listeners: list[StateListener] = []

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self._state.value}, threshold={self.failure_threshold}, "
            f"rate={self.failure_rate}, reset_timeout_s={self.reset_timeout_s})"
        )

    def on_change(self, listener: StateListener) -> None:
        """Call ``listener(old, new)`` on every transition."""
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose timeout passed reads half-open."""
        with self._lock:
            return self._advance()

    def allows(self) -> bool:
        """Whether the worker may run a batch now."""
        return self.state is not BreakerState.OPEN

    def seconds_until_trial(self) -> float:
        """Seconds until an open breaker half-opens (0 when not open)."""
        with self._lock:
            if self._advance() is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.reset_timeout_s - self._clock())

    def record_success(self) -> None:
        """A batch ran; a half-open breaker closes."""
        with self._lock:
            self._advance()
            self._outcomes.append(True)
            self._consecutive = 0
            if self._state is BreakerState.HALF_OPEN:
                self._set(BreakerState.CLOSED)
                self._outcomes.clear()

    def record_failure(self) -> None:
        """A batch failed on the model; may open the breaker."""
        with self._lock:
            self._advance()
            self._outcomes.append(False)
            self._consecutive += 1
            if self._state is BreakerState.HALF_OPEN or self._tripped():
                self._opened_at = self._clock()
                self._set(BreakerState.OPEN)

    def _tripped(self) -> bool:
        if self._consecutive >= self.failure_threshold:
            return True
        calls = len(self._outcomes)
        if calls < self.min_calls or self.failure_rate >= 1.0:
            return False
        failures = sum(1 for ok in self._outcomes if not ok)
        return failures / calls >= self.failure_rate

    def _advance(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() >= self._opened_at + self.reset_timeout_s
        ):
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new:
            for listener in self._listeners:
                listener(old, new)
