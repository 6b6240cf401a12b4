"""One micro-batch, from received messages to outcomes: the core of the worker.

``BatchProcessor.process`` decodes and admits every message, records expired and invalid
ones, encodes the rest, runs ONE model forward for all of them and turns each output into a
Diagnosis. It knows nothing of Celery or kombu: the consumer feeds it ``Incoming`` messages
and stores, acknowledges or requeues according to what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from loguru import logger

from schemas import DeadLetter, Expired, Snapshot, SystemSpec, Timings
from schemas.result import DeadLettered, Diagnosed, ExpiredOutcome
from worker import spans
from worker.admission import SpecResolver, admit, parse_snapshot
from worker.engine import ModelRunner
from worker.errors import InvalidInput, ModelError
from worker.messages import Incoming
from worker.model import GraphSample, encode_window
from worker.postprocess import assemble, component_diagnoses
from worker.settings import Settings

Outcome = Diagnosed | ExpiredOutcome | DeadLettered


@dataclass
class Finished:
    """A message with its final outcome: store it, then acknowledge the message."""

    incoming: Incoming
    snapshot_id: str
    outcome: Outcome
    spec: SystemSpec | None = None  # the machine's spec, for diagnosed snapshots


@dataclass
class BatchResult:
    """What happened to one micro-batch.

    Attributes:
        finished: Messages with an outcome (diagnosed, expired or dead-lettered).
        failed: Messages whose snapshots were valid but the model failed on them; the
            consumer requeues them (or fails them for good after repeated failures).
        error: The model error, when ``failed`` is not empty.
        timings: Seconds spent per stage, for metrics.
    """

    finished: list[Finished] = field(default_factory=list)
    failed: list[tuple[Incoming, str]] = field(default_factory=list)
    error: ModelError | None = None
    timings: dict[str, float] = field(default_factory=dict)
    nodes: int = 0
    out_of_memory: int = 0
    splits: int = 0

    def count(self, outcome: str) -> int:
        """How many finished messages had ``outcome``."""
        return sum(1 for item in self.finished if item.outcome.outcome == outcome)


@dataclass
class _Accepted:
    incoming: Incoming
    snapshot: Snapshot
    spec: SystemSpec
    sample: GraphSample


class BatchProcessor:
    """Turns micro-batches of messages into outcomes with one model forward each.

    Args:
        settings: Service settings (limits, diagnosis thresholds).
        runner: The model runner; swapped between batches by the consumer.
        resolve_spec: Finds a machine's spec by name.
    """

    def __init__(
        self, *, settings: Settings, runner: ModelRunner, resolve_spec: SpecResolver
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.resolve_spec = resolve_spec

    def __repr__(self) -> str:
        return f"BatchProcessor(model={self.runner.version!r})"

    def process(self, batch: Sequence[Incoming]) -> BatchResult:
        """Process one micro-batch; never raises for bad input or model failure."""
        result = BatchResult()
        started = time.perf_counter()
        closed_at = time.monotonic()  # the clock Incoming.received_monotonic is on
        now = datetime.now(UTC)
        accepted: list[_Accepted] = []
        with spans.stage_span(spans.STAGE_FEATURES):
            for incoming in batch:
                item = self._admit(incoming, now, result)
                if item is not None:
                    accepted.append(item)
        features_s = time.perf_counter() - started
        result.timings["features"] = features_s
        if not accepted:
            return result
        result.nodes = sum(item.sample.x.shape[0] for item in accepted)
        try:
            self._diagnose(accepted, result, started, closed_at, features_s)
        except ModelError as exc:
            self._fail(accepted, result, exc)
        except Exception as exc:  # a bug must not take the batch loop down
            logger.exception("batch processing failed")
            self._fail(accepted, result, ModelError(f"{type(exc).__name__}: {exc}"))
        return result

    def _fail(self, accepted: list[_Accepted], result: BatchResult, exc: ModelError) -> None:
        result.error = exc
        result.failed = [(item.incoming, item.snapshot.snapshot_id) for item in accepted]
        logger.error("model failed on a batch", error=str(exc), snapshots=len(accepted))

    def _diagnose(
        self,
        accepted: list[_Accepted],
        result: BatchResult,
        started: float,
        closed_at: float,
        features_s: float,
    ) -> None:
        with spans.stage_span(
            spans.STAGE_FORWARD,
            **{spans.ATTR_BATCH_SIZE: len(accepted), spans.ATTR_BATCH_NODES: result.nodes},
        ):
            outputs, stats = self.runner.forward([item.sample for item in accepted])
        result.timings["forward"] = stats.seconds
        result.out_of_memory, result.splits = stats.out_of_memory, stats.splits
        post_started = time.perf_counter()
        with spans.stage_span(spans.STAGE_POSTPROCESS):
            records = [
                component_diagnoses(item.sample, output, self.settings.diagnosis)
                for item, output in zip(accepted, outputs, strict=True)
            ]
        post_s = time.perf_counter() - post_started
        result.timings["postprocess"] = post_s
        share = 1000.0 / len(accepted)
        total_ms = (time.perf_counter() - started) * 1000.0
        created_at = datetime.now(UTC)
        for item, (components, machine_health) in zip(accepted, records, strict=True):
            batch_wait_ms = (closed_at - item.incoming.received_monotonic) * 1000.0
            diagnosis = assemble(
                snapshot=item.snapshot,
                sample=item.sample,
                components=components,
                machine_health=machine_health,
                model_version=self.runner.version,
                created_at=created_at,
                timings=Timings(
                    queue_ms=_queue_ms(item.incoming),
                    batch_wait_ms=batch_wait_ms,
                    features_ms=features_s * share,
                    forward_ms=stats.seconds * share,
                    postprocess_ms=post_s * share,
                    total_ms=total_ms + batch_wait_ms,
                ),
            )
            result.finished.append(
                Finished(
                    item.incoming,
                    item.snapshot.snapshot_id,
                    Diagnosed(diagnosis=diagnosis),
                    item.spec,
                )
            )

    def _admit(self, incoming: Incoming, now: datetime, result: BatchResult) -> _Accepted | None:
        try:
            data = incoming.snapshot_data(self.settings.security)
            snapshot = parse_snapshot(data)
            deadline = _earliest(snapshot.deadline, incoming.expires)
            if deadline is not None and deadline <= now:
                expired = Expired(
                    snapshot_id=snapshot.snapshot_id,
                    system_id=snapshot.system_id,
                    deadline=deadline,
                    observed_at=now,
                    correlation_id=snapshot.correlation_id,
                )
                result.finished.append(
                    Finished(incoming, snapshot.snapshot_id, ExpiredOutcome(expired=expired))
                )
                return None
            admitted = admit(
                snapshot, limits=self.settings.security, resolve_spec=self.resolve_spec
            )
            graph = self.runner.specs.get(admitted.spec)
            sample = encode_window(
                graph,
                snapshot.window.readings,
                snapshot.window.sample_rate_hz,
                self.runner.contract,
            )
        except InvalidInput as exc:
            snapshot_id = incoming.task_id or str(exc.context.get("snapshot_id") or "")
            record = DeadLetter(
                snapshot_id=snapshot_id or None,
                reason=exc.reason,  # type: ignore[arg-type]
                detail=str(exc)[:4000],
                payload_sha256=incoming.payload_sha256(),
                received_at=datetime.fromtimestamp(incoming.received_at, UTC),
            )
            logger.warning(
                "dead letter", snapshot_id=snapshot_id, reason=exc.reason, detail=str(exc)[:500]
            )
            result.finished.append(
                Finished(incoming, snapshot_id, DeadLettered(dead_letter=record))
            )
            return None
        return _Accepted(incoming, snapshot, admitted.spec, sample)


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def _queue_ms(incoming: Incoming) -> float | None:
    published = incoming.published_at
    if published is None:
        return None
    return max(0.0, (incoming.received_at - published) * 1000.0)
