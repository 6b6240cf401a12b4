"""One micro-batch, from received messages to outcomes: the core of the worker.

``BatchProcessor.process`` decodes and admits every message, records expired and invalid
ones, encodes the rest, runs ONE model forward for all of them and turns each output into a
Diagnosis. It knows nothing of Celery or kombu: the consumer feeds it ``Incoming`` messages
and stores, acknowledges or requeues according to what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loguru import logger

from schemas import DeadLetter, DeadLetterReason, Expired, Snapshot, SystemSpec, Timings
from schemas.result import DeadLettered, Diagnosed, ExpiredOutcome
from service import spans
from service.admission import SpecResolver, admit, parse_snapshot
from service.db.machines import spec_digest
from service.errors import InvalidInput, ModelError
from service.metrics import ServiceMetrics
from service.settings import Settings
from worker.engine import ModelRunner
from worker.machine_book import BUILTIN_VERSION
from worker.messages import Incoming, printable
from worker.model import GraphSample, ModelOutput, encode_window
from worker.model.features import resampled
from worker.postprocess import assemble, component_diagnoses

if TYPE_CHECKING:
    from service.settings_sections import DiagnosisSettings
    from worker.model_router import ModelRouter

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
        failed: Messages whose snapshots were valid but the model failed on each of them
            alone (a failing batch is split until the failures are isolated); the consumer
            requeues them, or fails them for good after repeated failures.
        error: The first model error, when ``failed`` is not empty.
        model_failed: The model diagnosed none of the batch's valid snapshots (what the
            circuit breaker counts as a failed batch).
        timings: Seconds spent per stage, for metrics.
    """

    finished: list[Finished] = field(default_factory=list)
    failed: list[tuple[Incoming, str]] = field(default_factory=list)
    error: ModelError | None = None
    model_failed: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    nodes: int = 0
    out_of_memory: int = 0
    splits: int = 0
    models: dict[str, ModelShare] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        """How many finished messages had ``outcome``."""
        return sum(1 for item in self.finished if item.outcome.outcome == outcome)


@dataclass
class ModelShare:
    """What one model did in a micro-batch (per-model metrics)."""

    snapshots: int = 0
    forward_s: float = 0.0
    failed: int = 0


@dataclass
class _Accepted:
    incoming: Incoming
    snapshot: Snapshot
    spec: SystemSpec
    sample: GraphSample
    runner: ModelRunner
    spec_version: str | None


