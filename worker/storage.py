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
from service.db.repositories import OutcomeRepository, SavedCounts
from worker.pipeline import Finished, Outcome
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

    def save(
        self, finished: Sequence[Finished], *, budget_s: float | None = None
    ) -> tuple[SavedCounts, dict[str, Outcome]]:
        """Store every outcome of a batch in one transaction; idempotent.

        One outcome per key (``Incoming.key``): the first message of a key in the batch is
        stored unless the key has an outcome already. Returns the rows written and, for
        every key of the batch, the outcome the database holds: what the result backend
        must show, whatever a duplicate or redelivered message carried.

        Raises:
            DatabaseUnavailable: The database stayed unreachable within ``budget_s``.
        """
        first: dict[str, Finished] = {}
        for item in finished:
            first.setdefault(item.incoming.key, item)
        diagnoses: list[Diagnosis] = []
        expired: list[Expired] = []
        letters: list[tuple[str, DeadLetter]] = []
        specs: dict[str, SystemSpec] = {}
        for key, item in first.items():
            outcome = item.outcome
            if isinstance(outcome, Diagnosed):
                diagnoses.append(outcome.diagnosis)
                if item.spec is not None:
                    specs.setdefault(outcome.diagnosis.system_id, item.spec)
            elif isinstance(outcome, ExpiredOutcome):
                expired.append(outcome.expired)
            elif isinstance(outcome, DeadLettered):
                letters.append((key, outcome.dead_letter))
        if not first:
            return SavedCounts(), {}
        outcomes: dict[str, Outcome] = {key: item.outcome for key, item in first.items()}

        async def write() -> SavedCounts:
            counts = await self.repository.save_batch(
                diagnoses=diagnoses,
                expired=expired,
                dead_letters=letters,
                specs=specs,
                budget_s=budget_s,
            )
            if counts.taken:
                outcomes.update(await self.repository.stored_outcomes(keys=counts.taken))
            return counts

        return self.resources.run(write()), outcomes

    def available(self, timeout_s: float | None = None) -> bool:
        """Whether the database answers a round trip now (within ``timeout_s``)."""
        try:
            self.resources.run(self.resources.database.ping(timeout_s))
        except Exception:
            return False
        return True
