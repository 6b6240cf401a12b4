"""Streams of snapshots for the producer: from a simulated machine or from a recorded file,
published open-loop at a fixed rate.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from machines.faults import FaultSpec
from machines.generator import generate
from machines.run import Run
from machines.windows import windows
from producer.client import ProducerClient
from schemas import Snapshot, SystemSpec

#: Longest machine time simulated up front for a live stream; longer streams replay it.
MAX_SIMULATED_S = 2 * 86_400.0


@dataclass
class StreamStats:
    """Running count of a publishing stream."""

    published: int = 0
    started: float = field(default_factory=time.monotonic)
    queue_depth: int = 0

    @property
    def elapsed_s(self) -> float:
        """Seconds since the stream started."""
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Snapshots per second so far."""
        elapsed = self.elapsed_s
        return self.published / elapsed if elapsed > 0 else 0.0


def run_prefix() -> str:
    """A short id that keeps snapshot ids of separate invocations apart."""
    return uuid.uuid4().hex[:8]


def snapshots_of(
    run: Run,
    *,
    window: int,
    stride: int,
    count: int | None,
    prefix: str,
    system_id: str | None = None,
) -> Iterator[Snapshot]:
    """Windows of ``run`` as snapshots with ids ``<prefix>-<n>``; replays the run to reach
    ``count`` snapshots (``None``: each window once)."""
    cut = windows(run, window, stride, system_id=system_id)
    source: Iterable[tuple[int, Snapshot]]
    if count is None:
        source = cut
    else:
        cached = list(cut)
        if not cached:
            raise ValueError(f"the run is shorter than one window of {window} steps")
        source = itertools.islice(itertools.cycle(cached), count)
    for number, (_, snapshot) in enumerate(source):
        yield snapshot.model_copy(update={"snapshot_id": f"{prefix}-{number:07d}"})


def simulated_run(
    system: str | SystemSpec,
    *,
    count: int,
    window: int,
    stride: int,
    faults: Sequence[FaultSpec | str],
    seed: int,
    progress: Callable[[str, float], None] | None = None,
) -> Run:
    """Simulate enough machine time for ``count`` windows (capped at two days, replayed)."""
    needed_s = float(window + (count - 1) * stride)
    return generate(
        system,
        duration_s=min(needed_s, MAX_SIMULATED_S),
        faults=faults,
        seed=seed,
        progress=progress,
    )


def publish(
    client: ProducerClient,
    snapshots: Iterable[Snapshot],
    *,
    rate: float | None,
    deadline_s: float | None = None,
    on_progress: Callable[[StreamStats], None] | None = None,
    progress_every_s: float = 0.25,
) -> StreamStats:
    """Publish ``snapshots`` open-loop at ``rate`` per second (``None``: as fast as possible).

    Open loop: snapshot n is due at ``start + n / rate`` whatever happened before, so a slow
    broker shows up as a falling achieved rate, not as a silently lower offered rate.
    """
    stats = StreamStats()
    last_report = stats.started
    for number, item in enumerate(snapshots):
        snapshot = item
        if rate is not None:
            delay = stats.started + number / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if deadline_s is not None:
            deadline = datetime.now(UTC) + timedelta(seconds=deadline_s)
            snapshot = snapshot.model_copy(update={"deadline": deadline})
        client.submit(snapshot)
        stats.published += 1
        now = time.monotonic()
        if on_progress is not None and now - last_report >= progress_every_s:
            stats.queue_depth = client.queue_depth()
            on_progress(stats)
            last_report = now
    stats.queue_depth = client.queue_depth()
    if on_progress is not None:
        on_progress(stats)
    return stats
