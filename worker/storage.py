"""The batch thread's side of the database: one batch's outcomes in one transaction.

``OutcomeStore.save`` turns finished messages into rows (diagnoses, expirations, dead letters
and first-seen systems) and writes them with one INSERT per table, waiting on the process's
event loop. It raises ``DatabaseUnavailable`` when transient errors outlast the retry policy;
the consumer then requeues the batch unacknowledged and pauses until ``available()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas import DeadLetter, Diagnosis, Expired, SystemSpec
from schemas.result import DeadLettered, Diagnosed, ExpiredOutcome
from worker.db.repositories import OutcomeRepository, SavedCounts
from worker.pipeline import Finished
from worker.resources import ProcessResources


class OutcomeStore:
    """Stores outcomes through the process's database.

    Args:
        resources: The process's resources (database and event loop).
    """

    def __init__(self, resources: ProcessResources) -> None:
        self.resources = resources
        self.repository = OutcomeRepository(resources.database)

    def __repr__(self) -> str:
        return f"OutcomeStore({self.resources.database!r})"

    def save(self, finished: Sequence[Finished]) -> SavedCounts:
        """Store every outcome of a batch in one transaction; idempotent.

        Raises:
            DatabaseUnavailable: The database stayed unreachable through the retry policy.
        """
        diagnoses: list[Diagnosis] = []
        expired: list[Expired] = []
        letters: list[tuple[str, DeadLetter]] = []
        specs: dict[str, SystemSpec] = {}
        for item in finished:
            outcome = item.outcome
            if isinstance(outcome, Diagnosed):
                diagnoses.append(outcome.diagnosis)
                if item.spec is not None:
                    specs.setdefault(outcome.diagnosis.system_id, item.spec)
            elif isinstance(outcome, ExpiredOutcome):
                expired.append(outcome.expired)
            elif isinstance(outcome, DeadLettered):
                key = item.incoming.task_id or item.incoming.payload_sha256() or item.snapshot_id
                letters.append((key, outcome.dead_letter))
        if not (diagnoses or expired or letters):
            return SavedCounts()
        return self.resources.run(
            self.repository.save_batch(
                diagnoses=diagnoses, expired=expired, dead_letters=letters, specs=specs
            )
        )

    def available(self) -> bool:
        """Whether the database answers a round trip now."""
        try:
            self.resources.run(self.resources.database.ping())
        except Exception:
            return False
        return True