class BatchProcessor:
    """Turns micro-batches of messages into outcomes with one model forward per model.

    Args:
        settings: Service settings (limits, diagnosis thresholds).
        runner: The fallback model's runner; swapped between batches by the consumer.
        resolve_spec: Finds a machine's spec by name.
        metrics: Where diagnoses of short windows are counted (none: not counted).
        router: Routes machines to other models (None: the fallback serves every machine).
        spec_version: The version of a named machine's spec (None: ``builtin``).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        runner: ModelRunner,
        resolve_spec: SpecResolver,
        metrics: ServiceMetrics | None = None,
        router: ModelRouter | None = None,
        spec_version: Callable[[str], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.resolve_spec = resolve_spec
        self.metrics = metrics
        self.router = router
        self.spec_version = spec_version or (lambda _name: BUILTIN_VERSION)
        self._rules: dict[str, DiagnosisSettings] = {}

    def rules_of(self, runner: ModelRunner) -> DiagnosisSettings:
        """The model's calibrated status thresholds, unless GNN_DIAGNOSIS__CALIBRATED=false."""
        rules = self._rules.get(runner.version)
        if rules is None:
            rules = self._rules[runner.version] = self.settings.diagnosis.for_model(
                runner.calibration
            )
        return rules

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
        groups: dict[int, list[_Accepted]] = {}
        for item in accepted:  # one forward per model, in order of first appearance
            groups.setdefault(id(item.runner), []).append(item)
        for group in groups.values():
            self._diagnose(group, result, started, closed_at, features_s / len(accepted))
        result.model_failed = not any(
            isinstance(item.outcome, Diagnosed) for item in result.finished
        )
        return result

    def _forward(self, accepted: list[_Accepted], result: BatchResult) -> list[ModelOutput | None]:
        """The model's output per snapshot; None where the model failed on it alone.

        A failing batch is split in halves until each failure is isolated, so that healthy
        snapshots of a batch holding a poison one are diagnosed, and only the snapshots that
        fail alone count failures.
        """
        runner = accepted[0].runner
        share = result.models.setdefault(runner.version, ModelShare())
        try:
            outputs, stats = runner.forward([item.sample for item in accepted])
        except Exception as exc:
            error = exc if isinstance(exc, ModelError) else _unexpected(exc)
            if len(accepted) == 1:
                item = accepted[0]
                share.failed += 1
                result.failed.append((item.incoming, item.snapshot.snapshot_id))
                result.error = result.error or error
                logger.error(
                    "model failed on a snapshot",
                    snapshot_id=item.snapshot.snapshot_id,
                    error=str(error),
                )
                return [None]
            result.splits += 1
            half = len(accepted) // 2
            return self._forward(accepted[:half], result) + self._forward(accepted[half:], result)
        result.timings["forward"] = result.timings.get("forward", 0.0) + stats.seconds
        share.snapshots += len(accepted)
        share.forward_s += stats.seconds
        result.out_of_memory += stats.out_of_memory
        result.splits += stats.splits
        return list(outputs)

    def _diagnose(
        self,
        accepted: list[_Accepted],
        result: BatchResult,
        started: float,
        closed_at: float,
        features_share_s: float,
    ) -> None:
        """Forward one model's snapshots and assemble their diagnoses."""
        runner = accepted[0].runner
        forward_before = result.timings.get("forward", 0.0)
        post_before = result.timings.get("postprocess", 0.0)
        with spans.stage_span(
            spans.STAGE_FORWARD,
            **{spans.ATTR_BATCH_SIZE: len(accepted), spans.ATTR_BATCH_NODES: result.nodes},
        ):
            forwarded = self._forward(accepted, result)
        done = [
            (item, output)
            for item, output in zip(accepted, forwarded, strict=True)
            if output is not None
        ]
        if not done:
            return
        forward_s = result.timings.get("forward", 0.0) - forward_before
        post_started = time.perf_counter()
        rules = self.rules_of(runner)
        with spans.stage_span(spans.STAGE_POSTPROCESS):
            records = [component_diagnoses(item.sample, output, rules) for item, output in done]
        post_s = time.perf_counter() - post_started
        result.timings["postprocess"] = post_before + post_s
        share = 1000.0 / len(done)
        total_ms = (time.perf_counter() - started) * 1000.0
        created_at = datetime.now(UTC)
        for (item, _), (components, machine_health) in zip(done, records, strict=True):
            batch_wait_ms = (closed_at - item.incoming.received_monotonic) * 1000.0
            diagnosis = assemble(
                snapshot=item.snapshot,
                sample=item.sample,
                components=components,
                machine_health=machine_health,
                model_version=runner.version,
                spec_version=item.spec_version,
                created_at=created_at,
                timings=Timings(
                    queue_ms=_queue_ms(item.incoming),
                    batch_wait_ms=batch_wait_ms,
                    features_ms=features_share_s * 1000.0,
                    forward_ms=forward_s * share,
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
            if item.sample.padded_steps:
                self._count_short(item)

    def _count_short(self, item: _Accepted) -> None:
        """A diagnosis of a window shorter than the model's (its warning says so)."""
        rate = item.snapshot.window.sample_rate_hz
        label = "true" if resampled(rate, item.runner.contract) else "false"
        logger.debug(
            "short window",
            snapshot_id=item.snapshot.snapshot_id,
            covered_steps=item.sample.covered_steps,
            sample_rate_hz=rate,
        )
        if self.metrics is not None:
            self.metrics.short_windows.labels(resampled=label).inc()

    def _admit(self, incoming: Incoming, now: datetime, result: BatchResult) -> _Accepted | None:
        try:
            data = incoming.snapshot_data(self.settings.security)
            snapshot = parse_snapshot(data)
            check_id(incoming, snapshot)
            deadline = deadline_of(incoming, snapshot)
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
            routed = self.router.runner_for(admitted.spec.name) if self.router else None
            runner = routed or self.runner
            graph = runner.specs.get(admitted.spec)
            sample = encode_window(
                graph,
                snapshot.window.readings,
                snapshot.window.sample_rate_hz,
                runner.contract,
            )
        except ModelError as exc:  # the routed model cannot be loaded: requeue, count
            result.failed.append((incoming, snapshot.snapshot_id))
            result.error = result.error or exc
            return None
        except InvalidInput as exc:
            result.finished.append(dead_letter(incoming, exc.reason, str(exc), exc.field))
            return None
        except Exception as exc:  # nothing a message holds may stop the batch
            logger.exception("unexpected error admitting a message", key=incoming.key)
            result.finished.append(
                dead_letter(
                    incoming,
                    DeadLetterReason.UNPROCESSABLE.value,
                    f"the worker could not process this message: {type(exc).__name__}: {exc}",
                )
            )
            return None
        if isinstance(snapshot.spec, SystemSpec):
            version: str | None = f"inline-{spec_digest(snapshot.spec)[:12]}"
        else:
            version = self.spec_version(snapshot.spec)
        return _Accepted(incoming, snapshot, admitted.spec, sample, runner, version)


def deadline_of(incoming: Incoming, snapshot: Snapshot) -> datetime | None:
    """The snapshot's deadline: the earliest of its own and the ``expires`` header;
    with signing, the signed body's alone, and a header that differs is refused."""
    expires = incoming.expires
    if not incoming.signed:
        return _earliest(snapshot.deadline, expires)
    if expires is not None and expires != snapshot.deadline:
        raise InvalidInput(
            f"headers.expires: {expires.isoformat()} differs from the signed body's "
            f"deadline ({snapshot.deadline.isoformat() if snapshot.deadline else 'none'})",
            reason=DeadLetterReason.HEADER_MISMATCH.value,
            field="headers.expires",
        )
    return snapshot.deadline


def check_id(incoming: Incoming, snapshot: Snapshot) -> None:
    """The header ``id`` (the outcome's key, what pollers ask for) must be the snapshot's id.

    Raises:
        InvalidInput: ``header_mismatch`` naming ``headers.id``.
    """
    task_id = incoming.task_id
    if task_id is not None and task_id != snapshot.snapshot_id:
        raise InvalidInput(
            f"headers.id: {printable(task_id)[:130]!r} differs from the body's snapshot_id "
            f"{snapshot.snapshot_id!r}",
            reason=DeadLetterReason.HEADER_MISMATCH.value,
            field="headers.id",
        )


def dead_letter(incoming: Incoming, reason: str, detail: str, field: str | None = None) -> Finished:
    """The dead-letter outcome of ``incoming``; never raises, whatever the message holds.

    The record carries the id the message claims (cut to the record's limit, made
    printable), the field at fault when there is one, and the hash of its bytes; it is
    stored under ``incoming.key``.
    """
    clean = printable(detail.replace("\n", " "))[:4000]
    try:
        code = DeadLetterReason(reason)
    except ValueError:
        code = DeadLetterReason.UNPROCESSABLE
    record = DeadLetter(
        snapshot_id=incoming.shown_id,
        reason=code,
        detail=clean,
        field=None if field is None else printable(field)[:256],
        payload_sha256=incoming.payload_sha256(),
        received_at=datetime.fromtimestamp(incoming.received_at, UTC),
    )
    logger.warning("dead letter", key=incoming.key, reason=reason, detail=clean[:500])
    return Finished(incoming, record.snapshot_id or incoming.key, DeadLettered(dead_letter=record))


def _unexpected(exc: Exception) -> ModelError:
    logger.opt(exception=exc).error("model raised an unexpected error")
    return ModelError(f"{type(exc).__name__}: {exc}")


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def _queue_ms(incoming: Incoming) -> float | None:
    published = incoming.published_at
    if published is None:
        return None
    return max(0.0, (incoming.received_at - published) * 1000.0)
